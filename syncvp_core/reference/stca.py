"""The reference STCA block (`SingleVideoDualCrossAttentionBlock` with `MultiHeadSingleCrossAttention`, FORMAT.md
§4), with the files' key names. Per triplane plane, with weights shared by the three planes:

    x = GN_1(x_plane), y = GN_2(y_plane)                          GroupNorm statistics per plane
    Q_x, V_x, Q_y, V_y = 1×1 convs (with bias) of x and y          no key projections
    heads: the channel-first C×Lp buffer VIEWED as Lp×heads×d  (head h of "token" i = flat [iC + hd, iC + hd + d))
    A = Q_x Q_yᵀ / sqrt(d);  x_out = softmax(A) V_y;  y_out = softmax(Aᵀ) V_x
    x' = x + W_x_out(x_out),  y' = y + W_y_out(y_out)             residual on the NORMALISED input, no gating

The plane boundaries come from the TriplaneShape the UNet tracks (the reference looks them up in a table keyed
by L; at the released sizes both give the same split).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from syncvp_core.planes import TriplaneShape

from .unet import GroupNorm32


class SharedScoreAttention(nn.Module):
    """`MultiHeadSingleCrossAttention`: the RGB and depth queries score each other; one score matrix."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.heads = heads
        for name in ("W_q_x", "W_q_y", "W_v_x", "W_v_y", "W_x_out", "W_y_out"):
            setattr(self, name, nn.Conv1d(channels, channels, 1))

    def _heads(self, x: Tensor) -> Tensor:
        b, c, n = x.shape
        return x.reshape(b, -1, self.heads, c // self.heads).transpose(1, 2)  # a view of B×C×Lp, no transpose first

    def _fold(self, x: Tensor, like: Tensor) -> Tensor:
        return x.transpose(1, 2).reshape(like.shape)  # the inverse view

    def forward(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        q_x, q_y = self._heads(self.W_q_x(x)), self._heads(self.W_q_y(y))
        v_x, v_y = self._heads(self.W_v_x(x)), self._heads(self.W_v_y(y))
        scores = q_x @ q_y.transpose(-1, -2) / q_x.shape[-1] ** 0.5
        x_out = torch.softmax(scores, -1) @ v_y
        y_out = torch.softmax(scores.transpose(-1, -2), -1) @ v_x
        return self.W_x_out(self._fold(x_out, x)), self.W_y_out(self._fold(y_out, y))


class ReferenceSTCA(nn.Module):
    def __init__(self, channels: int, heads: int, groups: int):
        super().__init__()
        self.norm_1, self.norm_2 = GroupNorm32(groups, channels), GroupNorm32(groups, channels)
        self.cross_attn = SharedScoreAttention(channels, heads)

    def forward(self, h_rgb: Tensor, h_depth: Tensor, shape: TriplaneShape) -> tuple[Tensor, Tensor]:
        out_rgb, out_depth = [], []
        for x, y in zip(torch.split(h_rgb, shape.sizes, -1), torch.split(h_depth, shape.sizes, -1)):
            x, y = self.norm_1(x), self.norm_2(y)
            dx, dy = self.cross_attn(x, y)
            out_rgb.append(x + dx)
            out_depth.append(y + dy)
        return torch.cat(out_rgb, -1), torch.cat(out_depth, -1)
