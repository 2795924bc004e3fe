"""PVDM triplane autoencoder: a video clip <-> three small latent planes.

Encoder: patch embedding -> TimeSformer (divided time/space attention) -> three projectors, each a
small Transformer that collapses one axis of the token grid into a learned summary token:
  collapse T -> xy plane (H'×W'),  collapse H' -> tw plane (T×W'),  collapse W' -> th plane (T×H').
A 1×1 projection to `embed_dim` channels and tanh give latents in [-1, 1] (no KL/VQ, no scaling).

Decoder: 1×1 projection of each plane back to the token width, broadcast-sum of the three planes to a
T×H'×W' grid, a second TimeSformer, and an output head per frame:
- "linear" (the paper's): one transposed conv (kernel = stride = patch) to pixels, sigmoid to [-1, 1]; every token
  paints its own patch, which shows as blocks at the patch size while the decoder is young.
- "conv": a transposed conv to `head_channels` feature maps, then 3×3 convs across patch borders.
With `decoder_context` (ours, docs/model.md) the conv head also sees the frame before the clip at full resolution
(with a mask: 1 where that frame has a valid pixel) and its output is a residual on it, out = clamp(base + r),
base = the context frame where it is valid, and at its holes (no depth, e.g. sky) 0 or, with `context_hole_fill`,
the nearest valid values (so a hole does not pull the warped base at its border towards mid-range); the last conv
starts at zero, so a fresh decoder
returns the context frame and the latent only has to carry what changes. With `context_warp` the context frame
is first warped by a flow the tokens predict (one vector per token, zero at init): motion, the commonest change
between frames, is then a few numbers per patch instead of new pixels. Without a context frame (a modality that
did not condition the prediction) the mask is 0 and the latent carries the whole frame.

Positions are learned axial embeddings (frame + row + column, added once before each TimeSformer)
instead of the reference's rotary embeddings: simpler, 0.1 % of the parameters, and a clip shorter
than the longest served simply uses the first frame embeddings. Each projector reads its own summary
token (the reference reads token 0, the first real token, by mistake).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import AutoencoderConfig
from .depth import fill_from_neighbours
from .planes import TriplaneShape


class Attention(nn.Module):
    """Multi-head self-attention over the tokens of M×N×D."""

    def __init__(self, dim: int, heads: int, head_dim: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * heads * head_dim, bias=False)
        self.out = nn.Linear(heads * head_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        m, n, _ = x.shape
        q, k, v = self.qkv(x).view(m, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out(y.transpose(1, 2).reshape(m, n, -1))


class GEGLU(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.up = nn.Linear(dim, 2 * hidden)
        self.down = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        value, gate = self.up(x).chunk(2, dim=-1)
        return self.down(value * F.gelu(gate))


class DividedAttentionLayer(nn.Module):
    """TimeSformer layer on B×T×N×D: attention over time at each patch location, then over the
    patches of each frame, then a GEGLU MLP; all pre-LN residual."""

    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        w = cfg.width
        self.time_norm, self.time_attn = nn.LayerNorm(w), Attention(w, cfg.heads, cfg.head_dim)
        self.space_norm, self.space_attn = nn.LayerNorm(w), Attention(w, cfg.heads, cfg.head_dim)
        self.mlp_norm, self.mlp = nn.LayerNorm(w), GEGLU(w, cfg.ff_mult * w)

    def forward(self, x: Tensor) -> Tensor:
        b, t, n, d = x.shape
        h = self.time_norm(x).transpose(1, 2).reshape(b * n, t, d)
        x = x + self.time_attn(h).view(b, n, t, d).transpose(1, 2)
        h = self.space_norm(x).reshape(b * t, n, d)
        x = x + self.space_attn(h).view(b, t, n, d)
        return x + self.mlp(self.mlp_norm(x))


class TimeSformer(nn.Module):
    """Divided space-time Transformer over a B×T×H'×W'×D token grid."""

    def __init__(self, cfg: AutoencoderConfig, max_frames: int, grid: int):
        super().__init__()
        self.frame_pos = nn.Parameter(0.02 * torch.randn(max_frames, 1, 1, cfg.width))
        self.row_pos = nn.Parameter(0.02 * torch.randn(grid, 1, cfg.width))
        self.col_pos = nn.Parameter(0.02 * torch.randn(grid, cfg.width))
        self.layers = nn.ModuleList(DividedAttentionLayer(cfg) for _ in range(cfg.layers))

    def forward(self, x: Tensor) -> Tensor:
        b, t, hh, ww, d = x.shape
        x = (x + self.frame_pos[:t] + self.row_pos + self.col_pos).reshape(b, t, hh * ww, d)
        for layer in self.layers:
            x = layer(x)
        return x.view(b, t, hh, ww, d)


class AxisProjector(nn.Module):
    """Collapses one axis of the token grid: a pre-LN Transformer over the axis with a learned
    summary token prepended; the summary token's output is the plane value."""

    def __init__(self, cfg: AutoencoderConfig, length: int):
        super().__init__()
        w = cfg.width
        self.summary = nn.Parameter(0.02 * torch.randn(1, 1, w))
        self.pos = nn.Parameter(0.02 * torch.randn(1, length + 1, w))
        self.layers = nn.ModuleList(
            nn.ModuleList([
                nn.LayerNorm(w), Attention(w, cfg.projector_heads, cfg.projector_head_dim),
                nn.LayerNorm(w), nn.Sequential(nn.Linear(w, cfg.projector_mlp), nn.GELU(),
                                               nn.Linear(cfg.projector_mlp, w)),
            ])
            for _ in range(cfg.projector_layers))

    def forward(self, x: Tensor) -> Tensor:
        """M×n×D (n tokens along the collapsed axis) -> M×D."""
        x = torch.cat([self.summary.expand(len(x), -1, -1), x], dim=1) + self.pos[:, : x.shape[1] + 1]
        for attn_norm, attn, mlp_norm, mlp in self.layers:
            x = x + attn(attn_norm(x))
            x = x + mlp(mlp_norm(x))
        return x[:, 0]


class ConvHead(nn.Module):
    """Per-frame tokens -> pixels through full-resolution feature maps; optionally a residual on a context frame."""

    def __init__(self, cfg: AutoencoderConfig, channels: int):
        super().__init__()
        hc, self.context = cfg.head_channels, cfg.decoder_context
        extra = channels + 1 if self.context else 0  # context frame + its valid mask
        self.up = nn.ConvTranspose2d(cfg.width, hc, kernel_size=cfg.patch, stride=cfg.patch)
        self.refine = nn.Sequential(nn.GELU(), nn.Conv2d(hc + extra, hc, 3, padding=1), nn.GELU(),
                                    nn.Conv2d(hc, hc, 3, padding=1), nn.GELU(), nn.Conv2d(hc, channels, 3, padding=1))
        # with context_warp, each token also says where its pixels come from in the context frame (a flow)
        self.flow = nn.Conv2d(cfg.width, 2, 1) if cfg.context_warp else None
        for last in filter(None, (self.refine[-1] if self.context else None, self.flow)):
            nn.init.zeros_(last.weight)  # a fresh decoder returns its context frame (unmoved)
            nn.init.zeros_(last.bias)

    def forward(self, tokens: Tensor, base: Tensor | None, mask: Tensor | None) -> Tensor:
        """tokens N×D×H'×W'; base N×C×H×W (model space, 0 where absent) and mask N×1×H×W, for context heads."""
        h = self.up(tokens)
        if not self.context:
            return 2 * torch.sigmoid(self.refine(h)) - 1
        if self.flow is not None:
            base, mask = warp(torch.cat([base, mask], 1), self.flow(tokens)).split([base.shape[1], 1], 1)
        return (base + self.refine(torch.cat([h, base, mask], 1))).clamp(-1.0, 1.0)


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """Sample N×C×H×W `image` at each pixel moved by `flow` (N×2×h×w in pixels, x then y; bilinearly upsampled to
    H×W, so one flow vector per token moves its patch smoothly); edges repeat."""
    n, _, height, width = image.shape
    # pixels -> grid units (the grid spans 2 over the image): gradients per pixel of motion, not per half-image
    scale = torch.tensor([2.0 / width, 2.0 / height], dtype=image.dtype, device=image.device)[:, None, None]
    flow = F.interpolate(flow * scale, size=(height, width), mode="bilinear", align_corners=False)
    identity = F.affine_grid(torch.eye(2, 3, dtype=image.dtype, device=image.device).expand(n, 2, 3),
                             [n, 1, height, width], align_corners=False)
    return F.grid_sample(image, identity + flow.permute(0, 2, 3, 1), mode="bilinear", padding_mode="border",
                         align_corners=False)


class TriplaneAutoencoder(nn.Module):
    DECODER_PARTS = ("from_latent", "decoder", "head", "to_pixels")  # the submodules that decode

    def __init__(self, cfg: AutoencoderConfig, channels: int, resolution: int, frames: Sequence[int]):
        super().__init__()
        if resolution % cfg.patch:
            raise ValueError(f"resolution {resolution} is not a multiple of patch {cfg.patch}")
        self.cfg, self.channels, self.resolution = cfg, channels, resolution
        self.frames = tuple(sorted(set(frames)))  # clip lengths this autoencoder serves
        self.grid = resolution // cfg.patch
        w, p, longest = cfg.width, cfg.patch, max(self.frames)

        self.patch_embed = nn.Linear(channels * p * p, w)
        self.encoder = TimeSformer(cfg, longest, self.grid)
        self.collapse_t = AxisProjector(cfg, longest)  # -> xy
        self.collapse_h = AxisProjector(cfg, self.grid)  # -> tw
        self.collapse_w = AxisProjector(cfg, self.grid)  # -> th
        self.to_latent = nn.ModuleList(nn.Linear(w, cfg.embed_dim) for _ in range(3))  # xy, tw, th
        self.from_latent = nn.ModuleList(nn.Linear(cfg.embed_dim, w) for _ in range(3))
        self.decoder = TimeSformer(cfg, longest, self.grid)
        if cfg.output_head == "conv":
            self.head = ConvHead(cfg, channels)
        else:
            self.to_pixels = nn.ConvTranspose2d(w, channels, kernel_size=p, stride=p)

    def plane_shape(self, frames: int) -> TriplaneShape:
        if frames not in self.frames:
            raise ValueError(f"this autoencoder serves {self.frames} frames, not {frames}")
        return TriplaneShape(frames, self.grid, self.grid)

    def encode(self, video: Tensor) -> Tensor:
        """B×C×T×H×W in [-1, 1] -> B×embed_dim×L latent in [-1, 1]."""
        b, c, t, _, _ = video.shape
        shape, g, p = self.plane_shape(t), self.grid, self.cfg.patch
        patches = video.reshape(b, c, t, g, p, g, p).permute(0, 2, 3, 5, 4, 6, 1).reshape(b, t, g, g, p * p * c)
        h = self.encoder(self.patch_embed(patches))  # B×T×H'×W'×D
        d = h.shape[-1]
        xy = self.collapse_t(h.permute(0, 2, 3, 1, 4).reshape(b * g * g, t, d)).view(b, g, g, d)
        tw = self.collapse_h(h.transpose(2, 3).reshape(b * t * g, g, d)).view(b, t, g, d)
        th = self.collapse_w(h.reshape(b * t * g, g, d)).view(b, t, g, d)
        planes = [torch.tanh(proj(x)).permute(0, 3, 1, 2) for proj, x in zip(self.to_latent, (xy, tw, th))]
        return shape.join(*planes)

    def decode(self, latent: Tensor, frames: int, context: Tensor | None = None,
               context_valid: Tensor | None = None) -> Tensor:
        """B×embed_dim×L latent -> B×C×T×H×W in [-1, 1].

        A context decoder takes `context` B×C×H×W in [-1, 1] (the frame before the clip; None: no context) and
        `context_valid` B×1×H×W bool (its valid pixels; default all, all False for a sample without context).
        Other decoders ignore both."""
        shape = self.plane_shape(frames)
        xy, tw, th = (proj(x.permute(0, 2, 3, 1)) for proj, x in zip(self.from_latent, shape.split(latent)))
        # broadcast-sum to B×T×H'×W'×D: xy repeats over t, tw over rows, th over columns
        h = self.decoder(xy[:, None] + tw[:, :, None] + th[:, :, :, None])
        b, t, g, _, d = h.shape
        tokens = h.reshape(b * t, g, g, d).permute(0, 3, 1, 2)
        if self.cfg.output_head == "linear":
            video = 2 * torch.sigmoid(self.to_pixels(tokens)) - 1
        else:
            base, mask = self._context(b, latent, context, context_valid)
            video = self.head(tokens, None if base is None else base.repeat_interleave(t, 0),
                              None if mask is None else mask.repeat_interleave(t, 0))
        return video.view(b, t, self.channels, self.resolution, self.resolution).transpose(1, 2)

    def _context(self, batch: int, like: Tensor, context: Tensor | None, valid: Tensor | None):
        """(base, mask) of a context head: the context frame where valid, else 0; the mask as a float."""
        if not self.cfg.decoder_context:
            return None, None
        size = (batch, 1, self.resolution, self.resolution)
        if context is None:
            return like.new_zeros((batch, self.channels, *size[2:])), like.new_zeros(size)
        mask = (torch.ones(size, dtype=torch.bool, device=like.device) if valid is None else valid).to(like.dtype)
        base = context.to(like.dtype) * mask
        return (fill_from_neighbours(base, mask) if self.cfg.context_hole_fill else base), mask

