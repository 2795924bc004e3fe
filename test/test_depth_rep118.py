"""REP 118 depth around the model (syncvp_ros.depth_rep118) and far/unknown on input: plain pytest, no rclpy."""
import numpy as np
import torch

from syncvp_core.image_msg import depth_from_image
from syncvp_ros.depth_rep118 import conditioning_depth, fill_holes, prediction_depth, resize_marked_depth
from syncvp_ros.image_conversion import array_to_image


def test_input_tells_far_from_unknown_when_asked():
    raw = np.array([[0.0, np.nan, np.inf, 3.0, 12.0, 0.05]], np.float32)
    default = depth_from_image(array_to_image(raw, "32FC1"), 0.001, 0.1, 10.0)
    marked = depth_from_image(array_to_image(raw, "32FC1"), 0.001, 0.1, 10.0, far_as_inf=True)
    assert np.isnan(default[0, [0, 1, 2, 4, 5]]).all() and default[0, 3] == 3.0
    assert np.isnan(marked[0, [0, 1, 5]]).all() and np.isposinf(marked[0, [2, 4]]).all() and marked[0, 3] == 3.0
    millimetres = depth_from_image(array_to_image(np.array([[0, 3000, 20000]], np.uint16), "16UC1"), 0.001, 0.1,
                                   10.0, far_as_inf=True)
    assert np.isnan(millimetres[0, 0]) and np.isclose(millimetres[0, 1], 3.0) and np.isposinf(millimetres[0, 2])


def test_holes_take_their_neighbours_inverse_depth_and_far_stays_far():
    depth = torch.full((1, 8, 8), 4.0)
    depth[0, :2] = float("inf")  # far band on top
    depth[0, 5:7, 3:5] = float("nan")  # a hole inside the 4 m region
    filled = fill_holes(depth)
    assert torch.isposinf(filled[0, :2]).all()
    np.testing.assert_allclose(filled[0, 5:7, 3:5].numpy(), 4.0, rtol=1e-6)
    # a hole next to the far band: the mean inverse depth of far (0) and 4 m neighbours, so beyond 4 m
    depth[0, 2, 0] = float("nan")
    assert fill_holes(depth)[0, 2, 0] > 4.0


def test_conditioning_depth_of_a_near_scene_with_holes_stays_near():
    frame = np.broadcast_to(np.linspace(5.0, 2.0, 128, dtype=np.float32)[:, None], (128, 128)).copy()
    holes = np.kron(np.random.default_rng(1).random((64, 64)) < 0.07, np.ones((2, 2), bool))
    frame[holes] = np.nan
    tensor, hole_mask = conditioning_depth([frame, frame], 64)
    assert tensor.shape == (1, 2, 64, 64) and torch.isfinite(tensor).all()
    assert 2.0 <= tensor.min() and tensor.max() <= 5.0  # not the encoder's 80 m far fill
    assert np.array_equal(hole_mask, holes[::2, ::2])


def test_resize_marks_a_model_pixel_far_when_most_of_it_is_far():
    frame = np.full((4, 4), 2.0, np.float32)
    frame[:2, :2] = np.inf  # one output pixel all far
    frame[2:, 2] = np.inf  # another half far
    frame[:2, 2:] = np.nan  # one unknown
    out = resize_marked_depth(frame, 2).numpy()
    assert np.isposinf(out[0, 0]) and np.isnan(out[0, 1]) and out[1, 0] == 2.0 and out[1, 1] == 2.0


def test_prediction_output_is_rep118():
    predicted = np.array([[[0.05, 3.0, 7.0, 79.99, np.nan, np.inf]]], np.float32)
    holes = np.array([[False, False, False, False, False, False]])
    out = prediction_depth(predicted, holes, 0.1, 6.0, 80.0)
    assert out.dtype == np.float32
    assert out[0, 0, 0] == np.float32(0.1) and out[0, 0, 1] == 3.0  # clamped up to depth.min; kept
    assert np.isposinf(out[0, 0, 2]) and np.isposinf(out[0, 0, 3])  # beyond depth.max; at the model's far end
    assert np.isnan(out[0, 0, 4]) and np.isnan(out[0, 0, 5])  # not a finite prediction
    holes[0, 1] = True
    assert np.isnan(prediction_depth(predicted, holes, 0.1, 6.0, 80.0)[0, 0, 1])
    assert not np.isnan(prediction_depth(predicted, None, 0.1, 6.0, 80.0)[0, 0, 1])
