"""Structural similarity (Wang et al. 2004) with an 11-tap Gaussian window, σ = 1.5.

Matches scikit-image's `structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=...)`: local statistics come from a "valid" convolution, which is
exactly the interior that scikit-image keeps after its border crop, so no padding convention is involved.
(SyncVP's reference zero-pads instead, which lowers SSIM near the borders.)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

WINDOW = 11
SIGMA = 1.5
K1, K2 = 0.01, 0.03


def gaussian_window(size: int = WINDOW, sigma: float = SIGMA, dtype=torch.float32, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian taps."""
    x = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    taps = torch.exp(-0.5 * (x / sigma) ** 2)
    return (taps / taps.sum()).to(dtype)


def _blur(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable valid Gaussian filter of N×C×H×W, channel by channel."""
    c = x.shape[1]
    x = F.conv2d(x, taps.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, taps.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def ssim_map(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-pixel SSIM of N×C×H×W images, N×C×(H-10)×(W-10)."""
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    if min(x.shape[-2:]) < WINDOW:
        raise ValueError(f"SSIM needs images of at least {WINDOW}×{WINDOW}, got {tuple(x.shape[-2:])}")
    taps = gaussian_window(dtype=x.dtype, device=x.device)
    c = x.shape[1]
    stats = _blur(torch.cat([x, y, x * x, y * y, x * y], dim=1), taps)
    mu_x, mu_y, xx, yy, xy = stats.split(c, dim=1)
    var_x = xx - mu_x * mu_x
    var_y = yy - mu_y * mu_y
    cov = xy - mu_x * mu_y
    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM of `...×C×H×W` image pairs over channels and pixels; returns shape `...`."""
    lead = x.shape[:-3]
    flat = ssim_map(x.reshape(-1, *x.shape[-3:]), y.reshape(-1, *y.shape[-3:]), data_range)
    return flat.mean(dim=(1, 2, 3)).reshape(lead)
