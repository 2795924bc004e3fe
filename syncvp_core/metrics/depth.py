"""Depth metrics in metres, per frame on valid pixels, and depth rendered as an image for the image metrics.

A pixel counts when the ground truth is valid (finite, > 0, and in the loader's `valid` mask if given) and
the prediction is finite and > 0: the model always predicts every pixel, while the copy-last baseline
copies the holes of its last observed frame, which are not guesses it made. A frame with no such pixel gives
NaN, which the per-step averages skip.
"""
from __future__ import annotations

import torch

from syncvp_core.depth import depth_to_model

DELTA_THRESHOLD = 1.25


def scoring_mask(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    mask = torch.isfinite(gt) & (gt > 0) & torch.isfinite(pred) & (pred > 0)
    return mask if valid is None else mask & valid.bool()


def depth_errors(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """AbsRel, RMSE (m) and δ<1.25 of `...×H×W` depth maps, one float64 value per frame (shape `...`).

    abs_rel = mean |pred − gt| / gt,  rmse = sqrt(mean (pred − gt)²),  delta1 = share of max(pred/gt, gt/pred) < 1.25.
    """
    mask = scoring_mask(pred, gt, valid)
    count = mask.sum(dim=(-2, -1)).double()
    safe_pred = torch.where(mask, pred, torch.ones_like(pred)).double()
    safe_gt = torch.where(mask, gt, torch.ones_like(gt)).double()
    m = mask.double()

    def mean(values: torch.Tensor) -> torch.Tensor:
        return (values * m).sum(dim=(-2, -1)) / count  # NaN (0/0) where a frame has no scoring pixel

    ratio = torch.maximum(safe_pred / safe_gt, safe_gt / safe_pred)
    return {
        "abs_rel": mean((safe_pred - safe_gt).abs() / safe_gt),
        "rmse": mean((safe_pred - safe_gt) ** 2).sqrt(),
        "delta1": mean((ratio < DELTA_THRESHOLD).double()),
    }


def depth_as_image(depth_m: torch.Tensor, near: float, far: float) -> torch.Tensor:
    """`...×H×W` metres -> `...×3×H×W` in [0, 1]: the model's normalised inverse depth, grey, invalid as far.

    This is the SyncVP paper's convention for SSIM / LPIPS / FVD on depth, but over the fixed [near, far] range
    instead of the reference's per-batch min–max, so a clip's score does not depend on its batch-mates.
    """
    x, _ = depth_to_model(depth_m, near, far)
    return ((x + 1) / 2).unsqueeze(-3).expand(*x.shape[:-2], 3, *x.shape[-2:])
