"""A release converted to one safetensors file in our checkpoint format, and that file read back.

The file is a `syncvp_core.checkpoint` file (metadata `format` = "syncvp", `config`, `step`, `extra`) with
`family` = "reference": `config` is the `ReferenceConfig` JSON (inferred architecture, depth codec, schedule and
sampler), `extra` names the release and its files. Tensors are the `ReferenceSyncVP` state dict
(`net.diffusion_model.…` as in `syncvp_<name>.pth`, `autoencoders.{rgb,depth}_{8,2}f.…` as in the AE files).
With fp16 only the weights are halved; the buffers (rotary frequencies, coords) stay fp32. Loading always
computes in fp32.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import safetensors.torch
import torch
from safetensors import SafetensorError

from syncvp_core.checkpoint_format import FORMAT, FORMAT_VERSION, CheckpointError, read_metadata
from syncvp_core.checkpoint_format import one_line as _one_line

from .codec import DepthCodec
from .config import FAMILY, ReferenceConfig
from .load import build, load_directory, load_state
from .model import ReferenceSyncVP

DTYPES = {"fp16": torch.float16, "fp32": torch.float32}


def save_converted(model: ReferenceSyncVP, path, dtype: str = "fp32", source: dict | None = None) -> Path:
    """Write `model` (weights in `dtype`, one of DTYPES) and its config to `path` (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    weights = {name for name, _ in model.named_parameters()}
    tensors = {k: (v.to(DTYPES[dtype]) if k in weights else v).detach().cpu().contiguous()
               for k, v in model.state_dict().items()}
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "family": FAMILY,
                "config": json.dumps(model.cfg.to_dict()), "step": "", "extra": json.dumps(source or {})}
    safetensors.torch.save_file(tensors, str(path), metadata=metadata)
    return path


def convert_directory(directory, out, dtype: str = "fp16", depth_codec: DepthCodec | None = None) -> Path:
    """Read the release in `directory` (strictly) and write it to `out`."""
    model = load_directory(directory, depth_codec=depth_codec)
    source = {"release": model.cfg.name, "directory": str(Path(directory).resolve()), "dtype": dtype}
    return save_converted(model, out, dtype, source)


def load_converted(path, device="cpu", depth_codec: DepthCodec | None = None) -> ReferenceSyncVP:
    """The model of a converted file (eval mode, fp32, on `device`); `depth_codec` overrides the stored one."""
    metadata = read_metadata(path)
    if metadata.get("family") != FAMILY:
        raise CheckpointError(f"{path} is not a reference-family checkpoint (family {metadata.get('family')!r})")
    try:
        cfg = ReferenceConfig.from_dict(json.loads(metadata["config"]))
    except (ValueError, TypeError, AttributeError) as e:
        raise CheckpointError(f"checkpoint {path} has an invalid reference config: {_one_line(e)}") from None
    if depth_codec is not None:
        cfg = replace(cfg, depth_codec=depth_codec)
    model = build(cfg, device="meta")
    try:
        state = safetensors.torch.load_file(str(path))
    except (OSError, SafetensorError) as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {_one_line(e)}") from None
    load_state(model, state, Path(path))
    return model.to(device).eval()
