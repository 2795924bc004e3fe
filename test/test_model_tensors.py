"""Decoded frames to the model's tensors and back (syncvp_ros.model_tensors), and the smallest usable frame."""
import numpy as np
import pytest
import torch

from syncvp_core.image_msg import REJECT_KINDS, BadImage
from syncvp_ros.model_tensors import check_usable_size, rgb_to_uint8, window_to_tensors


def test_window_to_tensors_crops_resizes_and_keeps_nan_depth():
    rgb = [np.full((96, 128, 3), 255, np.uint8), np.zeros((48, 64, 3), np.uint8)]  # resolution may differ
    depth = [np.full((96, 128), 5.0, np.float32)] * 2
    depth[1] = depth[1].copy()
    depth[1][:, :] = np.nan
    rgb_t, depth_t = window_to_tensors(rgb, depth, 64)
    assert rgb_t.shape == (1, 2, 3, 64, 64) and depth_t.shape == (1, 2, 64, 64)
    assert torch.allclose(rgb_t[0, 0], torch.ones(3, 64, 64)) and rgb_t[0, 1].max() == 0
    assert torch.all(depth_t[0, 0] == 5.0) and torch.isnan(depth_t[0, 1]).all()
    assert window_to_tensors([], depth, 64)[0] is None and window_to_tensors(rgb, [], 64)[1] is None


def test_rgb_to_uint8_rounds_and_moves_channels_last():
    x = torch.tensor([0.0, 0.5, 1.0, 1.5]).reshape(1, 4, 1, 1).expand(1, 4, 2, 2)[:, :3]
    out = rgb_to_uint8(x)
    assert out.shape == (1, 2, 2, 3) and out.dtype == np.uint8
    assert out[0, 0, 0].tolist() == [0, 128, 255]


def test_frames_smaller_than_the_model_can_use_are_too_small():
    check_usable_size(np.zeros((16, 40, 3), np.uint8), 64)  # a quarter of 64 per side is enough
    with pytest.raises(BadImage) as err:
        check_usable_size(np.zeros((1, 1), np.float32), 64)
    assert err.value.kind == "too_small" and err.value.kind in REJECT_KINDS and "16 pixels" in str(err.value)
