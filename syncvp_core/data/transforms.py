"""Centre-crop + resize to the model resolution, shared by every loader and the ROS node.

The model is square (`size`×`size`). A frame is centre-cropped to the largest square first (no stretching),
then resized: RGB bilinearly with antialiasing, depth by validity-weighted area averaging so that invalid
pixels (NaN, inf, <= 0) never leak into valid ones; an output pixel with no valid input stays NaN.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def center_square(height: int, width: int) -> tuple[int, int, int]:
    """(top, left, side) of the largest centred square of a height×width frame."""
    side = min(height, width)
    return (height - side) // 2, (width - side) // 2, side


def resize_rgb(rgb: torch.Tensor, size: int) -> torch.Tensor:
    """`...×3×H×W` float in [0,1] -> `...×3×size×size`, centre-cropped, bilinear with antialias."""
    *lead, c, h, w = rgb.shape
    top, left, side = center_square(h, w)
    x = rgb[..., top:top + side, left:left + side].reshape(-1, c, side, side)
    if side != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0.0, 1.0).reshape(*lead, c, size, size)


def resize_depth(depth: torch.Tensor, size: int) -> torch.Tensor:
    """`...×H×W` metres (NaN/inf/<=0 invalid) -> `...×size×size` metres, NaN where no valid input pixel."""
    *lead, h, w = depth.shape
    top, left, side = center_square(h, w)
    d = depth[..., top:top + side, left:left + side].reshape(-1, 1, side, side).float()
    valid = torch.isfinite(d) & (d > 0)
    if side != size:
        d0 = torch.where(valid, d, torch.zeros_like(d))
        weight = F.interpolate(valid.float(), size=(size, size), mode="area")
        total = F.interpolate(d0, size=(size, size), mode="area")
        d = torch.where(weight > 0, total / weight.clamp_min(1e-12), torch.full_like(total, float("nan")))
    else:
        d = torch.where(valid, d, torch.full_like(d, float("nan")))
    return d.reshape(*lead, size, size)


def scale_intrinsics(k: np.ndarray, height: int, width: int, size: int) -> np.ndarray:
    """3×3 camera matrix of a height×width image -> the matrix after `center_square` crop and resize to size."""
    top, left, side = center_square(height, width)
    s = size / side
    out = np.array(k, dtype=np.float64).reshape(3, 3).copy()
    out[0, 0] *= s
    out[1, 1] *= s
    # pixel centres: u' = (u - left + 0.5) * s - 0.5
    out[0, 2] = (out[0, 2] - left + 0.5) * s - 0.5
    out[1, 2] = (out[1, 2] - top + 0.5) * s - 0.5
    return out
