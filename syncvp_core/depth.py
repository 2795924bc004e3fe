"""Depth in metres <-> the model's depth channel, by one of two mappings (`SyncVPConfig.depth_mapping`):

    inverse:  u = (1/d - 1/far) / (1/near - 1/far)           x = 2u - 1
    log:      u = (log far - log d) / (log far - log near)   x = 2u - 1

so `near` maps to +1 and `far` to -1 in both. Inverse depth (the paper's) spends the [-1, 1] range on near
objects and is what stereo disparity measures; with near 1 m it squeezes 20-80 m into [-1, -0.95], so an L1
loss in model space barely rewards far range while AbsRel weights it fully. Log depth gives every factor of
distance the same share of the range (a relative error is the same model-space error at any depth), which is
what AbsRel scores. Depths outside [near, far] saturate at the ends, so `model_to_depth(depth_to_model(d))` is
exact only inside [near, far].

Invalid pixels (NaN, +-inf, zero, negative) are reported in the returned mask and filled with the far
value -1: for a driving scene the commonest invalid pixel is sky or out-of-range stereo, which is
"far", and a constant fill keeps the autoencoder input free of NaN. Decoded depth is always valid.
`fill_from_neighbours` fills holes from the nearest valid pixels instead, where "far" would be wrong.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import DEPTH_MAPPINGS as MAPPINGS


def depth_to_model(depth_m: Tensor, near: float, far: float, mapping: str = "inverse") -> tuple[Tensor, Tensor]:
    """Metres (any shape) -> (x in [-1, 1] with invalid pixels at -1, valid mask)."""
    depth_m = torch.as_tensor(depth_m, dtype=torch.float32)
    valid = torch.isfinite(depth_m) & (depth_m > 0)
    safe = torch.where(valid, depth_m, torch.full_like(depth_m, far))
    if mapping == "inverse":
        u = (1.0 / safe - 1.0 / far) / (1.0 / near - 1.0 / far)
    elif mapping == "log":
        u = (math.log(far) - torch.log(safe)) / (math.log(far) - math.log(near))
    else:
        raise ValueError(f"depth mapping must be one of {MAPPINGS}, got {mapping!r}")
    return (2.0 * u - 1.0).clamp(-1.0, 1.0), valid


def model_to_depth(x: Tensor, near: float, far: float, mapping: str = "inverse") -> Tensor:
    """Model-space depth (values outside [-1, 1] are clamped) -> metres in [near, far]."""
    u = (x.clamp(-1.0, 1.0) + 1.0) / 2.0
    if mapping == "inverse":
        return 1.0 / (u * (1.0 / near - 1.0 / far) + 1.0 / far)
    if mapping == "log":
        return torch.exp(math.log(far) - u * (math.log(far) - math.log(near)))
    raise ValueError(f"depth mapping must be one of {MAPPINGS}, got {mapping!r}")


def fill_from_neighbours(image: Tensor, valid: Tensor) -> Tensor:
    """N×C×H×W `image` with its invalid pixels (`valid` N×1×H×W float, 0 or 1) filled by growing the valid region
    one pixel per pass, each new pixel the mean of its valid 3×3 neighbours; a frame without valid pixels comes back
    0 everywhere. The decoder's hole-filled context and the node's conditioning depth (in inverse depth) use it."""
    known, filled = valid, image * valid
    while True:
        total = F.avg_pool2d(filled * known, 3, 1, 1, divisor_override=1)
        count = F.avg_pool2d(known, 3, 1, 1, divisor_override=1)
        grown = (count > 0).to(known.dtype) * (1 - known)
        if not grown.any():
            return filled
        filled = filled + grown * total / count.clamp_min(1)
        known = known + grown
