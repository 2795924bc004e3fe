"""The one training loop behind the three stages (`train`).

AdamW, linear warm-up then cosine decay, gradient clipping, an EMA of the trained weights (the EMA weights are
validated, sampled and saved as the model file), bf16 autocast on CUDA only, DistributedDataParallel under
torchrun. A run folder also holds log.jsonl, summary.json, samples/step_*.png and tb/ (TensorBoard).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from syncvp_core.data.datasets import open_dataset
from syncvp_core.train.initial_weights import (check_switches, initial_model, merge_prefixes, set_trainable, statistics_prefixes,
                                               trained_prefixes)
from syncvp_core.train.latents import LatentCache, measure_latent_statistics
from syncvp_core.train.objectives import SAMPLE_CLIPS, load_perceptual, make_objective
from syncvp_core.train.optimisation import (EMA, SAMPLES, TRAIN, VALIDATION, batches, learning_rate, step_generator,
                                            to_device)
from syncvp_core.train.run_files import MODEL_FILE, STATE_FILE, read_state_metadata, resumed_run, save_run
from syncvp_core.modalities import MODALITIES
from syncvp_core.train.settings import TrainConfig, TrainingError

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
        check_switches(cfg, model.cfg, out)
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
    seconds_before = read_state_metadata(out)["seconds"] if resume else 0.0

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
                                  cfg.sample_steps, cfg.sample_sampler)
    val["samples"] = str(log.image(step, image.float()))
    return val
