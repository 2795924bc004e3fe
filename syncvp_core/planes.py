"""Triplane latent layout: the three planes of a clip, flattened and concatenated along tokens.

A latent is `B×C×L` with `L = H'W' + TW' + TH'`, in the order `[xy | tw | th]`:
xy is `H'×W'` (time collapsed), tw is `T×W'` (height collapsed, the reference's "yt"),
th is `T×H'` (width collapsed, the reference's "xt"). The shape always travels beside the tensor;
nothing is ever looked up from L alone.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class TriplaneShape:
    frames: int  # T
    height: int  # H'
    width: int  # W'

    @property
    def sizes(self) -> tuple[int, int, int]:
        """Tokens per plane: (xy, tw, th)."""
        return (self.height * self.width, self.frames * self.width, self.frames * self.height)

    @property
    def tokens(self) -> int:
        return sum(self.sizes)

    @property
    def plane_dims(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """(rows, cols) of each plane as a 2-D map."""
        return ((self.height, self.width), (self.frames, self.width), (self.frames, self.height))

    def split(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """B×C×L -> (xy B×C×H'×W', tw B×C×T×W', th B×C×T×H')."""
        if x.shape[-1] != self.tokens:
            raise ValueError(f"latent has {x.shape[-1]} tokens, {self} needs {self.tokens}")
        flat = torch.split(x, self.sizes, dim=-1)
        return tuple(p.reshape(*x.shape[:-1], r, c) for p, (r, c) in zip(flat, self.plane_dims))

    def join(self, xy: Tensor, tw: Tensor, th: Tensor) -> Tensor:
        """Inverse of split: three B×C×rows×cols maps -> B×C×L."""
        for plane, dims in zip((xy, tw, th), self.plane_dims):
            if tuple(plane.shape[-2:]) != dims:
                raise ValueError(f"plane of size {tuple(plane.shape[-2:])} does not fit {self}")
        return torch.cat([p.flatten(-2) for p in (xy, tw, th)], dim=-1)

    def downsampled(self, factor: int) -> TriplaneShape:
        """Shape after `factor`× resampling of every plane; T shrinks too because the UNet's
        pooling acts on the temporal planes (tw, th) as well."""
        if self.frames % factor or self.height % factor or self.width % factor:
            raise ValueError(f"{self} is not divisible by {factor}")
        return TriplaneShape(self.frames // factor, self.height // factor, self.width // factor)

    @classmethod
    def of_planes(cls, xy: Tensor, tw: Tensor, th: Tensor) -> TriplaneShape:
        """The shape that three plane maps describe (checked for consistency)."""
        shape = cls(tw.shape[-2], xy.shape[-2], xy.shape[-1])
        if tuple(th.shape[-2:]) != shape.plane_dims[2] or tw.shape[-1] != shape.width:
            raise ValueError("planes disagree on T, H' or W'")
        return shape
