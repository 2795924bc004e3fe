"""Depth in metres <-> the model's depth channel.

The model sees normalised inverse depth:

    u = (1/d - 1/far) / (1/near - 1/far)      x = 2u - 1

so `near` maps to +1 and `far` to -1. Inverse depth spends the [-1, 1] range where depth matters
(near objects) and keeps a bounded value for far ones; it is also what stereo disparity measures,
like the reference's Cityscapes depth. Depths outside [near, far] saturate at the ends, so
`model_to_depth(depth_to_model(d))` is exact only inside [near, far].

Invalid pixels (NaN, +-inf, zero, negative) are reported in the returned mask and filled with the far
value -1: for a driving scene the commonest invalid pixel is sky or out-of-range stereo, which is
"far", and a constant fill keeps the autoencoder input free of NaN. Decoded depth is always valid.
"""
from __future__ import annotations

import torch
from torch import Tensor


def depth_to_model(depth_m: Tensor, near: float, far: float) -> tuple[Tensor, Tensor]:
    """Metres (any shape) -> (x in [-1, 1] with invalid pixels at -1, valid mask)."""
    depth_m = torch.as_tensor(depth_m, dtype=torch.float32)
    valid = torch.isfinite(depth_m) & (depth_m > 0)
    safe = torch.where(valid, depth_m, torch.full_like(depth_m, far))
    u = (1.0 / safe - 1.0 / far) / (1.0 / near - 1.0 / far)
    return (2.0 * u - 1.0).clamp(-1.0, 1.0), valid


def model_to_depth(x: Tensor, near: float, far: float) -> Tensor:
    """Model-space depth (values outside [-1, 1] are clamped) -> metres in [near, far]."""
    u = (x.clamp(-1.0, 1.0) + 1.0) / 2.0
    return 1.0 / (u * (1.0 / near - 1.0 / far) + 1.0 / far)
