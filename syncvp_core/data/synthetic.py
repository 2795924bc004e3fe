"""Synthetic RGB-D driving sequences: a vectorised NumPy ray caster over a ground plane and axis-aligned boxes.

World frame: X right, Y up, Z along the road; the road centre line is X = 0 and traffic keeps right (lanes with
X > 0 drive towards +Z). Camera frame (OpenCV): x right, y down, z forward. Depth is the camera-frame z of the
surface hit by the ray through the pixel centre, so the flat road at pixel row v has depth h·fy / (v − cy).
Everything moves at constant velocity (ego along its heading, vehicles along Z), so motion is predictable from
two frames. See docs/data.md for the on-disk format and measured speed.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

FORMAT = "syncvp-synthetic"
FORMAT_VERSION = 1

# box materials: how a face is textured
PLAIN, BUILDING, GLASS, FOLIAGE = 0, 1, 2, 3
# ground materials, for texturing and tests
ROAD, MARKING, SIDEWALK, VERGE = 0, 1, 2, 3

_NEAR = 0.05  # m, camera-z below which a box corner counts as behind the camera
_CHUNK = 10  # frames rendered together: fewer Python-level loops, bounded memory at 128²


@dataclasses.dataclass(frozen=True)
class SensorModel:
    """Depth-sensor imperfections applied to the exact rendered depth (all off by default).

    depth_noise: relative depth error at 10 m; grows linearly with depth like stereo (σ = depth_noise·Z²/10 m).
    hole_fraction: fraction of pixels lost in random blobs, redrawn every frame.
    max_range: metres beyond which the sensor reports nothing.
    """

    depth_noise: float = 0.0
    hole_fraction: float = 0.0
    max_range: float = math.inf

    def __post_init__(self):
        if self.depth_noise < 0 or not 0 <= self.hole_fraction < 1 or self.max_range <= 0:
            raise ValueError("sensor model needs depth_noise >= 0, 0 <= hole_fraction < 1 and max_range > 0")


@dataclasses.dataclass(frozen=True)
class Boxes:
    """N axis-aligned boxes at time 0, each moving along Z at its own constant speed."""

    lo: np.ndarray  # N×3 min corner, m
    hi: np.ndarray  # N×3 max corner, m
    speed: np.ndarray  # N, m/s along +Z
    color: np.ndarray  # N×3 albedo in [0, 1]
    material: np.ndarray  # N, one of PLAIN, BUILDING, GLASS, FOLIAGE
    window_pitch: np.ndarray  # N×2 (along the facade, storey height) for BUILDING, m

    @staticmethod
    def from_rows(rows: list[tuple]) -> Boxes:
        """Boxes from (lo, hi, speed, color, material, window_pitch) rows; no rows gives no boxes."""
        cols = list(zip(*rows)) if rows else [[]] * 6
        return Boxes(lo=np.array(cols[0], np.float64).reshape(-1, 3), hi=np.array(cols[1], np.float64).reshape(-1, 3),
                     speed=np.array(cols[2], np.float64), color=np.array(cols[3], np.float32).reshape(-1, 3),
                     material=np.array(cols[4], np.int64), window_pitch=np.array(cols[5], np.float64).reshape(-1, 2))

    def __len__(self) -> int:
        return len(self.lo)

    def at(self, time: float) -> tuple[np.ndarray, np.ndarray]:
        shift = np.zeros_like(self.lo)
        shift[:, 2] = self.speed * time
        return self.lo + shift, self.hi + shift

    def is_vehicle_body(self) -> np.ndarray:
        """Vehicle bodies are the only boxes floating a little above the road (their ground clearance)."""
        return (self.lo[:, 1] > 0.1) & (self.lo[:, 1] < 0.5)


@dataclasses.dataclass(frozen=True)
class Scene:
    """One driving sequence's world, camera and light; `render` draws it at any time."""

    size: int
    fx: float
    camera_height: float  # m above the road
    ego_speed: float  # m/s along the heading
    ego_heading: float  # rad, positive turns towards +X (lateral drift)
    ego_x: float  # m, lateral position at time 0
    lane_width: float
    lanes_per_side: int
    sidewalk_width: float
    ground_colors: np.ndarray  # 4×3, indexed by ROAD, MARKING, SIDEWALK, VERGE
    sky_horizon: np.ndarray  # 3
    sky_zenith: np.ndarray  # 3
    fog_distance: float  # m, aerial-perspective scale
    sun: np.ndarray  # 3, unit vector towards the sun
    sun_strength: float
    ambient: float
    texture_seed: int
    boxes: Boxes

    @property
    def intrinsics(self) -> np.ndarray:
        c = (self.size - 1) / 2.0
        return np.array([[self.fx, 0.0, c], [0.0, self.fx, c], [0.0, 0.0, 1.0]])

    def camera_position(self, time: float) -> np.ndarray:
        travelled = self.ego_speed * time
        return np.array([self.ego_x + travelled * math.sin(self.ego_heading), self.camera_height,
                         travelled * math.cos(self.ego_heading)])

    def ray_directions(self, samples: int) -> np.ndarray:
        """World directions of a (size·samples)² grid of sub-pixel rays, scaled so that their camera-frame z is 1
        (a ray parameter t is then the depth)."""
        n = self.size * samples
        pix = (np.arange(n) + 0.5) / samples - 0.5  # sub-sample positions in pixel units
        c = (self.size - 1) / 2.0
        x = np.broadcast_to(((pix - c) / self.fx)[None, :], (n, n))
        y = np.broadcast_to(((pix - c) / self.fx)[:, None], (n, n))
        cos, sin = math.cos(self.ego_heading), math.sin(self.ego_heading)
        d = np.stack([x * cos + sin, -y, cos - x * sin], axis=-1)
        return d.astype(np.float32)


# ---------------------------------------------------------------------------------------------- scene sampling

_CAR_COLORS = np.array([[0.85, 0.85, 0.85], [0.08, 0.08, 0.09], [0.5, 0.52, 0.55], [0.65, 0.1, 0.1],
                        [0.12, 0.22, 0.5], [0.72, 0.72, 0.74], [0.2, 0.35, 0.25], [0.8, 0.6, 0.15]])
_WALL_COLORS = np.array([[0.75, 0.68, 0.55], [0.55, 0.55, 0.55], [0.6, 0.32, 0.25], [0.85, 0.82, 0.75],
                         [0.45, 0.42, 0.4], [0.7, 0.6, 0.45]])
_WEATHERS = {  # zenith, horizon, sun strength, ambient
    "clear": ([0.30, 0.50, 0.85], [0.75, 0.84, 0.95], 0.75, 0.45),
    "overcast": ([0.62, 0.64, 0.68], [0.80, 0.81, 0.83], 0.15, 0.80),
    "dusk": ([0.25, 0.30, 0.55], [0.95, 0.68, 0.48], 0.60, 0.35),
}


class _BoxList:
    def __init__(self):
        self.rows: list[tuple] = []

    def add(self, lo, hi, speed=0.0, color=(0.5, 0.5, 0.5), material=PLAIN, pitch=(1.0, 1.0)):
        self.rows.append((lo, hi, speed, color, material, pitch))

    def build(self) -> Boxes:
        return Boxes.from_rows(self.rows)


def _jitter(rng: np.random.Generator, color, amount=0.06) -> np.ndarray:
    return np.clip(np.asarray(color) + rng.normal(0, amount, 3), 0.02, 0.98)


def _add_vehicle(boxes: _BoxList, rng: np.random.Generator, x: float, z: float, speed: float) -> float:
    """A car (body + glass cabin) or a van centred at lateral x with its rear at z; returns its length."""
    color = _jitter(rng, _CAR_COLORS[rng.integers(len(_CAR_COLORS))], 0.04)
    if rng.random() < 0.8:
        length, width = rng.uniform(3.9, 4.8), rng.uniform(1.7, 1.9)
        body, roof = rng.uniform(0.95, 1.1), rng.uniform(1.4, 1.6)
        boxes.add((x - width / 2, 0.25, z), (x + width / 2, body, z + length), speed, color)
        inset = 0.12 * width
        boxes.add((x - width / 2 + inset, body, z + 0.25 * length), (x + width / 2 - inset, roof, z + 0.8 * length),
                  speed, color, GLASS)
    else:
        length, width = rng.uniform(5.5, 9.0), rng.uniform(2.2, 2.5)
        boxes.add((x - width / 2, 0.3, z), (x + width / 2, rng.uniform(2.4, 3.3), z + length), speed, color)
    return length


def _add_traffic(boxes: _BoxList, rng, lane_x: float, speed: float, z_from: float, z_to: float, count: int):
    z = z_from + rng.uniform(0, 10)
    for _ in range(count):
        if z > z_to:
            break
        z += _add_vehicle(boxes, rng, lane_x + rng.uniform(-0.25, 0.25), z, speed) + rng.uniform(6, 25)


def _add_roadside(boxes: _BoxList, rng, side: int, edge: float, z_from: float, z_to: float, urban: bool):
    """Buildings or trees beyond the sidewalk on one side (side = ±1), and street lights at the kerb."""
    z = z_from
    while z < z_to:
        if urban and rng.random() < 0.85:
            length, depth, height = rng.uniform(8, 30), rng.uniform(8, 15), rng.uniform(5, 25)
            near = edge + rng.uniform(0, 3)
            x0, x1 = sorted((side * near, side * (near + depth)))
            boxes.add((x0, 0, z), (x1, height, z + length), 0.0,
                      _jitter(rng, _WALL_COLORS[rng.integers(len(_WALL_COLORS))]), BUILDING,
                      (rng.uniform(2.5, 4.5), rng.uniform(2.8, 3.5)))
            z += length + rng.uniform(0, 6)
        else:
            x = side * (edge + rng.uniform(1, 6))
            trunk, crown = rng.uniform(1.5, 3), rng.uniform(2.5, 5)
            boxes.add((x - 0.15, 0, z - 0.15), (x + 0.15, trunk, z + 0.15), 0.0, _jitter(rng, (0.35, 0.25, 0.15)))
            boxes.add((x - crown / 2, trunk, z - crown / 2), (x + crown / 2, trunk + crown * rng.uniform(0.8, 1.4),
                      z + crown / 2), 0.0, _jitter(rng, (0.22, 0.4, 0.15), 0.05), FOLIAGE)
            z += crown + rng.uniform(2, 12)
    pole_x = side * (edge - rng.uniform(0.3, 0.8))
    spacing = rng.uniform(18, 35)
    for z in np.arange(z_from + rng.uniform(0, spacing), z_to, spacing):
        boxes.add((pole_x - 0.08, 0, z - 0.08), (pole_x + 0.08, rng.uniform(5, 7), z + 0.08), 0.0,
                  _jitter(rng, (0.45, 0.45, 0.47), 0.03))


def random_scene(rng: np.random.Generator, size: int = 64, frames: int = 30, fps: float = 17.0) -> Scene:
    """Sample a road scene that stays populated for `frames` frames at `fps` (Cityscapes runs at 17 Hz)."""
    duration = frames / fps
    ego_speed = rng.uniform(4.0, 14.0)
    lane_width = rng.uniform(3.0, 3.7)
    lanes = 2
    road_half = lanes * lane_width
    parked = rng.random() < 0.5  # cars parked along the kerb need a wider sidewalk strip
    sidewalk = rng.uniform(3.0, 4.5) if parked else rng.uniform(1.5, 4.0)
    ego_lane = rng.integers(lanes)
    ego_x = (ego_lane + 0.5) * lane_width + rng.uniform(-0.3, 0.3)
    z_to = ego_speed * duration + 140.0  # covers the view until the fog hides it

    boxes = _BoxList()
    urban = rng.random() < 0.75
    for side in (-1, 1):
        _add_roadside(boxes, rng, side, road_half + sidewalk, -30.0, z_to, urban)
    # traffic: the ego lane keeps a safe gap, the neighbour lane overtakes or is overtaken, the far side oncoming
    ego_lane_speed = ego_speed * rng.uniform(0.85, 1.1)
    gap = 8.0 + max(0.0, ego_speed - ego_lane_speed) * duration
    _add_traffic(boxes, rng, ego_x, ego_lane_speed, gap, z_to, rng.integers(0, 3))
    other_x = (1 - ego_lane + 0.5) * lane_width
    other_speed = ego_speed * rng.uniform(0.5, 1.7)
    start = -25.0 if other_speed > ego_speed else 5.0  # faster traffic starts behind the camera and overtakes
    _add_traffic(boxes, rng, other_x, other_speed, start, z_to, rng.integers(1, 4))
    for lane in range(lanes):
        _add_traffic(boxes, rng, -(lane + 0.5) * lane_width, -rng.uniform(6, 14), 10.0, z_to + 60,
                     rng.integers(0, 4))
    if parked:
        _add_traffic(boxes, rng, road_half + 1.3, 0.0, -10.0, z_to, rng.integers(1, 5))

    weather = list(_WEATHERS)[rng.choice(3, p=[0.55, 0.3, 0.15])]
    zenith, horizon, sun_strength, ambient = _WEATHERS[weather]
    elevation = rng.uniform(0.1, 0.3) if weather == "dusk" else rng.uniform(0.3, 1.1)
    azimuth = rng.uniform(-math.pi, math.pi)
    sun = np.array([math.cos(elevation) * math.sin(azimuth), math.sin(elevation),
                    math.cos(elevation) * math.cos(azimuth)])
    grey = rng.uniform(0.22, 0.38)
    ground = np.stack([_jitter(rng, (grey, grey, grey * 1.04), 0.02), _jitter(rng, (0.92, 0.92, 0.88), 0.03),
                       _jitter(rng, (0.62, 0.6, 0.57), 0.05),
                       _jitter(rng, (0.3, 0.45, 0.2) if rng.random() < 0.6 else (0.5, 0.42, 0.3), 0.05)])
    hfov = math.radians(rng.uniform(55, 75))
    return Scene(size=size, fx=(size / 2) / math.tan(hfov / 2), camera_height=rng.uniform(1.2, 1.8),
                 ego_speed=ego_speed, ego_heading=math.radians(float(np.clip(rng.normal(0, 1.0), -2.5, 2.5))),
                 ego_x=ego_x, lane_width=lane_width, lanes_per_side=lanes, sidewalk_width=sidewalk,
                 ground_colors=ground.astype(np.float32), sky_horizon=_jitter(rng, horizon, 0.03).astype(np.float32),
                 sky_zenith=_jitter(rng, zenith, 0.03).astype(np.float32), fog_distance=rng.uniform(90, 250),
                 sun=sun, sun_strength=sun_strength * rng.uniform(0.85, 1.15), ambient=ambient * rng.uniform(0.9, 1.1),
                 texture_seed=int(rng.integers(2**31)), boxes=boxes.build())


# ---------------------------------------------------------------------------------------------------- rendering

def _lattice(ix: np.ndarray, iz: np.ndarray, seed: int) -> np.ndarray:
    """A reproducible pseudo-random value in [0, 1] per integer lattice point (integer hash, wraps on purpose)."""
    h = ix.astype(np.int64) * 0x27D4EB2D + iz.astype(np.int64) * 0x165667B1 + seed
    h = (h ^ (h >> 15)) * 0x2C1B3C6D
    h = h ^ (h >> 12)
    return (h & 0xFFFF).astype(np.float32) / 65535.0


def value_noise(x: np.ndarray, z: np.ndarray, cell: float, seed: int) -> np.ndarray:
    """Smooth noise in [0, 1] fixed to world coordinates, so texture moves exactly with the geometry."""
    gx, gz = x / cell, z / cell
    ix, iz = np.floor(gx), np.floor(gz)
    fx, fz = gx - ix, gz - iz
    fx, fz = fx * fx * (3 - 2 * fx), fz * fz * (3 - 2 * fz)
    top = _lattice(ix, iz, seed) * (1 - fx) + _lattice(ix + 1, iz, seed) * fx
    bottom = _lattice(ix, iz + 1, seed) * (1 - fx) + _lattice(ix + 1, iz + 1, seed) * fx
    return (top * (1 - fz) + bottom * fz).astype(np.float32)


def ground_material(scene: Scene, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """ROAD / MARKING / SIDEWALK / VERGE at world ground points (x, z)."""
    ax = np.abs(x)
    road_half = scene.lanes_per_side * scene.lane_width
    half_line = 0.1
    dashed = np.zeros_like(ax, dtype=bool)
    for k in range(1, scene.lanes_per_side):
        dashed |= np.abs(ax - k * scene.lane_width) < half_line
    dashed &= np.mod(z, 9.0) < 3.0  # 3 m dashes every 9 m
    solid = (ax < half_line) | (np.abs(ax - (road_half - 0.3)) < half_line)
    material = np.where(ax < road_half, ROAD, np.where(ax < road_half + scene.sidewalk_width, SIDEWALK, VERGE))
    return np.where((solid | dashed) & (ax < road_half), MARKING, material)


_CORNERS = np.stack(np.meshgrid([0, 1], [0, 1], [0, 1], indexing="ij"), -1).reshape(8, 3).astype(bool)
_EDGES = np.array([(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1])


def _screen_rects(scene: Scene, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Pixel rectangle (u0, u1, v0, v1) covering each box's part in front of the camera over all frames.

    lo, hi: K×N×3 box corners per frame relative to that frame's camera. A box never in front gets an empty
    rectangle (min > max).
    """
    pts = np.where(_CORNERS, hi[:, :, None], lo[:, :, None])  # K×N×8×3
    cos, sin = math.cos(scene.ego_heading), math.sin(scene.ego_heading)
    cam = np.stack([pts[..., 0] * cos - pts[..., 2] * sin, -pts[..., 1], pts[..., 0] * sin + pts[..., 2] * cos], -1)
    p, q = cam[..., _EDGES[:, 0], :], cam[..., _EDGES[:, 1], :]  # K×N×12×3 edge end points
    # clip each edge to its part with z >= _NEAR; an edge wholly behind keeps no point
    dz = q[..., 2] - p[..., 2]
    t = np.clip((_NEAR - p[..., 2]) / np.where(dz != 0, dz, 1.0), 0, 1)[..., None]
    p_in, q_in = p[..., 2] >= _NEAR, q[..., 2] >= _NEAR
    cut = p + t * (q - p)
    ends = np.concatenate([np.where((p_in | ~q_in)[..., None], p, cut), np.where((q_in | ~p_in)[..., None], q, cut)],
                          axis=-2)
    keep = np.concatenate([p_in | q_in] * 2, axis=-1)
    c = (scene.size - 1) / 2.0
    z = np.maximum(ends[..., 2], _NEAR)
    u, v = scene.fx * ends[..., 0] / z + c, scene.fx * ends[..., 1] / z + c
    return np.stack([np.where(keep, u, np.inf).min((0, 2)), np.where(keep, u, -np.inf).max((0, 2)),
                     np.where(keep, v, np.inf).min((0, 2)), np.where(keep, v, -np.inf).max((0, 2))], 1)


def _sample_range(lo: float, hi: float, samples: int, count: int) -> tuple[int, int]:
    """Sub-sample indices [start, stop) whose positions fall in pixel interval [lo, hi], plus one of margin."""
    lo, hi = max(lo, -2.0), min(hi, count / samples + 1.0)
    return max(0, math.floor((lo + 0.5) * samples - 0.5) - 1), min(count, math.floor((hi + 0.5) * samples - 0.5) + 2)


def _origins(scene: Scene, times: np.ndarray) -> np.ndarray:
    return np.stack([scene.camera_position(t) for t in times]).astype(np.float32)


def _intersect_boxes(scene: Scene, times: np.ndarray, dirs: np.ndarray, samples: int):
    """Nearest box hit per ray and frame: (t, box index or -1, face axis), each K×n×n for K times."""
    n = dirs.shape[0]
    origins = _origins(scene, times)
    inv = [1.0 / np.where(np.abs(d) < 1e-9, 1e-9, d) for d in np.moveaxis(dirs, -1, 0)]  # per axis, n×n
    t_best = np.full((len(times), n, n), np.inf, np.float32)
    index = np.full(t_best.shape, -1, np.int64)
    axis = np.zeros(t_best.shape, np.int8)
    if not len(scene.boxes):
        return t_best, index, axis
    lo, hi = zip(*(scene.boxes.at(t) for t in times))
    lo, hi = np.stack(lo) - origins[:, None], np.stack(hi) - origins[:, None]  # K×N×3, relative to the camera
    rects = _screen_rects(scene, lo, hi)
    lo, hi = lo.astype(np.float32)[..., None, None], hi.astype(np.float32)[..., None, None]
    for b in np.flatnonzero((rects[:, 0] <= rects[:, 1]) & (rects[:, 2] <= rects[:, 3])):
        c0, c1 = _sample_range(rects[b, 0], rects[b, 1], samples, n)
        r0, r1 = _sample_range(rects[b, 2], rects[b, 3], samples, n)
        if c0 >= c1 or r0 >= r1:
            continue
        # slab test, one axis at a time (reductions over a length-3 last axis are slow in NumPy)
        near, far = [], []
        for a in range(3):
            t1, t2 = lo[:, b, a] * inv[a][r0:r1, c0:c1], hi[:, b, a] * inv[a][r0:r1, c0:c1]
            near.append(np.minimum(t1, t2))
            far.append(np.maximum(t1, t2))
        t_near = np.maximum(np.maximum(near[0], near[1]), near[2])
        best = t_best[:, r0:r1, c0:c1]
        hit = (t_near <= np.minimum(np.minimum(far[0], far[1]), far[2])) & (t_near > 0) & (t_near < best)
        best[hit] = t_near[hit]
        index[:, r0:r1, c0:c1][hit] = b
        face = np.where(near[0] == t_near, 0, np.where(near[1] == t_near, 1, 2)).astype(np.int8)
        axis[:, r0:r1, c0:c1][hit] = face[hit]
    return t_best, index, axis


def _ground_distance(scene: Scene, dirs: np.ndarray) -> np.ndarray:
    """Camera-z of the road plane along each ray; inf for rays at or above the horizon."""
    down = dirs[..., 1] < 0
    return np.where(down, scene.camera_height / np.where(down, -dirs[..., 1], 1.0), np.inf).astype(np.float32)


def _shade_ground(scene: Scene, times: np.ndarray, frame: np.ndarray, dirs: np.ndarray, t: np.ndarray):
    """Colour of ground hits: frame index, direction and distance per ray."""
    origin = _origins(scene, times)[frame]
    x = origin[:, 0] + t * dirs[:, 0]
    z = origin[:, 2] + t * dirs[:, 2]
    seed = scene.texture_seed
    grain = 0.8 + 0.25 * value_noise(x, z, 0.6, seed) + 0.15 * value_noise(x, z, 4.0, seed + 1)
    color = scene.ground_colors[ground_material(scene, x, z)] * grain[:, None]
    light = np.full(x.shape, scene.ambient + scene.sun_strength * max(0.0, float(scene.sun[1])), np.float32)
    boxes = scene.boxes
    travel = (boxes.speed[:, None] * times[None]).astype(np.float32)  # N×K
    for b in np.flatnonzero(boxes.is_vehicle_body()):  # a contact shadow on the road under each vehicle
        lo, hi = boxes.lo[b] - 0.15, boxes.hi[b] + 0.15
        rows = np.flatnonzero((x > lo[0]) & (x < hi[0]))
        dz = travel[b][frame[rows]]
        rows = rows[(z[rows] > lo[2] + dz) & (z[rows] < hi[2] + dz)]
        light[rows] *= 0.45
    return color * light[:, None]


def _shade_boxes(scene: Scene, times: np.ndarray, frame: np.ndarray, dirs: np.ndarray, t: np.ndarray,
                 index: np.ndarray, axis: np.ndarray):
    """Colour of box hits: Lambert shading of the face hit, windows on facades, glass cabins, leafy crowns."""
    origin = _origins(scene, times)[frame]
    point = origin + t[:, None] * dirs
    sign = -np.sign(np.take_along_axis(dirs, axis[:, None], 1)[:, 0])  # the face looks back at the camera
    lambert = np.maximum(0.0, sign * scene.sun[axis]).astype(np.float32)
    color = scene.boxes.color[index].copy()
    material = scene.boxes.material[index]
    side = axis != 1
    pitch = scene.boxes.window_pitch[index]
    along = np.mod(np.where(axis == 0, point[:, 2], point[:, 0]) / pitch[:, 0], 1.0)
    storey = np.mod(point[:, 1] / pitch[:, 1], 1.0)
    window = (material == BUILDING) & side & (point[:, 1] > 1.5) & (along > 0.3) & (along < 0.75) & (
        storey > 0.35) & (storey < 0.8)
    color[window | ((material == GLASS) & side)] = scene.sky_horizon * 0.35 + 0.05
    leaves = material == FOLIAGE
    p = point[leaves]
    color[leaves] *= (0.6 + 0.7 * value_noise(p[:, 0] + p[:, 2], p[:, 1], 0.6, scene.texture_seed + 2))[:, None]
    return color * (scene.ambient + scene.sun_strength * lambert)[:, None]


def _fade(scene: Scene, color: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Aerial perspective: distant surfaces fade into the horizon colour."""
    keep = np.exp(-t / scene.fog_distance)[:, None]
    return color * keep + scene.sky_horizon * (1 - keep)


def _shade(scene: Scene, times: np.ndarray, dirs: np.ndarray, t_box: np.ndarray, index: np.ndarray,
           axis: np.ndarray) -> np.ndarray:
    """K×n×n×3 colour per ray and frame: the sky, then the ground and boxes where a ray hits them."""
    elevation = np.clip(dirs[..., 1] / np.linalg.norm(dirs, axis=-1) * 3.0, 0.0, 1.0)[..., None]
    rgb = np.empty(t_box.shape + (3,), np.float32)
    rgb[:] = scene.sky_horizon * (1 - elevation) + scene.sky_zenith * elevation
    t_ground = _ground_distance(scene, dirs)
    is_box = t_box < t_ground
    ground = ~is_box & np.isfinite(t_ground)
    frame, row, col = np.nonzero(ground)
    t = t_ground[row, col]
    rgb[ground] = _fade(scene, _shade_ground(scene, times, frame, dirs[row, col], t), t)
    frame, row, col = np.nonzero(is_box)
    t = t_box[is_box]
    rgb[is_box] = _fade(scene, _shade_boxes(scene, times, frame, dirs[row, col], t, index[is_box], axis[is_box]), t)
    return rgb


def render(scene: Scene, times, samples: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(rgb K×size×size×3 float32 in [0,1], depth K×size×size float32 metres, NaN = sky) at K `times` (s).

    RGB averages samples×samples rays per pixel (antialiasing, like a real sensor's pixel area); depth is the
    exact camera-z along the pixel-centre ray. All K frames go through each box at once (speed).
    """
    times = np.atleast_1d(np.asarray(times, np.float64))
    centre = scene.ray_directions(1)
    t_box, index, axis = _intersect_boxes(scene, times, centre, 1)
    depth = np.minimum(t_box, _ground_distance(scene, centre))
    if samples == 1:
        rgb = _shade(scene, times, centre, t_box, index, axis)
    else:
        dirs = scene.ray_directions(samples)
        rgb = _shade(scene, times, dirs, *_intersect_boxes(scene, times, dirs, samples))
        n = scene.size
        rgb = rgb.reshape(len(times), n, samples, n, samples, 3).mean(axis=(2, 4))
    depth = np.where(np.isfinite(depth), depth, np.nan).astype(np.float32)
    return np.clip(rgb, 0.0, 1.0).astype(np.float32), depth


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


# ------------------------------------------------------------------------------------------------------ writing

def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, then rename, so readers never see half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sequence_file(index: int) -> str:
    return f"seq_{index:05d}.npz"


def write_sequence(path: Path, seq: SyntheticSequence) -> None:
    def write(tmp: Path):
        with open(tmp, "wb") as f:
            np.savez_compressed(f, rgb=seq.rgb, depth=seq.depth, intrinsics=seq.scene.intrinsics,
                                ego_speed=np.float64(seq.scene.ego_speed))
    _atomic_write(path, write)


def split_names(sequences: int, val: int = 0, test: int = 0) -> dict[str, list[int]]:
    """Sequence indices per split: the last `test` are test, the `val` before them val, the rest train."""
    if sequences < 1 or val < 0 or test < 0 or val + test > sequences:
        raise ValueError("need sequences >= 1 and 0 <= val + test <= sequences")
    train = sequences - val - test
    return {"train": list(range(train)), "val": list(range(train, train + val)),
            "test": list(range(train + val, sequences))}


def _write_one(out: Path, index: int, seed: int, frames: int, size: int, fps: float, sensor: SensorModel,
               samples: int) -> tuple[str, dict]:
    seq = generate_sequence(seed, index, frames, size, fps, sensor, samples)
    write_sequence(out / sequence_file(index), seq)
    return sequence_file(index), seq.record()


def write_dataset(out: Path, sequences: int, frames: int = 30, size: int = 64, seed: int = 0, val: int = 0,
                  test: int = 0, fps: float = 17.0, sensor: SensorModel = SensorModel(), samples: int = 2,
                  workers: int = 1, overwrite: bool = False, progress: Callable[[int], None] | None = None) -> dict:
    """Generate and write a synthetic data set with `workers` processes.

    meta.json is written last, so its presence means the set is complete; with `overwrite` the old meta.json
    goes first and sequence files the new set does not list are removed at the end.
    """
    splits = split_names(sequences, val, test)
    if frames < 1 or size < 8 or fps <= 0 or samples < 1 or workers < 1:
        raise ValueError("need frames >= 1, size >= 8, fps > 0, samples >= 1 and workers >= 1")
    meta_path = out / "meta.json"
    if meta_path.exists() and not overwrite:
        raise ValueError(f"{out} already holds a data set (meta.json); choose another folder or overwrite it "
                         "(synth --overwrite)")
    out.mkdir(parents=True, exist_ok=True)
    meta_path.unlink(missing_ok=True)
    job = functools.partial(_write_one, out, seed=seed, frames=frames, size=size, fps=fps, sensor=sensor,
                            samples=samples)
    records = {}
    with concurrent.futures.ProcessPoolExecutor(workers) if workers > 1 else contextlib.nullcontext() as pool:
        for name, record in (pool.map(job, range(sequences)) if pool else map(job, range(sequences))):
            records[name] = record
            if progress:
                progress(1)
    meta = {"format": FORMAT, "version": FORMAT_VERSION, "seed": seed, "frames": frames, "size": size, "fps": fps,
            "samples_per_pixel": samples * samples, "sensor": dataclasses.asdict(sensor),
            "splits": {name: [sequence_file(i) for i in idx] for name, idx in splits.items()},
            "sequences": records}
    if math.isinf(sensor.max_range):
        meta["sensor"]["max_range"] = None  # JSON has no infinity
    _atomic_write(meta_path, lambda tmp: tmp.write_text(json.dumps(meta, indent=1)))
    for stale in set(p.name for p in out.glob("seq_*.npz")) - set(records):
        (out / stale).unlink()
    return meta
