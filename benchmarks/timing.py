"""Shared by the benchmark scripts: median wall and process-CPU time of a call."""
from __future__ import annotations

import statistics
import time

import torch


def median_seconds(call, repeats: int, device: torch.device | None = None) -> tuple[float, float]:
    """Median (wall, CPU) seconds of `call()` over `repeats` runs after one warm-up run (allocator, kernel
    selection). CUDA work is synchronised before each clock read. On a shared CPU the CPU time of a 1-thread
    run is close to what the wall time would be on an idle machine."""
    def sync():
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)

    def timed():
        sync()
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        sync()
        return time.perf_counter() - wall, time.process_time() - cpu

    timed()
    runs = [timed() for _ in range(repeats)]
    return statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)
