"""SyncVP checkpoints: one safetensors file holding every weight (autoencoders + joint network) with the config
as JSON in the file's metadata, so a file alone rebuilds its model.

Metadata (all strings, as safetensors requires): `format` = "syncvp", `format_version`, `config` (the
`SyncVPConfig.to_dict()` JSON), `step` (training step or ""), `extra` (caller's JSON, e.g. metrics).

`load_model(spec)` takes a file path, "preset:NAME" (a seeded random init, identical on every call) or
"bundled" (the package's default model file). Every failure is a `CheckpointError` with one line that names the
file and, for a config mismatch, the fields that differ.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import safetensors.torch
import torch
from safetensors import SafetensorError

from syncvp_core.checkpoint_format import FORMAT, FORMAT_VERSION, CheckpointError, read_metadata
from syncvp_core.checkpoint_format import one_line as _one_line
from syncvp_core.config import PRESETS, SyncVPConfig, get_config
from syncvp_core.model import SyncVP

BUNDLED_PATH = Path(__file__).resolve().parent / "weights" / "tiny.safetensors"
PRESET_SEED = 0
OPTIONAL_PREFIXES = ("latent_stats.",)  # weights a file may lack (written before they existed)


@dataclass
class Checkpoint:
    model: SyncVP
    step: int | None = None
    extra: dict = field(default_factory=dict)


def save_checkpoint(path, model: SyncVP, step: int | None = None, extra: dict | None = None) -> Path:
    """Write every weight of `model` and its config to `path` (parents created); `extra` must be JSON-able."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": json.dumps(model.cfg.to_dict()),
                "step": "" if step is None else str(int(step)), "extra": json.dumps(extra or {})}
    # save_model (unlike save_file) accepts tensors tied between modules and stores them once
    safetensors.torch.save_model(model, str(path), metadata=metadata)
    return path


def read_config(path, metadata: dict | None = None) -> SyncVPConfig:
    """The config stored in a checkpoint (from its already read `metadata` if given)."""
    metadata = read_metadata(path) if metadata is None else metadata
    try:
        return SyncVPConfig.from_dict(json.loads(metadata["config"]))
    except (ValueError, TypeError, AttributeError) as e:  # AttributeError: a section that is not a JSON object
        raise CheckpointError(f"checkpoint {path} has an invalid config: {_one_line(e)}") from None


def config_differences(a: SyncVPConfig, b: SyncVPConfig) -> list[str]:
    """'field: a vs b' for every (dotted) config field whose values differ."""
    flat_a, flat_b = _flatten(a.to_dict()), _flatten(b.to_dict())
    return [f"{k}: {flat_a.get(k)!r} vs {flat_b.get(k)!r}" for k in sorted(flat_a.keys() | flat_b.keys())
            if _plain(flat_a.get(k)) != _plain(flat_b.get(k))]


def load_checkpoint(path, expected_config: SyncVPConfig | None = None, device="cpu") -> Checkpoint:
    """Rebuild the model a checkpoint describes; with `expected_config` (e.g. `model.cfg`), refuse a different one."""
    path = Path(path)
    metadata = read_metadata(path)
    cfg = read_config(path, metadata)
    if expected_config is not None:
        diff = config_differences(cfg, expected_config)
        if diff:
            raise CheckpointError(f"checkpoint {path} has a different config (checkpoint vs expected): "
                                  + "; ".join(diff))
    model = SyncVP(cfg)
    try:
        missing, unexpected = safetensors.torch.load_model(model, str(path), strict=False)
    except (RuntimeError, OSError, SafetensorError) as e:
        raise CheckpointError(f"checkpoint {path} does not fit its config's model: {_one_line(e)}") from None
    # files from before latent standardisation lack only the statistics, which then stay the identity
    missing = [k for k in missing if not k.startswith(OPTIONAL_PREFIXES)]
    if missing or unexpected:
        raise CheckpointError(f"checkpoint {path} does not fit its config's model: "
                              + _one_line(ValueError(f"missing {missing[:5]}, unexpected {unexpected[:5]}")))
    step = int(metadata["step"]) if metadata.get("step") else None
    return Checkpoint(model.to(device).eval(), step, json.loads(metadata.get("extra") or "{}"))


def load_model(spec: str, device="cpu") -> SyncVP:
    """A ready model (eval mode, on `device`) from a checkpoint path, "preset:NAME", "bundled" or a directory of
    the authors' released files; a file whose metadata says `family` = "reference" builds the reference family."""
    spec = str(spec)
    if spec.startswith("preset:"):
        name = spec.removeprefix("preset:")
        if name not in PRESETS:
            raise CheckpointError(f"unknown preset {name!r} in {spec!r}; presets: {', '.join(PRESETS)}")
        with torch.random.fork_rng(devices=[]):  # seeded without disturbing the caller's random state
            torch.manual_seed(PRESET_SEED)
            model = SyncVP(get_config(name))
        return model.to(device).eval()
    if spec == "bundled":
        if not BUNDLED_PATH.is_file():
            raise CheckpointError(f"the bundled model file {BUNDLED_PATH} does not exist yet "
                                  "(train one with syncvp-train, or pass a checkpoint path or preset:NAME)")
        spec = str(BUNDLED_PATH)
    if Path(spec).is_dir():  # the authors' released .pth files (docs/reference-checkpoints.md)
        from syncvp_core.reference import load_directory  # lazy: the reference family imports this module
        return load_directory(spec, device)
    if not Path(spec).is_file():
        raise CheckpointError(f"checkpoint file {spec} not found (give a path, preset:NAME or bundled)")
    if read_metadata(spec).get("family") == "reference":  # converted by syncvp-import-reference
        from syncvp_core.reference import load_converted
        return load_converted(spec, device)
    return load_checkpoint(spec, device=device).model


# Config names contain it too (paper-64), so an id is split at its last one: the hash has none.
_MODEL_ID_SEPARATOR = "-"


def model_id(model: SyncVP) -> str:
    """'<config name>-<12 hex digits of SHA-256 over every weight>': names the exact weights, e.g. in messages."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return f"{model.cfg.name}{_MODEL_ID_SEPARATOR}{h.hexdigest()[:12]}"


def model_id_config(identifier: str) -> str:
    """The config name a `model_id` was made from (e.g. from a recorded message's model_id)."""
    return identifier.rsplit(_MODEL_ID_SEPARATOR, 1)[0]


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def _plain(v):
    # tuples and lists compare equal (JSON has only lists)
    return list(v) if isinstance(v, tuple) else v
