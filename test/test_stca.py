import math

import pytest
import torch

from syncvp_core.config import get_config
from syncvp_core.planes import TriplaneShape
from syncvp_core.stca import STCA, TwoWayCrossAttention, attention_flop_ratio

C, HEADS, GROUPS = 8, 2, 4
SHAPE = TriplaneShape(frames=2, height=3, width=2)  # planes of 6, 4 and 6 tokens


def randomised(block):
    """A block with every weight random, W_o included (fresh blocks output their input)."""
    torch.manual_seed(3)
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return block


def group_norm(x, norm):
    """Naive GroupNorm of B×C×L over (channels of a group, all tokens)."""
    b, c, n = x.shape
    g = x.view(b, norm.num_groups, -1)
    g = (g - g.mean(-1, keepdim=True)) / torch.sqrt(g.var(-1, unbiased=False, keepdim=True) + norm.eps)
    return g.view(b, c, n) * norm.weight[:, None] + norm.bias[:, None]


def naive_stca(block, x, y, allowed):
    """Token-by-token, head-by-head STCA. allowed[i][j]: may RGB token i and depth token j meet."""
    d = C // HEADS
    wq_r, wv_r = block.qv_rgb.weight.split(C), block.qv_rgb.bias.split(C)
    wq_d, wv_d = block.qv_depth.weight.split(C), block.qv_depth.bias.split(C)
    out_x, out_y = torch.empty_like(x), torch.empty_like(y)
    for b in range(x.shape[0]):
        xn, yn = group_norm(x, block.norm_rgb)[b].T, group_norm(y, block.norm_depth)[b].T  # L×C
        q_r, v_r = xn @ wq_r[0].T + wv_r[0], xn @ wq_r[1].T + wv_r[1]
        q_d, v_d = yn @ wq_d[0].T + wv_d[0], yn @ wq_d[1].T + wv_d[1]
        n = xn.shape[0]
        att_x, att_y = torch.zeros(n, C), torch.zeros(n, C)
        for h in range(HEADS):
            cs = slice(h * d, (h + 1) * d)  # head h = channels h*d..(h+1)*d of every token (F1)
            a = torch.full((n, n), -math.inf)
            for i in range(n):
                for j in range(n):
                    if allowed[i][j]:
                        a[i, j] = (q_r[i, cs] * q_d[j, cs]).sum() / math.sqrt(d)
            for i in range(n):  # RGB token i reads depth values, softmax over depth tokens
                att_x[i, cs] = (torch.softmax(a[i], 0)[:, None] * v_d[:, cs]).sum(0)
            for j in range(n):  # depth token j reads RGB values with column j of the SAME matrix
                att_y[j, cs] = (torch.softmax(a[:, j], 0)[:, None] * v_r[:, cs]).sum(0)
        out_x[b] = x[b] + (att_x @ block.out_rgb.weight.T + block.out_rgb.bias).T
        out_y[b] = y[b] + (att_y @ block.out_depth.weight.T + block.out_depth.bias).T
    return out_x, out_y


def plane_of_token(shape):
    return [k for k, size in enumerate(shape.sizes) for _ in range(size)]


def rel_error(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture
def features():
    torch.manual_seed(0)
    return torch.randn(2, C, SHAPE.tokens), torch.randn(2, C, SHAPE.tokens)


def test_split_stca_equals_naive_block_diagonal_attention(features):
    block = randomised(STCA(C, HEADS, GROUPS, split_planes=True))
    plane = plane_of_token(SHAPE)
    block_diagonal = [[plane[i] == plane[j] for j in range(SHAPE.tokens)] for i in range(SHAPE.tokens)]
    with torch.no_grad():
        got = block(*features, SHAPE)
        want = naive_stca(block, *features, block_diagonal)
    assert rel_error(got[0], want[0]) < 1e-5
    assert rel_error(got[1], want[1]) < 1e-5


def test_full_stca_matches_naive_reference_and_differs_from_split(features):
    full = randomised(STCA(C, HEADS, GROUPS, split_planes=False))
    everything = [[True] * SHAPE.tokens for _ in range(SHAPE.tokens)]
    with torch.no_grad():
        got = full(*features, SHAPE)
        want = naive_stca(full, *features, everything)
        split = randomised(STCA(C, HEADS, GROUPS, split_planes=True))(*features, SHAPE)
    assert rel_error(got[0], want[0]) < 1e-5 and rel_error(got[1], want[1]) < 1e-5
    assert rel_error(split[0], got[0]) > 1e-3  # the plane split really restricts attention


def test_stca_has_no_key_projections():
    block = STCA(C, HEADS, GROUPS)
    # Q and V per branch, one output per branch, two GroupNorms: 6 (C²+C) + 4C
    assert sum(p.numel() for p in block.parameters()) == 6 * (C * C + C) + 4 * C


def test_fresh_blocks_pass_features_through_exactly(features):
    for block in (STCA(C, HEADS, GROUPS), STCA(C, HEADS, GROUPS, split_planes=False),
                  TwoWayCrossAttention(C, HEADS, GROUPS)):
        x, y = block(*features, SHAPE)
        assert torch.equal(x, features[0]) and torch.equal(y, features[1])


def test_heads_split_over_tokens_keeps_permutation_equivariance(features):
    """Permuting the RGB tokens of one plane permutes the RGB output alike and leaves depth unchanged
    (depth's softmax sums over RGB tokens). The reference's channel-chunk heads break this."""
    block = randomised(STCA(C, HEADS, GROUPS))
    x, y = features
    perm = torch.arange(SHAPE.tokens)
    perm[:6] = torch.tensor([4, 2, 0, 5, 1, 3])  # inside the xy plane
    with torch.no_grad():
        out_x, out_y = block(x, y, SHAPE)
        perm_x, perm_y = block(x[:, :, perm], y, SHAPE)
    assert torch.allclose(perm_x, out_x[:, :, perm], atol=1e-5)
    assert torch.allclose(perm_y, out_y, atol=1e-5)


def test_two_way_cross_attention_runs_and_couples(features):
    block = randomised(TwoWayCrossAttention(C, HEADS, GROUPS))
    with torch.no_grad():
        x, y = block(*features, SHAPE)
        x2, _ = block(features[0], torch.randn_like(features[1]), SHAPE)
    assert x.shape == y.shape == features[0].shape
    assert not torch.allclose(x, x2)  # RGB output depends on depth


@pytest.mark.parametrize("preset, expected", [("paper-64", 0.375), ("paper-128", 0.5)])
def test_measured_attention_flop_ratio_at_stca_level(preset, expected):
    cfg = get_config(preset)
    stca_level = cfg.target_shape().downsampled(2 ** (len(cfg.unet.channel_mult) - 1))
    channels = cfg.unet.model_channels * cfg.unet.channel_mult[-1]
    ratio = attention_flop_ratio(stca_level, channels, cfg.coupling.heads)
    assert ratio == pytest.approx(expected, abs=1e-9)
