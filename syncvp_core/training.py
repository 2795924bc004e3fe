"""The one training loop behind the three SyncVP stages (method reference §2, §5, §7).

Stages, each a `TrainConfig.stage`:
- "autoencoder": one modality's triplane autoencoder; L1 on the clip plus LPIPS on one random frame per clip
  (when the LPIPS weights are installed), no GAN.
- "diffusion": the single-modality latent model of one modality. It is the same `SyncVP` whose
  `net.<modality>_branch` is trained alone (`BranchUNet.forward`, no coupling, the other branch untouched and
  unused), so the file is an ordinary checkpoint and the joint stage copies the branch out of it.
- "joint": both branches and the couplings on the joint loss (shared noise and timestep, modality dropout).
  The branches start from the stage-2 files and the STCA output projections are zero at init, so the joint
  network at step 0 predicts exactly what the two single-modality models predict.

A checkpoint says which of its weights are meaningful ("provides": module prefixes, e.g. "autoencoders.rgb",
"net.rgb_branch"); a stage starts from a fresh model and copies those weights from each `--init` file.

The loop (`train`) is the same for every stage: AdamW, linear warm-up then cosine decay, gradient clipping, an
EMA of the trained weights (the EMA weights are validated, sampled and saved as the model file), bf16 autocast on
CUDA only, DistributedDataParallel under torchrun. A run folder holds:
    model.safetensors        EMA weights + model config (a normal checkpoint: load_model and --init take it)
    train_state.safetensors  raw trained weights, AdamW state, step, training config (for --resume)
    log.jsonl, summary.json, samples/step_*.png, tb/ (TensorBoard)
Resuming continues exactly: the learning rate is a function of the step, the data order is a per-epoch
permutation of (seed, epoch) entered at the saved step, and each step draws its noise from a generator seeded
by (seed, rank, step), so no RNG state needs saving.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import safetensors.torch
import torch
import torch.distributed as dist
import torch.nn.functional as F
from PIL import Image
from safetensors import SafetensorError, safe_open
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm import tqdm

from syncvp_core.checkpoint import CheckpointError, config_differences, load_checkpoint, save_checkpoint
from syncvp_core.config import get_config
from syncvp_core.data.datasets import open_dataset
from syncvp_core.diffusion import NoiseSchedule, joint_loss, randn, training_target
from syncvp_core.metrics.lpips import load_lpips
from syncvp_core.metrics.weights import MissingWeightsError
from syncvp_core.model import SyncVP
from syncvp_core.sampler import DDIMSampler, sample_joint
from syncvp_core.train.latents import LatentCache, measure_latent_statistics

STAGES = ("autoencoder", "diffusion", "joint")
MODALITIES = ("rgb", "depth")
STAGE_LR = {"autoencoder": 1e-4, "diffusion": 1e-4, "joint": 1e-5}  # the reference's learning rates
MODEL_FILE, STATE_FILE = "model.safetensors", "train_state.safetensors"
# Model-config fields the joint stage sets from its switches; they may differ from the stage-2 files.
JOINT_SWITCHES = ("diffusion.shared_noise", "diffusion.shared_timestep", "diffusion.dropout_probs")


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
    cond_dropout: float = _opt(0.25, "probability that a sample's conditioning is zeroed (what the joint model's "
                               "modality dropout will show the branch)", stages=("diffusion",))
    shared_noise: bool = _opt(True, "one noise tensor for both modalities", stages=("joint",))
    shared_timestep: bool = _opt(True, "one timestep per sample for both modalities", stages=("joint",))
    modality_dropout: bool = _opt(True, "cross-modality conditioning dropout (off: always both)", stages=("joint",))
    log_every: int = _opt(10, "steps between log lines and TensorBoard scalars")
    val_every: int = _opt(250, "steps between validation loss and sample images (0: only at the end)")
    val_batches: int = _opt(4, "validation batches (fixed clips and noise, so values compare across steps)")
    sample_steps: int = _opt(25, "DDIM steps for validation samples")
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
        self.lr = STAGE_LR[self.stage] if self.lr is None else self.lr
        self.betas, self.init = tuple(self.betas), list(self.init)
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


# ---------------------------------------------------------------------------------------------- stage objectives

def clip_latents(model: SyncVP, batch: dict, modality: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(conditioning latent, target latent) of one modality of a (cond + target)-frame clip batch: from the
    latent cache when the batch carries cached latents, else encoded now."""
    if f"{modality}.cond" in batch:
        return batch[f"{modality}.cond"], batch[f"{modality}.target"]
    video, cond_frames = batch[modality], model.cfg.cond_frames
    with torch.no_grad():
        return model.encode(modality, video[:, :cond_frames]), model.encode(modality, video[:, cond_frames:])


SAMPLE_CLIPS = 2  # validation clips shown in the sample image


def to_image(*videos: torch.Tensor) -> torch.Tensor:
    """Model-space videos B×C×T×H×W (C = 1 or 3, same T) -> one 3×H'×W' image in [0, 1]: per clip, one row per
    video (e.g. truth, then prediction), frames left to right; depth shows as grey, near bright."""
    rows = torch.stack([v.float().expand(-1, 3, -1, -1, -1) for v in videos], 1).flatten(0, 1)
    n, c, t, h, w = rows.shape
    return ((rows.clamp(-1, 1) + 1) / 2).permute(1, 0, 3, 2, 4).reshape(3, n * h, t * w)


def truth_and_prediction(model: SyncVP, batch: dict, modality: str, latent: torch.Tensor):
    """Model-space (truth, prediction) clips of one modality: the prediction is the true conditioning frames
    followed by the decoded target latent."""
    cfg = model.cfg
    real, _ = model.model_space(modality, batch[modality][:, :cfg.cond_frames + cfg.target_frames])
    decoded = model.decode(modality, latent, cfg.target_frames, context=batch[modality][:, cfg.cond_frames - 1])
    return real, torch.cat([real[:, :, :cfg.cond_frames], decoded], dim=2)


def single_branch_net(branch: nn.Module):
    """A single branch behind the joint network's call signature, for `sample_joint`: both outputs are the
    branch's ε of the first input. sample_joint gives both modalities the same x_T and step noise, so the two
    trajectories are identical and the branch runs once per step."""
    def net(x, _x_other, t, cond, _cond_other):
        eps = branch(x, t, cond)
        return eps, eps
    return net


class AutoencoderObjective(nn.Module):
    """Reconstruction loss of one modality's autoencoder, on every clip length it is trained for."""

    def __init__(self, model: SyncVP, modality: str, frames: tuple[int, ...], lpips: nn.Module | None,
                 lpips_weight: float, context_dropout: float = 0.0):
        super().__init__()
        self.model, self.modality, self.frames = model, modality, frames
        self.lpips, self.lpips_weight = lpips, lpips_weight  # LPIPS is frozen; the objective is never saved
        self.context_dropout = context_dropout

    def windows(self, frames: int) -> slice:
        # the conditioning AE learns the first frames of a clip, the target AE the frames after them
        cond = self.model.cfg.cond_frames
        return slice(0, frames) if frames == cond else slice(cond, cond + frames)

    def reconstruct(self, batch: dict, frames: int, generator: torch.Generator | None = None):
        """(x, valid, reconstruction) of one window; a context decoder gets the frame before the window (none for
        the window at the start of the clip), dropped for a `context_dropout` share of the clips."""
        window, video = self.windows(frames), batch[self.modality]
        x, valid = self.model.model_space(self.modality, video[:, window])
        autoencoder = self.model.autoencoder_for(self.modality, frames)
        context = context_valid = None
        if self.model.cfg.autoencoder.decoder_context and window.start > 0:
            context, context_valid = self.model.model_space(self.modality, video[:, window.start - 1:window.start])
            context, context_valid = context[:, :, 0], context_valid[:, :1, 0]
            if generator is not None and self.context_dropout > 0:
                keep = torch.rand(len(x), generator=generator, device=generator.device) >= self.context_dropout
                context_valid = context_valid & keep.to(x.device)[:, None, None, None]
        return x, valid, autoencoder.decode(autoencoder.encode(x), frames, context, context_valid)

    def forward(self, batch: dict, generator: torch.Generator):
        total, parts = 0.0, {}
        for frames in self.frames:
            x, valid, recon = self.reconstruct(batch, frames, generator)
            # invalid depth pixels carry no target: they count neither in L1 nor in LPIPS
            l1 = ((recon - x).abs() * valid).sum() / valid.expand_as(x).sum().clamp_min(1)
            loss, parts[f"l1_{frames}f"] = l1, l1.detach()
            if self.lpips is not None and self.lpips_weight > 0:
                # one random frame per clip, as the reference (LPIPS is per image)
                pick = torch.randint(0, frames, (x.shape[0],), generator=generator, device=generator.device)
                rows, pick = torch.arange(x.shape[0], device=x.device), pick.to(x.device)
                target = x[rows, :, pick]
                pred = torch.where(valid[rows, :, pick], recon[rows, :, pick], target)
                perceptual = self.lpips(pred.expand(-1, 3, -1, -1), target.expand(-1, 3, -1, -1)).mean()
                loss, parts[f"lpips_{frames}f"] = loss + self.lpips_weight * perceptual, perceptual.detach()
            total = total + loss
        return total, parts

    @torch.no_grad()
    def samples(self, batch: dict, generator: torch.Generator, sample_steps: int) -> torch.Tensor:
        """Ground truth above reconstruction, for the longest clip length."""
        x, _, recon = self.reconstruct(batch, max(self.frames))
        return to_image(x, recon)


class DiffusionObjective(nn.Module):
    """ε-MSE of one modality's branch alone, conditioned on that modality's first frames."""

    def __init__(self, model: SyncVP, modality: str, cond_dropout: float):
        super().__init__()
        self.model, self.modality, self.cond_dropout = model, modality, cond_dropout
        self.schedule = NoiseSchedule.from_config(model.cfg.diffusion)

    @property
    def branch(self) -> nn.Module:
        return getattr(self.model.net, f"{self.modality}_branch")

    def forward(self, batch: dict, generator: torch.Generator):
        cond, target = clip_latents(self.model, batch, self.modality)
        b, gen_device = target.shape[0], generator.device
        t = torch.randint(0, self.schedule.timesteps, (b,), generator=generator, device=gen_device).to(target.device)
        noise = randn(target.shape, generator, target)
        keep = torch.rand(b, generator=generator, device=gen_device).to(target.device) >= self.cond_dropout
        output = self.branch(self.schedule.q_sample(target, t, noise), t, cond * keep[:, None, None])
        a = self.schedule.alphas_cumprod.to(target.device)[t].to(target.dtype)[:, None, None]
        loss = F.mse_loss(output, training_target(self.model.cfg.diffusion.prediction, target, noise, a))
        return loss, {self.modality: loss.detach()}

    @torch.no_grad()
    def samples(self, batch: dict, generator: torch.Generator, sample_steps: int) -> torch.Tensor:
        """Per clip: truth, prediction (DDIM from the true conditioning frames)."""
        cond, target = clip_latents(self.model, batch, self.modality)
        dc = self.model.cfg.diffusion
        sampler = DDIMSampler(self.schedule, sample_steps, dc.eta, dc.prediction)
        predicted, _ = sample_joint(single_branch_net(self.branch), sampler, cond, cond, target.shape,
                                    generator=generator)
        return to_image(*truth_and_prediction(self.model, batch, self.modality, predicted))


class JointObjective(nn.Module):
    """The joint loss of both branches and the couplings (`diffusion.joint_loss`)."""

    def __init__(self, model: SyncVP):
        super().__init__()
        self.model = model
        self.schedule = NoiseSchedule.from_config(model.cfg.diffusion)

    def latents(self, batch: dict):
        (cond_rgb, rgb), (cond_depth, depth) = (clip_latents(self.model, batch, m) for m in MODALITIES)
        return cond_rgb, rgb, cond_depth, depth

    def forward(self, batch: dict, generator: torch.Generator):
        cond_rgb, rgb, cond_depth, depth = self.latents(batch)
        diffusion = self.model.cfg.diffusion
        loss, parts = joint_loss(self.model.net, self.schedule, rgb, depth, cond_rgb, cond_depth, generator,
                                 diffusion.shared_noise, diffusion.dropout_probs, diffusion.shared_timestep,
                                 diffusion.prediction)
        return loss, {m: parts[m] for m in MODALITIES}

    @torch.no_grad()
    def samples(self, batch: dict, generator: torch.Generator, sample_steps: int) -> torch.Tensor:
        """Per clip: RGB truth, RGB prediction, depth truth, depth prediction (conditioned on RGB-D)."""
        cond_rgb, rgb, cond_depth, _ = self.latents(batch)
        dc = self.model.cfg.diffusion
        sampler = DDIMSampler(self.schedule, sample_steps, dc.eta, dc.prediction)
        predicted = sample_joint(self.model.net, sampler, cond_rgb, cond_depth, rgb.shape, generator=generator)
        return to_image(*(video for modality, latent in zip(MODALITIES, predicted)
                          for video in truth_and_prediction(self.model, batch, modality, latent)))


# ------------------------------------------------------------------------------------------- model and its stage

def autoencoder_prefixes(model: SyncVP, modality: str, frames) -> list[str]:
    """State-dict prefixes of the autoencoder(s) that encode `modality` clips of these lengths."""
    key = {id(ae): k for k, ae in model.autoencoders.items()}
    return sorted({f"autoencoders.{key[id(model.autoencoder_for(modality, f))]}" for f in frames})


def statistics_prefixes(model: SyncVP, modality: str) -> list[str]:
    """State-dict prefixes of the latent statistics of `modality` (every clip length)."""
    return sorted(f"latent_stats.{k}" for k in model.latent_stats if k.startswith(f"{modality}_"))


def trained_prefixes(cfg: TrainConfig, model: SyncVP) -> list[str]:
    """Module prefixes (state-dict names) that this stage trains."""
    if cfg.stage == "autoencoder":
        return autoencoder_prefixes(model, cfg.modality, autoencoder_frames(cfg, model))
    if cfg.stage == "diffusion":
        return [f"net.{cfg.modality}_branch"]
    return ["net"]


def autoencoder_frames(cfg: TrainConfig, model: SyncVP) -> tuple[int, ...]:
    served = (model.cfg.cond_frames, model.cfg.target_frames)
    if cfg.frames is None:
        if not model.cfg.shared_autoencoder:
            raise TrainingError(f"model {model.cfg.name!r} has one autoencoder per clip length: "
                                f"give --frames {served[0]} or {served[1]}")
        return served
    if cfg.frames not in served:
        raise TrainingError(f"--frames must be {served[0]} or {served[1]}, not {cfg.frames}")
    return (cfg.frames,)


def needed_prefixes(cfg: TrainConfig, model: SyncVP) -> list[str]:
    """Weights that must come from --init files for this stage to make sense."""
    if cfg.stage == "autoencoder":
        return []
    modalities = [cfg.modality] if cfg.stage == "diffusion" else list(MODALITIES)
    frames = (model.cfg.cond_frames, model.cfg.target_frames)
    return [p for m in modalities for p in autoencoder_prefixes(model, m, frames)]


def _matches(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def merge_prefixes(*groups) -> list[str]:
    """The union of prefix lists, without prefixes inside others ("net.rgb_branch" goes into "net")."""
    union = set().union(*groups)
    return sorted(p for p in union if not _matches(p, union - {p}))


def provided_by(ckpt) -> list[str]:
    """What a checkpoint's weights are good for; a file not written by syncvp-train counts as a whole model."""
    return ckpt.extra.get("provides", ["autoencoders", "net"])


def initial_model(cfg: TrainConfig, say) -> tuple[SyncVP, list[str]]:
    """A fresh model with the weights each --init file provides copied in; (model, prefixes provided so far)."""
    checkpoints = []
    for path in cfg.init:
        if not Path(path).is_file():
            raise TrainingError(f"--init {path}: file not found")
        try:
            checkpoints.append((path, load_checkpoint(path)))
        except CheckpointError as e:
            raise TrainingError(str(e)) from None
    model_cfg = checkpoints[0][1].model.cfg if checkpoints else get_config(cfg.model)
    if cfg.stage == "joint":
        model_cfg.diffusion.shared_noise = cfg.shared_noise
        model_cfg.diffusion.shared_timestep = cfg.shared_timestep
        if not cfg.modality_dropout:
            model_cfg.diffusion.dropout_probs = (1.0, 0.0, 0.0)
    torch.manual_seed(cfg.seed)
    model = SyncVP(model_cfg)
    provided: list[str] = []
    state = model.state_dict()
    for path, ckpt in checkpoints:
        diff = [d for d in config_differences(ckpt.model.cfg, model_cfg) if not d.startswith(JOINT_SWITCHES)]
        if diff:
            raise TrainingError(f"--init {path} has a different model config: {'; '.join(diff)}")
        prefixes = provided_by(ckpt)
        clash = sorted(set(prefixes) & set(provided))
        if clash:
            raise TrainingError(f"--init {path} provides {', '.join(clash)} again (give each part once)")
        source = ckpt.model.state_dict()
        state.update({n: source[n] for n in state if _matches(n, prefixes)})
        provided += prefixes
    model.load_state_dict(state)
    missing = [p for p in needed_prefixes(cfg, model) if p not in provided]
    if missing:
        raise TrainingError(f"the {cfg.stage} stage needs trained {', '.join(missing)}: pass their stage-1 "
                            "checkpoint(s) with --init")
    if cfg.stage == "joint":
        random_branches = [f"net.{m}_branch" for m in MODALITIES if f"net.{m}_branch" not in provided]
        if random_branches:
            say(f"note: {', '.join(random_branches)} start from random weights (no stage-2 --init file for them)")
    return model, provided


def make_objective(cfg: TrainConfig, model: SyncVP, lpips: nn.Module | None) -> nn.Module:
    if cfg.stage == "autoencoder":
        return AutoencoderObjective(model, cfg.modality, autoencoder_frames(cfg, model), lpips, cfg.lpips_weight,
                                    cfg.context_dropout)
    if cfg.stage == "diffusion":
        return DiffusionObjective(model, cfg.modality, cfg.cond_dropout)
    return JointObjective(model)


def load_perceptual(cfg: TrainConfig, device, say) -> nn.Module | None:
    if cfg.stage != "autoencoder" or cfg.lpips_weight == 0:
        return None
    try:
        return load_lpips("alex", device)
    except MissingWeightsError as e:
        say(f"note: autoencoder loss is L1 only ({e})")
        return None


# ------------------------------------------------------------------------------------------ optimisation helpers

def learning_rate(cfg: TrainConfig, step: int, seconds: float = 0.0) -> float:
    """Linear warm-up to cfg.lr, then cosine decay to cfg.lr * min_lr_ratio at max_steps (or, with a time budget,
    at whichever end comes first: `seconds` is the run's training time so far)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    if cfg.time_budget:
        progress = max(progress, min(1.0, seconds / cfg.time_budget))
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + 0.5 * (cfg.lr - floor) * (1 + math.cos(math.pi * progress))


class EMA:
    """Exponential moving average of a model's trained weights, kept as a full model (frozen parts shared by
    value), with LitEma's warm-up min(decay, (1+n)/(10+n)) so the random init fades out quickly."""

    def __init__(self, model: SyncVP, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        ema_params = dict(self.model.named_parameters())
        trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.shadow = [ema_params[n] for n, _ in trained]
        self.source = [p for _, p in trained]

    @torch.no_grad()
    def update(self, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        torch._foreach_lerp_(self.shadow, self.source, 1.0 - decay)


TRAIN, VALIDATION, SAMPLES = 0, 1, 2  # noise streams


def step_generator(seed: int, stream: int, rank: int, step: int, device) -> torch.Generator:
    """The generator of one step of a noise stream: a function of (seed, stream, rank, step), so resuming needs
    no RNG state, every rank draws different noise, and validation draws the same noise every time."""
    state = np.random.SeedSequence([seed, stream, rank, step]).generate_state(1, np.uint64)[0]
    return torch.Generator(device=device).manual_seed(int(state))


def batches(dataset, cfg: TrainConfig, rank: int, world: int, start_step: int):
    """Endless batches of this rank's shard; epoch e is DistributedSampler's permutation for (seed, e). Starting at
    `start_step` enters the right epoch at the right batch without loading the skipped clips."""
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed, drop_last=True)
    per_epoch = len(sampler) // cfg.batch_size
    if per_epoch == 0:
        raise TrainingError(f"{len(dataset)} training clips are too few for batch size {cfg.batch_size} "
                            f"on {world} process(es)")
    epoch, skip = divmod(start_step, per_epoch)
    while True:
        sampler.set_epoch(epoch)
        indices = list(sampler)[skip * cfg.batch_size:]
        loader_seed = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)  # worker seeds, if any
        yield from DataLoader(dataset, cfg.batch_size, sampler=indices, drop_last=True, num_workers=cfg.workers,
                              generator=loader_seed)
        epoch, skip = epoch + 1, 0


def to_device(batch: dict, device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


# ---------------------------------------------------------------------------------------------- checkpoint files

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
    return TrainConfig.from_dict(_read_state_metadata(Path(out))["train_config"])


def _read_state_metadata(out: Path) -> dict:
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
    meta = _read_state_metadata(out)
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


def export_model(source, target, dtype: torch.dtype = torch.float16) -> Path:
    """Copy a checkpoint with its weights stored as `dtype` (half the size in float16; loading casts them back to
    float32). The metadata is kept, with the source file and dtype added."""
    try:
        ckpt = load_checkpoint(source)
    except CheckpointError as e:
        raise TrainingError(str(e)) from None
    extra = {**ckpt.extra, "exported_from": str(source), "stored_dtype": str(dtype).removeprefix("torch.")}
    return save_checkpoint(target, ckpt.model.to(dtype), ckpt.step, extra)


def set_trainable(model: nn.Module, prefixes: list[str]) -> None:
    for name, p in model.named_parameters():
        p.requires_grad_(_matches(name, prefixes))


# -------------------------------------------------------------------------------------------------- the loop

@dataclass
class Distributed:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @classmethod
    def from_environment(cls) -> Distributed:
        """torchrun sets RANK/WORLD_SIZE/LOCAL_RANK; NCCL on GPUs, gloo on CPUs."""
        cuda = torch.cuda.is_available()
        if "RANK" not in os.environ:
            return cls(device=torch.device("cuda" if cuda else "cpu"))
        local = int(os.environ.get("LOCAL_RANK", 0))
        device = torch.device("cuda", local) if cuda else torch.device("cpu")
        if cuda:
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if cuda else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), device)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def agree(self, flag: bool) -> bool:
        """Rank 0's decision, on every rank (ranks must stop at the same step)."""
        if self.world == 1:
            return flag
        t = torch.tensor([float(flag)], device=self.device)
        dist.broadcast(t, 0)
        return bool(t.item())


def fingerprint(model: nn.Module) -> str:
    """Hash of the trained weights, to check that DDP replicas agree."""
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        if p.requires_grad:
            h.update(name.encode())
            h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class RunLog:
    """Rank 0's record of the run: log.jsonl, TensorBoard scalars and images, and sample PNGs."""

    def __init__(self, out: Path, say):
        self.out = out
        self.lines = open(out / "log.jsonl", "a")
        try:
            from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(str(out / "tb"))
        except ImportError:
            say("note: tensorboard is not installed (pip install tensorboard==2.21.0); logging to log.jsonl only")
            self.tb = None

    def scalars(self, kind: str, step: int, values: dict) -> None:
        self.lines.write(json.dumps({"kind": kind, "step": step, **values}) + "\n")
        self.lines.flush()
        if self.tb:
            for k, v in values.items():
                self.tb.add_scalar(f"{kind}/{k}", v, step)

    def image(self, step: int, image: torch.Tensor) -> Path:
        path = self.out / "samples" / f"step_{step:07d}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray((image.permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)).save(path)
        if self.tb:
            self.tb.add_image("val/samples", image, step)
        return path

    def close(self) -> None:
        self.lines.close()
        if self.tb:
            self.tb.close()


@torch.no_grad()
def validate(objective: nn.Module, val_batches: list, cfg: TrainConfig, device, autocast) -> dict:
    """Mean loss (and parts) of the EMA model on fixed clips with fixed noise."""
    sums: dict = {}
    for i, batch in enumerate(val_batches):
        with autocast():
            loss, parts = objective(to_device(batch, device), step_generator(cfg.seed, VALIDATION, 0, i, device))
        for k, v in {"loss": loss, **parts}.items():
            sums[k] = sums.get(k, 0.0) + float(v) / len(val_batches)
    return sums


def train(cfg: TrainConfig, resume: bool = False, say=None) -> dict:
    """Run one stage, or continue the run in cfg.out with `resume`; returns the run summary (rank 0; {} on the
    other ranks). `say` prints one-line notes, on rank 0 only."""
    env = Distributed.from_environment()
    say = (say or (lambda msg: print(msg, file=sys.stderr))) if env.main else (lambda _: None)
    try:
        return _train(cfg, resume, env, say)
    finally:
        if env.world > 1:
            dist.destroy_process_group()


def _train(cfg: TrainConfig, resume: bool, env: Distributed, say) -> dict:
    out = Path(cfg.out)
    if resume:
        model, raw, step, optimizer_state, provides = resumed_run(out)
    elif (out / STATE_FILE).exists():
        raise TrainingError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    else:
        model, provides = initial_model(cfg, say)
        raw, step, optimizer_state = None, 0, None
    set_trainable(model, trained_prefixes(cfg, model))
    provides = merge_prefixes(provides, trained_prefixes(cfg, model))
    model.to(env.device).train()
    ema = EMA(model, cfg.ema_decay)  # on resume: a copy of the saved EMA weights, before the raw ones go in
    trained = [p for p in model.parameters() if p.requires_grad]
    if resume:
        if set(raw) != {n for n, p in model.named_parameters() if p.requires_grad}:
            raise TrainingError(f"{out} trained other weights than this {cfg.stage} stage does (another --modality "
                                "or --frames?)")
        model.load_state_dict(raw, strict=False)
    optimizer = torch.optim.AdamW(trained, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)

    lpips = load_perceptual(cfg, env.device, say)
    objective, ema_objective = make_objective(cfg, model, lpips), make_objective(cfg, ema.model, lpips)
    wrapped = DistributedDataParallel(objective) if env.world > 1 else objective
    use_amp = cfg.amp and env.device.type == "cuda" and torch.cuda.is_bf16_supported()

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else contextlib.nullcontext()

    train_set, val_set = open_data(cfg, model.cfg)
    val_batches = validation_batches(val_set, cfg)
    pixel_set = train_set
    if cfg.stage != "autoencoder":  # the autoencoders are frozen: encode every clip once
        modalities = MODALITIES if cfg.stage == "joint" else (cfg.modality,)
        train_set = LatentCache(ema.model, train_set, modalities, out, say)
    data = batches(train_set, cfg, env.rank, env.world, step)
    seconds_before = _read_state_metadata(out)["seconds"] if resume else 0.0

    log = None
    if env.main:
        out.mkdir(parents=True, exist_ok=True)
        log = RunLog(out, say)
        say(f"{cfg.stage}{'' if cfg.stage == 'joint' else ' ' + cfg.modality}: {sum(p.numel() for p in trained):,} "
            f"trained parameters, {len(train_set)} training clips, {env.world} process(es) on {env.device}"
            + (f", resuming at step {step}" if resume else ""))
    bar = tqdm(total=cfg.max_steps, initial=step, desc=cfg.stage, unit="it", disable=not env.main,
               dynamic_ncols=True, file=sys.stderr)
    started, start_step, saved_step = time.monotonic(), step, step
    last: dict = {}
    val: dict = {}

    def seconds() -> float:  # training time of the whole run
        return seconds_before + time.monotonic() - started

    while step < cfg.max_steps:
        out_of_time = (cfg.max_time is not None and time.monotonic() - started >= cfg.max_time
                       or cfg.time_budget is not None and seconds() >= cfg.time_budget)
        if env.agree(out_of_time):
            break
        lr = learning_rate(cfg, step, seconds())
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = to_device(next(data), env.device)
        with autocast():
            loss, parts = wrapped(batch, step_generator(cfg.seed, TRAIN, env.rank, step, env.device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(trained, cfg.grad_clip if cfg.grad_clip > 0 else math.inf)
        optimizer.step()
        ema.update(step)
        step += 1
        if not env.main:
            continue
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.2e}")
        if step % cfg.log_every == 0 or step == cfg.max_steps:
            last = {"loss": loss.item(), **{k: float(v) for k, v in parts.items()}, "lr": lr,
                    "grad_norm": float(grad_norm), "it_per_s": (step - start_step) / (time.monotonic() - started)}
            log.scalars("train", step, last)
        if cfg.val_every and step % cfg.val_every == 0:
            val = run_validation(ema_objective, val_batches, cfg, env, autocast, log, step)
        if step % cfg.ckpt_every == 0:
            save_run(out, cfg, step, model, ema, optimizer, provides, {"val": val}, seconds())
            saved_step = step
    bar.close()

    # every rank hashes its trained weights; DDP replicas must agree
    mine = fingerprint(model)
    fingerprints = [mine]
    if env.world > 1:
        fingerprints = [None] * env.world
        dist.all_gather_object(fingerprints, mine)
    if not env.main:
        return {}
    if val.get("step") != step:
        val = run_validation(ema_objective, val_batches, cfg, env, autocast, log, step)
    extra = {"val": val}
    if cfg.stage == "autoencoder":  # stage 2 diffuses standardised latents: measure them with the final weights
        extra["latent_statistics"] = measure_latent_statistics(ema.model, pixel_set, cfg.modality)
        provides = merge_prefixes(provides, statistics_prefixes(ema.model, cfg.modality))
        saved_step = None
    if saved_step != step or not (out / MODEL_FILE).is_file():
        save_run(out, cfg, step, model, ema, optimizer, provides, extra, seconds())
    log.close()
    elapsed = time.monotonic() - started
    summary = {"stage": cfg.stage, "modality": None if cfg.stage == "joint" else cfg.modality, "step": step,
               "steps_this_run": step - start_step, "seconds": round(elapsed, 1),
               "it_per_s": round((step - start_step) / max(elapsed, 1e-9), 3),
               "stopped_by": "max_steps" if step >= cfg.max_steps else "time",
               "train": last, "val": val, "checkpoint": str(out / MODEL_FILE), "processes": env.world,
               "device": str(env.device), "replica_fingerprints": fingerprints}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def validation_batches(val_set, cfg: TrainConfig) -> list:
    """`val_batches` batches of clips spread evenly over the validation set (neighbouring clips overlap)."""
    count = min(len(val_set), cfg.val_batches * cfg.batch_size)
    spread = [i * len(val_set) // count for i in range(count)]
    return list(DataLoader(Subset(val_set, spread), cfg.batch_size))


def open_data(cfg: TrainConfig, model_cfg) -> tuple:
    """(training clips, validation clips), each clip cond_frames + target_frames long."""
    clip, size = model_cfg.cond_frames + model_cfg.target_frames, model_cfg.resolution
    try:
        train_set = open_dataset(cfg.data, clip, size=size, split=None if cfg.split == "all" else cfg.split)
        val_set = (open_dataset(cfg.val_data, clip, size=size) if cfg.val_data else
                   open_dataset(cfg.data, clip, size=size, split="val"))
    except (OSError, ValueError) as e:
        raise TrainingError(f"cannot open the data: {e}") from None
    if len(val_set) == 0:
        raise TrainingError("the validation set is empty: give --val-data or generate a val split")
    return train_set, val_set


def run_validation(objective, val_batches, cfg, env, autocast, log: RunLog, step: int) -> dict:
    val = {"step": step, **validate(objective, val_batches, cfg, env.device, autocast)}
    log.scalars("val", step, {k: v for k, v in val.items() if k != "step"})
    with autocast():
        clips = {k: v[:SAMPLE_CLIPS] for k, v in val_batches[0].items()}
        image = objective.samples(to_device(clips, env.device),
                                  step_generator(cfg.seed, SAMPLES, 0, 0, env.device),  # same noise each time
                                  cfg.sample_steps)
    val["samples"] = str(log.image(step, image.float()))
    return val
