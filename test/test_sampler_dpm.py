"""DPM-Solver++ and DDIM against diffusers' schedulers (step by step, float64) and against an oracle network."""
import pytest
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

from syncvp_core.config import DiffusionConfig
from syncvp_core.diffusion import NoiseSchedule, training_target
from syncvp_core.sampler import DDIMSampler, DPMSolverSampler, make_sampler, sample_joint

SHAPE = (2, 4, 24)
DIFFUSERS_PREDICTION = {"eps": "epsilon", "v": "v_prediction"}
# Our NoiseSchedule in diffusers' words: the LDM "linear" schedule is their "scaled_linear".
SCHEDULE = dict(num_train_timesteps=1000, beta_start=0.0015, beta_end=0.0195, beta_schedule="scaled_linear",
                timestep_spacing="trailing")


class OracleNet:
    """Knows the clean latents: returns the true eps (or v) of x_t."""

    def __init__(self, schedule, x0_rgb, x0_depth, prediction="eps"):
        self.schedule, self.x0, self.prediction = schedule, (x0_rgb, x0_depth), prediction
        self.calls = 0

    def __call__(self, x_rgb, x_depth, t, cond_rgb, cond_depth):
        self.calls += 1
        a = self.schedule.alpha_bar(t).to(x_rgb).reshape(-1, 1, 1)
        eps = [(x - a.sqrt() * x0) / (1 - a).sqrt() for x, x0 in zip((x_rgb, x_depth), self.x0)]
        return tuple(training_target(self.prediction, x0, e, a) for x0, e in zip(self.x0, eps))


class LinearNet:
    def __call__(self, x_rgb, x_depth, t, cond_rgb, cond_depth):
        s = t.to(x_rgb).reshape(-1, 1, 1) / 1000
        return 0.5 * x_rgb + 0.3 * cond_rgb.mean(-1, keepdim=True) + s, 0.4 * x_depth - s


def clean_latents():
    g = torch.Generator().manual_seed(0)
    return torch.rand(SHAPE, generator=g) * 1.8 - 0.9, torch.rand(SHAPE, generator=g) * 1.8 - 0.9


def conds():
    g = torch.Generator().manual_seed(9)
    return torch.randn(2, 4, 12, generator=g), torch.randn(2, 4, 12, generator=g)


def with_our_alphas(scheduler, schedule):
    """diffusers builds alpha_bar in float32; the cross-check compares the algorithms, so it gets our float64 one
    (test_diffusers_builds_the_same_schedule shows the two agree to float32 rounding)."""
    scheduler.alphas_cumprod = schedule.alphas_cumprod.clone()
    return scheduler


def test_diffusers_builds_the_same_schedule():
    ours = NoiseSchedule()
    theirs = DDIMScheduler(**SCHEDULE)
    assert torch.allclose(theirs.betas.double(), ours.betas, rtol=1e-6, atol=0)
    assert torch.allclose(theirs.alphas_cumprod.double(), ours.alphas_cumprod, rtol=1e-4, atol=0)


# diffusers' set_timesteps calls np.array on a torch tensor, which numpy 2 warns about
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
@pytest.mark.parametrize("prediction", ["eps", "v"])
@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize("steps", [5, 10, 25])
def test_dpm_solver_matches_diffusers_step_by_step(steps, order, prediction):
    schedule = NoiseSchedule()
    ours = DPMSolverSampler(schedule, steps, prediction, order)
    theirs = with_our_alphas(DPMSolverMultistepScheduler(
        **SCHEDULE, solver_order=order, prediction_type=DIFFUSERS_PREDICTION[prediction],
        algorithm_type="dpmsolver++", solver_type="midpoint", lower_order_final=True, final_sigmas_type="zero",
        thresholding=True, sample_max_value=1.0), schedule)  # thresholding at max 1 is the clamp to [-1, 1]
    theirs.set_timesteps(steps)
    assert theirs.timesteps.tolist() == ours.timesteps
    g = torch.Generator().manual_seed(steps + order)
    x_ours = x_theirs = torch.randn(SHAPE, generator=g, dtype=torch.float64)
    for t in ours.timesteps:
        model_output = torch.randn(SHAPE, generator=g, dtype=torch.float64)
        x_ours, _ = ours.step(model_output, t, x_ours)
        x_theirs = theirs.step(model_output, t, x_theirs).prev_sample
        assert torch.allclose(x_ours, x_theirs, atol=1e-5, rtol=0), f"t={t}"


@pytest.mark.parametrize("prediction", ["eps", "v"])
@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("steps", [5, 10, 25])
def test_ddim_matches_diffusers_step_by_step(steps, eta, prediction):
    schedule = NoiseSchedule()
    ours = DDIMSampler(schedule, steps, eta, prediction)
    theirs = with_our_alphas(DDIMScheduler(**SCHEDULE, clip_sample=True, clip_sample_range=1.0,
                                           set_alpha_to_one=True, steps_offset=0,
                                           prediction_type=DIFFUSERS_PREDICTION[prediction]), schedule)
    theirs.set_timesteps(steps)
    assert theirs.timesteps.tolist() == ours.timesteps
    g = torch.Generator().manual_seed(steps)
    x_ours = x_theirs = torch.randn(SHAPE, generator=g, dtype=torch.float64)
    for t in ours.timesteps:
        model_output, z = torch.randn((2, *SHAPE), generator=g, dtype=torch.float64)
        x_ours, _ = ours.step(model_output, t, x_ours, z)
        x_theirs = theirs.step(model_output, t, x_theirs, eta=eta, variance_noise=z).prev_sample
        assert torch.allclose(x_ours, x_theirs, atol=1e-5, rtol=0), f"t={t}"


@pytest.mark.parametrize("prediction", ["eps", "v"])
@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("steps", [1, 2, 10, 100])
def test_dpm_solver_with_an_oracle_network_returns_x0(steps, order, prediction):
    schedule = NoiseSchedule()
    x0_rgb, x0_depth = clean_latents()
    net = OracleNet(schedule, x0_rgb, x0_depth, prediction)
    out_rgb, out_depth = sample_joint(net, DPMSolverSampler(schedule, steps, prediction, order), *conds(), SHAPE,
                                      generator=torch.Generator().manual_seed(1))
    assert net.calls == steps
    assert torch.allclose(out_rgb, x0_rgb, atol=1e-4) and torch.allclose(out_depth, x0_depth, atol=1e-4)


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("steps", [1, 10, 100])
def test_ddim_with_a_v_oracle_returns_x0(steps, eta):
    schedule = NoiseSchedule()
    x0_rgb, x0_depth = clean_latents()
    net = OracleNet(schedule, x0_rgb, x0_depth, "v")
    out_rgb, out_depth = sample_joint(net, DDIMSampler(schedule, steps, eta, "v"), *conds(), SHAPE,
                                      generator=torch.Generator().manual_seed(1))
    assert torch.allclose(out_rgb, x0_rgb, atol=1e-4) and torch.allclose(out_depth, x0_depth, atol=1e-4)


def test_each_modality_keeps_its_own_history():
    schedule, c_r, c_d = NoiseSchedule(), *conds()
    sampler = DPMSolverSampler(schedule, 6)
    sampled = sample_joint(LinearNet(), sampler, c_r, c_d, SHAPE, generator=torch.Generator().manual_seed(0))
    # by hand: one sampler per modality, from the same x_T
    rgb_sampler, depth_sampler = DPMSolverSampler(schedule, 6), DPMSolverSampler(schedule, 6)
    x = y = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    for t in rgb_sampler.timesteps:
        eps_x, eps_y = LinearNet()(x, y, torch.full((2,), t), c_r, c_d)
        x, y = rgb_sampler.step(eps_x, t, x)[0], depth_sampler.step(eps_y, t, y)[0]
    assert torch.equal(sampled[0], x) and torch.equal(sampled[1], y)
    # a second sample starts afresh: the same x_T gives the same result
    again = sample_joint(LinearNet(), sampler, c_r, c_d, SHAPE, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again[0], x)


def test_out_of_order_steps_are_refused():
    sampler = DPMSolverSampler(NoiseSchedule(), 5)
    x = torch.randn(SHAPE)
    t0, t1, t2 = sampler.timesteps[:3]
    sampler.step(x, t0, x, stream="rgb")
    with pytest.raises(ValueError, match="depth"):
        sampler.step(x, t1, x, stream="depth")  # depth never took the first step
    with pytest.raises(ValueError):
        sampler.step(x, t2, x, stream="rgb")  # skips t1
    sampler.set_timesteps(5)  # forgets the history
    with pytest.raises(ValueError):
        sampler.step(x, t1, x, stream="rgb")


def test_sampler_choice_and_arguments():
    schedule = NoiseSchedule()
    dpm = make_sampler("dpmsolver", schedule, 8, eta=1.0, prediction="v")
    assert isinstance(dpm, DPMSolverSampler) and dpm.prediction == "v" and dpm.eta == 0.0
    assert len(dpm.timesteps) == 8 and dpm.timesteps == DDIMSampler(schedule, 8).timesteps
    assert isinstance(make_sampler("ddim", schedule, 8, 0.0), DDIMSampler)
    for bad in (lambda: make_sampler("plms", schedule, 8), lambda: DPMSolverSampler(schedule, 8, order=4),
                lambda: DPMSolverSampler(schedule, 0), lambda: DPMSolverSampler(schedule, 8, "x0"),
                lambda: DiffusionConfig(sampler="plms")):
        with pytest.raises(ValueError):
            bad()
