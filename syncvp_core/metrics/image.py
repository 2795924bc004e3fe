"""Pixel-wise image metrics on `...×C×H×W` tensors; each returns one value per image (shape `...`)."""
from __future__ import annotations

import torch


def mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error over channels and pixels, in float64."""
    return (x.double() - y.double()).pow(2).mean(dim=(-3, -2, -1))


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, 10·log10(range² / MSE); +inf for identical images."""
    return 10 * torch.log10(data_range ** 2 / mse(x, y))
