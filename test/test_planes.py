import pytest
import torch

from syncvp_core.planes import TriplaneShape


def coordinate_planes(shape: TriplaneShape, batch: int = 2, channels: int = 3):
    """Planes whose values encode (plane, row, col), so any misplacement is visible."""
    return tuple(
        (1000 * k + 100 * torch.arange(r)[:, None] + torch.arange(c)[None]).float().expand(batch, channels, r, c)
        for k, (r, c) in enumerate(shape.plane_dims))


@pytest.mark.parametrize("shape", [TriplaneShape(8, 32, 32), TriplaneShape(2, 16, 16), TriplaneShape(4, 6, 10)])
def test_split_join_round_trip(shape):
    x = torch.randn(2, 4, shape.tokens)
    planes = shape.split(x)
    assert [tuple(p.shape) for p in planes] == [(2, 4, r, c) for r, c in shape.plane_dims]
    assert torch.equal(shape.join(*planes), x)


def test_layout_is_xy_tw_th():
    shape = TriplaneShape(frames=3, height=4, width=5)
    assert shape.sizes == (4 * 5, 3 * 5, 3 * 4)
    assert shape.tokens == sum(shape.sizes)
    xy, tw, th = coordinate_planes(shape)
    latent = shape.join(xy, tw, th)
    # token order: all of xy row-major, then tw (t-major), then th (t-major)
    assert latent[0, 0, 5 * 1 + 2].item() == 100 * 1 + 2  # xy row 1 col 2
    assert latent[0, 0, 20 + 5 * 2 + 4].item() == 1000 + 100 * 2 + 4  # tw t=2 w=4
    assert latent[0, 0, 35 + 4 * 1 + 3].item() == 2000 + 100 * 1 + 3  # th t=1 h=3
    assert TriplaneShape.of_planes(xy, tw, th) == shape


def test_reference_token_counts():
    # the reference's 8-frame and 2-frame latents at 128×128 (doc §2)
    assert TriplaneShape(8, 32, 32).tokens == 1536
    assert TriplaneShape(2, 32, 32).tokens == 1152
    assert TriplaneShape(8, 32, 32).downsampled(2) == TriplaneShape(4, 16, 16)
    assert TriplaneShape(4, 16, 16).tokens == 384


def test_mismatches_raise():
    shape = TriplaneShape(8, 4, 4)
    with pytest.raises(ValueError):
        shape.split(torch.zeros(1, 1, shape.tokens + 1))
    xy, tw, th = coordinate_planes(shape)
    with pytest.raises(ValueError):
        shape.join(xy, th[..., :3, :], tw)
    with pytest.raises(ValueError):
        TriplaneShape(3, 4, 4).downsampled(2)
