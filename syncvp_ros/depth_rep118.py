"""REP 118 depth around the model: conditioning frames in (holes filled, far kept far), predicted frames out.

Input frames come from `depth_from_image(..., far_as_inf=True)`: NaN = unknown (no measurement), +inf = too far.
The model has no "unknown" value: its encoder maps every non-finite pixel to its far end (syncvp_core.depth), so
unfilled holes in a 2-5 m scene would be conditioned on as an 80 m wall. Before encoding, a hole therefore takes
the inverse depth of its nearest measured neighbours (a far pixel counts as inverse depth 0), and +inf stays +inf,
which the encoder maps to the far end as it should.

Output (`32FC1` metres): +inf where the prediction lies beyond `depth.max` or at the model's far end (the model
cannot say how far), NaN where it is not finite or where the newest conditioning depth frame had a hole (the
model saw an in-filled guess there, not a measurement), everything else clamped to [`depth.min`, `depth.max`].
"""
from __future__ import annotations

import numpy as np
import torch

from syncvp_core.data.transforms import resize_depth
from syncvp_core.depth import fill_from_neighbours

# A prediction within this fraction of the model's far depth sits at the end of the model's range.
FAR_END_TOLERANCE = 1e-3


def resize_marked_depth(frame: np.ndarray, size: int) -> torch.Tensor:
    """`H×W` metres (NaN unknown, +inf far) -> `size×size` with the same markers (centre crop, area resize).

    A model pixel is far when most of the measured input pixels it covers are far, unknown when it covers none.
    """
    depth = torch.from_numpy(np.ascontiguousarray(frame, np.float32))
    measured = resize_depth(depth, size)
    # 2 = far, 1 = finite, NaN = unknown: the area mean above 1.5 says "mostly far"
    farness = resize_depth(torch.where(torch.isposinf(depth), 2.0, torch.where(torch.isnan(depth), depth, 1.0)), size)
    return torch.where(farness > 1.5, torch.full_like(measured, float("inf")), measured)


def fill_holes(depth: torch.Tensor) -> torch.Tensor:
    """`...×H×W` metres: every NaN takes the mean inverse depth of its nearest known neighbours (+inf = 0); a frame
    without any known pixel stays NaN."""
    *lead, h, w = depth.shape
    inverse = (1.0 / depth).reshape(-1, 1, h, w)  # +inf -> 0, NaN stays NaN
    known = torch.isfinite(inverse)
    filled = fill_from_neighbours(torch.where(known, inverse, torch.zeros_like(inverse)), known.to(inverse.dtype))
    filled = torch.where(known.flatten(1).any(1).view(-1, 1, 1, 1), filled, inverse)
    return (1.0 / filled).reshape(*lead, h, w)


def conditioning_depth(frames: list[np.ndarray], size: int) -> tuple[torch.Tensor, np.ndarray]:
    """Depth frames -> (`1×T×S×S` metres for the model, holes filled, +inf far; the newest frame's hole mask)."""
    resized = torch.stack([resize_marked_depth(f, size) for f in frames])
    holes = torch.isnan(resized[-1]).numpy()
    return fill_holes(resized).unsqueeze(0), holes


def prediction_depth(predicted: np.ndarray, holes: np.ndarray | None, depth_min: float, depth_max: float,
                     model_far: float) -> np.ndarray:
    """`T×S×S` predicted metres -> REP 118 `32FC1` metres (module docstring); `holes` `S×S` or None."""
    predicted = np.asarray(predicted, np.float32)
    with np.errstate(invalid="ignore"):
        beyond = (predicted > depth_max) | (predicted >= model_far * (1.0 - FAR_END_TOLERANCE))
    out = np.clip(predicted, depth_min, depth_max).astype(np.float32)
    out[beyond] = np.inf
    out[~np.isfinite(predicted)] = np.nan
    if holes is not None:
        out[:, holes] = np.nan
    return out
