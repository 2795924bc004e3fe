"""The loss of each stage and its validation samples (method reference §2, §5, §7).

- "autoencoder": L1 on the clip plus LPIPS on one random frame per clip (when the LPIPS weights are installed), no
  GAN; a context decoder gets the frame before the clip (dropped for a share of the clips).
- "diffusion": one modality's branch alone on `diffusion.branch_loss` (conditioning dropout as `drop_conditioning`).
- "joint": both branches and the couplings on `diffusion.joint_loss`.
Stages 2 and 3 read cached latents when the batch carries them (train/latents.py).
"""
from __future__ import annotations

import torch
from torch import nn

from syncvp_core.diffusion import NoiseSchedule, branch_loss, joint_loss
from syncvp_core.metrics.lpips import load_lpips
from syncvp_core.metrics.weights import MissingWeightsError
from syncvp_core.model import SyncVP
from syncvp_core.sampler import make_sampler, sample_joint
from syncvp_core.train.initial_weights import autoencoder_frames
from syncvp_core.modalities import MODALITIES
from syncvp_core.train.settings import TrainConfig, TrainingError

def clip_latents(model: SyncVP, batch: dict, modality: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(conditioning latent, target latent) of one modality of a (cond + target)-frame clip batch: from the
    latent cache when the batch carries cached latents, else encoded now."""
    if f"{modality}.cond" in batch:
        return batch[f"{modality}.cond"], batch[f"{modality}.target"]
    video, cond_frames = batch[modality], model.cfg.cond_frames
    with torch.no_grad():
        return model.encode(modality, video[:, :cond_frames]), model.encode(modality, video[:, cond_frames:])


SAMPLE_CLIPS = 2  # validation clips shown in the sample image


def to_image(*videos: torch.Tensor) -> torch.Tensor:
    """Model-space videos B×C×T×H×W (C = 1 or 3, same T) -> one 3×H'×W' image in [0, 1]: per clip, one row per
    video (e.g. truth, then prediction), frames left to right; depth shows as grey, near bright."""
    rows = torch.stack([v.float().expand(-1, 3, -1, -1, -1) for v in videos], 1).flatten(0, 1)
    n, c, t, h, w = rows.shape
    return ((rows.clamp(-1, 1) + 1) / 2).permute(1, 0, 3, 2, 4).reshape(3, n * h, t * w)


def truth_and_prediction(model: SyncVP, batch: dict, modality: str, latent: torch.Tensor):
    """Model-space (truth, prediction) clips of one modality: the prediction is the true conditioning frames
    followed by the decoded target latent."""
    cfg = model.cfg
    real, _ = model.model_space(modality, batch[modality][:, :cfg.cond_frames + cfg.target_frames])
    decoded = model.decode(modality, latent, cfg.target_frames, context=batch[modality][:, cfg.cond_frames - 1])
    return real, torch.cat([real[:, :, :cfg.cond_frames], decoded], dim=2)


def single_branch_net(branch: nn.Module):
    """A single branch behind the joint network's call signature, for `sample_joint`: both outputs are the
    branch's ε of the first input. sample_joint gives both modalities the same x_T and step noise, so the two
    trajectories are identical and the branch runs once per step."""
    def net(x, _x_other, t, cond, _cond_other):
        eps = branch(x, t, cond)
        return eps, eps
    return net


def preview_sampler(model, schedule, steps: int, kind: str):
    """The sampler of the validation samples: `kind` ("ddim", "dpmsolver"; "": the model config's) at `steps`."""
    dc = model.cfg.diffusion
    return make_sampler(kind or dc.sampler, schedule, steps, dc.eta, dc.prediction)


class AutoencoderObjective(nn.Module):
    """Reconstruction loss of one modality's autoencoder, on every clip length it is trained for."""

    def __init__(self, model: SyncVP, modality: str, frames: tuple[int, ...], lpips: nn.Module | None,
                 lpips_weight: float, context_dropout: float = 0.0):
        super().__init__()
        self.model, self.modality, self.frames = model, modality, frames
        self.lpips, self.lpips_weight = lpips, lpips_weight  # LPIPS is frozen; the objective is never saved
        self.context_dropout = context_dropout

    def windows(self, frames: int) -> slice:
        # the conditioning AE learns the first frames of a clip, the target AE the frames after them
        cond = self.model.cfg.cond_frames
        return slice(0, frames) if frames == cond else slice(cond, cond + frames)

    def reconstruct(self, batch: dict, frames: int, generator: torch.Generator | None = None):
        """(x, valid, reconstruction) of one window; a context decoder gets the frame before the window (none for
        the window at the start of the clip), dropped for a `context_dropout` share of the clips."""
        window, video = self.windows(frames), batch[self.modality]
        x, valid = self.model.model_space(self.modality, video[:, window])
        autoencoder = self.model.autoencoder_for(self.modality, frames)
        context = context_valid = None
        if self.model.cfg.autoencoder.decoder_context and window.start > 0:
            context, context_valid = self.model.context_frame(self.modality, video[:, window.start - 1])
            if generator is not None and self.context_dropout > 0:
                keep = torch.rand(len(x), generator=generator, device=generator.device) >= self.context_dropout
                context_valid = context_valid & keep.to(x.device)[:, None, None, None]
        return x, valid, autoencoder.decode(autoencoder.encode(x), frames, context, context_valid)

    def forward(self, batch: dict, generator: torch.Generator):
        total, parts = 0.0, {}
        for frames in self.frames:
            x, valid, recon = self.reconstruct(batch, frames, generator)
            # invalid depth pixels carry no target: they count neither in L1 nor in LPIPS
            l1 = ((recon - x).abs() * valid).sum() / valid.expand_as(x).sum().clamp_min(1)
            loss, parts[f"l1_{frames}f"] = l1, l1.detach()
            if self.lpips is not None and self.lpips_weight > 0:
                # one random frame per clip, as the reference (LPIPS is per image)
                pick = torch.randint(0, frames, (x.shape[0],), generator=generator, device=generator.device)
                rows, pick = torch.arange(x.shape[0], device=x.device), pick.to(x.device)
                target = x[rows, :, pick]
                pred = torch.where(valid[rows, :, pick], recon[rows, :, pick], target)
                perceptual = self.lpips(pred.expand(-1, 3, -1, -1), target.expand(-1, 3, -1, -1)).mean()
                loss, parts[f"lpips_{frames}f"] = loss + self.lpips_weight * perceptual, perceptual.detach()
            total = total + loss
        return total, parts

    @torch.no_grad()
    def samples(self, batch: dict, generator: torch.Generator, sample_steps: int, sampler: str) -> torch.Tensor:
        """Ground truth above reconstruction, for the longest clip length (no sampling)."""
        x, _, recon = self.reconstruct(batch, max(self.frames))
        return to_image(x, recon)


class DiffusionObjective(nn.Module):
    """The branch loss of one modality alone, conditioned on that modality's first frames."""

    def __init__(self, model: SyncVP, modality: str, cond_dropout: float):
        super().__init__()
        self.model, self.modality, self.cond_dropout = model, modality, cond_dropout
        self.schedule = NoiseSchedule.from_config(model.cfg.diffusion)

    @property
    def branch(self) -> nn.Module:
        return getattr(self.model.net, f"{self.modality}_branch")

    def forward(self, batch: dict, generator: torch.Generator):
        cond, target = clip_latents(self.model, batch, self.modality)
        loss = branch_loss(self.branch, self.schedule, self.modality, target, cond, generator, self.cond_dropout,
                           self.model.cfg.diffusion.prediction)
        return loss, {self.modality: loss.detach()}

    @torch.no_grad()
    def samples(self, batch: dict, generator: torch.Generator, sample_steps: int, sampler: str) -> torch.Tensor:
        """Per clip: truth, prediction (sampled from the true conditioning frames)."""
        cond, target = clip_latents(self.model, batch, self.modality)
        sampler = preview_sampler(self.model, self.schedule, sample_steps, sampler)
        frames = self.model.cfg.target_frames
        ranges = {m: self.model.latent_range(self.modality, frames) for m in MODALITIES}
        predicted, _ = sample_joint(single_branch_net(self.branch), sampler, cond, cond, target.shape,
                                    generator=generator, x0_ranges=ranges)
        return to_image(*truth_and_prediction(self.model, batch, self.modality, predicted))


class JointObjective(nn.Module):
    """The joint loss of both branches and the couplings (`diffusion.joint_loss`)."""

    def __init__(self, model: SyncVP, timesteps=()):
        super().__init__()
        self.model, self.timesteps = model, tuple(timesteps)
        self.schedule = NoiseSchedule.from_config(model.cfg.diffusion)
        if any(not 0 <= t < self.schedule.timesteps for t in self.timesteps):
            raise TrainingError(f"train_timesteps must lie in 0 … {self.schedule.timesteps - 1}, "
                                f"not {list(timesteps)}")

    def latents(self, batch: dict):
        (cond_rgb, rgb), (cond_depth, depth) = (clip_latents(self.model, batch, m) for m in MODALITIES)
        return cond_rgb, rgb, cond_depth, depth

    def forward(self, batch: dict, generator: torch.Generator):
        cond_rgb, rgb, cond_depth, depth = self.latents(batch)
        diffusion = self.model.cfg.diffusion
        loss, parts = joint_loss(self.model.net, self.schedule, rgb, depth, cond_rgb, cond_depth, generator,
                                 diffusion.shared_noise, diffusion.dropout_probs, diffusion.shared_timestep,
                                 diffusion.prediction, self.timesteps)
        return loss, {m: parts[m] for m in MODALITIES}

    @torch.no_grad()
    def samples(self, batch: dict, generator: torch.Generator, sample_steps: int, sampler: str) -> torch.Tensor:
        """Per clip: RGB truth, RGB prediction, depth truth, depth prediction (conditioned on RGB-D)."""
        cond_rgb, rgb, cond_depth, _ = self.latents(batch)
        sampler = preview_sampler(self.model, self.schedule, sample_steps, sampler)
        ranges = {m: self.model.latent_range(m, self.model.cfg.target_frames) for m in MODALITIES}
        predicted = sample_joint(self.model.net, sampler, cond_rgb, cond_depth, rgb.shape, generator=generator,
                                 x0_ranges=ranges)
        return to_image(*(video for modality, latent in zip(MODALITIES, predicted)
                          for video in truth_and_prediction(self.model, batch, modality, latent)))




def make_objective(cfg: TrainConfig, model: SyncVP, lpips: nn.Module | None) -> nn.Module:
    if cfg.stage == "autoencoder":
        return AutoencoderObjective(model, cfg.modality, autoencoder_frames(cfg, model), lpips, cfg.lpips_weight,
                                    cfg.context_dropout)
    if cfg.stage == "diffusion":
        return DiffusionObjective(model, cfg.modality, cfg.cond_dropout)
    return JointObjective(model, cfg.train_timesteps)


def load_perceptual(cfg: TrainConfig, device, say) -> nn.Module | None:
    if cfg.stage != "autoencoder" or cfg.lpips_weight == 0:
        return None
    try:
        return load_lpips("alex", device)
    except MissingWeightsError as e:
        say(f"note: autoencoder loss is L1 only ({e})")
        return None
