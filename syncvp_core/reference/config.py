"""Architecture of a reference-family model: every size the released files imply, plus the depth codec and the
diffusion settings. `load.infer_config` reads it off the tensors; `PAPER_128` is the released Cityscapes model
(FORMAT.md §1), used to build it without the files (key test, benchmark; `PRESETS`).

The object answers what rollout, evaluation and node ask of `model.cfg` (`name`, `resolution`, `cond_frames`,
`target_frames`, `depth_near`/`depth_far`, `diffusion`, `target_shape()`, `cond_shape()`, `to_dict()`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from syncvp_core.config import ClipGeometry, DiffusionConfig

from .codec import DepthCodec

FAMILY = "reference"


@dataclass
class ReferenceAutoencoderConfig:
    width: int = 192  # token width D (ddconfig.channels)
    layers: int = 8  # TimeSformer layers, encoder and decoder each
    patch: int = 4
    channels: int = 3  # image channels; depth is grey replicated to 3 (FORMAT.md §4)
    embed_dim: int = 4  # latent channels
    inner: int = 512  # TimeSformer attention width: 8 heads × 64, fixed in the reference code
    heads: int = 8
    projector_layers: int = 4
    projector_heads: int = 4  # fixed in the reference; dim_head = width // 8
    projector_mlp: int = 512


@dataclass
class ReferenceUNetConfig:
    model_channels: int = 256
    channel_mult: tuple[int, ...] = (1, 2)
    num_res_blocks: int = 1
    attention_levels: tuple[int, ...] = (0, 1)  # levels whose ResBlocks are followed by 2-D attention
    heads: int = 8  # not in the tensors: the released config's value
    norm_groups: int = 32


@dataclass
class ReferenceSTCAConfig:
    slots: tuple[int, ...] = (2, 3, 4, 5)  # generator yields that carry a block ("deep")
    heads: int = 8  # not in the tensors: the reference code default


@dataclass
class ReferenceConfig(ClipGeometry):
    name: str = "reference-paper-128"
    resolution: int = 128
    cond_frames: int = 2
    target_frames: int = 8
    autoencoder: ReferenceAutoencoderConfig = field(default_factory=ReferenceAutoencoderConfig)
    unet: ReferenceUNetConfig = field(default_factory=ReferenceUNetConfig)
    stca: ReferenceSTCAConfig = field(default_factory=ReferenceSTCAConfig)
    depth_codec: DepthCodec = field(default_factory=DepthCodec)
    # the released schedule and evaluation sampler: DDIM, 100 steps, eta 1 (FORMAT.md §4)
    diffusion: DiffusionConfig = field(default_factory=lambda: DiffusionConfig(prediction="eps", sampler="ddim"))
    family: str = FAMILY

    @property
    def depth_near(self) -> float:
        return self.depth_codec.near

    @property
    def depth_far(self) -> float:
        return self.depth_codec.far

    @classmethod
    def from_dict(cls, d: dict) -> ReferenceConfig:
        parts = {"autoencoder": ReferenceAutoencoderConfig, "unet": ReferenceUNetConfig,
                 "stca": ReferenceSTCAConfig, "depth_codec": DepthCodec, "diffusion": DiffusionConfig}
        top = {k: v for k, v in d.items() if k not in parts}
        nested = {k: part(**{n: tuple(v) if isinstance(v, list) else v for n, v in d[k].items()})
                  for k, part in parts.items() if k in d}
        return cls(**top, **nested)


PAPER_128 = ReferenceConfig()
# built with random weights for benchmarks: the released model, and the compat fixture's reduced widths at 64×64
PRESETS = {
    "reference-paper-128": PAPER_128,
    "reference-fixture": ReferenceConfig(name="reference-fixture", resolution=64,
                                         autoencoder=ReferenceAutoencoderConfig(width=16, layers=2),
                                         unet=ReferenceUNetConfig(model_channels=32)),
}
