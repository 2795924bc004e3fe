"""Time the network metrics: I3D per FVD clip (16 frames at 224², batch of clips) and LPIPS per image pair.

    .venv/bin/python benchmarks/bench_metrics.py [--json] [--repeats 3] [--device cpu] [--threads N]

Reports the median over repeats of the wall time per clip / per pair, after one warm-up call, and the
process CPU time beside it (all threads together; less sensitive to other jobs on a shared machine).
Random inputs: the cost does not depend on the content.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch
from tqdm import tqdm

from syncvp_core.metrics.i3d import CLIP_LENGTH, I3DFeatures
from syncvp_core.metrics.lpips import load_lpips
from syncvp_core.metrics.ssim import ssim
from syncvp_core.metrics.weights import MissingWeightsError
from timing import median_seconds  # benchmarks/timing.py, beside this script


def cases(device: torch.device, clips: int, pairs: int):
    """(name, unit count per call, callable)."""
    i3d = I3DFeatures(device, batch=clips)
    video = torch.rand(clips, CLIP_LENGTH, 3, 64, 64, device=device)  # resized to 224² inside, as in evaluation
    yield f"fvd_i3d_clip_16x224 (batch {clips})", clips, lambda: i3d(video)
    lpips = load_lpips("alex", device)
    for size in (64, 128, 224):
        x, y = torch.rand(2, pairs, 3, size, size, device=device)
        yield f"lpips_alex_pair_{size} (batch {pairs})", pairs, lambda x=x, y=y: lpips.images(x, y)
    x, y = torch.rand(2, pairs, 3, 64, 64, device=device)
    yield f"ssim_pair_64 (batch {pairs})", pairs, lambda: ssim(x, y)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per case (3)")
    parser.add_argument("--device", default="cpu", help="torch device (cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--clips", type=int, default=2, help="FVD clips per I3D call (2)")
    parser.add_argument("--pairs", type=int, default=28, help="image pairs per LPIPS / SSIM call (28, one horizon)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.clips < 1 or args.pairs < 1:
        parser.exit(2, "bench_metrics: --repeats, --clips and --pairs must be >= 1\n")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    results = {}
    try:
        with torch.no_grad():
            for name, units, call in tqdm(list(cases(device, args.clips, args.pairs)), desc="bench", file=sys.stderr):
                wall, cpu = median_seconds(call, args.repeats, device)
                results[name] = {"wall_s": wall / units, "cpu_s": cpu / units}
    except MissingWeightsError as err:
        parser.exit(1, f"bench_metrics: {err}\n")
    report = {"device": str(device), "threads": torch.get_num_threads(), "repeats": args.repeats,
              "load_average_1min": os.getloadavg()[0], "per_unit": results}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"device {report['device']}, {report['threads']} threads, median of {args.repeats}, "
              f"load average {report['load_average_1min']:.1f}")
        print(f"{'case':<36}{'wall ms':>10}{'CPU ms':>10}  per")
        for name, t in results.items():
            print(f"{name:<36}{t['wall_s'] * 1000:10.1f}{t['cpu_s'] * 1000:10.1f}  {'clip' if 'clip' in name else 'pair'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
