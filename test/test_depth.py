import math

import torch

from syncvp_core.depth import depth_to_model, model_to_depth

NEAR, FAR = 1.0, 80.0


def test_round_trip_inside_range():
    depth = torch.logspace(math.log10(NEAR), math.log10(FAR), 257)
    x, valid = depth_to_model(depth, NEAR, FAR)
    assert valid.all()
    assert x.min() >= -1 and x.max() <= 1
    back = model_to_depth(x, NEAR, FAR)
    assert ((back - depth).abs() / depth).max() < 1e-5


def test_ends_and_inverse_depth_order():
    x, _ = depth_to_model(torch.tensor([NEAR, FAR, 2 * NEAR]), NEAR, FAR)
    assert x[0].item() == 1.0 and x[1].item() == -1.0
    # normalised inverse depth, u = (1/d - 1/far) / (1/near - 1/far), x = 2u - 1
    assert abs(x[2].item() - (2 * (0.5 - 1 / FAR) / (1 - 1 / FAR) - 1)) < 1e-6
    ramp = depth_to_model(torch.linspace(NEAR, FAR, 100), NEAR, FAR)[0]
    assert (ramp.diff() < 0).all()  # farther is lower


def test_invalid_pixels_are_masked_and_filled_with_far():
    depth = torch.tensor([float("nan"), 0.0, float("inf"), -float("inf"), -3.0, 5.0])
    x, valid = depth_to_model(depth, NEAR, FAR)
    assert valid.tolist() == [False] * 5 + [True]
    assert torch.equal(x[:5], torch.full((5,), -1.0))
    assert torch.isfinite(x).all()


def test_out_of_range_saturates():
    x, valid = depth_to_model(torch.tensor([0.2, 500.0]), NEAR, FAR)
    assert valid.all()
    assert x.tolist() == [1.0, -1.0]
    assert torch.allclose(model_to_depth(torch.tensor([3.0, -7.0]), NEAR, FAR), torch.tensor([NEAR, FAR]))


def test_video_shape_kept():
    depth = torch.rand(2, 8, 16, 16) * 50 + 1
    depth[0, 0, 0, 0] = float("nan")
    x, valid = depth_to_model(depth, NEAR, FAR)
    assert x.shape == valid.shape == depth.shape
    assert not valid[0, 0, 0, 0] and valid.sum() == depth.numel() - 1
