"""A generic folder of RGB frames and depth maps, matched by file stem and ordered by natural sort.

    DIR/rgb/<stem>.png|.jpg|.jpeg        8-bit colour frames
    DIR/depth/<stem>.png                 16-bit depth, integer units × depth_scale (default 0.001: millimetres)
    DIR/depth/<stem>.npy                 H×W float metres (integer arrays are scaled like PNGs)
Zero, NaN and inf depth are invalid. DIR may instead hold one such pair of folders per sequence
(DIR/<sequence>/rgb, DIR/<sequence>/depth), and a split names a subfolder (DIR/<split>/...).
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from .clips import FileSequence, image_values, natural_key, report_skipped
from .errors import DataError

RGB_SUFFIXES = (".png", ".jpg", ".jpeg")
DEPTH_SUFFIXES = (".png", ".npy")


def read_depth(path: Path, depth_scale: float) -> np.ndarray:
    """H×W float32 metres from a 16-bit PNG or a .npy; invalid stays 0/NaN/inf for the resize to drop."""
    if path.suffix == ".npy":
        try:
            with open(path, "rb") as f:
                values = np.load(f, allow_pickle=False)
        except FileNotFoundError:
            raise DataError(path, "file not found") from None
        except (OSError, ValueError, EOFError) as err:
            raise DataError(path, f"cannot load array ({err})") from None
        if not isinstance(values, np.ndarray):  # an .npz archive under a .npy name
            raise DataError(path, "expected a single .npy array, found an .npz archive")
        if values.ndim == 3 and values.shape[2] == 1:
            values = values[..., 0]
        if values.ndim != 2 or values.dtype.kind not in "fiu":  # float, signed or unsigned integer
            raise DataError(path, f"expected an H×W numeric depth array, got {values.dtype} {values.shape}")
    else:
        values = image_values(path)
        if values.dtype == np.uint8:
            raise DataError(path, "8-bit depth PNG is ambiguous: use 16-bit PNG (depth_scale units) or .npy metres")
    if np.issubdtype(values.dtype, np.integer):
        return values.astype(np.float32) * np.float32(depth_scale)
    return values.astype(np.float32)


def _by_stem(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    files = {}
    for path in folder.iterdir():
        if path.suffix.lower() in suffixes:
            if path.stem in files:
                raise DataError(path, f"two frames share the stem {path.stem!r} ({files[path.stem].name})")
            files[path.stem] = path
    return files


def _sequence(folder: Path, name: str, depth_scale: float, skip_bad: bool) -> FileSequence:
    rgb, depth = _by_stem(folder / "rgb", RGB_SUFFIXES), _by_stem(folder / "depth", DEPTH_SUFFIXES)
    reported: set[str] = set()
    for stem in sorted(rgb.keys() ^ depth.keys(), key=natural_key):
        alone = rgb.get(stem) or depth[stem]
        error = DataError(alone, f"has no {'depth' if stem in rgb else 'RGB'} partner with the same stem")
        if not skip_bad:
            raise error
        report_skipped(error, reported)
    stems = sorted(rgb.keys() & depth.keys(), key=natural_key)
    return FileSequence(name, tuple(rgb[s] for s in stems), tuple(depth[s] for s in stems),
                        functools.partial(read_depth, depth_scale=depth_scale))


def folder_sequences(root: Path, split: str | None, depth_scale: float = 0.001, skip_bad: bool = False
                     ) -> list[FileSequence]:
    if split is not None:
        root = root / split
        if not root.is_dir():
            raise DataError(root, f"split folder {split!r} not found")
    if (root / "rgb").is_dir():
        folders = [root]
    else:
        folders = sorted((d for d in root.iterdir() if (d / "rgb").is_dir()), key=lambda d: natural_key(d.name))
    if not folders:
        raise DataError(root, "expected rgb/ and depth/ folders here or in its subfolders")
    for folder in folders:
        if not (folder / "depth").is_dir():
            raise DataError(folder / "depth", "folder not found (every rgb/ needs a depth/ beside it)")
    return [_sequence(folder, folder.name, depth_scale, skip_bad) for folder in folders]
