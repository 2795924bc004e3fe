"""The reference branch UNet (ADM-style `SingleModalityUnet`, FORMAT.md §3, §4, §5) with the files' key names.

Every 2-D op runs on each triplane plane separately with shared weights (GroupNorm statistics per plane too);
after every block a 1-D attention (`input_attns` / `mid_attn` / `output_attns`) runs over the concatenated L
tokens. Quirks reproduced on purpose:
- conditioning is the 2-frame latent zero-padded at the END of the token axis to the target's L and
  concatenated on channels, then split with the TARGET plane sizes (so cond yt/xt land in target-yt rows);
- every attention uses `QKVAttentionLegacy`: the qkv conv's rows are interleaved per head as [q_h | k_h | v_h];
- the forward is a generator that yields after every block and continues from the tensor sent back, so a
  coupling between the branches (STCA) changes both the continuing tensor and the skip saved for the decoder.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from syncvp_core.planes import TriplaneShape

from .config import ReferenceUNetConfig


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 (the reference's `normalization`)."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.float()).type(x.dtype)


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """[cos(t f), sin(t f)], f_i = exp(-ln(1e4) i / half)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], -1)


class ResBlock(nn.Module):
    """FiLM (scale-shift) ResBlock; `resample` "down" (avg-pool 2) or "up" (nearest ×2) inside, as ADM's updown."""

    def __init__(self, channels: int, out_channels: int, emb_dim: int, groups: int, resample: str | None = None):
        super().__init__()
        self.resample = resample
        self.in_layers = nn.Sequential(GroupNorm32(groups, channels), nn.SiLU(),
                                       nn.Conv2d(channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, 2 * out_channels))
        self.out_layers = nn.Sequential(GroupNorm32(groups, out_channels), nn.SiLU(), nn.Identity(),  # dropout 0
                                        nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip_connection = nn.Identity() if channels == out_channels else nn.Conv2d(channels, out_channels, 1)

    def _resample(self, x: Tensor) -> Tensor:
        if self.resample == "down":
            return F.avg_pool2d(x, 2)
        return F.interpolate(x, scale_factor=2, mode="nearest") if self.resample == "up" else x

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.in_layers[2](self._resample(self.in_layers[1](self.in_layers[0](x))))
        x = self._resample(x)
        scale, shift = self.emb_layers(emb)[:, :, None, None].chunk(2, 1)
        h = self.out_layers[0](h) * (1 + scale) + shift
        return self.skip_connection(x) + self.out_layers[3](self.out_layers[1](h))


class AttentionBlock(nn.Module):
    """Self-attention over the trailing positions of B×C×…, legacy per-head qkv interleave, residual."""

    def __init__(self, channels: int, heads: int, groups: int):
        super().__init__()
        self.heads = heads
        self.norm = GroupNorm32(groups, channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c = x.shape[:2]
        flat = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(flat)).reshape(b * self.heads, 3 * c // self.heads, -1)
        q, k, v = (part.transpose(1, 2) for part in qkv.chunk(3, 1))  # rows [q_h | k_h | v_h] per head
        out = F.scaled_dot_product_attention(q, k, v)  # = softmax(q k^T / sqrt(ch)) v, the reference's two ch^-1/4
        return (flat + self.proj_out(out.transpose(1, 2).reshape(b, c, -1))).reshape(x.shape)


class Wrapped(nn.Module):
    """`DiffusionWrapper`: holds the UNet as `.diffusion_model`, which is where the keys put it."""

    def __init__(self, unet: nn.Module):
        super().__init__()
        self.diffusion_model = unet


class ReferenceUNet(nn.Module):
    def __init__(self, cfg: ReferenceUNetConfig, latent_channels: int, target: TriplaneShape):
        super().__init__()
        mc, groups, levels = cfg.model_channels, cfg.norm_groups, len(cfg.channel_mult)
        emb = 4 * mc
        self.model_channels, self.target = mc, target
        self.register_buffer("zeros", torch.zeros(1, latent_channels, target.tokens))  # unused: cond is always given
        self.time_embed = nn.Sequential(nn.Linear(mc, emb), nn.SiLU(), nn.Linear(emb, emb))

        def attention(ch):
            return AttentionBlock(ch, cfg.heads, groups)

        self.input_blocks = nn.ModuleList([nn.ModuleList([nn.Conv2d(2 * latent_channels, mc, 3, padding=1)])])
        self.input_attns = nn.ModuleList([nn.Identity()])  # index 0 (after conv_in) has none
        widths, ch = [mc], mc
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                block = [ResBlock(ch, mult * mc, emb, groups)]
                ch = mult * mc
                if level in cfg.attention_levels:
                    block.append(attention(ch))
                self._add_input(block, ch, attention, widths)
            if level < levels - 1:
                self._add_input([ResBlock(ch, ch, emb, groups, "down")], ch, attention, widths)
        self.middle_block = nn.ModuleList([ResBlock(ch, ch, emb, groups), attention(ch), ResBlock(ch, ch, emb, groups)])
        self.mid_attn = attention(ch)
        self.output_blocks, self.output_attns = nn.ModuleList(), nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                block = [ResBlock(ch + widths.pop(), mult * mc, emb, groups)]
                ch = mult * mc
                if level in cfg.attention_levels:
                    block.append(attention(ch))
                if level and i == cfg.num_res_blocks:
                    block.append(ResBlock(ch, ch, emb, groups, "up"))
                self.output_blocks.append(nn.ModuleList(block))
                self.output_attns.append(attention(ch))
        self.out = nn.Sequential(GroupNorm32(groups, ch), nn.SiLU(), nn.Conv2d(ch, latent_channels, 3, padding=1))

    def _add_input(self, block, ch, attention, widths):
        self.input_blocks.append(nn.ModuleList(block))
        self.input_attns.append(attention(ch))
        widths.append(ch)

    def slots(self) -> int:
        """How many times `steps` yields: every input block after conv_in, the middle, every output block."""
        return len(self.input_blocks) - 1 + 1 + len(self.output_blocks)

    @staticmethod
    def _per_plane(layers, h: Tensor, shape: TriplaneShape, emb: Tensor) -> tuple[Tensor, TriplaneShape]:
        planes = []
        for plane in shape.split(h):
            for layer in layers:
                plane = layer(plane, emb) if isinstance(layer, ResBlock) else layer(plane)
            planes.append(plane)
        shape = TriplaneShape.of_planes(*planes)
        return shape.join(*planes), shape

    def steps(self, x: Tensor, t: Tensor, cond: Tensor):
        """Generator: yields (h, shape) after every block and its 1-D attention, continues from the h sent back,
        and returns the B×c×L noise prediction."""
        emb = self.time_embed(timestep_embedding(t, self.model_channels))
        h = torch.cat([x, F.pad(cond, (0, x.shape[-1] - cond.shape[-1]))], 1)  # zero-padded conditioning
        h, shape = self._per_plane(self.input_blocks[0], h, self.target, emb)
        skips = [h]
        for block, attn in zip(self.input_blocks[1:], self.input_attns[1:]):
            h, shape = self._per_plane(block, h, shape, emb)
            h = yield attn(h), shape
            skips.append(h)  # after the yield: the skip is the post-coupling tensor
        h, shape = self._per_plane(self.middle_block, h, shape, emb)
        h = yield self.mid_attn(h), shape
        for block, attn in zip(self.output_blocks, self.output_attns):
            h, shape = self._per_plane(block, torch.cat([h, skips.pop()], 1), shape, emb)
            h = yield attn(h), shape
        return self._per_plane(self.out, h, shape, emb)[0]
