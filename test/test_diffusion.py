import pytest
import torch

from syncvp_core.diffusion import NoiseSchedule, draw_conditioning_modes, joint_loss
from syncvp_core.modalities import CONDITIONING_MODES

SHAPE = (64, 4, 24)  # B×c×L target latents


class SpyNet:
    """Records what the loss feeds the network and predicts zero noise."""

    def __call__(self, x_rgb, x_depth, t, cond_rgb, cond_depth, t_depth):
        self.inputs = (x_rgb, x_depth, t, cond_rgb, cond_depth)
        self.t_depth = t_depth
        return torch.zeros_like(x_rgb), torch.zeros_like(x_depth)


def implied_noise(schedule, x_t, x0, t):
    a = schedule.alphas_cumprod[t].float().reshape(-1, 1, 1)
    return (x_t - a.sqrt() * x0) / (1 - a).sqrt()


def run_spy_loss(shared_noise, seed=0, shared_timestep=True):
    g = torch.Generator().manual_seed(seed)
    x_rgb, x_depth = torch.rand(SHAPE, generator=g) * 2 - 1, torch.rand(SHAPE, generator=g) * 2 - 1
    cond_rgb, cond_depth = torch.rand(64, 4, 12, generator=g) + 0.5, torch.rand(64, 4, 12, generator=g) + 0.5
    net, schedule = SpyNet(), NoiseSchedule()
    loss, parts = joint_loss(net, schedule, x_rgb, x_depth, cond_rgb, cond_depth, generator=g,
                             shared_noise=shared_noise, shared_timestep=shared_timestep)
    parts["net_t_depth"] = net.t_depth
    return schedule, net.inputs, (x_rgb, x_depth, cond_rgb, cond_depth), loss, parts


def test_schedule_matches_reference():
    s = NoiseSchedule()
    assert s.timesteps == 1000
    assert float(s.betas[0]) == pytest.approx(0.0015) and float(s.betas[-1]) == pytest.approx(0.0195)
    assert float(s.alpha_bar(999)) == pytest.approx(1.42e-4, rel=0.01)
    assert float(s.alpha_bar(-1)) == 1.0  # "clean", where the last DDIM step lands
    assert torch.all(s.alphas_cumprod[1:] < s.alphas_cumprod[:-1])


def test_q_sample_moments():
    s, g = NoiseSchedule(), torch.Generator().manual_seed(1)
    x0 = torch.full((20000, 1, 1), 0.5)
    t = torch.full((20000,), 500)
    x_t = s.q_sample(x0, t, torch.randn(x0.shape, generator=g))
    a = float(s.alpha_bar(500))
    assert float(x_t.mean()) == pytest.approx(a ** 0.5 * 0.5, abs=0.02)
    assert float(x_t.var()) == pytest.approx(1 - a, abs=0.03)


def test_joint_loss_shares_noise_and_timestep_and_keeps_targets_aligned():
    schedule, (xt_rgb, xt_depth, t, _, _), (x_rgb, x_depth, _, _), loss, parts = run_spy_loss(True)
    assert t.shape == (64,) and len(set(t.tolist())) > 10  # one t per sample, both modalities
    eps_rgb, eps_depth = implied_noise(schedule, xt_rgb, x_rgb, t), implied_noise(schedule, xt_depth, x_depth, t)
    # the noisy inputs are the given (aligned) targets noised with one shared epsilon
    assert torch.allclose(eps_rgb, eps_depth, atol=1e-3)
    assert float(eps_rgb.std()) == pytest.approx(1.0, abs=0.05)
    # zero prediction: each part is the mean squared noise, the loss their sum
    assert float(parts["rgb"]) == pytest.approx(float(eps_rgb.pow(2).mean()), rel=1e-3)
    assert float(loss) == pytest.approx(float(parts["rgb"] + parts["depth"]))


def test_joint_loss_draws_only_the_timesteps_it_is_given():
    g = torch.Generator().manual_seed(5)
    x = torch.rand(SHAPE, generator=g) * 2 - 1
    cond = torch.rand(64, 4, 12, generator=g)
    net = SpyNet()
    _, parts = joint_loss(net, NoiseSchedule(), x, x, cond, cond, generator=g, shared_timestep=False,
                          timesteps=(999, 499))
    for t in (parts["t"], parts["t_depth"]):
        assert set(t.tolist()) == {999, 499}  # both, and nothing else, over 64 samples


def test_joint_loss_independent_noise_for_ablation():
    schedule, (xt_rgb, xt_depth, t, _, _), (x_rgb, x_depth, _, _), _, _ = run_spy_loss(False)
    eps_rgb, eps_depth = implied_noise(schedule, xt_rgb, x_rgb, t), implied_noise(schedule, xt_depth, x_depth, t)
    assert abs(float(torch.corrcoef(torch.stack([eps_rgb.flatten(), eps_depth.flatten()]))[0, 1])) < 0.05


def test_dropped_conditioning_is_exactly_zero():
    _, (_, _, _, c_rgb, c_depth), (_, _, cond_rgb, cond_depth), _, parts = run_spy_loss(True, seed=3)
    modes = parts["modes"]
    for i, mode in enumerate(modes.tolist()):
        name = CONDITIONING_MODES[mode]
        assert torch.equal(c_rgb[i], cond_rgb[i] if name in ("rgbd", "rgb") else torch.zeros_like(cond_rgb[i]))
        assert torch.equal(c_depth[i], cond_depth[i] if name in ("rgbd", "depth") else torch.zeros_like(c_depth[i]))
    assert set(modes.tolist()) == {0, 1, 2}


@pytest.mark.parametrize("probs", [(0.5, 0.25, 0.25), (0.2, 0.3, 0.5)])
def test_dropout_frequencies(probs):
    modes = draw_conditioning_modes(20000, probs, torch.Generator().manual_seed(0))
    freq = torch.bincount(modes, minlength=3).float() / 20000
    assert torch.allclose(freq, torch.tensor(probs), atol=0.02)


def test_dropout_probs_are_validated():
    with pytest.raises(ValueError, match="summing to 1"):
        draw_conditioning_modes(4, (0.5, 0.5, 0.5))


def test_independent_timestep_ablation_noises_depth_at_its_own_t():
    schedule, (xt_rgb, xt_depth, t, _, _), (x_rgb, x_depth, _, _), _, parts = run_spy_loss(True, shared_timestep=False)
    t_depth = parts["net_t_depth"]
    assert torch.equal(parts["t_depth"], t_depth) and (t_depth != t).float().mean() > 0.9
    # with shared noise but separate timesteps, each target is noised at its own t with the same epsilon
    eps_rgb = implied_noise(schedule, xt_rgb, x_rgb, t)
    eps_depth = implied_noise(schedule, xt_depth, x_depth, t_depth)
    assert torch.allclose(eps_rgb, eps_depth, atol=1e-3)
    _, (_, _, t_shared, _, _), _, _, shared = run_spy_loss(True)
    assert torch.equal(shared["net_t_depth"], t_shared)
