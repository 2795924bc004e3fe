"""The project's vocabulary, defined once: modalities and conditioning modes.

- A *modality* is what a stream carries: "rgb" or "depth" (`Modality`, `MODALITIES`).
- A *conditioning mode* is which modalities condition one prediction (`ConditioningMode`): "rgbd" (both), "rgb"
  (RGB only) or "depth" (depth only). Training's cross-modality dropout draws one per sample (in the order of
  `DiffusionConfig.dropout_probs`), the rollout reports the one its inputs gave, and the node falls back from
  "rgbd" to a single-modality mode when a sensor is stale. The values are RGBDPrediction's GUIDANCE_* constants
  and the CLIs' choices.
- The *guidance scale* w is a number (sampler.guided_eps), not a mode.
"""
from __future__ import annotations

from enum import Enum


class Modality(str, Enum):
    RGB = "rgb"
    DEPTH = "depth"


MODALITIES = tuple(m.value for m in Modality)


class ConditioningMode(str, Enum):
    RGBD = "rgbd"
    RGB = "rgb"
    DEPTH = "depth"

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities that condition a prediction in this mode."""
        return MODALITIES if self is ConditioningMode.RGBD else (self.value,)

    @classmethod
    def of(cls, has_rgb: bool, has_depth: bool) -> ConditioningMode:
        """The mode of a prediction conditioned on the modalities that are present (at least one)."""
        if not (has_rgb or has_depth):
            raise ValueError("a prediction needs rgb, depth or both as conditioning")
        return cls.RGBD if has_rgb and has_depth else (cls.RGB if has_rgb else cls.DEPTH)


CONDITIONING_MODES = tuple(m.value for m in ConditioningMode)
