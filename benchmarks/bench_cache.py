"""Seconds per stage-2 training step with latents from the cache against encoding the pixel clips first.

Times `train.objectives.DiffusionObjective` forward + backward on one batch, both ways (data loading not counted:
the cache saves that too), one thread by default. Prints a table and JSON.

    python benchmarks/bench_cache.py --data synthetic:build/data/synth --batch-size 16 --repeats 5
"""
from __future__ import annotations

import json
import sys
import time

import torch
from torch.utils.data import DataLoader

from syncvp_core.arguments import POSITIVE_INT, OneLineParser
from syncvp_core.checkpoint import CheckpointError, load_model
from syncvp_core.data.datasets import open_dataset
from syncvp_core.modalities import MODALITIES
from syncvp_core.train.objectives import DiffusionObjective


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="bench_cache.py", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="bundled", help="model file, preset:NAME or bundled (bundled)")
    parser.add_argument("--data", required=True, help="training data spec, e.g. synthetic:DIR")
    parser.add_argument("--modality", choices=MODALITIES, default="rgb", help="branch to time (rgb)")
    parser.add_argument("--batch-size", type=POSITIVE_INT, default=16, help="clips per step (16, the recipe's)")
    parser.add_argument("--repeats", type=POSITIVE_INT, default=5, help="timed steps (5)")
    parser.add_argument("--threads", type=POSITIVE_INT, default=1, help="torch threads (1)")
    return parser


def seconds_per_step(objective, batch: dict, repeats: int) -> float:
    def step():
        loss, _ = objective(batch, torch.Generator().manual_seed(0))
        loss.backward()
    step()  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - started) / repeats


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        model = load_model(args.checkpoint).train()
        cfg = model.cfg
        dataset = open_dataset(args.data, cfg.cond_frames + cfg.target_frames, size=cfg.resolution, split="train")
    except (CheckpointError, ValueError, OSError) as e:
        print(f"bench_cache.py: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    model.requires_grad_(False)
    getattr(model.net, f"{args.modality}_branch").requires_grad_(True)  # what stage 2 trains
    objective = DiffusionObjective(model, args.modality, 0.25)
    pixels = next(iter(DataLoader(dataset, args.batch_size)))
    with torch.no_grad():
        video = pixels[args.modality]
        cached = {f"{args.modality}.cond": model.encode(args.modality, video[:, :cfg.cond_frames]),
                  f"{args.modality}.target": model.encode(args.modality, video[:, cfg.cond_frames:])}
    result = {"checkpoint": args.checkpoint, "modality": args.modality, "batch_size": args.batch_size,
              "threads": args.threads, "pixels_s": seconds_per_step(objective, pixels, args.repeats),
              "cached_s": seconds_per_step(objective, cached, args.repeats)}
    result["speed_up"] = result["pixels_s"] / result["cached_s"]
    print(f"stage-2 step, batch {args.batch_size}: encode pixels {result['pixels_s']:.3f} s, cached latents "
          f"{result['cached_s']:.3f} s (x{result['speed_up']:.2f})")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
