"""syncvp-eval: roll a model out on held-out clips and score the predicted frames against ground truth.

Scores SyncVP (RGB+depth conditioning), its RGB-only and depth-only guidance modes and the copy-last-frame
baseline on the same clips, per predicted frame and on average: RGB SSIM / PSNR / LPIPS / FVD; depth AbsRel /
RMSE / δ<1.25 on valid pixels plus SSIM / LPIPS / FVD on depth rendered grey (the paper's convention).
Writes DIR/metrics.json, per-horizon plots, a sample strip and a GIF; see docs/evaluation.md.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from syncvp_core import plots
from syncvp_core.checkpoint import load_model
from syncvp_core.cli import OneLineParser
from syncvp_core.config import SAMPLERS
from syncvp_core.data.datasets import open_dataset
from syncvp_core.evaluation import (DEFAULT_METHODS, HIGHER_IS_BETTER, METHODS, TRAINING_MEAN, LearnedMetrics,
                                    evaluate, training_mean_frames)
from syncvp_core.metrics.i3d import I3DFeatures
from syncvp_core.metrics.lpips import load_lpips
from syncvp_core.metrics.weights import MissingWeightsError
from syncvp_core.modalities import ConditioningMode
from syncvp_core.rollout import RolloutPredictor

MODALITY_CHOICES = {mode.value: mode.modalities for mode in ConditioningMode}  # what to score


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError
    return value


positive_int.__name__ = "positive integer"  # what argparse names in its "invalid ... value" message


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="syncvp-eval", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="checkpoint file, preset:NAME (random init) or bundled")
    parser.add_argument("--data", required=True, help="dataset spec, e.g. synthetic:DIR (see docs/data.md)")
    parser.add_argument("--split", default=None, help="dataset split to draw clips from (default: all of it)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created)")
    parser.add_argument("--cond", type=positive_int, default=2, help="observed frames (must match the model; 2)")
    parser.add_argument("--horizon", type=positive_int, default=28, help="predicted frames per clip (28)")
    parser.add_argument("--modalities", choices=MODALITY_CHOICES, default="rgbd", help="what to score (rgbd)")
    parser.add_argument("--samples", type=positive_int, default=32,
                        help="clips, spread evenly over the data (32; fewer if the data has fewer)")
    parser.add_argument("--batch-size", type=positive_int, default=4, help="clips per model call (4)")
    parser.add_argument("--sampler", choices=SAMPLERS, default=None, help="ddim or dpmsolver (default: the config's)")
    parser.add_argument("--steps", type=positive_int, default=None, help="DDIM steps (default: the config's)")
    parser.add_argument("--eta", type=float, default=None, help="DDIM eta (default: the config's)")
    parser.add_argument("--guidance-scale", type=float, default=0.0, help="modality guidance w (0: plain)")
    parser.add_argument("--mean-of", type=positive_int, default=1, metavar="K",
                        help="point estimate: the mean of K predictions drawn in one batch (1: one sample)")
    parser.add_argument("--train-data", default=None,
                        help="training data spec: adds the training-mean baseline (its mean frame and depth map)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (0)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: cuda if available")
    parser.add_argument("--skip", nargs="+", choices=("lpips", "fvd"), default=[], metavar="METRIC",
                        help="skip these slow network-based metrics: lpips, fvd")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=None, metavar="METHOD",
                        help=f"methods to score: {', '.join(METHODS)} (all; {TRAINING_MEAN} with --train-data)")
    return parser


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device available (use --device cpu or auto)")
    return torch.device(name)


def learned_metrics(skip: list[str], device: torch.device) -> LearnedMetrics:
    """LPIPS and I3D, each skipped (with the reason recorded) when asked to or when its weights are missing."""
    metrics = LearnedMetrics(skipped={name: "--skip" for name in skip})
    try:
        if "lpips" not in skip:
            metrics.lpips = load_lpips("alex", device)
    except MissingWeightsError as err:
        metrics.skipped["lpips"] = str(err)
        print(f"syncvp-eval: skipping LPIPS: {err}", file=sys.stderr)
    try:
        if "fvd" not in skip:
            metrics.i3d = I3DFeatures(device)
    except MissingWeightsError as err:
        metrics.skipped["fvd"] = str(err)
        print(f"syncvp-eval: skipping FVD: {err}", file=sys.stderr)
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


def run(args) -> dict:
    device = resolve_device(args.device)
    model = load_model(args.checkpoint, device)
    cfg = model.cfg
    if args.cond != cfg.cond_frames:
        raise ValueError(f"--cond {args.cond}: this model is conditioned on {cfg.cond_frames} frames")
    dataset = open_dataset(args.data, clip_length=args.cond + args.horizon, size=cfg.resolution, split=args.split)
    indices = pick_clips(dataset, args.samples)
    predictor = RolloutPredictor(model, steps=args.steps, eta=args.eta, guidance_scale=args.guidance_scale,
                                 sampler=args.sampler, samples=args.mean_of)
    methods = args.methods or list(METHODS if args.train_data else DEFAULT_METHODS)
    training_mean = None
    if args.train_data:
        training_mean = training_mean_frames(open_dataset(args.train_data, clip_length=args.cond + args.horizon,
                                                          size=cfg.resolution, split="train"))
    metrics = learned_metrics(args.skip, device)
    args.out.mkdir(parents=True, exist_ok=True)
    progress = tqdm(total=len(indices), desc="syncvp-eval", unit="clip", file=sys.stderr)

    def with_progress():
        for batch in batches(dataset, indices, args.batch_size):
            yield batch
            progress.update(len(batch["rgb"]))

    with progress:
        result = evaluate(with_progress(), predictor, cond_frames=args.cond, horizon=args.horizon,
                          modalities=MODALITY_CHOICES[args.modalities], methods=methods, metrics=metrics,
                          near=cfg.depth_near, far=cfg.depth_far, seed=args.seed, device=device,
                          training_mean=training_mean)
    summary = result.to_dict()
    sampler = predictor.sampler
    summary["settings"] = {"checkpoint": args.checkpoint, "model": cfg.name, "data": args.data, "split": args.split,
                           "sampler": args.sampler or cfg.diffusion.sampler,
                           "steps": len(sampler.timesteps), "eta": sampler.eta, "guidance_scale": args.guidance_scale,
                           "mean_of": args.mean_of, "train_data": args.train_data,
                           "seed": args.seed, "device": str(device), "depth_near": cfg.depth_near,
                           "depth_far": cfg.depth_far,
                           "clips": [clip_origin(dataset, i) for i in indices]}
    files = [p.name for p in plots.plot_per_horizon(result, args.out)]
    files.append(plots.sample_strip(result.sample, result.methods, args.cond, cfg.depth_near, cfg.depth_far,
                                    args.out / "sample_strip.png").name)
    files.append(plots.sample_gif(result.sample, result.methods, args.cond, cfg.depth_near, cfg.depth_far,
                                  args.out / "sample.gif").name)
    summary["files"] = ["metrics.json", *files]
    (args.out / "metrics.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = run(args)
    except (ValueError, OSError, RuntimeError) as err:
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"syncvp-eval: error: {message}", file=sys.stderr)
        return 1
    print(summary_table(summary))
    print(f"\nwrote {', '.join(summary['files'])} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
