"""Rollout evaluation: predict `horizon` frames from `cond_frames` observed ones and score every predicted frame.

Methods scored on the same clips in one run:
- `syncvp`: the model conditioned on RGB and depth;
- `syncvp-rgb-cond` / `syncvp-depth-cond`: the same model in its single-modality guidance modes (the other
  modality's conditioning is dropped; it still predicts both);
- `copy-last`: repeat the last observed frame of each modality (a static-world baseline);
- `training-mean`: the per-pixel mean RGB frame and depth map of the training set, every step (the baseline a
  model without any conditioning of a modality must beat; needs `training_mean`).
All model runs of a batch share one seed, so the modes differ only in their conditioning.

Depth is scored for every method on the same pixels: those where the ground truth is valid and inside the
model's [near, far] range and where every method has a finite prediction (copy-last has none where its source
frame had a hole), so no method is scored on pixels another one skips.

Per-frame metrics (shape clips × horizon) are kept; FVD features are gathered for one Fréchet distance per
method and modality at the end. Input is any iterable of batches, so a caller with its own clips (a rosbag
evaluator, say) reuses the loop: each batch is a dict with `rgb` B×T×3×H×W in [0, 1], `depth` B×T×H×W metres
(NaN invalid) and optionally `valid` B×T×H×W bool, with T ≥ cond_frames + horizon.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np
import torch

from syncvp_core.metrics import depth_as_image, depth_errors, feature_distance, psnr, ssim
from syncvp_core.metrics.i3d import MIN_FRAMES, I3DFeatures
from syncvp_core.metrics.lpips import LPIPS
from syncvp_core.modalities import MODALITIES, ConditioningMode

# method -> the conditioning mode it runs the model in
MODEL_METHODS = {"syncvp": ConditioningMode.RGBD, "syncvp-rgb-cond": ConditioningMode.RGB,
                 "syncvp-depth-cond": ConditioningMode.DEPTH}
COPY_LAST = "copy-last"
TRAINING_MEAN = "training-mean"
DEFAULT_METHODS = (*MODEL_METHODS, COPY_LAST)  # the ones that need nothing beyond the clips and the model
METHODS = (*DEFAULT_METHODS, TRAINING_MEAN)
# larger is better for these; the others are errors
HIGHER_IS_BETTER = {"ssim", "psnr", "delta1"}
FVD_MIN_CLIPS = 2


@dataclass
class LearnedMetrics:
    """The learned metrics to compute; None skips one (too slow, or its weights are missing)."""
    lpips: LPIPS | None = None
    i3d: I3DFeatures | None = None
    skipped: dict[str, str] = field(default_factory=dict)  # metric -> why


@dataclass
class EvaluationResult:
    cond_frames: int
    horizon: int
    modalities: tuple[str, ...]
    methods: tuple[str, ...]
    clips: int
    frames: dict[tuple[str, str, str], np.ndarray]  # (method, modality, metric) -> clips × horizon
    fvd: dict[tuple[str, str], dict]  # (method, modality) -> {"value", "clips", "feature_vectors"}
    # first clip: "ground-truth" (observed + future frames) and each method (predicted frames) -> rgb / depth
    sample: dict[str, dict[str, torch.Tensor]]
    skipped: dict[str, str]

    def per_step(self, method: str, modality: str, metric: str) -> np.ndarray:
        """Mean over clips at each horizon step, skipping frames without a value (no valid depth)."""
        return _nanmean(self.frames[(method, modality, metric)], axis=0)

    def metric_names(self, modality: str) -> list[str]:
        return list(dict.fromkeys(metric for (_, mod, metric) in self.frames if mod == modality))

    def to_dict(self) -> dict:
        """JSON-ready summary: per-step and mean values for every method, modality and metric."""
        results = {}
        for method in self.methods:
            for modality in self.modalities:
                entry = results.setdefault(method, {}).setdefault(modality, {})
                for metric in self.metric_names(modality):
                    steps = self.per_step(method, modality, metric)
                    entry[metric] = {"mean": _json_float(_nanmean(steps)), "per_step": [_json_float(v) for v in steps]}
                if (method, modality) in self.fvd:
                    fvd = self.fvd[(method, modality)]
                    entry["fvd"] = {**fvd, "value": _json_float(fvd["value"])}
        return {"cond_frames": self.cond_frames, "horizon": self.horizon, "clips": self.clips,
                "modalities": list(self.modalities), "methods": list(self.methods),
                "higher_is_better": sorted(HIGHER_IS_BETTER), "skipped": self.skipped, "results": results}


def _nanmean(values: np.ndarray, axis=None):
    """Mean over the non-NaN entries; NaN (without numpy's empty-slice warning) where there are none."""
    present = ~np.isnan(values)
    count = present.sum(axis=axis)
    total = np.where(present, values, 0.0).sum(axis=axis)
    return np.divide(total, count, out=np.full(np.shape(total), np.nan), where=count > 0)


def _json_float(value: float) -> float | None:
    """JSON has no NaN or infinity: those (an empty depth frame, a perfect PSNR) become null."""
    return float(value) if math.isfinite(value) else None


def copy_last_frame(rgb_cond: torch.Tensor, depth_cond: torch.Tensor, horizon: int):
    """(rgb B×h×3×H×W, depth B×h×H×W): the last observed frame of each modality repeated `horizon` times."""
    return (rgb_cond[:, -1:].expand(-1, horizon, -1, -1, -1).clone(),
            depth_cond[:, -1:].expand(-1, horizon, -1, -1).clone())


def depth_scoring_pixels(truth: torch.Tensor, valid: torch.Tensor | None, predictions, near: float,
                         far: float) -> torch.Tensor:
    """B×h×H×W bool: valid, in-range ground truth where every prediction (B×h×H×W metres) is finite and > 0."""
    mask = torch.isfinite(truth) & (truth >= near) & (truth <= far)
    if valid is not None:
        mask &= valid.bool()
    for predicted in predictions:
        mask &= torch.isfinite(predicted) & (predicted > 0)
    return mask


def image_view(modality: str, video: torch.Tensor, near: float, far: float) -> torch.Tensor:
    """What the image metrics see: RGB as is, depth rendered to 3 channels (the SyncVP paper's convention)."""
    return video if modality == "rgb" else depth_as_image(video, near, far)


def frame_scores(modality: str, pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None,
                 near: float, far: float, lpips: LPIPS | None = None) -> dict[str, torch.Tensor]:
    """Per-frame metrics of B×h predictions, each a B×h float64 CPU tensor."""
    scores = depth_errors(pred, gt, valid) if modality == "depth" else {}
    pred_image, gt_image = image_view(modality, pred, near, far), image_view(modality, gt, near, far)
    scores["ssim"] = ssim(pred_image, gt_image)
    if modality == "rgb":
        scores["psnr"] = psnr(pred_image, gt_image)
    if lpips is not None:
        scores["lpips"] = lpips.images(pred_image, gt_image)
    return {name: value.double().cpu() for name, value in scores.items()}


def evaluate(batches: Iterable[dict], predictor, *, cond_frames: int = 2, horizon: int = 28,
             modalities: Iterable[str] = MODALITIES, methods: Iterable[str] = DEFAULT_METHODS,
             metrics: LearnedMetrics | None = None, near: float, far: float, seed: int = 0,
             device: str | torch.device = "cpu", training_mean: dict | None = None) -> EvaluationResult:
    """Score every method on every batch. `predictor` is a RolloutPredictor (None when only baselines run);
    `near`/`far` (metres) are the scored depth range and fix the depth rendering for the image metrics, normally
    the model's config; `training_mean` ({"rgb": 3×H×W, "depth": H×W}) serves the training-mean baseline."""
    modalities, methods = tuple(modalities), tuple(methods)
    unknown = sorted(set(methods) - set(METHODS)) + sorted(set(modalities) - set(MODALITIES))
    if unknown:
        raise ValueError(f"unknown method or modality: {', '.join(unknown)}")
    if predictor is None and set(methods) & set(MODEL_METHODS):
        raise ValueError("the syncvp methods need a predictor")
    if training_mean is None and TRAINING_MEAN in methods:
        raise ValueError("the training-mean baseline needs the training set's mean frames")
    metrics = metrics or LearnedMetrics()
    skipped = dict(metrics.skipped)
    i3d = metrics.i3d
    if i3d is not None and horizon < MIN_FRAMES:
        skipped["fvd"] = f"I3D needs at least {MIN_FRAMES} predicted frames, horizon is {horizon}"
        i3d = None
    frames: dict[tuple[str, str, str], list[torch.Tensor]] = {}
    features: dict[tuple[str, str], list[torch.Tensor]] = {}  # (method or "ground-truth", modality)
    sample: dict[str, dict[str, torch.Tensor]] = {}
    clips = 0
    for index, batch in enumerate(batches):
        rgb, depth = batch["rgb"].to(device), batch["depth"].to(device)
        if rgb.shape[1] < cond_frames + horizon:
            raise ValueError(f"clips have {rgb.shape[1]} frames, need cond_frames + horizon = "
                             f"{cond_frames + horizon}")
        shown, future = slice(0, cond_frames + horizon), slice(cond_frames, cond_frames + horizon)
        valid = batch["valid"][:, future].to(device) if "valid" in batch else None
        truth = {"rgb": rgb[:, future], "depth": depth[:, future]}
        predictions = dict(_predict(predictor, methods, rgb[:, :cond_frames], depth[:, :cond_frames], horizon,
                                    seed + index, device, training_mean))
        scored = {"rgb": valid, "depth": depth_scoring_pixels(truth["depth"], valid,
                                                              [p["depth"] for p in predictions.values()], near, far)}
        for modality in modalities:
            for method, predicted in predictions.items():
                scores = frame_scores(modality, predicted[modality], truth[modality], scored[modality], near, far,
                                      metrics.lpips)
                for name, value in scores.items():
                    frames.setdefault((method, modality, name), []).append(value)
            if i3d is not None:
                for name, video in (("ground-truth", truth), *predictions.items()):
                    features.setdefault((name, modality), []).append(i3d(image_view(modality, video[modality],
                                                                                     near, far)))
        if not sample:
            sample = {"ground-truth": {"rgb": rgb[0, shown].cpu(), "depth": depth[0, shown].cpu()},
                      **{m: {k: v[0].cpu() for k, v in p.items()} for m, p in predictions.items()}}
        clips += rgb.shape[0]
    if not clips:
        raise ValueError("no clips to evaluate")
    fvd = {}
    if i3d is not None and clips < FVD_MIN_CLIPS:
        skipped["fvd"] = f"needs at least {FVD_MIN_CLIPS} clips, got {clips}"
    elif i3d is not None:
        fvd = {(method, modality): _fvd(features[("ground-truth", modality)], features[(method, modality)], clips)
               for method in methods for modality in modalities}
    return EvaluationResult(cond_frames, horizon, modalities, methods, clips,
                            {key: torch.cat(v).numpy() for key, v in frames.items()}, fvd, sample, skipped)


def _predict(predictor, methods, rgb_cond, depth_cond, horizon, seed, device,
             training_mean) -> Iterator[tuple[str, dict]]:
    for method in methods:
        if method == COPY_LAST:
            rgb, depth = copy_last_frame(rgb_cond, depth_cond, horizon)
        elif method == TRAINING_MEAN:
            b = rgb_cond.shape[0]
            rgb = training_mean["rgb"].to(device).expand(b, horizon, *training_mean["rgb"].shape).clone()
            depth = training_mean["depth"].to(device).expand(b, horizon, *training_mean["depth"].shape).clone()
        else:
            conditioning = MODEL_METHODS[method].modalities
            generator = torch.Generator(device=device).manual_seed(seed)
            out = predictor.predict(rgb=rgb_cond if "rgb" in conditioning else None,
                                    depth=depth_cond if "depth" in conditioning else None,
                                    horizon=horizon, generator=generator)
            rgb, depth = out.rgb, out.depth
        yield method, {"rgb": rgb, "depth": depth}


def _fvd(real: list[torch.Tensor], fake: list[torch.Tensor], clips: int) -> dict:
    real_features, fake_features = torch.cat(real).numpy(), torch.cat(fake).numpy()
    return {"value": feature_distance(real_features, fake_features), "clips": clips,
            "feature_vectors": int(fake_features.shape[0])}


def training_mean_frames(dataset, clips: int = 500) -> dict[str, torch.Tensor]:
    """Per-pixel mean RGB frame and mean depth map (over valid pixels; NaN where none) of up to `clips` clips
    spread over `dataset` — the training-mean baseline."""
    count = min(len(dataset), clips)
    rgb_sum, depth_sum, depth_count = 0.0, 0.0, 0.0
    for i in range(count):
        item = dataset[i * len(dataset) // count]
        depth = item["depth"]
        finite = torch.isfinite(depth) & (depth > 0)
        rgb_sum = rgb_sum + item["rgb"].double().sum(0)
        depth_sum = depth_sum + torch.where(finite, depth, torch.zeros_like(depth)).double().sum(0)
        depth_count = depth_count + finite.double().sum(0)
        frames = len(item["rgb"])
    depth_mean = torch.where(depth_count > 0, depth_sum / depth_count.clamp_min(1), torch.nan)
    return {"rgb": (rgb_sum / (count * frames)).float(), "depth": depth_mean.float()}
