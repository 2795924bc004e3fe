import pytest
import torch

from syncvp_core.checkpoint import load_model
from syncvp_core.rollout import RolloutPredictor


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model():
    model = load_model("preset:tiny")
    # a fresh context decoder returns its context frame whatever the latent: make its output depend on the latent
    with torch.no_grad():
        for autoencoder in model.autoencoders.values():
            autoencoder.head.refine[-1].weight.normal_(0.0, 0.05, generator=torch.Generator().manual_seed(3))
    return model


def frames(batch=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 2, 3, 64, 64, generator=g), torch.rand(batch, 2, 64, 64, generator=g) * 30 + 2


def record_net_inputs(model):
    """Conditioning latents of every network call, via a forward pre-hook."""
    calls = []
    handle = model.net.register_forward_pre_hook(lambda _, args: calls.append((args[3].clone(), args[4].clone())))
    return calls, handle


def test_two_to_twenty_eight_takes_four_chunks(model):
    predictor = RolloutPredictor(model, steps=1)
    rgb, depth = frames(batch=2)
    out = predictor.predict(rgb, depth, horizon=28, generator=torch.Generator().manual_seed(0))
    assert predictor.chunk_calls == 4
    assert out.rgb.shape == (2, 28, 3, 64, 64) and out.depth.shape == (2, 28, 64, 64)
    assert out.guidance_mode == "rgbd"
    assert 0 <= float(out.rgb.min()) and float(out.rgb.max()) <= 1
    cfg = model.cfg
    assert torch.isfinite(out.depth).all()
    assert float(out.depth.min()) >= cfg.depth_near * 0.999 and float(out.depth.max()) <= cfg.depth_far * 1.001


@pytest.mark.parametrize("which", ["rgb", "depth"])
def test_one_modality_conditions_with_a_zero_latent(model, which):
    predictor = RolloutPredictor(model, steps=1)
    rgb, depth = frames()
    given = {"rgb": rgb} if which == "rgb" else {"depth": depth}
    calls, handle = record_net_inputs(model)
    try:
        out = predictor.predict(**given, horizon=11, generator=torch.Generator().manual_seed(0))
    finally:
        handle.remove()
    assert out.guidance_mode == which
    assert out.rgb.shape == (1, 11, 3, 64, 64) and out.depth.shape == (1, 11, 64, 64)
    assert len(calls) == 2 == predictor.chunk_calls
    first_rgb, first_depth = calls[0]
    missing, present = (first_depth, first_rgb) if which == "rgb" else (first_rgb, first_depth)
    assert torch.count_nonzero(missing) == 0 and torch.count_nonzero(present) > 0
    # the second chunk is conditioned on both predicted modalities
    assert all(torch.count_nonzero(c) > 0 for c in calls[1])


def test_next_chunk_conditions_on_the_last_two_predicted_frames(model):
    predictor = RolloutPredictor(model, steps=1)
    calls, handle = record_net_inputs(model)
    try:
        out = predictor.predict(*frames(), horizon=16, generator=torch.Generator().manual_seed(0))
    finally:
        handle.remove()
    # rgb re-encoded after 8-bit quantisation, depth as predicted
    expected_rgb = model.encode_rgb(torch.round(out.rgb[:, 6:8] * 255) / 255)
    expected_depth = model.encode_depth(out.depth[:, 6:8])
    assert torch.allclose(calls[1][0], expected_rgb, atol=1e-5)
    assert torch.allclose(calls[1][1], expected_depth, atol=1e-5)


def test_seeded_prediction_is_reproducible_and_inference_mode(model):
    predictor = RolloutPredictor(model, steps=2, eta=1.0)
    rgb, depth = frames()
    a = predictor.predict(rgb, depth, horizon=4, generator=torch.Generator().manual_seed(7))
    b = predictor.predict(rgb, depth, horizon=4, generator=torch.Generator().manual_seed(7))
    c = predictor.predict(rgb, depth, horizon=4, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a.rgb, b.rgb) and torch.equal(a.depth, b.depth)
    assert not torch.equal(a.rgb, c.rgb)
    assert a.rgb.is_inference() and not a.rgb.requires_grad


def test_bad_inputs_raise_value_error(model):
    predictor = RolloutPredictor(model, steps=1)
    rgb, depth = frames()
    with pytest.raises(ValueError, match="rgb, depth or both"):
        predictor.predict(None, None)
    with pytest.raises(ValueError, match="rgb must be"):
        predictor.predict(rgb[:, :1], depth)
    with pytest.raises(ValueError, match="depth must be"):
        predictor.predict(rgb, depth[..., :32])
    with pytest.raises(ValueError, match="batch sizes differ"):
        predictor.predict(torch.cat([rgb, rgb]), depth)
    with pytest.raises(ValueError, match="horizon"):
        predictor.predict(rgb, depth, horizon=0)
    assert predictor.chunk_calls == 0
    with pytest.raises(ValueError, match="guidance"):
        RolloutPredictor(model, guidance_scale=-1.0)


def test_point_estimate_of_k_samples_and_decoding_without_context(model):
    rgb, depth = frames(batch=2)
    seed = torch.Generator().manual_seed(4)
    mean = RolloutPredictor(model, steps=1, samples=3).predict(rgb, depth, horizon=10, generator=seed)
    assert mean.rgb.shape == (2, 10, 3, 64, 64) and mean.depth.shape == (2, 10, 64, 64)
    assert torch.isfinite(mean.rgb).all() and torch.isfinite(mean.depth).all()
    single = RolloutPredictor(model, steps=1).predict(rgb, depth, horizon=10, generator=torch.Generator().manual_seed(4))
    assert not torch.allclose(single.rgb, mean.rgb)
    with_context = RolloutPredictor(model, steps=1).predict(rgb, depth, horizon=8,
                                                            generator=torch.Generator().manual_seed(5))
    without = RolloutPredictor(model, steps=1, decoder_context=False).predict(
        rgb, depth, horizon=8, generator=torch.Generator().manual_seed(5))
    assert not torch.allclose(with_context.rgb, without.rgb)
