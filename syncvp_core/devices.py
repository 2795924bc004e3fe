"""`resolve_device`: the one reading of a device name ("auto", "cpu", "cuda", "cuda:N") for the commands and the node."""
from __future__ import annotations

import re
from typing import Callable

import torch

DEVICE_NAME = re.compile(r"auto|cpu|cuda(:\d+)?")  # public: the node checks its `device` parameter with it
CPU_FALLBACK = "CUDA is not available: running on the CPU (slow)"


def resolve_device(name: str, warn: Callable[[str], None] | None = None,
                   cuda_count: int | None = None) -> torch.device:
    """The torch device `name` means; "auto" is CUDA when there is one, else the CPU (said once through `warn`).

    An unknown name, or a CUDA device this machine lacks, raises ValueError with one line saying what to use.
    `cuda_count` stands in for torch.cuda.device_count() (tests fake a GPU with it).
    """
    if not DEVICE_NAME.fullmatch(name):
        raise ValueError(f"unknown device {name!r} (expected auto, cpu, cuda or cuda:<index>)")
    count = torch.cuda.device_count() if cuda_count is None else cuda_count
    if name == "auto":
        if count:
            return torch.device("cuda")
        if warn:
            warn(CPU_FALLBACK)
        return torch.device("cpu")
    if name.startswith("cuda") and int(name.partition(":")[2] or 0) >= count:
        raise ValueError(f"device {name!r} requested but {count} CUDA device(s) are available (use cpu or auto)")
    return torch.device(name)
