import numpy as np
import torch

from syncvp_core.data.transforms import center_square, resize_depth, resize_rgb, scale_intrinsics


def test_center_square():
    assert center_square(480, 640) == (0, 80, 480)
    assert center_square(640, 480) == (80, 0, 480)


def test_rgb_resize_shape_and_range():
    x = torch.rand(2, 3, 3, 48, 64)
    y = resize_rgb(x, 16)
    assert y.shape == (2, 3, 3, 16, 16) and float(y.min()) >= 0 and float(y.max()) <= 1
    # crop keeps the centre: a constant centre square gives that constant
    x = torch.zeros(3, 48, 64)
    x[:, :, 8:56] = 0.5
    assert torch.allclose(resize_rgb(x, 12), torch.full((3, 12, 12), 0.5))


def test_depth_resize_ignores_invalid_pixels():
    d = torch.full((4, 4), 2.0)
    d[0, 0], d[0, 1], d[1, 0] = float("nan"), 0.0, float("inf")
    out = resize_depth(d, 2)
    assert out[0, 0] == 2.0 and torch.all(out == 2.0)
    d[:2, :2] = float("nan")
    out = resize_depth(d, 2)
    assert torch.isnan(out[0, 0]) and torch.all(out.flatten()[1:] == 2.0)


def test_intrinsics_follow_crop_and_resize():
    k = np.array([[500.0, 0, 319.5], [0, 500.0, 239.5], [0, 0, 1]])
    out = scale_intrinsics(k, 480, 640, 64)
    s = 64 / 480
    assert np.isclose(out[0, 0], 500 * s) and np.isclose(out[1, 1], 500 * s)
    # the principal point at the image centre stays at the centre of the output
    assert np.isclose(out[0, 2], 31.5) and np.isclose(out[1, 2], 31.5)
