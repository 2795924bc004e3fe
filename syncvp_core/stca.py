"""Couplings between the RGB and depth branches, applied at the coupling slots of the two UNets.

STCA (synchronous cross-attention), per plane:
    X̂ = GN_R(X), Ŷ = GN_D(Y)                      (X: RGB, Y: depth features, C×L)
    Q_R, V_R = W_qr X̂, W_vr X̂;  Q_D, V_D = W_qd Ŷ, W_vd Ŷ      (no key projections)
    A = Q_R Q_Dᵀ / √d                              (one score matrix per head, shared both ways)
    X' = X + W_or softmax(A) V_D                    (RGB reads depth)
    Y' = Y + W_od softmax(Aᵀ) V_R                   (depth reads RGB)
The attention runs separately on the xy, tw and th token sets (one set of weights for all three);
GroupNorm statistics span the whole latent, so the split changes only which tokens meet.
Fixed vs the reference: heads split over the channels of each token (F1, the reference viewed the
channel-first tensor without transposing); the residual is on the un-normalised input and W_o starts
at zero (F2), so a freshly coupled model computes exactly its two pretrained branches.

Ablations (CouplingConfig.kind): "full" = the same shared-score attention over all L tokens at once;
"two_way" = conventional cross-attention in both directions with keys (two score matrices) over all
tokens. "none" and "single_network" have no coupling blocks.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from .planes import TriplaneShape
from .unet import zero_init


def _split_heads(x: Tensor, heads: int) -> Tensor:
    """B×N×C -> B×heads×N×(C/heads): each token's channels are cut into heads (F1)."""
    b, n, c = x.shape
    return x.view(b, n, heads, c // heads).transpose(1, 2)


def _merge_heads(x: Tensor) -> Tensor:
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


def shared_score_attention(q_rgb: Tensor, q_depth: Tensor, v_rgb: Tensor, v_depth: Tensor,
                           heads: int) -> tuple[Tensor, Tensor]:
    """STCA core on token-major B×N×C tensors -> (RGB output, depth output), each B×N×C."""
    q_rgb, q_depth, v_rgb, v_depth = (_split_heads(x, heads) for x in (q_rgb, q_depth, v_rgb, v_depth))
    scores = q_rgb @ q_depth.transpose(-1, -2) / math.sqrt(q_rgb.shape[-1])  # B×h×N_rgb×N_depth
    rgb = scores.softmax(dim=-1) @ v_depth
    depth = scores.transpose(-1, -2).softmax(dim=-1) @ v_rgb
    return _merge_heads(rgb), _merge_heads(depth)


def stca_core(q_rgb: Tensor, q_depth: Tensor, v_rgb: Tensor, v_depth: Tensor, heads: int,
              plane_sizes: tuple[int, ...] | None) -> tuple[Tensor, Tensor]:
    """Shared-score attention per plane (plane_sizes = TriplaneShape.sizes) or over all tokens (None)."""
    if plane_sizes is None:
        return shared_score_attention(q_rgb, q_depth, v_rgb, v_depth, heads)
    parts = [shared_score_attention(*plane, heads)
             for plane in zip(*(x.split(plane_sizes, dim=1) for x in (q_rgb, q_depth, v_rgb, v_depth)))]
    return torch.cat([rgb for rgb, _ in parts], dim=1), torch.cat([depth for _, depth in parts], dim=1)


class STCA(nn.Module):
    """Pre-norm residual STCA block; `split_planes=False` gives the "full" ablation."""

    def __init__(self, channels: int, heads: int, groups: int, split_planes: bool = True):
        super().__init__()
        self.heads, self.split_planes = heads, split_planes
        self.norm_rgb, self.norm_depth = nn.GroupNorm(groups, channels), nn.GroupNorm(groups, channels)
        self.qv_rgb = nn.Linear(channels, 2 * channels)  # W_qr and W_vr side by side
        self.qv_depth = nn.Linear(channels, 2 * channels)
        self.out_rgb = zero_init(nn.Linear(channels, channels))
        self.out_depth = zero_init(nn.Linear(channels, channels))

    def forward(self, h_rgb: Tensor, h_depth: Tensor, shape: TriplaneShape) -> tuple[Tensor, Tensor]:
        """B×C×L features of both branches -> coupled features, same shapes."""
        q_rgb, v_rgb = self.qv_rgb(self.norm_rgb(h_rgb).transpose(1, 2)).chunk(2, dim=-1)
        q_depth, v_depth = self.qv_depth(self.norm_depth(h_depth).transpose(1, 2)).chunk(2, dim=-1)
        sizes = shape.sizes if self.split_planes else None
        rgb, depth = stca_core(q_rgb, q_depth, v_rgb, v_depth, self.heads, sizes)
        return h_rgb + self.out_rgb(rgb).transpose(1, 2), h_depth + self.out_depth(depth).transpose(1, 2)


class TwoWayCrossAttention(nn.Module):
    """Ablation: conventional cross-attention both ways (own queries, the other branch's keys and
    values), pre-norm residual with zero-initialised outputs, over all tokens."""

    def __init__(self, channels: int, heads: int, groups: int):
        super().__init__()
        self.heads = heads
        self.norm_rgb, self.norm_depth = nn.GroupNorm(groups, channels), nn.GroupNorm(groups, channels)
        self.qkv_rgb = nn.Linear(channels, 3 * channels)
        self.qkv_depth = nn.Linear(channels, 3 * channels)
        self.out_rgb = zero_init(nn.Linear(channels, channels))
        self.out_depth = zero_init(nn.Linear(channels, channels))

    def forward(self, h_rgb: Tensor, h_depth: Tensor, shape: TriplaneShape) -> tuple[Tensor, Tensor]:
        """Same interface as STCA; `shape` is unused because every token meets every token."""
        q_r, k_r, v_r = (_split_heads(x, self.heads) for x in
                         self.qkv_rgb(self.norm_rgb(h_rgb).transpose(1, 2)).chunk(3, dim=-1))
        q_d, k_d, v_d = (_split_heads(x, self.heads) for x in
                         self.qkv_depth(self.norm_depth(h_depth).transpose(1, 2)).chunk(3, dim=-1))
        rgb = _merge_heads(F.scaled_dot_product_attention(q_r, k_d, v_d))
        depth = _merge_heads(F.scaled_dot_product_attention(q_d, k_r, v_r))
        return h_rgb + self.out_rgb(rgb).transpose(1, 2), h_depth + self.out_depth(depth).transpose(1, 2)


def make_coupling(kind: str, channels: int, heads: int, groups: int) -> nn.Module:
    """A coupling block for CouplingConfig.kind "stca", "full" or "two_way"."""
    if kind == "stca":
        return STCA(channels, heads, groups, split_planes=True)
    if kind == "full":
        return STCA(channels, heads, groups, split_planes=False)
    if kind == "two_way":
        return TwoWayCrossAttention(channels, heads, groups)
    raise ValueError(f"coupling kind {kind!r} has no coupling block")


def attention_flop_ratio(shape: TriplaneShape, channels: int, heads: int) -> float:
    """Measured FLOPs of the STCA attention core (scores, softmax, A·V both ways) split per plane,
    divided by the same core over all tokens at once. FlopCounterMode counts the matmuls; softmax is
    elementwise on the same score matrices, so it scales alike. Runs on the meta device (no compute)."""
    q_rgb, q_depth, v_rgb, v_depth = (torch.empty(1, shape.tokens, channels, device="meta") for _ in range(4))

    def core_flops(plane_sizes):
        with FlopCounterMode(display=False) as counter:
            stca_core(q_rgb, q_depth, v_rgb, v_depth, heads, plane_sizes)
        return counter.get_total_flops()

    return core_flops(shape.sizes) / core_flops(None)
