"""One synthetic drive: a sampled scene rendered frame by frame, with a depth sensor's imperfections applied."""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from .render import render
from .scene import Scene, random_scene

_CHUNK = 10  # frames rendered together: fewer Python-level loops, bounded memory at 128²
# metres: inside the tiny model's depth range (256 m), so generated depth never exceeds what it represents
DEFAULT_MAX_RANGE = 250.0


@dataclasses.dataclass(frozen=True)
class SensorModel:
    """Depth-sensor imperfections applied to the exact rendered depth (no noise or holes by default).

    depth_noise: relative depth error at 10 m; grows linearly with depth like stereo (σ = depth_noise·Z²/10 m).
    hole_fraction: fraction of pixels lost in random blobs, redrawn every frame.
    max_range: metres beyond which the sensor reports nothing (NaN).
    """

    depth_noise: float = 0.0
    hole_fraction: float = 0.0
    max_range: float = DEFAULT_MAX_RANGE

    def __post_init__(self):
        if self.depth_noise < 0 or not 0 <= self.hole_fraction < 1 or self.max_range <= 0:
            raise ValueError("sensor model needs depth_noise >= 0, 0 <= hole_fraction < 1 and max_range > 0")


def apply_sensor(depth: np.ndarray, sensor: SensorModel, rng: np.random.Generator) -> np.ndarray:
    """Noise, holes and range limit of a real depth sensor on one exact depth frame (NaN = invalid)."""
    out = depth.copy()
    if sensor.depth_noise > 0:
        out = out + rng.standard_normal(out.shape).astype(np.float32) * sensor.depth_noise * out * out / 10.0
        out[out <= 0] = np.nan
    if sensor.hole_fraction > 0:
        coarse = rng.random((max(2, depth.shape[0] // 6), max(2, depth.shape[1] // 6)))
        rows = np.minimum(np.arange(depth.shape[0]) * coarse.shape[0] // depth.shape[0], coarse.shape[0] - 1)
        cols = np.minimum(np.arange(depth.shape[1]) * coarse.shape[1] // depth.shape[1], coarse.shape[1] - 1)
        blobs = coarse[rows][:, cols] + 0.15 * rng.random(depth.shape)  # ragged blob edges
        out[blobs > np.quantile(blobs, 1.0 - sensor.hole_fraction)] = np.nan
    out[out > sensor.max_range] = np.nan
    return out.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class SyntheticSequence:
    rgb: np.ndarray  # T×H×W×3 uint8
    depth: np.ndarray  # T×H×W float32 metres, NaN invalid
    scene: Scene
    fps: float

    def record(self) -> dict:
        """Per-sequence facts kept in meta.json."""
        return {"intrinsics": self.scene.intrinsics.round(6).tolist(), "ego_speed": round(self.scene.ego_speed, 6),
                "ego_heading_deg": round(math.degrees(self.scene.ego_heading), 6),
                "camera_height": round(self.scene.camera_height, 6), "fps": self.fps}


def sequence_rng(seed: int, index: int) -> np.random.Generator:
    """Sequence `index` of data set `seed` is the same whatever the number of sequences generated."""
    return np.random.default_rng(np.random.SeedSequence([seed, index]))


def generate_sequence(seed: int, index: int = 0, frames: int = 30, size: int = 64, fps: float = 17.0,
                      sensor: SensorModel = SensorModel(), samples: int = 2) -> SyntheticSequence:
    rng = sequence_rng(seed, index)
    scene = random_scene(rng, size, frames, fps)
    rgb = np.empty((frames, size, size, 3), np.uint8)
    depth = np.empty((frames, size, size), np.float32)
    for start in range(0, frames, _CHUNK):
        chunk = np.arange(start, min(frames, start + _CHUNK))
        color, exact = render(scene, chunk / fps, samples)
        rgb[chunk] = np.round(color * 255).astype(np.uint8)
        depth[chunk] = [apply_sensor(d, sensor, rng) for d in exact]
    return SyntheticSequence(rgb=rgb, depth=depth, scene=scene, fps=fps)
