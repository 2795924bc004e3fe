"""The synthetic RGB-D driving generator: determinism, exact geometry, ego-motion, sensor model, on-disk format."""
import dataclasses
import json
import math

import numpy as np
import pytest

from syncvp_core.config import get_config
from syncvp_core.data.synthetic import files, render
from syncvp_core.data.synthetic.scene import PLAIN, Boxes, random_scene
from syncvp_core.data.synthetic.sequence import SensorModel, apply_sensor, generate_sequence


def empty_road(size=48, speed=10.0, seed=0):
    """A sampled scene with every box removed and the ego driving straight down the road."""
    scene = random_scene(np.random.default_rng(seed), size)
    return dataclasses.replace(scene, boxes=Boxes.from_rows([]), ego_heading=0.0, ego_speed=speed)


def test_same_seed_same_sequence_and_other_seed_differs():
    a = generate_sequence(seed=7, index=1, frames=3, size=32)
    b = generate_sequence(seed=7, index=1, frames=3, size=32)
    c = generate_sequence(seed=8, index=1, frames=3, size=32)
    assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.depth, b.depth, equal_nan=True)
    assert not np.array_equal(a.rgb, c.rgb)
    assert a.rgb.dtype == np.uint8 and a.rgb.shape == (3, 32, 32, 3) and a.depth.dtype == np.float32


def test_flat_road_depth_is_the_pinhole_ground_plane_and_the_sky_is_invalid():
    scene = empty_road()
    rgb, depth = render.render(scene, [0.0, 0.5])
    k = scene.intrinsics
    v = np.arange(scene.size, dtype=np.float64)
    below = v > k[1, 2]
    expected = scene.camera_height * k[1, 1] / (v[below] - k[1, 2])
    for frame in depth:  # every column of every frame: the road plane does not move with the ego
        np.testing.assert_allclose(frame[below], np.broadcast_to(expected[:, None], frame[below].shape), rtol=1e-5)
        assert np.isnan(frame[~below]).all()
    assert rgb.shape == (2, scene.size, scene.size, 3) and 0 <= rgb.min() and rgb.max() <= 1


def test_a_wall_ahead_has_its_distance_as_depth_and_its_colour_in_rgb():
    red = (0.9, 0.05, 0.05)
    wall = Boxes.from_rows([((-50.0, 0.0, 20.0), (50.0, 30.0, 21.0), 0.0, red, PLAIN, (1.0, 1.0))])
    scene = dataclasses.replace(empty_road(speed=8.0), boxes=wall, fog_distance=1e9)
    rgb, depth = render.render(scene, [0.0, 1.0])
    for frame, time in enumerate([0.0, 1.0]):
        on_wall = np.isclose(depth[frame], 20.0 - 8.0 * time, rtol=1e-5)
        # the wall covers the horizon row band; nearer pixels below are road, and no pixel sees the sky
        assert on_wall[: scene.size // 2].all() and not np.isnan(depth[frame]).any()
        reddish = (rgb[frame, ..., 0] > 2 * rgb[frame, ..., 1]) & (rgb[frame, ..., 0] > 2 * rgb[frame, ..., 2])
        # RGB and depth agree pixel for pixel, except the antialiased rows either side of the wall's foot
        step = np.diff(on_wall.astype(int), axis=0) != 0
        edge = np.zeros_like(on_wall)
        edge[:-1] |= step
        edge[1:] |= step
        assert np.array_equal(reddish[~edge], on_wall[~edge])


def test_screen_culling_keeps_every_box_hit():
    """The renderer only tests rays inside each box's projected rectangle; a brute-force slab test agrees."""
    scene = random_scene(np.random.default_rng(11), 24)
    scene = dataclasses.replace(scene, ego_heading=0.03)  # a yawed camera exercises the projection
    times = np.array([0.0, 0.9])
    for samples in (1, 2):
        dirs = scene.ray_directions(samples).astype(np.float64)
        t_box, index, _ = render._intersect_boxes(scene, times, dirs.astype(np.float32), samples)
        for k, time in enumerate(times):
            origin = scene.camera_position(time)
            lo, hi = scene.boxes.at(time)
            with np.errstate(divide="ignore", invalid="ignore"):
                t1 = (lo[:, None, None] - origin) / dirs  # N×n×n×3
                t2 = (hi[:, None, None] - origin) / dirs
            near, far = np.minimum(t1, t2).max(-1), np.maximum(t1, t2).min(-1)
            expected = np.where((near <= far) & (near > 0), near, np.inf).min(0)
            hit = np.isfinite(expected)
            assert hit.mean() > 0.2 and np.array_equal(np.isfinite(t_box[k]), hit)
            np.testing.assert_allclose(t_box[k][hit], expected[hit], rtol=1e-4)
            assert (index[k][hit] >= 0).all() and (index[k][~hit] == -1).all()


def _warp_ground(frame: np.ndarray, scene, travel: float, rows: slice) -> np.ndarray:
    """Frame at time 0 seen from `travel` metres further on, for pixels on the road plane (bilinear lookup)."""
    k = scene.intrinsics
    v, u = np.mgrid[rows, 0:scene.size].astype(np.float64)
    z_now = scene.camera_height * k[1, 1] / (v - k[1, 2])
    scale = z_now / (z_now + travel)  # a ground point now at z was at z + travel before
    v0, u0 = k[1, 2] + (v - k[1, 2]) * scale, k[0, 2] + (u - k[0, 2]) * scale
    v0, u0 = np.clip(v0, 0, scene.size - 1.001), np.clip(u0, 0, scene.size - 1.001)  # clamp at the border
    r, c = np.floor(v0).astype(int), np.floor(u0).astype(int)
    fr, fc = (v0 - r)[..., None], (u0 - c)[..., None]
    return ((frame[r, c] * (1 - fc) + frame[r, c + 1] * fc) * (1 - fr)
            + (frame[r + 1, c] * (1 - fc) + frame[r + 1, c + 1] * fc) * fr)


def test_ego_motion_makes_the_road_flow_outward_and_downward():
    # no fog here: it changes a point's colour with its distance, which the pure-motion warp below ignores
    scene = dataclasses.replace(empty_road(size=64, speed=12.0), fog_distance=1e9)
    dt = 0.1
    rgb, _ = render.render(scene, [0.0, dt])
    assert np.abs(rgb[1] - rgb[0]).mean() > 0.005  # consecutive frames differ
    rows = slice(scene.size // 2 + 8, scene.size)  # road rows
    now = rgb[1][rows]
    forward = np.abs(now - _warp_ground(rgb[0], scene, 12.0 * dt, rows)).mean()
    backward = np.abs(now - _warp_ground(rgb[0], scene, -12.0 * dt, rows)).mean()
    static = np.abs(now - rgb[0][rows]).mean()
    # the forward-motion flow (outward and downward from the focus of expansion) explains the change
    assert forward < 0.5 * static and forward < 0.5 * backward


def test_sequences_vary_and_record_their_camera():
    records = [generate_sequence(seed=0, index=i, frames=2, size=16).record() for i in range(4)]
    speeds = {r["ego_speed"] for r in records}
    focals = {r["intrinsics"][0][0] for r in records}
    assert len(speeds) == 4 and len(focals) == 4
    for r in records:
        k = np.array(r["intrinsics"])
        assert k.shape == (3, 3) and k[0, 2] == k[1, 2] == 7.5 and 1.0 < r["camera_height"] < 2.0


def test_sensor_noise_grows_with_depth_and_holes_and_range_are_invalid():
    exact = np.broadcast_to(np.linspace(2.0, 40.0, 64, dtype=np.float32)[:, None], (64, 64)).copy()
    rng = np.random.default_rng(0)
    noisy = apply_sensor(exact, SensorModel(depth_noise=0.02), rng)
    error = noisy - exact
    assert np.abs(error[:8]).std() < np.abs(error[-8:]).std() / 10  # stereo-like: sigma grows with depth squared
    assert 0.5 < error[-1].std() / (0.02 * 40.0**2 / 10) < 1.5
    holes = apply_sensor(exact, SensorModel(hole_fraction=0.2), rng)
    assert 0.15 < np.isnan(holes).mean() < 0.25
    near = apply_sensor(exact, SensorModel(max_range=20.0), rng)
    assert np.array_equal(np.isnan(near), exact > 20.0)
    with pytest.raises(ValueError):
        SensorModel(hole_fraction=1.0)


def test_default_sensor_range_keeps_depth_inside_the_tiny_models_range():
    """At 128² the road just below the horizon lies beyond 250 m: the default sensor reports it as invalid."""
    seq = generate_sequence(seed=0, frames=1, size=128, samples=1)
    _, exact = render.render(seq.scene, [0.0], samples=1)
    far = exact > 250.0
    assert far.any() and np.nanmax(seq.depth) <= SensorModel().max_range <= get_config("tiny").depth_far
    assert np.array_equal(np.isnan(seq.depth), np.isnan(exact) | far)
    unlimited = generate_sequence(seed=0, frames=1, size=128, sensor=SensorModel(max_range=math.inf), samples=1)
    np.testing.assert_array_equal(unlimited.depth, exact)


def test_generated_depth_has_holes_when_asked():
    clean = generate_sequence(seed=2, frames=2, size=32)
    holey = generate_sequence(seed=2, frames=2, size=32, sensor=SensorModel(hole_fraction=0.1))
    assert np.isnan(holey.depth).mean() > np.isnan(clean.depth).mean() + 0.05
    assert np.array_equal(clean.rgb, holey.rgb)  # the sensor model never touches RGB


def test_write_dataset_writes_sequences_and_meta_with_splits(tmp_path):
    meta = files.write_dataset(tmp_path, sequences=3, frames=4, size=16, seed=5, val=1)
    on_disk = json.loads((tmp_path / "meta.json").read_text())
    assert on_disk == meta and on_disk["format"] == files.FORMAT
    assert on_disk["splits"] == {"train": ["seq_00000.npz", "seq_00001.npz"], "val": ["seq_00002.npz"], "test": []}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.json", "seq_00000.npz", "seq_00001.npz",
                                                          "seq_00002.npz"]  # no temporary files left behind
    with np.load(tmp_path / "seq_00002.npz") as npz:
        again = generate_sequence(seed=5, index=2, frames=4, size=16)
        assert np.array_equal(npz["rgb"], again.rgb)
        np.testing.assert_array_equal(npz["depth"], again.depth)
        np.testing.assert_allclose(npz["intrinsics"], on_disk["sequences"]["seq_00002.npz"]["intrinsics"])
