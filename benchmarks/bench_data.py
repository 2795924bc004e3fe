"""Synthetic generator speed: frames per second at 64² and 128², rendering alone and rendering + writing .npz.

    .venv/bin/python benchmarks/bench_data.py [--sequences 4] [--json]
One process, so the numbers are per core; the load average is printed beside them because the machine is shared.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from syncvp_core.data.synthetic.files import write_dataset
from syncvp_core.data.synthetic.sequence import generate_sequence

CASES = [  # (size, samples per pixel side, also write to disk)
    (64, 2, False), (64, 1, False), (64, 2, True), (128, 2, False), (128, 1, False),
]


def measure(size: int, samples: int, write: bool, sequences: int, frames: int) -> tuple[float, float]:
    """(frames per wall-clock second, frames per CPU second of this process) over `sequences` seeded sequences.

    CPU time is what the generator costs a free core; wall time also counts waiting for a busy, shared one.
    """
    started, cpu_started = time.perf_counter(), time.process_time()
    if write:
        with tempfile.TemporaryDirectory() as out:
            write_dataset(Path(out), sequences, frames, size, seed=0, samples=samples)
    else:
        for index in range(sequences):
            generate_sequence(0, index, frames, size, samples=samples)
    return (sequences * frames / (time.perf_counter() - started),
            sequences * frames / (time.process_time() - cpu_started))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequences", type=int, default=4, help="sequences per case (default 4)")
    parser.add_argument("--frames", type=int, default=30, help="frames per sequence (default 30)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    if args.sequences < 1 or args.frames < 1:
        parser.exit(2, "bench_data.py: error: --sequences and --frames must be >= 1\n")
    load_before = os.getloadavg()[0]
    results = []
    for size, samples, write in tqdm(CASES, desc="bench", unit="case", disable=None):
        fps, cpu_fps = measure(size, samples, write, args.sequences, args.frames)
        results.append({"size": size, "samples_per_pixel": samples * samples, "write_npz": write,
                        "frames_per_second": round(fps, 1), "frames_per_cpu_second": round(cpu_fps, 1)})
    report = {"sequences": args.sequences, "frames": args.frames, "cpu_count": os.cpu_count(),
              "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)], "results": results}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{args.sequences} sequences x {args.frames} frames per case, one process; "
              f"1-min load average {load_before:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"{'size':>5} {'rays/px':>7} {'+ npz':>6} {'frames/s':>9} {'frames/cpu-s':>13}")
        for r in results:
            print(f"{r['size']:>5} {r['samples_per_pixel']:>7} {'yes' if r['write_npz'] else 'no':>6} "
                  f"{r['frames_per_second']:>9.1f} {r['frames_per_cpu_second']:>13.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
