"""Autoregressive RGB-D prediction of any horizon from 2 observed frames (method reference §6).

Each chunk call encodes the 2 conditioning frames of each modality, samples the 8-frame RGB and depth latents
jointly (DDIM, shared noise) and decodes them. The next call is conditioned on the last 2 predicted frames of
BOTH modalities, re-encoded from pixels; chunks do not overlap and are not blended. The chunks are cut to the
horizon (2 -> 28 is 4 calls: 8+8+8+4).

A missing modality gets an exactly zero conditioning latent in the first call (what training's modality
dropout shows the network); the model still predicts both, and later calls condition on both predictions.

Re-encoded RGB is quantised to 8 bits first (`model.quantise_rgb`), as the reference does: the conditioning then
looks like a camera frame, which is what the autoencoder saw in training. Depth is not quantised: it is float
metres here, not the reference's 8-bit disparity PNG.

A model whose decoders take a context frame (`decoder_context`, docs/model.md) decodes each chunk on the last
frame before it: the last observed frame of a modality that conditioned the first chunk, the last predicted frame
for later chunks; a modality without conditioning decodes its first chunk without context.

`samples` = K > 1 draws K predictions in one batch and returns their mean (a point estimate: lower LPIPS and
depth error, blurrier); every later chunk is conditioned on that mean.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from syncvp_core.diffusion import NoiseSchedule
from syncvp_core.modalities import MODALITIES, ConditioningMode
from syncvp_core.model import SyncVP
from syncvp_core.sampler import make_sampler, sample_joint


class PredictionCancelled(Exception):
    """`predict` stopped because its `should_stop` said so (e.g. the node is shutting down)."""


@dataclass
class Prediction:
    rgb: torch.Tensor  # B×horizon×3×H×W in [0, 1]
    depth: torch.Tensor  # B×horizon×H×W metres
    guidance_mode: str  # a ConditioningMode value: which modalities conditioned the first chunk


class RolloutPredictor:
    """`predict` runs on the model's device; outputs come back on the device of the inputs.
    `sampler`, `steps` and `eta` default to the config's `diffusion.sampler` / `sampling_steps` / `eta`;
    `samples` is K of the point estimate (module docstring); `decoder_context=False` decodes without context."""

    def __init__(self, model: SyncVP, steps: int | None = None, eta: float | None = None,
                 guidance_scale: float = 0.0, sampler: str | None = None, samples: int = 1,
                 decoder_context: bool = True):
        if guidance_scale < 0:
            raise ValueError(f"guidance scale must be >= 0, got {guidance_scale}")
        if not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples must be a positive number of predictions to average, got {samples!r}")
        self.model = model.eval()
        dc = model.cfg.diffusion
        self.sampler = make_sampler(dc.sampler if sampler is None else sampler, NoiseSchedule.from_config(dc),
                                    dc.sampling_steps if steps is None else steps, dc.eta if eta is None else eta,
                                    dc.prediction)
        self.guidance_scale = guidance_scale
        self.samples = samples
        self.decoder_context = decoder_context  # False: decode every chunk without context (an ablation)
        self.chunk_calls = 0  # sampled 8-frame chunks since construction

    @torch.inference_mode()
    def predict(self, rgb: torch.Tensor | None = None, depth: torch.Tensor | None = None, horizon: int = 28,
                generator: torch.Generator | None = None, should_stop=None) -> Prediction:
        """`should_stop()` (optional) is asked before every network evaluation; True raises PredictionCancelled,
        so a long rollout ends within one step."""
        def check():
            if should_stop is not None and should_stop():
                raise PredictionCancelled("prediction cancelled")

        cfg, k = self.model.cfg, self.samples
        batch, out_device = self._check_inputs(rgb, depth, horizon)
        device = next(self.model.parameters()).device
        rgb = None if rgb is None else rgb.to(device, torch.float32).repeat_interleave(k, 0)
        depth = None if depth is None else depth.to(device, torch.float32).repeat_interleave(k, 0)
        cond_rgb = self.model.encode_rgb(rgb) if rgb is not None else None
        cond_depth = self.model.encode_depth(depth) if depth is not None else None
        mode = ConditioningMode.of(rgb is not None, depth is not None).value
        cond_rgb = torch.zeros_like(cond_depth) if cond_rgb is None else cond_rgb
        cond_depth = torch.zeros_like(cond_rgb) if cond_depth is None else cond_depth
        # the frame each modality's decoder builds on (None: decode without context)
        last_rgb = None if rgb is None or not self.decoder_context else rgb[:, -1]
        last_depth = None if depth is None or not self.decoder_context else depth[:, -1]

        shape = (batch * k, cond_rgb.shape[1], cfg.target_shape().tokens)
        ranges = {m: self.model.latent_range(m, cfg.target_frames) for m in MODALITIES}
        rgb_chunks, depth_chunks = [], []
        for chunk in range(math.ceil(horizon / cfg.target_frames)):
            if chunk:  # condition on the last predicted frames of both modalities
                cond_rgb = self.model.encode_rgb(self.model.quantise_rgb(rgb_chunks[-1][:, -cfg.cond_frames:]))
                cond_depth = self.model.encode_depth(depth_chunks[-1][:, -cfg.cond_frames:])
            x_rgb, x_depth = sample_joint(self.model.net, self.sampler, cond_rgb, cond_depth, shape,
                                          self.guidance_scale, generator, before_step=check, x0_ranges=ranges)
            self.chunk_calls += 1
            rgb_chunk = self.model.decode_rgb(x_rgb, cfg.target_frames, context=last_rgb).clamp(0, 1)
            depth_chunk = self.model.decode_depth(x_depth, cfg.target_frames, context=last_depth)
            if k > 1:  # the point estimate: every sample of a clip continues from the mean
                rgb_chunk = _mean_of_samples(rgb_chunk, k).repeat_interleave(k, 0)
                depth_chunk = _mean_of_samples(depth_chunk, k).repeat_interleave(k, 0)
            rgb_chunks.append(rgb_chunk)
            depth_chunks.append(depth_chunk)
            if self.decoder_context:
                last_rgb, last_depth = rgb_chunk[:, -1], depth_chunk[:, -1]
        rgb_out, depth_out = torch.cat(rgb_chunks, 1)[::k, :horizon], torch.cat(depth_chunks, 1)[::k, :horizon]
        return Prediction(rgb_out.to(out_device), depth_out.to(out_device), mode)

    def _check_inputs(self, rgb, depth, horizon):
        """(batch size, device of the inputs); ValueError naming what is wrong."""
        cfg = self.model.cfg
        if rgb is None and depth is None:
            raise ValueError("predict needs rgb, depth or both as conditioning frames")
        if not isinstance(horizon, int) or horizon < 1:
            raise ValueError(f"horizon must be a positive number of frames, got {horizon!r}")
        size, t = cfg.resolution, cfg.cond_frames
        if rgb is not None and (rgb.dim() != 5 or tuple(rgb.shape[1:]) != (t, 3, size, size)):
            raise ValueError(f"rgb must be B×{t}×3×{size}×{size} in [0, 1], got {tuple(rgb.shape)}")
        if depth is not None and (depth.dim() != 4 or tuple(depth.shape[1:]) != (t, size, size)):
            raise ValueError(f"depth must be B×{t}×{size}×{size} metres, got {tuple(depth.shape)}")
        if rgb is not None and depth is not None and rgb.shape[0] != depth.shape[0]:
            raise ValueError(f"rgb and depth batch sizes differ: {rgb.shape[0]} vs {depth.shape[0]}")
        given = rgb if rgb is not None else depth
        return given.shape[0], given.device


def _mean_of_samples(video: torch.Tensor, k: int) -> torch.Tensor:
    """(B·K)×… -> B×…: the mean over each clip's K consecutive samples; depth averages where it is finite."""
    grouped = video.unflatten(0, (-1, k))
    finite = torch.isfinite(grouped)
    count = finite.sum(1)
    mean = torch.where(finite, grouped, torch.zeros_like(grouped)).sum(1) / count.clamp_min(1)
    return torch.where(count > 0, mean, torch.full_like(mean, float("nan")))
