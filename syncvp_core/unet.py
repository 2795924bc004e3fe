"""Branch UNet: one modality's noise predictor on triplane latents.

The same 2-D UNet weights process each of the three planes (xy, tw, th) as a separate image; after
every block a global 1-D self-attention over the concatenated tokens of all three planes is the only
path between planes. The timestep enters every residual block by FiLM (scale-shift after the norm).
Pooling and upsampling act on the temporal planes too, so each level halves T, H' and W'.

Conditioning (F3, fixed vs the reference): the 2-frame conditioning latent is brought to the target's
plane shape plane by plane (xy as is; tw and th resized along t with nearest neighbour, so each
conditioning frame covers T_target / T_cond consecutive target rows in time order), then concatenated
on channels. The reference zero-padded the token axis instead, which put the conditioning th rows into
the target's tw plane.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import UNetConfig
from .planes import TriplaneShape


def zero_init(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding of integer timesteps, B -> B×dim."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def align_condition(cond: Tensor, cond_shape: TriplaneShape, target_shape: TriplaneShape) -> Tensor:
    """Conditioning latent B×c×L_cond -> B×c×L_target, aligned plane by plane (see module doc)."""
    xy, tw, th = cond_shape.split(cond)
    tw = F.interpolate(tw, size=(target_shape.frames, target_shape.width), mode="nearest")
    th = F.interpolate(th, size=(target_shape.frames, target_shape.height), mode="nearest")
    return target_shape.join(xy, tw, th)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, timestep FiLM on the second norm, optional 2× down/up resampling."""

    def __init__(self, channels: int, out_channels: int, emb_dim: int, groups: int, resample: str | None = None):
        super().__init__()
        self.resample = {None: nn.Identity(), "down": nn.AvgPool2d(2), "up": nn.Upsample(scale_factor=2.0)}[resample]
        self.in_norm = nn.GroupNorm(groups, channels)
        self.in_conv = nn.Conv2d(channels, out_channels, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * out_channels)
        self.out_norm = nn.GroupNorm(groups, out_channels)
        self.out_conv = zero_init(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip = nn.Identity() if channels == out_channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.in_conv(self.resample(F.silu(self.in_norm(x))))
        scale, shift = self.film(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.out_conv(F.silu(self.out_norm(h) * (1 + scale) + shift))
        return self.skip(self.resample(x)) + h


class SelfAttention(nn.Module):
    """Pre-norm multi-head self-attention over all positions of B×C×(...), zero-initialised output,
    residual. Used per plane (2-D attention) and across the three planes (1-D triplane attention)."""

    def __init__(self, channels: int, heads: int, groups: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj_out = zero_init(nn.Linear(channels, channels))

    def forward(self, x: Tensor) -> Tensor:
        b, c = x.shape[:2]
        h = self.norm(x.reshape(b, c, -1)).transpose(1, 2)  # token-major: SDPA is fastest with heads' dims contiguous
        q, k, v = self.qkv(h).view(b, -1, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, -1, c)
        return x + self.proj_out(y).transpose(1, 2).reshape(x.shape)


def per_plane(fn, planes: list[Tensor], emb: Tensor | None) -> list[Tensor]:
    """Apply fn(x, emb) — 2-D layers with one set of weights — to each plane. Planes of equal size go
    through a single call stacked on the batch axis (exact: every op here is per sample), which saves
    most of the per-call overhead on CPU."""
    out: list[Tensor | None] = [None] * len(planes)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, plane in enumerate(planes):
        groups.setdefault(tuple(plane.shape[-2:]), []).append(i)
    for members in groups.values():
        x = torch.cat([planes[i] for i in members], dim=0)
        y = fn(x, None if emb is None else emb.repeat(len(members), 1))
        for i, part in zip(members, y.chunk(len(members), dim=0)):
            out[i] = part
    return out


class Stage(nn.Module):
    """One UNet block: 2-D layers applied per plane, then 1-D attention across the three planes.
    `kind` is "encoder" (its output is kept as a skip), "middle" or "decoder" (takes a skip first)."""

    def __init__(self, kind: str, level: int, layers: list[nn.Module], channels: int, cfg: UNetConfig):
        super().__init__()
        self.kind, self.level, self.out_channels = kind, level, channels
        self.layers = nn.ModuleList(layers)
        self.triplane_attn = SelfAttention(channels, cfg.heads, cfg.norm_groups)

    def plane_layers(self, x: Tensor, emb: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x

    def forward(self, h: Tensor, shape: TriplaneShape, emb: Tensor) -> tuple[Tensor, TriplaneShape]:
        planes = per_plane(self.plane_layers, list(shape.split(h)), emb)
        shape = TriplaneShape.of_planes(*planes)
        return self.triplane_attn(shape.join(*planes)), shape


class BranchUNet(nn.Module):
    def __init__(self, cfg: UNetConfig, latent_channels: int, target_shape: TriplaneShape, cond_shape: TriplaneShape):
        super().__init__()
        self.cfg, self.target_shape, self.cond_shape = cfg, target_shape, cond_shape
        mc, groups, deepest = cfg.model_channels, cfg.norm_groups, len(cfg.channel_mult) - 1
        emb_dim = 4 * mc
        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.conv_in = nn.Conv2d(2 * latent_channels, mc, 3, padding=1)  # noisy target + aligned conditioning

        def res(cin, cout, resample=None):
            return ResBlock(cin, cout, emb_dim, groups, resample)

        def attn(ch, level):
            return [SelfAttention(ch, cfg.heads, groups)] if level in cfg.attention_levels else []

        stages, skip_channels, ch = [], [mc], mc
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                stages.append(Stage("encoder", level, [res(ch, mult * mc)] + attn(mult * mc, level), mult * mc, cfg))
                ch = mult * mc
                skip_channels.append(ch)
            if level != deepest:
                stages.append(Stage("encoder", level, [res(ch, ch, "down")], ch, cfg))
                skip_channels.append(ch)
        mid = [res(ch, ch), SelfAttention(ch, cfg.heads, groups), res(ch, ch)]
        stages.append(Stage("middle", deepest, mid, ch, cfg))
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                layers = [res(ch + skip_channels.pop(), mult * mc)] + attn(mult * mc, level)
                ch = mult * mc
                if level and i == cfg.num_res_blocks:
                    layers.append(res(ch, ch, "up"))
                stages.append(Stage("decoder", level, layers, ch, cfg))
        self.stages = nn.ModuleList(stages)
        self.out = nn.Sequential(nn.GroupNorm(groups, ch), nn.SiLU(),
                                 zero_init(nn.Conv2d(ch, latent_channels, 3, padding=1)))

    def coupling_slots(self, slots: str) -> list[int]:
        """Indices of the stages after which the branches may be coupled."""
        if slots == "all":
            return list(range(len(self.stages)))
        deepest = len(self.cfg.channel_mult) - 1
        return [i for i, stage in enumerate(self.stages) if stage.level == deepest]

    def embed_time(self, t: Tensor) -> Tensor:
        return self.time_embed(timestep_embedding(t, self.cfg.model_channels))

    def stem(self, x: Tensor, cond: Tensor) -> Tensor:
        h = torch.cat([x, align_condition(cond, self.cond_shape, self.target_shape)], dim=1)
        planes = per_plane(lambda x, _: self.conv_in(x), list(self.target_shape.split(h)), None)
        return self.target_shape.join(*planes)

    def run_stage(self, i: int, h: Tensor, shape: TriplaneShape, emb: Tensor,
                  skips: list[Tensor]) -> tuple[Tensor, TriplaneShape]:
        """Stage i, with the UNet's skip connections kept on the `skips` stack."""
        stage = self.stages[i]
        if stage.kind == "decoder":
            h = torch.cat([h, skips.pop()], dim=1)
        h, shape = stage(h, shape, emb)
        if stage.kind == "encoder":
            skips.append(h)
        return h, shape

    def head(self, h: Tensor, shape: TriplaneShape) -> Tensor:
        return shape.join(*per_plane(lambda x, _: self.out(x), list(shape.split(h)), None))

    def forward(self, x: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        """x: B×c×L noisy target latent, t: B, cond: B×c×L_cond -> predicted noise B×c×L."""
        emb, h, shape = self.embed_time(t), self.stem(x, cond), self.target_shape
        skips = [h]
        for i in range(len(self.stages)):
            h, shape = self.run_stage(i, h, shape, emb, skips)
        return self.head(h, shape)
