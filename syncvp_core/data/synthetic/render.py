"""Vectorised NumPy ray casting of a `Scene`: exact depth along pixel-centre rays, antialiased shaded RGB.

Depth is the camera-frame z of the surface hit by the ray through the pixel centre, so the flat road at pixel row v
has depth h·fy / (v − cy). See docs/data.md for the measured speed.
"""
from __future__ import annotations

import math

import numpy as np

from .scene import BUILDING, FOLIAGE, GLASS, Scene, ground_material

_NEAR = 0.05  # m, camera-z below which a box corner counts as behind the camera


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
