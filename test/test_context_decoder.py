"""The bundled model's extensions beyond SyncVP: conv output head, context-conditioned decoding, log depth, latent
standardisation, and that files from before them still load."""
import json

import pytest
import safetensors.torch
import torch

from syncvp_core.autoencoder import TriplaneAutoencoder
from syncvp_core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from syncvp_core.config import AutoencoderConfig, get_config
from syncvp_core.depth import depth_to_model, fill_from_neighbours, model_to_depth
from syncvp_core.model import SyncVP

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def context_autoencoder(channels=3, **kw):
    cfg = AutoencoderConfig(width=32, patch=8, layers=1, heads=2, head_dim=16, ff_mult=2, embed_dim=4,
                            projector_layers=1, projector_heads=2, projector_head_dim=16, projector_mlp=32,
                            output_head="conv", head_channels=8, decoder_context=True, **kw)
    torch.manual_seed(0)
    return TriplaneAutoencoder(cfg, channels, 32, (2, 8))


def test_fresh_context_decoder_returns_its_context_frame_for_a_zero_latent():
    ae = context_autoencoder()
    context = torch.rand(2, 3, 32, 32) * 2 - 1
    out = ae.decode(torch.zeros(2, 4, ae.plane_shape(8).tokens), 8, context)
    assert out.shape == (2, 3, 8, 32, 32)
    assert torch.equal(out, context[:, :, None].expand_as(out))


def test_context_decoder_shapes_holes_and_no_context():
    ae = context_autoencoder(channels=1)
    with torch.no_grad():  # a trained-looking head: its output now depends on latent, context and mask
        ae.head.refine[-1].weight.normal_(0, 0.1, generator=torch.Generator().manual_seed(1))
    latent = torch.randn(2, 4, ae.plane_shape(8).tokens, generator=torch.Generator().manual_seed(2)).tanh()
    context = torch.rand(2, 1, 32, 32) * 2 - 1
    holes = torch.ones(2, 1, 32, 32, dtype=torch.bool)
    holes[:, :, :8] = False
    with_context = ae.decode(latent, 8, context)
    with_holes = ae.decode(latent, 8, context, holes)
    without = ae.decode(latent, 8)
    assert with_context.shape == with_holes.shape == without.shape == (2, 1, 8, 32, 32)
    assert without.abs().max() <= 1 and not torch.equal(with_context, without)
    # a hole is absent context: the decoder sees the same base and mask there as with no context at all
    nothing = ae.decode(latent, 8, context, torch.zeros_like(holes))
    assert torch.allclose(nothing, without, atol=1e-6)
    assert not torch.allclose(with_holes, with_context)


def test_hole_fill_grows_the_nearest_valid_values_into_the_holes():
    image = torch.arange(32.0).view(1, 1, 32, 1).expand(2, 1, 32, 32).clone()  # row index
    valid = torch.ones(2, 1, 32, 32)
    valid[:, :, :8] = 0  # the sky: no depth in the top 8 rows
    valid[1] = 0  # a frame without any valid pixel
    filled = fill_from_neighbours(image, valid)
    assert torch.equal(filled[0, :, 8:], image[0, :, 8:])  # valid pixels are kept
    assert torch.equal(filled[0, :, :8], torch.full((1, 8, 32), 8.0))  # every hole row takes the skyline's row 8
    assert torch.equal(filled[1], torch.zeros(1, 32, 32))


def test_fresh_hole_filling_decoder_returns_the_filled_context_for_a_zero_latent():
    ae = context_autoencoder(channels=1, context_hole_fill=True)
    context = torch.rand(2, 1, 32, 32) * 2 - 1
    valid = torch.rand(2, 1, 32, 32) > 0.3
    out = ae.decode(torch.zeros(2, 4, ae.plane_shape(8).tokens), 8, context, valid)
    expected = fill_from_neighbours(context * valid, valid.float())
    assert torch.equal(out, expected[:, :, None].expand_as(out))
    assert torch.equal(out[:, :, 0][valid], context[valid])
    with pytest.raises(ValueError, match="context_hole_fill needs decoder_context"):
        AutoencoderConfig(output_head="conv", context_hole_fill=True)


def test_decoder_context_needs_the_conv_head():
    with pytest.raises(ValueError, match="output_head 'conv'"):
        AutoencoderConfig(output_head="linear", decoder_context=True)


@pytest.mark.parametrize("mapping", ["inverse", "log"])
def test_depth_mappings_round_trip_and_order(mapping):
    d = torch.tensor([1.0, 2.0, 10.0, 80.0, 255.0])
    x, valid = depth_to_model(d, 1.0, 256.0, mapping)
    assert valid.all() and torch.all(x[1:] < x[:-1]) and x[0] == 1.0
    assert torch.allclose(model_to_depth(x, 1.0, 256.0, mapping), d, rtol=1e-4)


def test_log_depth_gives_each_factor_of_distance_the_same_range():
    x, _ = depth_to_model(torch.tensor([2.0, 4.0, 64.0, 128.0]), 1.0, 256.0, "log")
    assert torch.allclose(x[0] - x[1], x[2] - x[3], atol=1e-6)


def test_latent_standardisation_round_trips_and_is_what_diffusion_sees():
    model = SyncVP(get_config("tiny")).eval()
    rgb = torch.rand(3, 8, 3, 64, 64)
    raw = model.autoencoder_for("rgb", 8).encode(rgb.transpose(1, 2) * 2 - 1)
    stats = model.latent_stats[model.stats_key("rgb", 8)]
    stats.measure(raw)
    z = model.encode_rgb(rgb)
    assert torch.allclose(z.mean((0, 2)), torch.zeros(z.shape[1]), atol=1e-5)
    assert torch.allclose(z.std((0, 2)), torch.ones(z.shape[1]), atol=1e-4)
    assert torch.allclose(stats.restore(z), raw, atol=1e-5)


def test_old_checkpoint_without_the_new_options_loads_as_before(tmp_path):
    """A file written before the new options: its config lacks them and it has no latent statistics."""
    cfg = get_config("paper-64")  # the paper's design: none of the new options on
    cfg.autoencoder.width, cfg.autoencoder.layers, cfg.unet.model_channels = 32, 1, 32
    model = SyncVP(cfg)
    path = save_checkpoint(tmp_path / "new.safetensors", model)
    tensors = {k: v for k, v in safetensors.torch.load_file(str(path)).items() if not k.startswith("latent_stats.")}
    old_config = cfg.to_dict()
    for key in ("depth_mapping",):
        old_config.pop(key)
    for key in ("output_head", "head_channels", "decoder_context"):
        old_config["autoencoder"].pop(key)
    for key in ("prediction", "sampler"):
        old_config["diffusion"].pop(key)
    metadata = {"format": "syncvp", "format_version": "1", "config": json.dumps(old_config), "step": "",
                "extra": "{}"}
    old = tmp_path / "old.safetensors"
    safetensors.torch.save_file(tensors, str(old), metadata=metadata)
    loaded = load_checkpoint(old).model
    assert loaded.cfg.depth_mapping == "inverse" and loaded.cfg.diffusion.prediction == "eps"
    assert all(float(s.std.min()) == 1.0 and float(s.mean.abs().max()) == 0.0 for s in loaded.latent_stats.values())
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor)
    # a file missing a real weight is still refused with one line
    del tensors[next(k for k in tensors if k.startswith("net."))]
    safetensors.torch.save_file(tensors, str(old), metadata=metadata)
    with pytest.raises(CheckpointError, match="does not fit its config's model"):
        load_checkpoint(old)


def test_the_sampler_clamps_standardised_latents_to_the_encoders_range():
    """x0 is clamped where a standardised latent can lie (the image of tanh's [-1, 1]), not at ±1."""
    from syncvp_core.sampler import clip_x0

    model = SyncVP(get_config("tiny")).eval()
    stats = model.latent_stats[model.stats_key("depth", 8)]
    stats.measure(torch.rand(4, 8, 50) * 0.4 - 0.1)  # raw latents with mean 0.1 and std about 0.115
    low, high = model.latent_range("depth", 8)
    assert torch.allclose(low, (-1 - stats.mean) / stats.std) and torch.allclose(high, (1 - stats.mean) / stats.std)
    x0 = torch.full((2, 8, 5), 3.0)
    assert torch.equal(clip_x0(x0, (low, high)), x0)  # 3 std lies inside the encoder's range: kept
    assert torch.equal(clip_x0(100 * x0, (low, high)), high.expand_as(x0))
    assert torch.equal(clip_x0(x0), torch.ones_like(x0))  # raw latents: [-1, 1]
