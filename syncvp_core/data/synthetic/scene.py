"""The synthetic driving world: ground-plane layout, axis-aligned boxes, camera and light, and their random sampling.

World frame: X right, Y up, Z along the road; the road centre line is X = 0 and traffic keeps right (lanes with
X > 0 drive towards +Z). Camera frame (OpenCV): x right, y down, z forward. Everything moves at constant velocity
(ego along its heading, vehicles along Z), so motion is predictable from two frames. docs/data.md describes the
scenes.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

# box materials: how a face is textured
PLAIN, BUILDING, GLASS, FOLIAGE = 0, 1, 2, 3
# ground materials, for texturing and tests
ROAD, MARKING, SIDEWALK, VERGE = 0, 1, 2, 3


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
