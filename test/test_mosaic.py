"""The debug mosaic and its depth colour map (syncvp_ros.mosaic)."""
import numpy as np

from syncvp_ros.mosaic import colorize_depth, mosaic


def test_colorize_depth_orders_near_to_far_and_blacks_out_invalid():
    img = colorize_depth(np.array([[1.0, 10.0, 100.0, np.nan]], np.float32), 1.0, 100.0)
    assert img.shape == (1, 4, 3) and img.dtype == np.uint8
    near, far = img[0, 0].astype(int), img[0, 2].astype(int)
    assert near[0] > near[2] and far[2] > far[0]  # near is red, far is blue
    assert img[0, 3].tolist() == [0, 0, 0]


def test_mosaic_layout_with_a_missing_modality():
    cond_rgb = np.full((2, 4, 4, 3), 200, np.uint8)
    pred_rgb = np.full((3, 4, 4, 3), 100, np.uint8)
    pred_depth = np.full((3, 4, 4), 5.0, np.float32)
    out = mosaic(cond_rgb, None, pred_rgb, pred_depth, 4, 0.5, 100.0)
    assert out.shape == (8, 20, 3)
    assert (out[:4, :8] == 200).all() and (out[:4, 8:] == 100).all()
    assert (out[4:, :8] == 0).all() and out[4:, 8:].any()  # no depth conditioning: black tiles
