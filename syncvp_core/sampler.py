"""DDIM sampling of the joint RGB-D latent (method reference §5, §6), kept apart from the network.

`DDIMSampler` is the small stateful object (diffusers style): `set_timesteps(n)` picks n of the training
timesteps (999, 989, …, 9 for n=100 of 1000) and `step(model_output, t, x, noise)` moves x_t to x_s, s the next
timestep (-1 after the last: alpha_bar = 1, so the last step returns the predicted x0). The model output is eps or
v (`prediction`, see diffusion.PREDICTION_TYPES); both give (x0, eps) first:

    x0    = clamp((x_t - sqrt(1 - a_t) eps) / sqrt(a_t), -1, 1)       (eps;  v: sqrt(a_t) x_t - sqrt(1 - a_t) v)
    sigma = eta * sqrt((1 - a_s) / (1 - a_t)) * sqrt(1 - a_t / a_s)
    x_s   = sqrt(a_s) x0 + sqrt(1 - a_s - sigma^2) eps + sigma z

with the raw (unclamped) eps in the direction term, as the reference (and diffusers). eta=1 (the reference default) makes sigma
the DDPM posterior standard deviation; eta=0 is deterministic.

`sample_joint` runs the loop for both modalities with one shared x_T and one shared z per step, and
`guided_eps` applies the reference's multi-modal guidance for any w >= 0 (F5):

    eps_rgb   = e_both + w (e_both - e_none) + w (e_both - e_depth_only)
    eps_depth = e_both + w (e_both - e_none) + w (e_both - e_rgb_only)

where e_X is the joint network's prediction with only X's conditioning kept (the other latent zeroed). Each
modality is pushed away from the unconditional prediction and from the prediction that lacks its own
conditioning. w = 0 is plain conditioning and costs one network pass; w > 0 costs one pass at 4× batch.
"""
from __future__ import annotations

import torch

from syncvp_core.diffusion import PREDICTION_TYPES, NoiseSchedule, randn, x0_and_eps


class DDIMSampler:
    def __init__(self, schedule: NoiseSchedule, steps: int = 100, eta: float = 1.0, prediction: str = "eps"):
        if eta < 0:
            raise ValueError(f"eta must be >= 0, got {eta}")
        if prediction not in PREDICTION_TYPES:
            raise ValueError(f"prediction type must be one of {PREDICTION_TYPES}, got {prediction!r}")
        self.schedule = schedule
        self.eta = eta
        self.prediction = prediction
        self.set_timesteps(steps)

    def set_timesteps(self, steps: int) -> None:
        """Use `steps` evenly spaced timesteps, descending; `prev_timesteps[i]` is where step i lands."""
        total = self.schedule.timesteps
        if not 1 <= steps <= total:
            raise ValueError(f"DDIM steps must be in 1..{total}, got {steps}")
        self.timesteps = [total * i // steps - 1 for i in range(steps, 0, -1)]
        self.prev_timesteps = self.timesteps[1:] + [-1]
        self._prev = dict(zip(self.timesteps, self.prev_timesteps))

    def sigma(self, t: int, prev_t: int) -> float:
        a_t, a_s = float(self.schedule.alpha_bar(t)), float(self.schedule.alpha_bar(prev_t))
        return self.eta * ((1 - a_s) / (1 - a_t)) ** 0.5 * (1 - a_t / a_s) ** 0.5

    def step(self, model_output: torch.Tensor, t: int, x: torch.Tensor, noise: torch.Tensor | None = None):
        """One update from timestep t (one of `self.timesteps`). Returns (x_prev, x0_pred).
        `noise` is the z of this step (needed when eta > 0; pass the same z to both modalities)."""
        prev_t = self._prev[t]
        a_t, a_s = float(self.schedule.alpha_bar(t)), float(self.schedule.alpha_bar(prev_t))
        x0, eps = x0_and_eps(self.prediction, model_output, x, a_t)
        x0 = x0.clamp(-1.0, 1.0)
        sigma = self.sigma(t, prev_t)
        x_prev = a_s ** 0.5 * x0 + max(1 - a_s - sigma ** 2, 0.0) ** 0.5 * eps
        if sigma > 0:
            if noise is None:
                raise ValueError("eta > 0 needs the step noise z")
            x_prev = x_prev + sigma * noise
        return x_prev, x0


SAMPLERS = ("ddim",)


def make_sampler(kind: str, schedule: NoiseSchedule, steps: int, eta: float = 1.0, prediction: str = "eps"):
    """The sampler called `kind` (one of SAMPLERS) for `steps` network evaluations per sample."""
    if kind == "ddim":
        return DDIMSampler(schedule, steps, eta, prediction)
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


def sample_joint(net, sampler: DDIMSampler, cond_rgb: torch.Tensor, cond_depth: torch.Tensor, shape,
                 guidance_scale: float = 0.0, generator: torch.Generator | None = None):
    """Target latents (x_rgb, x_depth), each of `shape` (B×c×L), from shared x_T and shared per-step noise."""
    x_rgb = randn(shape, generator, cond_rgb)
    x_depth = x_rgb.clone()
    for t in sampler.timesteps:
        t_batch = torch.full((shape[0],), t, dtype=torch.long, device=cond_rgb.device)
        eps_rgb, eps_depth = guided_eps(net, x_rgb, x_depth, t_batch, cond_rgb, cond_depth, guidance_scale)
        noise = randn(shape, generator, cond_rgb) if sampler.eta > 0 else None
        x_rgb, _ = sampler.step(eps_rgb, t, x_rgb, noise)
        x_depth, _ = sampler.step(eps_depth, t, x_depth, noise)
    return x_rgb, x_depth
