"""The evaluation pipeline as functions: load a model, roll it out on held-out clips, score, write the report.

`run(EvalRequest(...))` is what `syncvp-eval` and `syncvp-bag eval` call: it writes OUT/metrics.json (the
summary of `EvaluationResult.to_dict` plus the settings), per-horizon plots, a sample strip and a GIF, and
returns the summary. `summary_table` prints it.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from syncvp_core.checkpoint import load_model
from syncvp_core.data.datasets import open_dataset
from syncvp_core.devices import resolve_device
from syncvp_core.evaluation import plots
from syncvp_core.evaluation.scoring import (DEFAULT_METHODS, HIGHER_IS_BETTER, METHODS, LearnedMetrics, evaluate,
                                            training_mean_frames)
from syncvp_core.metrics.i3d import I3DFeatures
from syncvp_core.metrics.lpips import load_lpips
from syncvp_core.metrics.weights import MissingWeightsError
from syncvp_core.modalities import ConditioningMode
from syncvp_core.rollout import RolloutPredictor


@dataclass
class EvalRequest:
    """One evaluation; the fields are syncvp-eval's options (its --help says what each means)."""
    checkpoint: str
    data: str
    out: Path
    split: str | None = None
    cond: int = 2
    horizon: int = 28
    modalities: str = "rgbd"  # a ConditioningMode value: which modalities to score
    samples: int = 32  # clips
    batch_size: int = 4
    sampler: str | None = None
    steps: int | None = None
    eta: float | None = None
    guidance_scale: float = 0.0
    mean_of: int = 1
    decoder_context: bool = True
    train_data: str | None = None
    seed: int = 0
    device: str = "auto"
    skip: list[str] = field(default_factory=list)
    methods: list[str] | None = None  # None: every method the inputs allow


def learned_metrics(skip: list[str], device: torch.device, who: str = "syncvp-eval") -> LearnedMetrics:
    """LPIPS and I3D, each skipped (with the reason recorded) when asked to or when its weights are missing."""
    metrics = LearnedMetrics(skipped={name: "--skip" for name in skip})
    try:
        if "lpips" not in skip:
            metrics.lpips = load_lpips("alex", device)
    except MissingWeightsError as err:
        metrics.skipped["lpips"] = str(err)
        print(f"{who}: skipping LPIPS: {err}", file=sys.stderr)
    try:
        if "fvd" not in skip:
            metrics.i3d = I3DFeatures(device)
    except MissingWeightsError as err:
        metrics.skipped["fvd"] = str(err)
        print(f"{who}: skipping FVD: {err}", file=sys.stderr)
    return metrics


def clip_origin(dataset, index: int) -> dict:
    sequence, start = dataset.locate(index)
    return {"source": dataset.sequences[sequence].name, "start": start}


def pick_clips(dataset, samples: int) -> list[int]:
    """`samples` clip indices spread evenly over the data set (all of them if it has fewer)."""
    return np.unique(np.linspace(0, len(dataset) - 1, min(samples, len(dataset))).round().astype(int)).tolist()


def batches(dataset, indices: list[int], batch_size: int):
    for start in range(0, len(indices), batch_size):
        items = [dataset[i] for i in indices[start:start + batch_size]]
        yield {key: torch.stack([item[key] for item in items]) for key in ("rgb", "depth", "valid")}


def run(request: EvalRequest) -> dict:
    """Evaluate, write the report files into `request.out`, return the summary (ValueError / OSError /
    RuntimeError with one line on bad input)."""
    device = resolve_device(request.device)
    model = load_model(request.checkpoint, device)
    cfg = model.cfg
    if request.cond != cfg.cond_frames:
        raise ValueError(f"--cond {request.cond}: this model is conditioned on {cfg.cond_frames} frames")
    clip_length = request.cond + request.horizon
    dataset = open_dataset(request.data, clip_length=clip_length, size=cfg.resolution, split=request.split)
    indices = pick_clips(dataset, request.samples)
    predictor = RolloutPredictor(model, steps=request.steps, eta=request.eta, guidance_scale=request.guidance_scale,
                                 sampler=request.sampler, samples=request.mean_of,
                                 decoder_context=request.decoder_context)
    methods = request.methods or list(METHODS if request.train_data else DEFAULT_METHODS)
    training_mean = None
    if request.train_data:
        training_mean = training_mean_frames(open_dataset(request.train_data, clip_length=clip_length,
                                                          size=cfg.resolution, split="train"))
    metrics = learned_metrics(request.skip, device)
    request.out.mkdir(parents=True, exist_ok=True)
    progress = tqdm(total=len(indices), desc="syncvp-eval", unit="clip", file=sys.stderr)

    def with_progress():
        for batch in batches(dataset, indices, request.batch_size):
            yield batch
            progress.update(len(batch["rgb"]))

    with progress:
        result = evaluate(with_progress(), predictor, cond_frames=request.cond, horizon=request.horizon,
                          modalities=ConditioningMode(request.modalities).modalities, methods=methods,
                          metrics=metrics, near=cfg.depth_near, far=cfg.depth_far, seed=request.seed, device=device,
                          training_mean=training_mean)
    summary = result.to_dict()
    sampler = predictor.sampler
    summary["settings"] = {"checkpoint": request.checkpoint, "model": cfg.name, "data": request.data,
                           "split": request.split, "sampler": request.sampler or cfg.diffusion.sampler,
                           "steps": len(sampler.timesteps), "eta": sampler.eta,
                           "guidance_scale": request.guidance_scale, "mean_of": request.mean_of,
                           "decoder_context": request.decoder_context,
                           "train_data": request.train_data, "seed": request.seed, "device": str(device),
                           "depth_near": cfg.depth_near, "depth_far": cfg.depth_far,
                           "clips": [clip_origin(dataset, i) for i in indices]}
    summary["files"] = ["metrics.json", *write_figures(result, request.cond, cfg.depth_near, cfg.depth_far,
                                                       request.out)]
    (request.out / "metrics.json").write_text(json.dumps(summary, indent=2))
    return summary


def write_figures(result, cond_frames: int, near: float, far: float, out: Path) -> list[str]:
    """Per-horizon plots, the sample strip and the sample GIF of a result; their file names."""
    files = [p.name for p in plots.plot_per_horizon(result, out)]
    files.append(plots.sample_strip(result.sample, result.methods, cond_frames, near, far,
                                    out / "sample_strip.png").name)
    files.append(plots.sample_gif(result.sample, result.methods, cond_frames, near, far, out / "sample.gif").name)
    return files


def summary_table(summary: dict) -> str:
    """Mean of every metric per method, one block per modality."""
    lines = []
    for modality in summary["modalities"]:
        per_method = {m: summary["results"][m][modality] for m in summary["methods"]}
        metrics = list(next(iter(per_method.values())))
        lines.append(f"\n{modality} (mean over {summary['horizon']} predicted frames, {summary['clips']} clips)")
        lines.append(f"{'method':<20}" + "".join(f"{m + ('↑' if m in HIGHER_IS_BETTER else '↓'):>11}"
                                                for m in metrics))
        for method, values in per_method.items():
            cells = [values[m]["value"] if m == "fvd" else values[m]["mean"] for m in metrics]
            lines.append(f"{method:<20}" + "".join(f"{'n/a' if v is None else f'{v:.4f}':>11}" for v in cells))
    if summary["skipped"]:
        lines.append("\nskipped: " + "; ".join(f"{k} ({v})" for k, v in summary["skipped"].items()))
    return "\n".join(lines)
