import json

import pytest
import torch

from syncvp_core.config import (PRESETS, AutoencoderConfig, CouplingConfig, SyncVPConfig, UNetConfig,
                                get_config)
from syncvp_core.model import SyncVP, SyncVPNet, count_parameters
from syncvp_core.stca import STCA


def micro_config(kind: str = "stca", shared: bool = True) -> SyncVPConfig:
    return SyncVPConfig(
        name="micro", resolution=32, shared_autoencoder=shared,
        autoencoder=AutoencoderConfig(width=32, patch=8, layers=1, heads=2, head_dim=16, ff_mult=2, embed_dim=4,
                                      projector_layers=1, projector_heads=2, projector_head_dim=16,
                                      projector_mlp=64),
        unet=UNetConfig(model_channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_levels=(1,),
                        heads=2, norm_groups=8),
        coupling=CouplingConfig(kind=kind, heads=2))


def net_inputs(cfg, batch=2):
    torch.manual_seed(0)
    c, target, cond = cfg.autoencoder.embed_dim, cfg.target_shape(), cfg.cond_shape()
    return (torch.randn(batch, c, target.tokens), torch.randn(batch, c, target.tokens),
            torch.tensor([7, 640])[:batch], torch.randn(batch, c, cond.tokens), torch.randn(batch, c, cond.tokens))


def randomise_branches(net):
    """Stand-in for pretrained single-modality branches (fresh ones predict exactly zero)."""
    torch.manual_seed(1)
    with torch.no_grad():
        for branch in (net.rgb_branch, net.depth_branch):
            for p in branch.parameters():
                p.copy_(torch.randn_like(p) * 0.2)


def test_fresh_coupling_equals_the_two_branches_exactly():
    cfg = micro_config()
    net = SyncVPNet(cfg).eval()
    randomise_branches(net)
    x_rgb, x_depth, t, cond_rgb, cond_depth = net_inputs(cfg)
    with torch.no_grad():
        eps_rgb, eps_depth = net(x_rgb, x_depth, t, cond_rgb, cond_depth)
        alone_rgb = net.rgb_branch(x_rgb, t, cond_rgb)
        alone_depth = net.depth_branch(x_depth, t, cond_depth)
        assert alone_rgb.abs().max() > 0.1  # not trivially zero
        assert torch.equal(eps_rgb, alone_rgb) and torch.equal(eps_depth, alone_depth)
        # once the STCA outputs are trained away from zero, depth information reaches RGB
        for coupling in net.couplings:
            coupling.out_rgb.weight.normal_(std=0.2)
        coupled_rgb, _ = net(x_rgb, x_depth, t, cond_rgb, cond_depth)
        changed_depth, _ = net(x_rgb, x_depth + 1.0, t, cond_rgb, cond_depth)
    assert not torch.equal(coupled_rgb, alone_rgb)
    assert not torch.allclose(coupled_rgb, changed_depth)


def test_independent_depth_timestep_reaches_only_the_depth_branch():
    cfg = micro_config()
    net = SyncVPNet(cfg).eval()
    randomise_branches(net)
    x_rgb, x_depth, t, cond_rgb, cond_depth = net_inputs(cfg)
    t_depth = torch.tensor([300, 20])
    with torch.no_grad():
        eps_rgb, eps_depth = net(x_rgb, x_depth, t, cond_rgb, cond_depth, t_depth)
        assert torch.equal(eps_rgb, net.rgb_branch(x_rgb, t, cond_rgb))
        assert torch.equal(eps_depth, net.depth_branch(x_depth, t_depth, cond_depth))
        assert not torch.equal(eps_depth, net.depth_branch(x_depth, t, cond_depth))
    single = SyncVPNet(micro_config("single_network"))
    with pytest.raises(ValueError, match="timesteps must be shared"):
        single(x_rgb, x_depth, t, cond_rgb, cond_depth, t_depth)


def test_stca_sits_at_the_four_deepest_slots():
    net = SyncVPNet(micro_config())
    assert len(net.couplings) == 4 and all(isinstance(c, STCA) for c in net.couplings)
    deep = net.rgb_branch.cfg.model_channels * net.rgb_branch.cfg.channel_mult[-1]
    assert all(net.rgb_branch.stages[i].out_channels == deep for i in net.slots)


@pytest.mark.parametrize("kind", ["full", "two_way", "none", "single_network"])
def test_ablation_couplings_run(kind):
    cfg = micro_config(kind)
    net = SyncVPNet(cfg)
    x_rgb, x_depth, t, cond_rgb, cond_depth = net_inputs(cfg)
    with torch.no_grad():
        eps_rgb, eps_depth = net(x_rgb, x_depth, t, cond_rgb, cond_depth)
    assert eps_rgb.shape == x_rgb.shape and eps_depth.shape == x_depth.shape
    counts = count_parameters(SyncVP(cfg))
    assert (counts["stca"] > 0) == (kind in ("full", "two_way"))
    assert (counts["unet_depth"] == 0) == (kind == "single_network")


@pytest.mark.parametrize("shared", [True, False])
def test_encode_decode_in_predictor_units(shared):
    cfg = micro_config(shared=shared)
    model = SyncVP(cfg).eval()
    assert set(model.autoencoders) == ({"rgb", "depth"} if shared else {"rgb", "depth", "rgb_cond", "depth_cond"})
    rgb = torch.rand(1, 2, 3, 32, 32)
    depth = torch.rand(1, 2, 32, 32) * 20 + 2
    depth[0, 0, :4] = float("nan")
    with torch.no_grad():
        cond_rgb, cond_depth = model.encode_rgb(rgb), model.encode_depth(depth)
        assert cond_rgb.shape == cond_depth.shape == (1, 4, cfg.cond_shape().tokens)
        assert torch.isfinite(cond_depth).all()
        latent = torch.rand(1, 4, cfg.target_shape().tokens) * 2 - 1
        out_rgb, out_depth = model.decode_rgb(latent, 8), model.decode_depth(latent, 8)
    assert out_rgb.shape == (1, 8, 3, 32, 32) and 0 <= out_rgb.min() and out_rgb.max() <= 1
    assert out_depth.shape == (1, 8, 32, 32)
    assert cfg.depth_near <= out_depth.min() and out_depth.max() <= cfg.depth_far


def test_paper_128_parameter_counts():
    with torch.device("meta"):
        model = SyncVP(get_config("paper-128"))
    counts = count_parameters(model)
    for key, reference in (("unet_rgb", 58_561_284), ("unet_depth", 58_561_284), ("stca", 4 * 1_577_984),
                           ("autoencoder_rgb", 23.0e6)):
        assert abs(counts[key] - reference) / reference < 0.01, key
    for block in model.net.couplings:
        assert abs(sum(p.numel() for p in block.parameters()) - 1_577_984) / 1_577_984 < 0.01
    assert counts["autoencoder_cond"] > 0
    parts = sum(v for k, v in counts.items() if k != "total")
    assert parts == counts["total"]


def test_tiny_preset_fits_the_shipping_budget():
    with torch.device("meta"):
        counts = count_parameters(SyncVP(get_config("tiny")))
    assert counts["total"] * 4 <= 25e6  # fp32 safetensors
    assert counts["autoencoder_cond"] == 0


def test_config_dict_round_trip_and_presets():
    for name in PRESETS:
        cfg = get_config(name)
        assert cfg.name == name
        again = SyncVPConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
        assert again == cfg
    tiny = get_config("tiny")
    tiny.unet.model_channels = 8
    assert get_config("tiny").unet.model_channels != 8  # presets are handed out as copies
    with pytest.raises(ValueError, match="tiny"):
        get_config("huge")
    with pytest.raises(ValueError):
        CouplingConfig(kind="gated")
