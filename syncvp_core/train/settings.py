"""Every setting of a training run (`TrainConfig`): YAML keys, command-line flags and this dataclass are one list.

The switches (the joint stage's shared noise, shared timestep and modality dropout; the autoencoder stage's context
hole fill) are not settings of the run but of the model (`SyncVPConfig`): the flags here only override the model
config when a run starts, and a resumed run refuses a switch that differs from the model it continues
(train/initial_weights.py).
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field

from syncvp_core.config import SAMPLERS
from syncvp_core.modalities import MODALITIES

STAGES = ("autoencoder", "diffusion", "joint")
STAGE_LR = {"autoencoder": 1e-4, "diffusion": 1e-4, "joint": 1e-5}  # the reference's learning rates


class TrainingError(RuntimeError):
    """A problem with the run's inputs; the message is one line saying what to fix."""


def _opt(default, text: str, stages=STAGES, **flag):
    """A TrainConfig field with its --help text, the stages whose command line shows it, and argparse extras."""
    kind = dict(default_factory=default) if callable(default) else dict(default=default)
    return field(**kind, metadata={"help": text, "stages": stages, "argparse": flag})


@dataclass
class TrainConfig:
    """Every setting of a run; YAML keys, command-line flags (dashes for underscores) and this are one list."""
    stage: str = _opt("autoencoder", "training stage", stages=(), choices=STAGES)
    modality: str = _opt("rgb", "modality to train", stages=("autoencoder", "diffusion"), choices=MODALITIES)
    frames: int | None = _opt(None, "clip length of the autoencoder to train (default: every length it serves; "
                              "needed without a shared autoencoder)", stages=("autoencoder",), type=int)
    model: str = _opt("tiny", "model preset (used when no --init checkpoint gives the config)")
    data: str = _opt("", "training data set spec, e.g. synthetic:build/data/synth")
    split: str = _opt("train", "split of --data to train on ('all': every clip, e.g. of a rosbag)")
    val_data: str = _opt("", "validation data set spec, used whole (default: the val split of --data)")
    init: list = _opt(list, "checkpoints to start from: stage 2 takes the stage-1 autoencoder(s) of its modality, "
                      "joint takes the two stage-2 files", nargs="+", metavar="CKPT")
    out: str = _opt("build/train/run", "run folder (checkpoints, logs, samples, TensorBoard)")
    max_steps: int = _opt(1000, "stop after this many optimiser steps (also the length of the cosine schedule)")
    max_time: float | str | None = _opt(None, "stop after this much wall time in this invocation: seconds, or a "
                                        "number with s, m or h (30m, 1.5h)", type=str)
    time_budget: float | str | None = _opt(None, "wall time of the whole run, resumes included (a duration like "
                                           "--max-time): stops when spent, and the cosine follows whichever of "
                                           "steps and time is further along", type=str)
    batch_size: int = _opt(4, "clips per step and process")
    lr: float | None = _opt(None, "peak learning rate (default: 1e-4 for stages 1-2, 1e-5 for joint)", type=float)
    min_lr_ratio: float = _opt(0.01, "final learning rate of the cosine as a fraction of --lr")
    warmup_steps: int = _opt(100, "linear learning-rate warm-up steps")
    weight_decay: float = _opt(0.01, "AdamW weight decay")
    betas: tuple = _opt((0.9, 0.999), "AdamW betas", nargs=2, type=float)
    grad_clip: float = _opt(1.0, "clip the global gradient norm to this (0: off)")
    ema_decay: float = _opt(0.999, "EMA decay (warmed up as min(decay, (1+n)/(10+n)))")
    lpips_weight: float = _opt(1.0, "weight of the LPIPS term next to L1 (0: L1 only)", stages=("autoencoder",))
    context_dropout: float = _opt(0.1, "share of clips whose decoder gets no context frame (a context decoder "
                                  "must also decode a modality that did not condition the prediction)",
                                  stages=("autoencoder",))
    decoder_only: bool = _opt(False, "train only the decoder: the encoder, and so the latents the diffusion stages "
                              "learnt and their statistics, stay those of the --init file (a decoder fine-tune)",
                              stages=("autoencoder",))
    context_hole_fill: bool | None = _opt(None, "fill the context frame's holes from the nearest valid pixels "
                                          "(model config; default: the model's)", stages=("autoencoder",),
                                          action=argparse.BooleanOptionalAction)
    cond_dropout: float = _opt(0.25, "probability that a sample's conditioning is zeroed (what the joint model's "
                               "modality dropout will show the branch)", stages=("diffusion",))
    # the joint switches set the model config (train/initial_weights.py); None: keep the model config's (on)
    shared_noise: bool | None = _opt(None, "one noise tensor for both modalities (model config: on)",
                                     stages=("joint",), action=argparse.BooleanOptionalAction)
    shared_timestep: bool | None = _opt(None, "one timestep per sample for both modalities (model config: on)",
                                        stages=("joint",), action=argparse.BooleanOptionalAction)
    modality_dropout: bool | None = _opt(None, "cross-modality conditioning dropout (off: always both; model "
                                         "config: on)", stages=("joint",), action=argparse.BooleanOptionalAction)
    train_timesteps: list = _opt(list, "train only at these timesteps, e.g. those of the model's default sampler "
                                 "(DDIM 2 steps: 999 499), a few-step fine-tune; none: every timestep",
                                 stages=("joint",), nargs="+", type=int, metavar="T")
    log_every: int = _opt(10, "steps between log lines and TensorBoard scalars")
    val_every: int = _opt(250, "steps between validation loss and sample images (0: only at the end)")
    val_batches: int = _opt(4, "validation batches (fixed clips and noise, so values compare across steps)")
    sample_steps: int = _opt(25, "sampling steps for validation samples")
    sample_sampler: str = _opt("", "sampler of the validation samples: ddim or dpmsolver (default: the model "
                               "config's)", stages=("diffusion", "joint"), choices=("", *SAMPLERS))
    ckpt_every: int = _opt(250, "steps between checkpoints (one is always written at the end)")
    seed: int = _opt(0, "seed of the init, the data order and the noise")
    workers: int = _opt(0, "data loader worker processes")
    amp: bool = _opt(True, "bf16 autocast on CUDA (ignored on CPU)")

    def __post_init__(self):
        if self.stage not in STAGES:
            raise TrainingError(f"stage must be one of {STAGES}, not {self.stage!r}")
        if self.modality not in MODALITIES:
            raise TrainingError(f"modality must be rgb or depth, not {self.modality!r}")
        for f in dataclasses.fields(self):  # YAML can hold anything
            value, kind = getattr(self, f.name), type(f.default)
            if kind in (bool, int, float, str) and not (isinstance(value, kind) or kind is float and
                                                        isinstance(value, int) and not isinstance(value, bool)):
                raise TrainingError(f"setting {f.name} must be a {kind.__name__}, not {value!r}")
        if self.sample_sampler not in ("", *SAMPLERS):
            raise TrainingError(f"sample_sampler must be one of {', '.join(SAMPLERS)} (or empty), "
                                f"not {self.sample_sampler!r}")
        self.lr = STAGE_LR[self.stage] if self.lr is None else self.lr
        self.betas, self.init, self.train_timesteps = tuple(self.betas), list(self.init), list(self.train_timesteps)
        self.max_time = None if self.max_time is None else parse_duration(self.max_time)
        self.time_budget = None if self.time_budget is None else parse_duration(self.time_budget)
        if min(self.max_steps, self.batch_size, self.val_batches, self.log_every, self.ckpt_every) < 1:
            raise TrainingError("max_steps, batch_size, val_batches, log_every and ckpt_every must be >= 1")
        if not self.data:
            raise TrainingError("no training data: give --data (e.g. synthetic:build/data/synth)")

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise TrainingError(f"unknown training setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**d)


def parse_duration(text) -> float:
    """Seconds from 90, "90", "90s", "30m" or "1.5h"."""
    units = {"s": 1, "m": 60, "h": 3600}
    value = str(text).strip().lower()
    scale = units.get(value[-1:], 1)
    try:
        seconds = float(value[:-1] if value[-1:] in units else value) * scale
    except ValueError:
        raise TrainingError(f"max_time {text!r} is not a duration like 600, 45m or 1.5h") from None
    if seconds <= 0:
        raise TrainingError(f"max_time must be positive, not {text!r}")
    return seconds
