"""The reference PVDM/SyncVP ViT autoencoder (FORMAT.md §4-§5), with the released files' module and key names.

Quirks reproduced on purpose (they are what the released weights compute):
- no learned positions in the TimeSformers: rotary q/k in every time attention (1-D over frames, with the
  reference's `[freqs, freqs]` concatenation, so the two channels of a rotated pair use different frequencies)
  and every space attention (2-D axial over patches);
- each projector appends its learned token at the END, adds `pos[:, :n+1]` and reads output 0, which is the
  first real element, not the token;
- 3-channel images for depth too (grey replicated).

`encode(video)`: B×C×T×H×W in [-1, 1] -> B×embed_dim×L, L = H'W' + T·W' + T·H' ordered [xy | yt | xt] (the same
layout as `syncvp_core.planes.TriplaneShape`). `decode(latent, frames)`: -> B×C×T×H×W, 2·sigmoid − 1.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from syncvp_core.planes import TriplaneShape

from .config import ReferenceAutoencoderConfig

ROTARY_BASE = 10000.0  # RotaryEmbedding
AXIAL_MAX_FREQ = 5.0  # AxialRotaryEmbedding: scales = logspace(0, log2(5), dim/4, base 2)


def rotate_every_two(x: Tensor) -> Tensor:
    """(x0, x1, x2, x3, …) -> (-x1, x0, -x3, x2, …)."""
    pairs = x.unflatten(-1, (-1, 2))
    return torch.stack((-pairs[..., 1], pairs[..., 0]), -1).flatten(-2)


class FrameRotary(nn.Module):
    """1-D rotary over frame indices; angle of channel k at frame f = f · inv_freqs[k mod dim/2]."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("inv_freqs", ROTARY_BASE ** (-torch.arange(0, dim, 2).float() / dim))

    def angles(self, frames: int) -> Tensor:
        freqs = torch.arange(frames, device=self.inv_freqs.device).float()[:, None] * self.inv_freqs
        return torch.cat([freqs, freqs], -1)  # the reference's concatenation, not an interleave


class PatchRotary(nn.Module):
    """2-D axial rotary over patch rows and columns, each angle repeated for channels 2m and 2m+1."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("scales", torch.logspace(0.0, math.log2(AXIAL_MAX_FREQ), dim // 4, base=2.0))

    def angles(self, rows: int, cols: int) -> Tensor:
        def axis(n):
            return torch.linspace(-1.0, 1.0, n, device=self.scales.device)[:, None] * self.scales * math.pi
        r, c = axis(rows), axis(cols)
        grid = torch.cat([r[:, None, :].expand(rows, cols, -1), c[None, :, :].expand(rows, cols, -1)], -1)
        return grid.reshape(rows * cols, -1).repeat_interleave(2, -1)


class Attention(nn.Module):
    """Multi-head self-attention, qkv chunked q|k|v with heads as (h d); optional rotary on scaled q and on k."""

    def __init__(self, dim: int, heads: int, dim_head: int):
        super().__init__()
        self.heads, self.scale = heads, dim_head ** -0.5
        self.to_qkv = nn.Linear(dim, 3 * heads * dim_head, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(heads * dim_head, dim)])  # `to_out.0`: Linear (+ Dropout)

    def forward(self, x: Tensor, angles: Tensor | None = None) -> Tensor:
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in self.to_qkv(x).chunk(3, -1))
        q = q * self.scale
        if angles is not None:
            cos, sin = angles.cos(), angles.sin()
            q, k = q * cos + rotate_every_two(q) * sin, k * cos + rotate_every_two(k) * sin
        out = F.scaled_dot_product_attention(q, k, v, scale=1.0)
        return self.to_out[0](out.transpose(1, 2).flatten(-2))


class GEGLU(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        a, gate = x.chunk(2, -1)
        return a * F.gelu(gate)


def feed_forward(dim: int, hidden: int, gated: bool) -> nn.Sequential:
    """`net.0` and `net.3` as in the files; index 2 is the reference's dropout (p = 0)."""
    if gated:
        return nn.Sequential(nn.Linear(dim, 2 * hidden), GEGLU(), nn.Identity(), nn.Linear(hidden, dim))
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Identity(), nn.Linear(hidden, dim))


class PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.fn, self.norm = fn, nn.LayerNorm(dim)


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, gated: bool):
        super().__init__()
        self.net = feed_forward(dim, hidden, gated)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class TimeSformer(nn.Module):
    """Pre-LN layers of time attention, space attention and GEGLU feed-forward on B×T×N×D tokens."""

    def __init__(self, cfg: ReferenceAutoencoderConfig, patch_embedding: bool):
        super().__init__()
        d, dim_head = cfg.width, cfg.inner // cfg.heads
        if patch_embedding:
            self.to_patch_embedding = nn.Linear(cfg.patch ** 2 * cfg.channels, d)
        self.frame_rot_emb, self.image_rot_emb = FrameRotary(dim_head), PatchRotary(dim_head)
        self.layers = nn.ModuleList(nn.ModuleList([
            PreNorm(d, Attention(d, cfg.heads, dim_head)), PreNorm(d, Attention(d, cfg.heads, dim_head)),
            PreNorm(d, FeedForward(d, 4 * d, gated=True))]) for _ in range(cfg.layers))

    def forward(self, x: Tensor, rows: int, cols: int) -> Tensor:
        b, t, n, d = x.shape
        time_angles, space_angles = self.frame_rot_emb.angles(t), self.image_rot_emb.angles(rows, cols)
        for time_attn, space_attn, ff in self.layers:
            h = time_attn.fn(time_attn.norm(x).transpose(1, 2).reshape(b * n, t, d), time_angles)
            x = x + h.reshape(b, n, t, d).transpose(1, 2)
            x = x + space_attn.fn(space_attn.norm(x).reshape(b * t, n, d), space_angles).reshape(b, t, n, d)
            x = x + ff.fn(ff.norm(x))
        return x


class Projector(nn.Module):
    """Axis-collapsing Transformer (`*_quant_attn`): pre-LN attention + GELU MLP, no rotary, no final norm."""

    def __init__(self, cfg: ReferenceAutoencoderConfig):
        super().__init__()
        d = cfg.width
        self.layers = nn.ModuleList(nn.ModuleList([
            PreNorm(d, Attention(d, cfg.projector_heads, d // 8)),
            PreNorm(d, FeedForward(d, cfg.projector_mlp, gated=False))]) for _ in range(cfg.projector_layers))

    def forward(self, x: Tensor) -> Tensor:
        for attn, ff in self.layers:
            x = x + attn.fn(attn.norm(x))
            x = x + ff.fn(ff.norm(x))
        return x


class ReferenceAutoencoder(nn.Module):
    """`ViTAutoencoder(embed_dim, ddconfig)` for one clip length."""

    def __init__(self, cfg: ReferenceAutoencoderConfig, resolution: int, frames: int):
        super().__init__()
        d, grid = cfg.width, resolution // cfg.patch
        self.cfg, self.shape = cfg, TriplaneShape(frames, grid, grid)
        for plane, length in (("xy", frames), ("yt", grid), ("xt", grid)):  # yt collapses H', xt collapses W'
            setattr(self, f"{plane}_token", nn.Parameter(torch.randn(1, 1, d)))
            setattr(self, f"{plane}_pos_embedding", nn.Parameter(torch.randn(1, length + 1, d)))
        self.register_buffer("coords", torch.linspace(-1.0, 1.0, frames)[:, None])  # unused, in the files
        self.encoder, self.decoder = TimeSformer(cfg, patch_embedding=True), TimeSformer(cfg, patch_embedding=False)
        self.to_pixel = nn.ModuleList([nn.Identity(),  # index 0 is the reference's einops Rearrange
                                       nn.ConvTranspose2d(d, cfg.channels, cfg.patch, stride=cfg.patch)])
        for plane in ("xy", "yt", "xt"):
            setattr(self, f"{plane}_quant_attn", Projector(cfg))
            setattr(self, f"pre_{plane}", nn.Conv2d(d, cfg.embed_dim, 1))
            setattr(self, f"post_{plane}", nn.Conv2d(cfg.embed_dim, d, 1))

    def _collapse(self, plane: str, seqs: Tensor) -> Tensor:
        """N×n×D sequences -> N×D: token appended last, positions added, output 0 (the first real element) read."""
        token = getattr(self, f"{plane}_token").expand(seqs.shape[0], -1, -1)
        x = torch.cat([seqs, token], 1) + getattr(self, f"{plane}_pos_embedding")[:, :seqs.shape[1] + 1]
        return getattr(self, f"{plane}_quant_attn")(x)[:, 0]

    def encode(self, video: Tensor) -> Tensor:
        b, c, t, h, w = video.shape
        p, (_, gh, gw) = self.cfg.patch, (t, h // self.cfg.patch, w // self.cfg.patch)
        if (t, gh, gw) != (self.shape.frames, self.shape.height, self.shape.width):
            raise ValueError(f"this autoencoder takes {self.shape.frames}×{self.shape.height * p}² clips, "
                             f"got {tuple(video.shape)}")
        # b c t (h p1) (w p2) -> b t (h w) (p1 p2 c): channel fastest, as the reference
        patches = video.reshape(b, c, t, gh, p, gw, p).permute(0, 2, 3, 5, 4, 6, 1).reshape(b, t, gh * gw, -1)
        x = self.encoder(self.encoder.to_patch_embedding(patches), gh, gw).reshape(b, t, gh, gw, -1)
        d = x.shape[-1]
        xy = self._collapse("xy", x.permute(0, 2, 3, 1, 4).reshape(-1, t, d)).reshape(b, gh, gw, d)
        yt = self._collapse("yt", x.permute(0, 1, 3, 2, 4).reshape(-1, gh, d)).reshape(b, t, gw, d)
        xt = self._collapse("xt", x.reshape(-1, gw, d)).reshape(b, t, gh, d)
        planes = [torch.tanh(getattr(self, f"pre_{n}")(z.permute(0, 3, 1, 2)))
                  for n, z in (("xy", xy), ("yt", yt), ("xt", xt))]
        return self.shape.join(*planes)

    def decode(self, latent: Tensor, frames: int | None = None) -> Tensor:
        if frames is not None and frames != self.shape.frames:
            raise ValueError(f"this autoencoder decodes {self.shape.frames}-frame clips, not {frames}")
        xy, yt, xt = self.shape.split(latent)
        xy, yt, xt = self.post_xy(xy), self.post_yt(yt), self.post_xt(xt)
        grid = xy[:, :, None] + yt[:, :, :, None, :] + xt[:, :, :, :, None]  # B×D×T×H'×W'
        b, d, t, gh, gw = grid.shape
        x = self.decoder(grid.permute(0, 2, 3, 4, 1).reshape(b, t, gh * gw, d), gh, gw)
        tokens = x.reshape(b * t, gh, gw, d).permute(0, 3, 1, 2)
        out = 2 * torch.sigmoid(self.to_pixel[1](tokens)) - 1  # (B·T)×C×H×W
        return out.unflatten(0, (b, t)).transpose(1, 2)
