"""Depth codec of the reference family: metres <-> the 8-bit disparity images the released depth AEs expect.

The authors trained on Cityscapes disparity stored as 8-bit PNGs, grey replicated to 3 channels and normalised
like RGB (x = u8/127.5 - 1, FORMAT.md §4). How they mapped Cityscapes' 16-bit disparity to 8 bits is not
published, so the mapping here is an assumption, stated and configurable:

    kind "disparity" (default): u8 = clip(scale / depth_m, 0, 255), invalid (NaN, inf, <= 0) -> 0,
        depth_m = scale / u8 for u8 >= 1 and NaN (invalid) below 1.
        scale = fx * baseline / scale8 [m * u8]: with the Cityscapes camera (fx 2262.52 px, baseline 0.209313 m)
        and scale8 = 1 (one 8-bit unit = one full-resolution disparity pixel, the same assumption as
        `syncvp_core.data.cityscapes.DisparityToDepth`) scale is 473.57, so 8 bits cover 1.86 m .. 473.6 m.
        Metric depth out of the released model is only as right as this assumption: a wrong scale8 scales
        every depth by the same factor (disparity is linear in u8), it does not change the ranking of pixels.
    kind "raw_u8": the "depth" tensors are the 8-bit values themselves (0..255), for the authors' preprocessed
        PNGs read as raw values; nothing is converted.

Encoding truncates to whole 8-bit values, as the reference's `.type(torch.uint8)` does before it re-encodes a
predicted frame (FORMAT.md §4), so a decoded chunk re-encodes exactly as in the reference rollout.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

CODEC_KINDS = ("disparity", "raw_u8")
CITYSCAPES_FX = 2262.52  # px, at 2048×1024
CITYSCAPES_BASELINE = 0.209313  # m
# floor() of a value that a decode -> encode round trip returns a hair below a whole number
_ROUND_TRIP_SLACK = 1e-4


@dataclass(frozen=True)
class DepthCodec:
    kind: str = "disparity"
    scale: float = CITYSCAPES_FX * CITYSCAPES_BASELINE  # m * u8: depth = scale / u8 ("disparity" only)

    def __post_init__(self):
        if self.kind not in CODEC_KINDS:
            raise ValueError(f"depth codec kind must be one of {CODEC_KINDS}, got {self.kind!r}")
        if not self.scale > 0:
            raise ValueError(f"depth codec scale must be > 0, got {self.scale}")

    @property
    def near(self) -> float:
        """The nearest depth 8 bits can hold (u8 = 255), in the units of the depth tensors."""
        return self.scale / 255.0 if self.kind == "disparity" else 1.0

    @property
    def far(self) -> float:
        """The farthest valid depth (u8 = 1)."""
        return self.scale if self.kind == "disparity" else 255.0

    def to_u8(self, depth: Tensor) -> Tensor:
        """Depth (any shape) -> whole 8-bit values as float32, 0 where invalid."""
        depth = torch.as_tensor(depth, dtype=torch.float32)
        if self.kind == "raw_u8":
            return depth.nan_to_num(0.0).clamp(0, 255).floor()
        valid = torch.isfinite(depth) & (depth > 0)
        u8 = self.scale / torch.where(valid, depth, torch.ones_like(depth))
        return torch.where(valid, (u8 + _ROUND_TRIP_SLACK).clamp(0, 255).floor(), torch.zeros_like(depth))

    def from_u8(self, u8: Tensor) -> Tensor:
        """Continuous 8-bit values (decoder output, not yet truncated) -> depth, NaN below 1 ("disparity")."""
        u8 = u8.clamp(0, 255)
        if self.kind == "raw_u8":
            return u8
        return torch.where(u8 >= 1, self.scale / u8.clamp_min(1), torch.full_like(u8, float("nan")))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DepthCodec:
        return cls(**d)
