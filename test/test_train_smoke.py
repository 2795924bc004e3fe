"""20 AdamW steps of the tiny joint model on one fixed batch, then a checkpoint round trip."""
import pytest
import torch

from syncvp_core.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from syncvp_core.diffusion import NoiseSchedule, joint_loss


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained():
    model = load_model("preset:tiny").train()
    cfg = model.cfg
    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(2, 10, 3, 64, 64, generator=g)
    depth = torch.rand(2, 10, 64, 64, generator=g) * 30 + 2
    with torch.no_grad():  # latents of one batch of 2+8-frame clips, as a training loader would produce
        cond_rgb, cond_depth = model.encode_rgb(rgb[:, :2]), model.encode_depth(depth[:, :2])
        x_rgb, x_depth = model.encode_rgb(rgb[:, 2:]), model.encode_depth(depth[:, 2:])
    schedule = NoiseSchedule.from_config(cfg.diffusion)
    optimizer = torch.optim.AdamW(model.net.parameters(), lr=1e-3)
    losses = []
    for _ in range(20):
        # the same timesteps, noise and dropout every step: one batch to overfit
        loss, parts = joint_loss(model.net, schedule, x_rgb, x_depth, cond_rgb, cond_depth,
                                 generator=torch.Generator().manual_seed(1), shared_noise=cfg.diffusion.shared_noise,
                                 dropout_probs=cfg.diffusion.dropout_probs)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        assert float(parts["rgb"] + parts["depth"]) == pytest.approx(losses[-1])
    return model.eval(), losses, (x_rgb, x_depth, cond_rgb, cond_depth)


def test_joint_loss_overfits_one_batch(trained):
    _, losses, _ = trained
    assert all(torch.isfinite(torch.tensor(losses)))
    # eps prediction starts at zero (zero-initialised heads): loss = E[eps^2] per modality, about 2 in total
    assert losses[0] == pytest.approx(2.0, abs=0.3)
    assert min(losses[-3:]) < 0.5 * losses[0]


def test_checkpoint_round_trip_gives_identical_outputs(trained, tmp_path):
    model, _, (x_rgb, x_depth, cond_rgb, cond_depth) = trained
    path = save_checkpoint(tmp_path / "smoke.safetensors", model, step=20)
    loaded = load_checkpoint(path, expected_config=model.cfg).model
    t = torch.tensor([10, 999])
    with torch.no_grad():
        for a, b in zip(model.net(x_rgb, x_depth, t, cond_rgb, cond_depth),
                        loaded.net(x_rgb, x_depth, t, cond_rgb, cond_depth)):
            assert torch.equal(a, b)
        assert torch.equal(model.decode_depth(x_depth, 8), loaded.decode_depth(x_depth, 8))


def test_loading_into_another_config_fails_clearly(trained, tmp_path):
    model, _, _ = trained
    path = save_checkpoint(tmp_path / "smoke.safetensors", model)
    other = load_model("preset:tiny").cfg
    heads = other.coupling.heads
    other.coupling.heads = 2 * heads
    with pytest.raises(CheckpointError, match=rf"different config .*coupling\.heads: {heads} vs {2 * heads}"):
        load_checkpoint(path, expected_config=other)
