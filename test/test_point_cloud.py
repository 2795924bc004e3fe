"""~/output/cloud's message (syncvp_ros.point_cloud): fields decoded by hand, points of a known plane."""
import numpy as np
from std_msgs.msg import Header

from syncvp_ros.point_cloud import cloud_step_index, pack_rgb, point_cloud


def decode(cloud):
    """(N×3 float32 xyz, N×3 uint8 rgb) read from the bytes with the message's own field offsets."""
    offsets = {f.name: f.offset for f in cloud.fields}
    raw = np.frombuffer(bytes(cloud.data), np.uint8).reshape(cloud.width * cloud.height, cloud.point_step)
    column = lambda name: raw[:, offsets[name]:offsets[name] + 4].copy().view("<f4")[:, 0]  # noqa: E731
    packed = raw[:, offsets["rgb"]:offsets["rgb"] + 4].copy().view("<u4")[:, 0]
    rgb = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], 1).astype(np.uint8)
    return np.stack([column("x"), column("y"), column("z")], 1), rgb


def test_a_fronto_parallel_plane_back_projects_to_a_plane_at_its_depth():
    k = np.array([[50.0, 0, 3.5], [0, 40.0, 2.5], [0, 0, 1]])
    depth = np.full((6, 8), 2.0, np.float32)
    depth[0, 0], depth[1, 1], depth[2, 2] = np.nan, np.inf, 0.0  # left out
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[3, 5] = (10, 200, 255)
    cloud = point_cloud(depth, rgb, k.ravel(), Header(frame_id="cam"))
    assert (cloud.height, cloud.width, cloud.is_dense, cloud.is_bigendian) == (1, 45, True, False)
    assert cloud.point_step == 16 and cloud.row_step == 16 * 45 and cloud.header.frame_id == "cam"
    assert [(f.name, f.offset, f.datatype, f.count) for f in cloud.fields] == [
        ("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("rgb", 12, 7, 1)]
    xyz, colours = decode(cloud)
    assert (xyz[:, 2] == 2.0).all()
    # pixel (u=5, v=3): x = (5 - 3.5) * 2 / 50, y = (3 - 2.5) * 2 / 40
    index = 3 * 8 + 5 - 3  # row-major over the valid pixels (three invalid ones come before it)
    np.testing.assert_allclose(xyz[index], [0.06, 0.025, 2.0], rtol=1e-6)
    assert tuple(colours[index]) == (10, 200, 255)
    # the plane spans the frustum: corners at (u - cx) z / fx
    np.testing.assert_allclose(xyz[:, 0].max(), (7 - 3.5) * 2 / 50, rtol=1e-6)
    np.testing.assert_allclose(xyz[:, 1].min(), (0 - 2.5) * 2 / 40, rtol=1e-6)


def test_rgb_packing_is_the_pcl_float_convention():
    packed = pack_rgb(np.array([[255, 0, 0], [0, 0, 1]], np.uint8))
    assert packed.dtype == np.float32 and packed.view(np.uint32).tolist() == [0xFF0000, 0x000001]


def test_cloud_step_index():
    assert cloud_step_index(0, 28) == 27 and cloud_step_index(1, 28) == 0 and cloud_step_index(40, 28) == 27
