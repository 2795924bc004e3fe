"""SyncVP: two branch UNets coupled by STCA (`SyncVPNet`), plus the autoencoders (`SyncVP`)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .autoencoder import TriplaneAutoencoder
from .config import SyncVPConfig
from .depth import depth_to_model, model_to_depth
from .modalities import MODALITIES
from .stca import make_coupling
from .unet import BranchUNet


class SyncVPNet(nn.Module):
    """Joint noise predictor: the RGB and depth branches run stage by stage in lockstep, and after each
    coupling slot the coupling block exchanges information between them."""

    def __init__(self, cfg: SyncVPConfig):
        super().__init__()
        c, target, cond = cfg.autoencoder.embed_dim, cfg.target_shape(), cfg.cond_shape()
        kind = cfg.coupling.kind
        if kind == "single_network":  # ablation: one UNet on channel-concatenated RGB and depth latents
            self.joint_branch = BranchUNet(cfg.unet, 2 * c, target, cond)
            self.rgb_branch = self.depth_branch = None
            self.slots = []
        else:
            self.joint_branch = None
            self.rgb_branch = BranchUNet(cfg.unet, c, target, cond)
            self.depth_branch = BranchUNet(cfg.unet, c, target, cond)
            self.slots = [] if kind == "none" else self.rgb_branch.coupling_slots(cfg.coupling.slots)
        self.couplings = nn.ModuleList(  # one block per slot, as wide as the stage it follows
            make_coupling(kind, self.rgb_branch.stages[i].out_channels, cfg.coupling.heads, cfg.unet.norm_groups)
            for i in self.slots)

    def forward(self, x_rgb: Tensor, x_depth: Tensor, t: Tensor, cond_rgb: Tensor,
                cond_depth: Tensor, t_depth: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x_*: B×c×L noisy target latents, t: B timesteps, cond_*: B×c×L_cond conditioning latents
        (all zero = modality dropped) -> (eps_rgb, eps_depth), each B×c×L.

        `t_depth` gives the depth branch its own timesteps (the independent-timestep ablation); by default
        both branches share `t`, as SyncVP trains and samples."""
        if self.joint_branch is not None:
            if t_depth is not None and not torch.equal(t_depth, t):
                raise ValueError("the single-network coupling has one time embedding: timesteps must be shared")
            eps = self.joint_branch(torch.cat([x_rgb, x_depth], 1), t, torch.cat([cond_rgb, cond_depth], 1))
            return eps.chunk(2, dim=1)
        rgb, depth = self.rgb_branch, self.depth_branch
        emb_rgb, emb_depth = rgb.embed_time(t), depth.embed_time(t if t_depth is None else t_depth)
        h_rgb, h_depth = rgb.stem(x_rgb, cond_rgb), depth.stem(x_depth, cond_depth)
        shape, skips_rgb, skips_depth = rgb.target_shape, [h_rgb], [h_depth]
        coupling_at = dict(zip(self.slots, self.couplings))
        for i in range(len(rgb.stages)):
            h_rgb, _ = rgb.run_stage(i, h_rgb, shape, emb_rgb, skips_rgb)
            h_depth, shape = depth.run_stage(i, h_depth, shape, emb_depth, skips_depth)
            if i in coupling_at:  # coupling point: the branches exchange information here
                h_rgb, h_depth = coupling_at[i](h_rgb, h_depth, shape)
        return rgb.head(h_rgb, shape), depth.head(h_depth, shape)


class LatentStatistics(nn.Module):
    """Per-channel mean and std of one modality's latents at one clip length, measured on the training set after
    stage 1 (`measure`); diffusion runs on (z - mean) / std. Identity (0, 1) until measured, so a model without
    them (an old checkpoint, or before stage 1 ends) behaves as before."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(channels, 1))
        self.register_buffer("std", torch.ones(channels, 1))

    def standardise(self, latent: Tensor) -> Tensor:
        return (latent - self.mean) / self.std

    def restore(self, latent: Tensor) -> Tensor:
        return latent * self.std + self.mean

    @torch.no_grad()
    def measure(self, latents: Tensor) -> None:
        """Set from raw latents N×c×L (the std floored, so a constant channel does not blow up)."""
        self.mean.copy_(latents.mean((0, 2))[:, None])
        self.std.copy_(latents.std((0, 2)).clamp_min(1e-3)[:, None])


class SyncVP(nn.Module):
    """Everything a checkpoint holds: the joint net, one autoencoder per modality (and per clip length unless
    `cfg.shared_autoencoder`) and the latent statistics of each modality and clip length."""

    def __init__(self, cfg: SyncVPConfig):
        super().__init__()
        self.cfg = cfg
        self.net = SyncVPNet(cfg)
        self.latent_stats = nn.ModuleDict({
            self.stats_key(m, f): LatentStatistics(cfg.autoencoder.embed_dim)
            for m in MODALITIES for f in (cfg.cond_frames, cfg.target_frames)})

        def autoencoder(channels, frames):
            return TriplaneAutoencoder(cfg.autoencoder, channels, cfg.resolution, frames)

        if cfg.shared_autoencoder:
            both = (cfg.cond_frames, cfg.target_frames)
            self.autoencoders = nn.ModuleDict({"rgb": autoencoder(3, both), "depth": autoencoder(1, both)})
        else:
            self.autoencoders = nn.ModuleDict({
                "rgb": autoencoder(3, (cfg.target_frames,)), "depth": autoencoder(1, (cfg.target_frames,)),
                "rgb_cond": autoencoder(3, (cfg.cond_frames,)), "depth_cond": autoencoder(1, (cfg.cond_frames,)),
            })

    def autoencoder_for(self, modality: str, frames: int) -> TriplaneAutoencoder:
        """The autoencoder that encodes and decodes `frames`-frame clips of `modality`."""
        key = f"{modality}_cond" if frames == self.cfg.cond_frames and not self.cfg.shared_autoencoder else modality
        return self.autoencoders[key]

    @staticmethod
    def stats_key(modality: str, frames: int) -> str:
        return f"{modality}_{frames}f"

    def latent_range(self, modality: str, frames: int) -> tuple[Tensor, Tensor]:
        """(low, high), c×1 each: where the standardised latents of a `frames`-frame clip can lie (the image of the
        encoder's tanh range), for the sampler's x0 clamp."""
        stats = self.latent_stats[self.stats_key(modality, frames)]
        return stats.standardise(-torch.ones_like(stats.mean)), stats.standardise(torch.ones_like(stats.mean))

    def model_space(self, modality: str, video: Tensor) -> tuple[Tensor, Tensor]:
        """What the autoencoder sees: RGB B×T×3×H×W in [0, 1] or depth B×T×H×W metres -> (B×C×T×H×W in
        [-1, 1], valid mask like it; invalid depth is filled with far)."""
        if modality == "rgb":
            x = video.transpose(1, 2) * 2 - 1
            return x, torch.ones_like(x, dtype=torch.bool)
        x, valid = depth_to_model(video, self.cfg.depth_near, self.cfg.depth_far, self.cfg.depth_mapping)
        return x.unsqueeze(1), valid.unsqueeze(1)

    def encode_raw(self, modality: str, video: Tensor) -> Tensor:
        """A clip of `modality` (as for `model_space`) -> its B×c×L latent as the encoder gives it (the latent
        statistics are measured on these)."""
        x, _ = self.model_space(modality, video)
        return self.autoencoder_for(modality, x.shape[2]).encode(x)

    def encode(self, modality: str, video: Tensor) -> Tensor:
        """A clip of `modality` (as for `model_space`) -> its standardised B×c×L latent."""
        frames = video.shape[1]
        return self.latent_stats[self.stats_key(modality, frames)].standardise(self.encode_raw(modality, video))

    def decode(self, modality: str, latent: Tensor, frames: int, context: Tensor | None = None) -> Tensor:
        """A standardised latent -> model-space B×C×T×H×W. `context` is the frame before the clip (B×3×H×W in
        [0, 1] or B×H×W metres), used by a context decoder and ignored otherwise; None: no context."""
        raw = self.latent_stats[self.stats_key(modality, frames)].restore(latent)
        ctx, valid = (None, None) if context is None else self.context_frame(modality, context)
        return self.autoencoder_for(modality, frames).decode(raw, frames, ctx, valid)

    def context_frame(self, modality: str, frame: Tensor) -> tuple[Tensor, Tensor]:
        """One frame (B×3×H×W in [0, 1] or B×H×W metres) as a context decoder takes it: (B×C×H×W model space,
        B×1×H×W valid mask)."""
        x, valid = self.model_space(modality, frame.unsqueeze(1))
        return x[:, :, 0], valid[:, :1, 0]

    def encode_rgb(self, rgb01: Tensor) -> Tensor:
        """B×T×3×H×W in [0, 1] -> B×c×L latent."""
        return self.encode("rgb", rgb01)

    def encode_depth(self, depth_m: Tensor) -> Tensor:
        """B×T×H×W metres (NaN/inf/<=0 invalid, encoded as far) -> B×c×L latent."""
        return self.encode("depth", depth_m)

    def decode_rgb(self, latent: Tensor, frames: int, context: Tensor | None = None) -> Tensor:
        """-> B×T×3×H×W in [0, 1]; `context` B×3×H×W in [0, 1] (see `decode`)."""
        return (self.decode("rgb", latent, frames, context).transpose(1, 2) + 1) / 2

    def decode_depth(self, latent: Tensor, frames: int, context: Tensor | None = None) -> Tensor:
        """-> B×T×H×W metres in [near, far]; `context` B×H×W metres (see `decode`)."""
        x = self.decode("depth", latent, frames, context)[:, 0]
        return model_to_depth(x, self.cfg.depth_near, self.cfg.depth_far, self.cfg.depth_mapping)

    @staticmethod
    def quantise_rgb(rgb01: Tensor) -> Tensor:
        """Predicted RGB as an 8-bit camera would give it (rounded), before it is re-encoded as conditioning."""
        return torch.round(rgb01 * 255) / 255


def count_parameters(model: SyncVP) -> dict:
    """Parameter counts by part; the parts add up to `total`."""
    def n(module):
        return 0 if module is None else sum(p.numel() for p in module.parameters())

    aes, net = model.autoencoders, model.net
    counts = {
        "autoencoder_rgb": n(aes["rgb"]),
        "autoencoder_depth": n(aes["depth"]),
        "autoencoder_cond": sum(n(aes[k]) for k in ("rgb_cond", "depth_cond") if k in aes),
        "unet_rgb": n(net.rgb_branch if net.joint_branch is None else net.joint_branch),
        "unet_depth": n(net.depth_branch),
        "stca": n(net.couplings),
    }
    counts["total"] = n(model)
    return counts
