"""Optimisation pieces of the loop: the learning-rate schedule, the EMA, the noise streams and the data order.

Resuming continues exactly: the learning rate is a function of the step (and of the seconds trained, under a time
budget), the data order is a per-epoch permutation of (seed, epoch) entered at the saved step, and each step draws
its noise from a generator seeded by (seed, stream, rank, step), so no RNG state needs saving.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from syncvp_core.model import SyncVP
from syncvp_core.train.settings import TrainConfig, TrainingError

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
