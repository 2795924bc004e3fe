"""Autoencoder reconstruction of held-out target clips against copy-last: the ceiling of every prediction.

Encodes the 8 target frames of each clip, decodes them (a context decoder gets the frame before the clip, or none
with --no-context) and scores them like syncvp-eval: RGB SSIM / LPIPS, depth AbsRel / RMSE on the pixels where the
truth is valid and in range and copy-last has a value; means over clips and frames, and per frame. Prints a table
and writes JSON.

    python benchmarks/bench_reconstruction.py --checkpoint bundled --data synthetic:build/data/synth_test \\
        --split test --clips 60 --json-out build/bench/reconstruction.json
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from syncvp_core.arguments import POSITIVE_INT, OneLineParser
from syncvp_core.checkpoint import CheckpointError, load_model
from syncvp_core.data.datasets import open_dataset
from syncvp_core.evaluation.pipeline import pick_clips
from syncvp_core.evaluation.scoring import depth_scoring_pixels
from syncvp_core.metrics import depth_errors, ssim
from syncvp_core.metrics.lpips import load_lpips


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="bench_reconstruction.py", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="bundled", help="model file, preset:NAME or bundled (bundled)")
    parser.add_argument("--data", required=True, help="held-out data spec, e.g. synthetic:DIR")
    parser.add_argument("--split", default=None, help="split of --data (default: all)")
    parser.add_argument("--clips", type=POSITIVE_INT, default=60, help="clips spread over the data (60)")
    parser.add_argument("--no-context", action="store_true", help="decode without the frame before the clip")
    parser.add_argument("--json-out", type=Path, help="also write the result here")
    return parser


@torch.inference_mode()
def reconstruction(model, dataset, indices: list[int], context: bool) -> dict:
    cfg, lpips = model.cfg, load_lpips("alex", "cpu")
    before, first, last = cfg.cond_frames - 1, cfg.cond_frames, cfg.cond_frames + cfg.target_frames
    scores: dict[str, list] = {}
    for index in tqdm(indices, desc="reconstruction", unit="clip", file=sys.stderr):
        clip = dataset[index]
        rgb, depth = clip["rgb"][None], clip["depth"][None]
        truth = {"rgb": rgb[:, first:last], "depth": depth[:, first:last]}
        copied = {"rgb": rgb[:, before:first].expand_as(truth["rgb"]),
                  "depth": depth[:, before:first].expand_as(truth["depth"])}
        recon = {
            "rgb": model.decode_rgb(model.encode_rgb(truth["rgb"]), cfg.target_frames,
                                    rgb[:, before] if context else None),
            "depth": model.decode_depth(model.encode_depth(truth["depth"]), cfg.target_frames,
                                        depth[:, before] if context else None),
        }
        pixels = depth_scoring_pixels(truth["depth"], None, [copied["depth"], recon["depth"]], cfg.depth_near,
                                      cfg.depth_far)
        for method, video in (("reconstruction", recon), ("copy-last", copied)):
            frames_rgb, frames_truth = video["rgb"].flatten(0, 1), truth["rgb"].flatten(0, 1)
            errors = depth_errors(video["depth"], truth["depth"], pixels)
            for name, value in (("rgb_ssim", ssim(frames_rgb, frames_truth)),
                                ("rgb_lpips", lpips.images(frames_rgb, frames_truth)),
                                ("depth_abs_rel", errors["abs_rel"]), ("depth_rmse", errors["rmse"])):
                scores.setdefault(method, {}).setdefault(name, []).append(value.double().reshape(-1))
    # means over clips and frames, and per predicted frame (the ceiling at each step of the horizon)
    result = {}
    for method, values in scores.items():
        clips = {name: torch.stack(v) for name, v in values.items()}  # clips × frames
        result[method] = {name: c.nanmean().item() for name, c in clips.items()}
        result[method]["per_step"] = {name: c.nanmean(0).tolist() for name, c in clips.items()}
    return result


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(1)
    try:
        model = load_model(args.checkpoint)
        dataset = open_dataset(args.data, model.cfg.cond_frames + model.cfg.target_frames,
                               size=model.cfg.resolution, split=args.split)
    except (CheckpointError, ValueError, OSError) as e:
        print(f"bench_reconstruction.py: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    indices = pick_clips(dataset, args.clips)
    result = {"checkpoint": args.checkpoint, "clips": len(indices), "context": not args.no_context,
              **reconstruction(model, dataset, indices, not args.no_context)}
    for method in ("reconstruction", "copy-last"):
        print(f"{method:<15}" + "  ".join(f"{k} {v:.4f}" for k, v in result[method].items() if k != "per_step"))
        print(f"{'':<15}depth_abs_rel per frame " + " ".join(f"{v:.4f}" for v in
                                                            result[method]["per_step"]["depth_abs_rel"]))
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
