"""The reference joint net (`MMDiffusionWrapper(MultiModalUnet)`, key prefix `diffusion_model.`) and the whole
model behind `syncvp_core.model.SyncVP`'s interface, so sampler, rollout, evaluation and node use it unchanged.

Interface notes (what differs from our SyncVP, and why it is still the reference's maths):
- `net(x_rgb, x_depth, t, cond_rgb, cond_depth)`: an all-zero conditioning latent means "no conditioning", which
  is exactly what the reference does for a dropped modality (it zero-pads a zero latent, identical to its
  `zeros` buffer), so `sampler.guided_eps` zeroing a latent drops that modality as the reference does.
- depth goes through the depth codec (metres <-> 8-bit disparity, `codec.py`) and the 3-channel depth AEs:
  encode replicates grey to 3 channels; decode returns the mean of the 3 decoded channels (the reference
  rollout re-encodes the three channels as they are; with near-identical channels the difference is small).
- `quantise_rgb` truncates to 8 bits, and re-encoded depth is truncated by the codec: the reference rollout's
  `((1 + x) * 127.5).type(uint8)`.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from syncvp_core.modalities import MODALITIES

from .autoencoder import ReferenceAutoencoder
from .config import ReferenceConfig
from .stca import ReferenceSTCA
from .unet import ReferenceUNet, Wrapped



class MultiModalUnet(nn.Module):
    """Two branch UNets stepped in lockstep; `cross_attns[i]` couples them after the i-th yield."""

    def __init__(self, cfg: ReferenceConfig):
        super().__init__()
        c, target = cfg.autoencoder.embed_dim, cfg.target_shape()
        self.diff_rgb = Wrapped(ReferenceUNet(cfg.unet, c, target))
        self.diff_depth = Wrapped(ReferenceUNet(cfg.unet, c, target))
        widths = self._slot_widths(cfg)
        bad = [s for s in cfg.stca.slots if not 0 <= s < len(widths)]
        if bad:
            raise ValueError(f"STCA slots {bad} outside the UNet's {len(widths)} yields")
        # slots without a block (the reference's NoCross) have no module and no keys
        self.cross_attns = nn.ModuleDict({str(s): ReferenceSTCA(widths[s], cfg.stca.heads, cfg.unet.norm_groups)
                                          for s in cfg.stca.slots})

    def _slot_widths(self, cfg: ReferenceConfig) -> list[int]:
        unet = self.diff_rgb.diffusion_model
        return ([block[0].out_layers[3].out_channels for block in unet.input_blocks[1:]]
                + [cfg.unet.model_channels * cfg.unet.channel_mult[-1]]
                + [block[0].out_layers[3].out_channels for block in unet.output_blocks])

    def forward(self, x_rgb, x_depth, t, cond_rgb, cond_depth) -> tuple[Tensor, Tensor]:
        rgb = self.diff_rgb.diffusion_model.steps(x_rgb, t, cond_rgb)
        depth = self.diff_depth.diffusion_model.steps(x_depth, t, cond_depth)
        (h_rgb, shape), (h_depth, _) = next(rgb), next(depth)
        last = self.diff_rgb.diffusion_model.slots() - 1
        for slot in range(last + 1):
            if str(slot) in self.cross_attns:
                h_rgb, h_depth = self.cross_attns[str(slot)](h_rgb, h_depth, shape)
            if slot < last:
                (h_rgb, shape), (h_depth, _) = rgb.send(h_rgb), depth.send(h_depth)
        return _finish(rgb, h_rgb), _finish(depth, h_depth)


def _finish(steps, h: Tensor) -> Tensor:
    """Send the last block's output into a branch's generator and return its noise prediction."""
    try:
        steps.send(h)
    except StopIteration as done:
        return done.value
    raise RuntimeError("a branch UNet yielded more often than its slots() says")


class ReferenceNet(nn.Module):
    """`MMDiffusionWrapper`; its state dict has exactly the keys of `syncvp_<name>.pth`."""

    def __init__(self, cfg: ReferenceConfig):
        super().__init__()
        self.diffusion_model = MultiModalUnet(cfg)

    def forward(self, x_rgb: Tensor, x_depth: Tensor, t: Tensor, cond_rgb: Tensor,
                cond_depth: Tensor) -> tuple[Tensor, Tensor]:
        """x_*: B×c×L noisy target latents, t: B timesteps, cond_*: B×c×L_cond (all zero = dropped)."""
        return self.diffusion_model(x_rgb, x_depth, t, cond_rgb, cond_depth)


class ReferenceSyncVP(nn.Module):
    """The four released autoencoders (`autoencoders["{rgb,depth}_{2f,8f}"]`) and the joint net."""

    def __init__(self, cfg: ReferenceConfig):
        super().__init__()
        self.cfg = cfg
        self.net = ReferenceNet(cfg)
        self.autoencoders = nn.ModuleDict({
            f"{m}_{f}f": ReferenceAutoencoder(cfg.autoencoder, cfg.resolution, f)
            for m in MODALITIES for f in (cfg.target_frames, cfg.cond_frames)})

    def autoencoder_for(self, modality: str, frames: int) -> ReferenceAutoencoder:
        key = f"{modality}_{frames}f"
        if key not in self.autoencoders:
            raise ValueError(f"no {modality} autoencoder for {frames}-frame clips "
                             f"(have {self.cfg.cond_frames} and {self.cfg.target_frames})")
        return self.autoencoders[key]

    def encode_rgb(self, rgb01: Tensor) -> Tensor:
        """B×T×3×H×W in [0, 1] -> B×c×L; the reference's u8/127.5 - 1 on 8-bit values."""
        return self.autoencoder_for("rgb", rgb01.shape[1]).encode(rgb01.transpose(1, 2) * 2 - 1)

    def encode_depth(self, depth: Tensor) -> Tensor:
        """B×T×H×W depth (metres for the "disparity" codec) -> B×c×L, grey 8-bit replicated to 3 channels."""
        x = self.cfg.depth_codec.to_u8(depth) / 127.5 - 1
        return self.autoencoder_for("depth", depth.shape[1]).encode(x.unsqueeze(1).expand(-1, 3, -1, -1, -1))

    def decode_rgb(self, latent: Tensor, frames: int, context: Tensor | None = None) -> Tensor:
        """-> B×T×3×H×W in [0, 1]; `context` exists for our context decoders and is ignored."""
        return (self.autoencoder_for("rgb", frames).decode(latent, frames).clamp(-1, 1).transpose(1, 2) + 1) / 2

    def decode_depth(self, latent: Tensor, frames: int, context: Tensor | None = None) -> Tensor:
        """-> B×T×H×W depth through the codec (NaN where the disparity is below one 8-bit unit)."""
        x = self.autoencoder_for("depth", frames).decode(latent, frames).clamp(-1, 1).mean(1)
        return self.cfg.depth_codec.from_u8((x + 1) * 127.5)

    @staticmethod
    def latent_range(modality: str, frames: int) -> tuple[float, float]:
        """The reference diffuses raw latents and clamps x0 to [-1, 1]."""
        return -1.0, 1.0

    @staticmethod
    def quantise_rgb(rgb01: Tensor) -> Tensor:
        """Truncated to 8 bits, as the reference's `.type(torch.uint8)` before it re-encodes a predicted frame."""
        return torch.floor(rgb01 * 255) / 255
