"""Forward diffusion and the joint training loss of SyncVP (method reference §5, §6).

The schedule is LDM "linear": sqrt(beta) linear from sqrt(beta_start) to sqrt(beta_end), squared, 1000 steps,
so alpha_bar at t=999 is about 1.42e-4. The network predicts the noise (epsilon).

The joint loss noises the RGB and depth target latents at ONE timestep per sample with ONE shared noise tensor
(the reference's `same_noise`; `shared_noise=False` draws independent noise and `shared_timestep=False` an
independent depth timestep, for the ablations) and sums the two
epsilon MSEs (or v MSEs, for a v-prediction model). Before the call, cross-modality conditioning dropout picks per sample which conditioning the network
sees: both, RGB only or depth only (50/25/25 by default, F6). A dropped modality's conditioning latent is exactly
zero; its target is untouched, so both targets stay the same temporally aligned window (F4).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from syncvp_core.modalities import CONDITIONING_MODES

# What the network outputs: the noise (eps, the paper's) or the velocity v = sqrt(a) eps - sqrt(1 - a) x0.
PREDICTION_TYPES = ("eps", "v")


def training_target(prediction: str, x0: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """The regression target of the network for clean x0, noise and alpha_bar (broadcastable to x0)."""
    if prediction == "eps":
        return noise
    if prediction == "v":
        return alpha_bar.sqrt() * noise - (1.0 - alpha_bar).sqrt() * x0
    raise ValueError(f"prediction type must be one of {PREDICTION_TYPES}, got {prediction!r}")


def x0_and_eps(prediction: str, model_output: torch.Tensor, x_t: torch.Tensor, alpha_bar) -> tuple:
    """(x0, eps) implied by the network output at x_t; alpha_bar is a float or broadcastable tensor."""
    a = torch.as_tensor(alpha_bar, dtype=x_t.dtype, device=x_t.device)
    if prediction == "eps":
        return (x_t - (1.0 - a).sqrt() * model_output) / a.sqrt(), model_output
    if prediction == "v":
        return a.sqrt() * x_t - (1.0 - a).sqrt() * model_output, (1.0 - a).sqrt() * x_t + a.sqrt() * model_output
    raise ValueError(f"prediction type must be one of {PREDICTION_TYPES}, got {prediction!r}")


class NoiseSchedule:
    """alpha_bar_t of the discrete forward process, t = 0 … timesteps-1, kept in float64."""

    def __init__(self, timesteps: int = 1000, beta_start: float = 0.0015, beta_end: float = 0.0195):
        self.timesteps = timesteps
        self.betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, timesteps, dtype=torch.float64) ** 2
        self.alphas_cumprod = torch.cumprod(1.0 - self.betas, dim=0)

    @classmethod
    def from_config(cls, diffusion_cfg) -> "NoiseSchedule":
        return cls(diffusion_cfg.timesteps, diffusion_cfg.beta_start, diffusion_cfg.beta_end)

    def alpha_bar(self, t: torch.Tensor | int) -> torch.Tensor:
        """alpha_bar at integer timestep(s) t, float64 on the CPU; t = -1 means "clean" (alpha_bar = 1)."""
        t = torch.as_tensor(t, dtype=torch.long).cpu()
        return torch.where(t >= 0, self.alphas_cumprod[t.clamp_min(0)], torch.ones((), dtype=torch.float64))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise, one t per sample."""
        a = self.alphas_cumprod.to(x0.device)[t].to(x0.dtype).reshape(-1, *([1] * (x0.dim() - 1)))
        return a.sqrt() * x0 + (1.0 - a).sqrt() * noise


def draw_device(generator: torch.Generator | None, device) -> torch.device:
    """Where random numbers are drawn: on the generator's own device, so that a CPU generator gives the same
    draws (and so the same samples) whatever device the model runs on."""
    return generator.device if generator is not None else torch.device(device)


def randn(shape, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """Standard normal of `like`'s dtype, moved to `like`'s device."""
    return torch.randn(shape, generator=generator, device=draw_device(generator, like.device),
                       dtype=like.dtype).to(like.device)


def draw_conditioning_modes(batch: int, probs=(0.5, 0.25, 0.25), generator: torch.Generator | None = None,
                        device="cpu") -> torch.Tensor:
    """Per-sample index into CONDITIONING_MODES, drawn with probabilities `probs` (both, RGB only, depth only)."""
    p = torch.as_tensor(probs, dtype=torch.float64)
    if p.shape != (3,) or (p < 0).any() or not torch.isclose(p.sum(), torch.tensor(1.0, dtype=torch.float64)):
        raise ValueError(f"dropout_probs must be three non-negative numbers summing to 1, got {tuple(probs)}")
    u = torch.rand(batch, generator=generator, device=draw_device(generator, device), dtype=torch.float64)
    return torch.bucketize(u, torch.cumsum(p, 0)[:2].to(u.device), right=True).to(device)


def drop_conditioning(cond_rgb: torch.Tensor, cond_depth: torch.Tensor, modes: torch.Tensor):
    """Zero the conditioning latent of the modality each sample's conditioning mode leaves out."""
    keep_rgb = (modes != CONDITIONING_MODES.index("depth")).reshape(-1, *([1] * (cond_rgb.dim() - 1)))
    keep_depth = (modes != CONDITIONING_MODES.index("rgb")).reshape(-1, *([1] * (cond_depth.dim() - 1)))
    return cond_rgb * keep_rgb, cond_depth * keep_depth


def joint_loss(net, schedule: NoiseSchedule, x_rgb: torch.Tensor, x_depth: torch.Tensor,
               cond_rgb: torch.Tensor, cond_depth: torch.Tensor, generator: torch.Generator | None = None,
               shared_noise: bool = True, dropout_probs=(0.5, 0.25, 0.25), shared_timestep: bool = True,
               prediction: str = "eps", timesteps: Sequence[int] = ()):
    """L_rgb + L_depth for one batch of target latents x_* (B×c×L) and conditioning latents cond_* (B×c×L_cond).
    `timesteps`: draw t from these only (a few-step fine-tune at its sampler's timesteps); empty: from all.

    `net(x_rgb_t, x_depth_t, t, cond_rgb, cond_depth, t_depth) -> (eps_rgb, eps_depth)`. Returns (loss, parts)
    where parts holds the detached per-modality losses, the drawn conditioning modes and both timesteps.
    """
    batch = x_rgb.shape[0]
    t = random_timesteps(schedule, batch, generator, x_rgb.device, timesteps)
    t_depth = t if shared_timestep else random_timesteps(schedule, batch, generator, x_rgb.device, timesteps)
    noise_rgb = randn(x_rgb.shape, generator, x_rgb)
    noise_depth = noise_rgb if shared_noise else randn(x_depth.shape, generator, x_depth)
    modes = draw_conditioning_modes(batch, dropout_probs, generator, x_rgb.device)
    cond_rgb, cond_depth = drop_conditioning(cond_rgb, cond_depth, modes)

    out_rgb, out_depth = net(schedule.q_sample(x_rgb, t, noise_rgb),
                             schedule.q_sample(x_depth, t_depth, noise_depth), t, cond_rgb, cond_depth, t_depth)
    loss_rgb = F.mse_loss(out_rgb, _target(schedule, prediction, x_rgb, noise_rgb, t))
    loss_depth = F.mse_loss(out_depth, _target(schedule, prediction, x_depth, noise_depth, t_depth))
    parts = {"rgb": loss_rgb.detach(), "depth": loss_depth.detach(), "modes": modes, "t": t, "t_depth": t_depth}
    return loss_rgb + loss_depth, parts


def branch_loss(branch, schedule: NoiseSchedule, modality: str, x: torch.Tensor, cond: torch.Tensor,
                generator: torch.Generator | None = None, cond_dropout: float = 0.25, prediction: str = "eps"):
    """Stage 2: one modality's branch alone, `branch(x_t, t, cond) -> output`. Its conditioning is dropped for a
    `cond_dropout` share of the samples, drawn as the joint loss draws the guidance mode that lacks this modality,
    so the branch sees what the joint model's modality dropout will show it. Returns the MSE."""
    other = CONDITIONING_MODES.index("depth" if modality == "rgb" else "rgb")  # the mode without this modality
    probs = [1.0 - cond_dropout, 0.0, 0.0]
    probs[other] = cond_dropout
    t = random_timesteps(schedule, x.shape[0], generator, x.device)
    noise = randn(x.shape, generator, x)
    modes = draw_conditioning_modes(x.shape[0], probs, generator, x.device)
    kept = drop_conditioning(cond, cond, modes)[0 if modality == "rgb" else 1]
    return F.mse_loss(branch(schedule.q_sample(x, t, noise), t, kept), _target(schedule, prediction, x, noise, t))


def random_timesteps(schedule: NoiseSchedule, batch: int, generator, device,
                     choices: Sequence[int] = ()) -> torch.Tensor:
    """`batch` timesteps, uniform over all of the schedule's or over `choices`."""
    drawn = torch.randint(0, len(choices) or schedule.timesteps, (batch,), generator=generator,
                          device=draw_device(generator, device)).to(device)
    return torch.tensor(list(choices), device=device)[drawn] if choices else drawn


def _target(schedule: NoiseSchedule, prediction: str, x0, noise, t):
    a = schedule.alphas_cumprod.to(x0.device)[t].to(x0.dtype).reshape(-1, *([1] * (x0.dim() - 1)))
    return training_target(prediction, x0, noise, a)
