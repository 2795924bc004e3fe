"""DDIM and DPM-Solver++ sampling of the joint RGB-D latent (method reference §5, §6), apart from the network.

Both samplers are small stateful objects (diffusers style) with one interface: `set_timesteps(n)` picks n of the
training timesteps, "trailing" (999, 989, …, 9 for n=100 of 1000: the first step starts at the noisiest training
timestep whatever n is), and `step(model_output, t, x, noise, stream)` moves x_t to x_s, s the next timestep (-1
after the last: alpha_bar = 1, so the last step returns the predicted x0). The model output is eps or v
(`prediction`, see diffusion.PREDICTION_TYPES); both give (x0, eps) first. DDIM:

    x0    = clamp((x_t - sqrt(1 - a_t) eps) / sqrt(a_t), -1, 1)       (eps;  v: sqrt(a_t) x_t - sqrt(1 - a_t) v)
    sigma = eta * sqrt((1 - a_s) / (1 - a_t)) * sqrt(1 - a_t / a_s)
    x_s   = sqrt(a_s) x0 + sqrt(1 - a_s - sigma^2) eps + sigma z

with the raw (unclamped) eps in the direction term, as the reference (and diffusers). eta=1 (the reference default) makes sigma
the DDPM posterior standard deviation; eta=0 is deterministic.

`DPMSolverSampler` is DPM-Solver++ multistep (Lu et al. 2022, arXiv 2211.01095), deterministic, in x0 (data)
prediction: with lambda = log(sqrt(a) / sqrt(1 - a)), h = lambda_s - lambda_t and D0 = the clamped x0 of this step,

    x_s = sqrt(1 - a_s) / sqrt(1 - a_t) x_t - sqrt(a_s) (e^-h - 1) (D0 + D1 / 2),   D1 = (D0 - D0_prev) h / h_prev

(order 2; order 1 drops D1 and is DDIM eta=0 on the clamped x0; order 3 adds a second difference). It keeps the
x0 of the last steps, so `step` takes a `stream` name per sequence being sampled (sample_joint: "rgb", "depth").
The first step of a stream and the last step (to alpha_bar = 1, where it returns x0) are first order, and with
fewer than 15 steps order 3 drops to 2 at the second-to-last: diffusers' DPMSolverMultistepScheduler with
timestep_spacing="trailing", final_sigmas_type="zero", lower_order_final=True, thresholding to [-1, 1]
(test/test_sampler_dpm.py checks it step by step).

`sample_joint` runs the loop for both modalities with one shared x_T and one shared z per step, and
`guided_eps` applies the reference's multi-modal guidance for any w >= 0 (F5):

    eps_rgb   = e_both + w (e_both - e_none) + w (e_both - e_depth_only)
    eps_depth = e_both + w (e_both - e_none) + w (e_both - e_rgb_only)

where e_X is the joint network's prediction with only X's conditioning kept (the other latent zeroed). Each
modality is pushed away from the unconditional prediction and from the prediction that lacks its own
conditioning. w = 0 is plain conditioning and costs one network pass; w > 0 costs one pass at 4× batch.
"""
from __future__ import annotations

import math

import torch

from syncvp_core.config import SAMPLERS
from syncvp_core.diffusion import PREDICTION_TYPES, NoiseSchedule, randn, x0_and_eps


def trailing_timesteps(total: int, steps: int) -> list[int]:
    """`steps` timesteps of `total`, descending from total - 1 in strides of total / steps, floored (diffusers'
    "trailing" rounds instead: the same timesteps whenever steps divides total)."""
    if not 1 <= steps <= total:
        raise ValueError(f"sampling steps must be in 1..{total}, got {steps}")
    return [total * i // steps - 1 for i in range(steps, 0, -1)]


def _check_prediction(prediction: str) -> None:
    if prediction not in PREDICTION_TYPES:
        raise ValueError(f"prediction type must be one of {PREDICTION_TYPES}, got {prediction!r}")


class DDIMSampler:
    def __init__(self, schedule: NoiseSchedule, steps: int = 100, eta: float = 1.0, prediction: str = "eps"):
        if eta < 0:
            raise ValueError(f"eta must be >= 0, got {eta}")
        _check_prediction(prediction)
        self.schedule = schedule
        self.eta = eta
        self.prediction = prediction
        self.set_timesteps(steps)

    def set_timesteps(self, steps: int) -> None:
        """Use `steps` evenly spaced timesteps, descending; `prev_timesteps[i]` is where step i lands."""
        self.timesteps = trailing_timesteps(self.schedule.timesteps, steps)
        self.prev_timesteps = self.timesteps[1:] + [-1]
        self._prev = dict(zip(self.timesteps, self.prev_timesteps))

    def sigma(self, t: int, prev_t: int) -> float:
        a_t, a_s = float(self.schedule.alpha_bar(t)), float(self.schedule.alpha_bar(prev_t))
        return self.eta * ((1 - a_s) / (1 - a_t)) ** 0.5 * (1 - a_t / a_s) ** 0.5

    def step(self, model_output: torch.Tensor, t: int, x: torch.Tensor, noise: torch.Tensor | None = None,
             stream: str = "", x0_range=None):
        """One update from timestep t (one of `self.timesteps`). Returns (x_prev, x0_pred). `x0_range` (see
        `clip_x0`) bounds the predicted x0.
        `noise` is the z of this step (needed when eta > 0; pass the same z to both modalities). DDIM keeps
        nothing between steps: `stream` is there for the interface it shares with DPMSolverSampler."""
        prev_t = self._prev[t]
        a_t, a_s = float(self.schedule.alpha_bar(t)), float(self.schedule.alpha_bar(prev_t))
        x0, eps = x0_and_eps(self.prediction, model_output, x, a_t)
        x0 = clip_x0(x0, x0_range)
        sigma = self.sigma(t, prev_t)
        x_prev = a_s ** 0.5 * x0 + max(1 - a_s - sigma ** 2, 0.0) ** 0.5 * eps
        if sigma > 0:
            if noise is None:
                raise ValueError("eta > 0 needs the step noise z")
            x_prev = x_prev + sigma * noise
        return x_prev, x0


class DPMSolverSampler:
    """DPM-Solver++ multistep of the module docstring, `order` 1, 2 or 3."""

    eta = 0.0  # deterministic: sample_joint draws no step noise for it

    def __init__(self, schedule: NoiseSchedule, steps: int = 25, prediction: str = "eps", order: int = 2):
        _check_prediction(prediction)
        if order not in (1, 2, 3):
            raise ValueError(f"DPM-Solver++ order must be 1, 2 or 3, got {order!r}")
        self.schedule = schedule
        self.prediction = prediction
        self.order = order
        self.set_timesteps(steps)

    def set_timesteps(self, steps: int) -> None:
        """As DDIMSampler's; also forgets every stream's history."""
        self.timesteps = trailing_timesteps(self.schedule.timesteps, steps)
        self.prev_timesteps = self.timesteps[1:] + [-1]
        self._index = {t: i for i, t in enumerate(self.timesteps)}
        self._history: dict[str, list[tuple[int, torch.Tensor]]] = {}  # stream -> [(t, x0)], newest last

    def _lambda(self, t: int) -> float:
        a = float(self.schedule.alpha_bar(t))
        return 0.5 * math.log(a / (1.0 - a))

    def _order_at(self, i: int) -> int:
        n = len(self.timesteps)
        if i == n - 1:  # the step to alpha_bar = 1 (lambda = inf): only first order lands on x0 itself
            return 1
        order = min(self.order, i + 1)  # as many earlier x0 as this sample has
        # few steps: the large last strides make a third-order extrapolation unstable (as diffusers)
        return min(order, 2) if i == n - 2 and n < 15 else order

    def step(self, model_output: torch.Tensor, t: int, x: torch.Tensor, noise: torch.Tensor | None = None,
             stream: str = "", x0_range=None):
        """One update from timestep t of the sequence `stream`. Returns (x_prev, x0_pred). The first timestep
        starts the stream afresh; any other must follow the stream's previous step. `noise` is unused;
        `x0_range` as for DDIMSampler.step."""
        i = self._index[t]
        history = [] if i == 0 else self._history.get(stream, [])
        if i and (not history or history[-1][0] != self.timesteps[i - 1]):
            raise ValueError(f"DPM-Solver++ stream {stream!r}: step at t={t} does not follow its previous step")
        a_t = float(self.schedule.alpha_bar(t))
        x0 = clip_x0(x0_and_eps(self.prediction, model_output, x, a_t)[0], x0_range)
        history = (history + [(t, x0)])[-self.order:]
        self._history[stream] = history
        prev_t = self.prev_timesteps[i]
        if prev_t < 0:
            return x0, x0
        a_s = float(self.schedule.alpha_bar(prev_t))
        lambdas = [self._lambda(s) for s, _ in reversed(history)]  # this step's first
        h = self._lambda(prev_t) - lambdas[0]
        phi = math.expm1(-h)
        x_prev = ((1 - a_s) / (1 - a_t)) ** 0.5 * x - a_s ** 0.5 * phi * x0
        order = self._order_at(i)
        m = [x0_ for _, x0_ in reversed(history)]
        if order == 2:
            r0 = (lambdas[0] - lambdas[1]) / h
            x_prev = x_prev - 0.5 * a_s ** 0.5 * phi * (m[0] - m[1]) / r0
        elif order == 3:
            r0, r1 = (lambdas[0] - lambdas[1]) / h, (lambdas[1] - lambdas[2]) / h
            d1_0, d1_1 = (m[0] - m[1]) / r0, (m[1] - m[2]) / r1
            d1 = d1_0 + r0 / (r0 + r1) * (d1_0 - d1_1)
            d2 = (d1_0 - d1_1) / (r0 + r1)
            x_prev = x_prev + a_s ** 0.5 * ((phi / h + 1) * d1 - ((phi + h) / h ** 2 - 0.5) * d2)
        return x_prev, x0


def clip_x0(x0: torch.Tensor, x0_range=None) -> torch.Tensor:
    """x0 clamped to `x0_range` = (low, high), numbers or tensors broadcast against x0 (per channel: c×1 for a
    B×c×L latent); None is [-1, 1], the range of raw (tanh) latents. A model that standardises its latents passes
    the image of [-1, 1] under its standardisation (`SyncVP.latent_range`): clamping standardised latents at ±1
    would cut off every value beyond one standard deviation."""
    low, high = (-1.0, 1.0) if x0_range is None else x0_range
    return torch.clamp(x0, min=low, max=high)


def make_sampler(kind: str, schedule: NoiseSchedule, steps: int, eta: float = 1.0, prediction: str = "eps"):
    """The sampler called `kind` (one of SAMPLERS) for `steps` network evaluations per sample; `eta` is DDIM's
    (DPM-Solver++ is deterministic)."""
    if kind == "ddim":
        return DDIMSampler(schedule, steps, eta, prediction)
    if kind == "dpmsolver":
        return DPMSolverSampler(schedule, steps, prediction)
    raise ValueError(f"sampler must be one of {SAMPLERS}, got {kind!r}")


def guided_eps(net, x_rgb, x_depth, t: torch.Tensor, cond_rgb, cond_depth, guidance_scale: float = 0.0):
    """(eps_rgb, eps_depth) of the joint network with the multi-modal guidance of the module docstring."""
    if guidance_scale < 0:
        raise ValueError(f"guidance scale must be >= 0, got {guidance_scale}")
    if guidance_scale == 0:
        return net(x_rgb, x_depth, t, cond_rgb, cond_depth)
    zr, zd = torch.zeros_like(cond_rgb), torch.zeros_like(cond_depth)
    # One pass at 4× batch: both conditions, RGB only, depth only, none.
    eps_rgb, eps_depth = net(torch.cat([x_rgb] * 4), torch.cat([x_depth] * 4), t.repeat(4),
                             torch.cat([cond_rgb, cond_rgb, zr, zr]), torch.cat([cond_depth, zd, cond_depth, zd]))
    r_both, r_rgb_only, r_depth_only, r_none = eps_rgb.chunk(4)
    d_both, d_rgb_only, d_depth_only, d_none = eps_depth.chunk(4)
    w = guidance_scale
    return (r_both + w * (r_both - r_none) + w * (r_both - r_depth_only),
            d_both + w * (d_both - d_none) + w * (d_both - d_rgb_only))


def sample_joint(net, sampler: DDIMSampler | DPMSolverSampler, cond_rgb: torch.Tensor, cond_depth: torch.Tensor, shape,
                 guidance_scale: float = 0.0, generator: torch.Generator | None = None, before_step=None,
                 x0_ranges: dict | None = None):
    """Target latents (x_rgb, x_depth), each of `shape` (B×c×L), from shared x_T and shared per-step noise.
    `before_step()`, if given, runs before every network evaluation (the rollout's cancellation check);
    `x0_ranges` ({"rgb": range, "depth": range}, see `clip_x0`) bounds each modality's predicted x0."""
    x0_ranges = x0_ranges or {}
    x_rgb = randn(shape, generator, cond_rgb)
    x_depth = x_rgb.clone()
    for t in sampler.timesteps:
        if before_step is not None:
            before_step()
        t_batch = torch.full((shape[0],), t, dtype=torch.long, device=cond_rgb.device)
        eps_rgb, eps_depth = guided_eps(net, x_rgb, x_depth, t_batch, cond_rgb, cond_depth, guidance_scale)
        noise = randn(shape, generator, cond_rgb) if sampler.eta > 0 else None
        x_rgb, _ = sampler.step(eps_rgb, t, x_rgb, noise, stream="rgb", x0_range=x0_ranges.get("rgb"))
        x_depth, _ = sampler.step(eps_depth, t, x_depth, noise, stream="depth", x0_range=x0_ranges.get("depth"))
    return x_rgb, x_depth
