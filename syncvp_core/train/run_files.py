"""A run folder's files: the EMA model file, the training state for --resume, and the export of a model.

    model.safetensors        EMA weights + model config (a normal checkpoint: load_model and --init take it)
    train_state.safetensors  raw trained weights, AdamW state, step, seconds trained, training config (--resume)
Each is written atomically; resume checks that their steps match.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import safetensors.torch
import torch
from safetensors import SafetensorError, safe_open

from syncvp_core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from syncvp_core.model import SyncVP
from syncvp_core.train.initial_weights import provided_by
from syncvp_core.train.optimisation import EMA
from syncvp_core.train.settings import TrainConfig, TrainingError

MODEL_FILE, STATE_FILE = "model.safetensors", "train_state.safetensors"

def save_run(out: Path, cfg: TrainConfig, step: int, model: SyncVP, ema: EMA, optimizer, provides: list[str],
             extra: dict, seconds: float = 0.0) -> None:
    """Write the training state, then the EMA model file (each atomically; resume checks that the steps match)."""
    trained = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    opt = optimizer.state_dict()
    tensors = {f"weights.{n}": p.contiguous() for n, p in trained.items()}
    tensors.update({f"adam.{i}.{k}": v.contiguous() for i, s in opt["state"].items() for k, v in s.items()})
    metadata = {"step": str(step), "train_config": json.dumps(dataclasses.asdict(cfg)),
                "param_groups": json.dumps(opt["param_groups"]), "seconds": f"{seconds:.3f}"}
    _replace(out / STATE_FILE, lambda p: safetensors.torch.save_file(tensors, str(p), metadata=metadata))
    meta = {"stage": cfg.stage, "provides": provides, "train_config": dataclasses.asdict(cfg), **extra}
    if cfg.stage != "joint":
        meta["modality"] = cfg.modality
    _replace(out / MODEL_FILE, lambda p: save_checkpoint(p, ema.model, step, meta))


def _replace(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def saved_config(out) -> TrainConfig:
    """The training config stored with the run in folder `out` (for --resume)."""
    return TrainConfig.from_dict(read_state_metadata(Path(out))["train_config"])


def read_state_metadata(out: Path) -> dict:
    path = out / STATE_FILE
    if not path.is_file():
        raise TrainingError(f"nothing to resume in {out}: {STATE_FILE} not found (drop --resume to start a run)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        return {"step": int(meta["step"]), "train_config": json.loads(meta["train_config"]),
                "param_groups": json.loads(meta["param_groups"]), "seconds": float(meta.get("seconds", 0))}
    except (OSError, SafetensorError, KeyError, ValueError) as e:
        raise TrainingError(f"{path} is not a readable training state ({e})") from None


def resumed_run(out: Path) -> tuple[SyncVP, dict, int, dict, list[str]]:
    """(EMA model, raw trained weights, step, AdamW state dict, provides) of the run in folder `out`."""
    meta = read_state_metadata(out)
    try:
        ckpt = load_checkpoint(out / MODEL_FILE)
    except CheckpointError as e:
        raise TrainingError(str(e)) from None
    if ckpt.step != meta["step"]:
        raise TrainingError(f"{out} holds a model at step {ckpt.step} but a training state at step {meta['step']} "
                            "(interrupted while saving); delete the run or restore both files")
    raw, adam = {}, {}
    for name, tensor in safetensors.torch.load_file(str(out / STATE_FILE)).items():
        kind, rest = name.split(".", 1)
        if kind == "weights":
            raw[rest] = tensor
        else:
            index, key = rest.split(".", 1)
            adam.setdefault(int(index), {})[key] = tensor
    optimizer_state = {"state": adam, "param_groups": meta["param_groups"]}
    return ckpt.model.train(), raw, meta["step"], optimizer_state, provided_by(ckpt)


def export_model(source, target, dtype: torch.dtype = torch.float16, sampling: dict | None = None) -> Path:
    """Copy a checkpoint with its weights stored as `dtype` (half the size in float16; loading casts them back to
    float32). The metadata is kept, with the source file and dtype added; `sampling` (any of `sampler`,
    `sampling_steps`, `eta`) replaces the inference defaults of its `diffusion` config, e.g. those chosen from
    bench_sampler's curve. Any failure is a CheckpointError."""
    ckpt = load_checkpoint(source)
    diffusion = ckpt.model.cfg.diffusion
    try:
        ckpt.model.cfg.diffusion = dataclasses.replace(diffusion, **(sampling or {}))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"cannot set the sampling defaults: {e}") from None
    extra = {**ckpt.extra, "exported_from": str(source), "stored_dtype": str(dtype).removeprefix("torch.")}
    try:
        return save_checkpoint(target, ckpt.model.to(dtype), ckpt.step, extra)
    except OSError as e:
        raise CheckpointError(f"cannot write {target}: {e.strerror or e}") from None
