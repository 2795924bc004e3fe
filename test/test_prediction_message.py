"""The output message: CameraInfo scaled to the model frame, and the RGBDPrediction fields (no rclpy)."""
import math

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo

from syncvp_core.data.transforms import scale_intrinsics
from syncvp_core.image_msg import image_to_array
from syncvp_ros.prediction_message import prediction_message, scale_camera_info
from syncvp_ros.sync_buffer import ConditioningMode, Frame, Window


def test_camera_info_is_scaled_like_the_image():
    info = CameraInfo(height=96, width=128, distortion_model="plumb_bob", d=[0.1, 0, 0, 0, 0],
                      k=[100.0, 0, 63.5, 0, 100.0, 47.5, 0, 0, 1], r=[1.0, 0, 0, 0, 1, 0, 0, 0, 1],
                      p=[100.0, 0, 63.5, -10.0, 0, 100.0, 47.5, 0, 0, 0, 1, 0])
    info.header.frame_id = "cam"
    out = scale_camera_info(info, 64)
    k = np.array(out.k).reshape(3, 3)
    np.testing.assert_allclose(k, scale_intrinsics(np.array(info.k).reshape(3, 3), 96, 128, 64))
    # the centred principal point of the input stays centred in the 64x64 model frame
    assert (out.height, out.width) == (64, 64) and k[0, 2] == pytest.approx(31.5) and k[1, 2] == pytest.approx(31.5)
    assert k[0, 0] == pytest.approx(100 * 64 / 96)
    p = np.array(out.p).reshape(3, 4)
    np.testing.assert_allclose(p[:, :3], k)
    assert p[0, 3] == pytest.approx(-10.0 * 64 / 96)
    assert out.header.frame_id == "cam" and list(out.d) == list(info.d) and out.distortion_model == "plumb_bob"
    assert scale_camera_info(CameraInfo(), 64) is None  # uncalibrated: nothing to scale
    # the output owns its header: stamping it (the worker does) leaves the received message untouched
    info.header.stamp.sec = 5
    scale_camera_info(info, 64).header.stamp.sec = 2
    assert info.header.stamp.sec == 5


def _window():
    rgb = tuple(Frame(s, "cam_rgb", np.zeros((4, 4, 3), np.uint8)) for s in (10_000_000_000, 10_100_000_000))
    depth = tuple(Frame(s, "cam_depth", np.ones((4, 4), np.float32)) for s in (10_000_000_000, 10_100_000_000))
    return Window(ConditioningMode.RGBD, rgb, depth)


def test_prediction_message_fields():
    horizon, size = 3, 4
    rgb = np.random.default_rng(0).integers(0, 255, (horizon, size, size, 3), dtype=np.uint8)
    depth = np.full((horizon, size, size), 7.5, np.float32)
    depth[0, 0, 0] = np.nan
    info = CameraInfo(height=size, width=size, k=[1.0, 0, 2, 0, 1, 2, 0, 0, 1])
    info.header.frame_id = "cam_rgb_optical"
    msg = prediction_message(_window(), rgb, depth, info, diffusion_steps=2, model_id="tiny-abc")
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (10, 100_000_000, "cam_rgb")
    assert msg.guidance_mode == "rgbd" and msg.diffusion_steps == 2 and msg.model_id == "tiny-abc"
    assert [(t.sec, t.nanosec) for t in msg.rgb_conditioning_stamps] == [(10, 0), (10, 100_000_000)]
    assert [d.sec + d.nanosec * 1e-9 for d in msg.time_offsets] == pytest.approx([0.1, 0.2, 0.3])
    assert [i.encoding for i in msg.rgb] == ["rgb8"] * 3 and [i.encoding for i in msg.depth] == ["32FC1"] * 3
    np.testing.assert_array_equal(image_to_array(msg.rgb[2]), rgb[2])
    back = image_to_array(msg.depth[0])
    assert math.isnan(back[0, 0]) and back[1, 1] == 7.5
    assert msg.camera_info.header.frame_id == "cam_rgb_optical" and msg.camera_info.header.stamp == msg.header.stamp
    assert all(i.header.stamp == msg.header.stamp for i in msg.rgb)
    assert list(prediction_message(_window(), rgb, depth, None, 2, "m").camera_info.k) == [0.0] * 9
