"""The debug mosaic: conditioning and predicted frames in one RGB image, depth colour-mapped (no rclpy)."""
from __future__ import annotations

import numpy as np

# Turbo-like colour ramp (far = blue, near = red) as control points, linearly interpolated; enough for debugging.
_RAMP = np.array([[48, 18, 59], [70, 131, 248], [26, 228, 182], [164, 252, 60], [250, 186, 57],
                  [227, 69, 13], [122, 4, 3]], np.float32)


def colorize_depth(depth: np.ndarray, min_depth: float, max_depth: float) -> np.ndarray:
    """`H×W` metres -> `H×W×3` uint8, linear in inverse depth (near detail matters most), NaN black."""
    lo, hi = 1.0 / max_depth, 1.0 / max(min_depth, 1e-3)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.clip((1.0 / depth - lo) / (hi - lo), 0.0, 1.0)
    valid = np.isfinite(x)
    pos = np.where(valid, x, 0.0) * (len(_RAMP) - 1)
    i = np.minimum(pos.astype(np.int64), len(_RAMP) - 2)
    w = (pos - i)[..., None]
    out = _RAMP[i] * (1 - w) + _RAMP[i + 1] * w
    out[~valid] = 0
    return out.round().astype(np.uint8)


def mosaic(cond_rgb, cond_depth, pred_rgb, pred_depth, size: int, min_depth: float, max_depth: float) -> np.ndarray:
    """One `2S × (T_cond+T_pred)·S` RGB image: top row RGB, bottom row colour-mapped depth; conditioning first.

    Arguments are `T×S×S×3` uint8 / `T×S×S` metres arrays, or None for a modality that was not used (black).
    """
    n_cond = len(cond_rgb) if cond_rgb is not None else len(cond_depth)
    cols = n_cond + len(pred_rgb)
    out = np.zeros((2 * size, cols * size, 3), np.uint8)
    for row, frames in ((0, [cond_rgb, pred_rgb]), (1, [cond_depth, pred_depth])):
        col = 0
        for block, n in zip(frames, (n_cond, len(pred_rgb))):
            for k in range(n):
                if block is not None:
                    tile = block[k] if row == 0 else colorize_depth(block[k], min_depth, max_depth)
                    out[row * size:(row + 1) * size, (col + k) * size:(col + k + 1) * size] = tile
            col += n
    return out
