import pytest
import torch

from syncvp_core.config import UNetConfig
from syncvp_core.planes import TriplaneShape
from syncvp_core.unet import BranchUNet, ResBlock, SelfAttention, align_condition, per_plane

CFG = UNetConfig(model_channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_levels=(1,), heads=2,
                 norm_groups=8)
TARGET, COND = TriplaneShape(8, 4, 4), TriplaneShape(2, 4, 4)
C = 4


def randomise(module, skip=()):
    torch.manual_seed(5)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if not any(s in name for s in skip):
                p.copy_(torch.randn_like(p) * 0.2)
    return module


@pytest.fixture
def inputs():
    torch.manual_seed(0)
    return torch.randn(2, C, TARGET.tokens), torch.tensor([10, 900]), torch.randn(2, C, COND.tokens)


def test_condition_is_aligned_plane_by_plane():
    xy = torch.randn(1, C, 4, 4)
    tw, th = torch.randn(1, C, 2, 4), torch.randn(1, C, 2, 4)
    a_xy, a_tw, a_th = TARGET.split(align_condition(COND.join(xy, tw, th), COND, TARGET))
    assert torch.equal(a_xy, xy)
    for aligned, cond in ((a_tw, tw), (a_th, th)):
        # nearest along t: conditioning frame 0 covers target rows 0-3, frame 1 rows 4-7
        assert torch.equal(aligned[:, :, :4], cond[:, :, :1].expand(-1, -1, 4, -1))
        assert torch.equal(aligned[:, :, 4:], cond[:, :, 1:].expand(-1, -1, 4, -1))
    zeros = align_condition(torch.zeros(1, C, COND.tokens), COND, TARGET)
    assert zeros.shape == (1, C, TARGET.tokens) and not zeros.any()  # a dropped modality stays zero


def test_forward_shape_and_dependence_on_t_and_condition(inputs):
    x, t, cond = inputs
    unet = randomise(BranchUNet(CFG, C, TARGET, COND))
    with torch.no_grad():
        eps = unet(x, t, cond)
        assert eps.shape == x.shape
        assert not torch.allclose(eps, unet(x, t.flip(0), cond))
        assert not torch.allclose(eps, unet(x, t, torch.zeros_like(cond)))


def test_levels_shrink_t_h_and_w():
    unet = BranchUNet(CFG, C, TARGET, COND)
    x, cond = torch.randn(1, C, TARGET.tokens), torch.randn(1, C, COND.tokens)
    h, shape, emb = unet.stem(x, cond), TARGET, unet.embed_time(torch.tensor([3]))
    skips, shapes = [h], []
    for i in range(len(unet.stages)):
        h, shape = unet.run_stage(i, h, shape, emb, skips)
        shapes.append(shape)
        assert h.shape == (1, unet.stages[i].out_channels, shape.tokens)
    low = TARGET.downsampled(2)
    assert shapes == [TARGET, low, low, low, low, TARGET, TARGET, TARGET]
    assert [unet.stages[i].kind for i in unet.coupling_slots("deep")] == ["encoder", "middle", "decoder", "decoder"]
    assert not skips


def test_planes_meet_only_in_triplane_attention(inputs):
    """Same 2-D weights per plane and no other cross-plane path: with the triplane attention's output
    projections at zero, changing the tw plane of the input changes only the tw plane of the output."""
    x, t, cond = inputs
    unet = randomise(BranchUNet(CFG, C, TARGET, COND), skip=("triplane_attn.proj_out",))
    xy, tw, th = TARGET.split(x)
    x2 = TARGET.join(xy, tw + 1.0, th)
    with torch.no_grad():
        out, out2 = TARGET.split(unet(x, t, cond)), TARGET.split(unet(x2, t, cond))
        assert torch.equal(out[0], out2[0]) and torch.equal(out[2], out2[2])
        assert not torch.allclose(out[1], out2[1])
        randomise(unet)  # now with the triplane attention open, xy sees the change too
        assert not torch.allclose(TARGET.split(unet(x, t, cond))[0], TARGET.split(unet(x2, t, cond))[0])


def test_per_plane_batching_equals_separate_calls():
    torch.manual_seed(1)
    planes = [torch.randn(2, 16, 4, 4), torch.randn(2, 16, 8, 4), torch.randn(2, 16, 8, 4)]
    emb = torch.randn(2, 64)
    res, attn = randomise(ResBlock(16, 16, 64, 8, "down")), randomise(SelfAttention(16, 2, 8))

    def layers(x, e):
        return attn(res(x, e))

    with torch.no_grad():
        batched = per_plane(layers, planes, emb)
        for plane, got in zip(planes, batched):
            assert got.shape == (2, 16, plane.shape[2] // 2, 2)
            assert torch.allclose(got, layers(plane, emb), atol=1e-5)
