"""Every size of a SyncVP model in one place: nested dataclasses, presets and a dict round trip.

Presets:
- `tiny`: 64×64, sized so that one 8-frame RGB-D chunk at 25 DDIM steps runs in about a second
  on a 2-core CPU (measured numbers in docs/model.md). The default.
- `paper-128`: the reference Cityscapes sizes (UNet 58.56 M per branch, 4 STCA blocks, 23 M per AE).
- `paper-64`: the same widths at 64×64 (the reference's patch rule gives a 16×16 latent grid).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .planes import TriplaneShape

COUPLING_KINDS = ("stca", "full", "two_way", "none", "single_network")
COUPLING_SLOTS = ("deep", "all")
SAMPLERS = ("ddim", "dpmsolver")  # sampler.make_sampler; here so that a config is checked without torch
OUTPUT_HEADS = ("linear", "conv")
DEPTH_MAPPINGS = ("inverse", "log")  # see depth.py


@dataclass
class AutoencoderConfig:
    width: int = 192  # token width of encoder, projectors and decoder
    patch: int = 4  # pixels per patch side; the latent grid is resolution // patch
    layers: int = 8  # TimeSformer layers in the encoder and again in the decoder
    heads: int = 8
    head_dim: int = 64
    ff_mult: int = 4  # GEGLU hidden width = ff_mult * width
    embed_dim: int = 4  # latent channels per plane
    projector_layers: int = 4  # depth of each axis-collapsing Transformer
    projector_heads: int = 4
    projector_head_dim: int = 24
    projector_mlp: int = 512
    output_head: str = "linear"  # "linear": one transposed conv per token (the paper's); "conv": + two 3×3 convs
    head_channels: int = 32  # feature maps of the conv head at full resolution
    decoder_context: bool = False  # decode on the frame before the clip (residual; ours, docs/model.md)
    context_warp: bool = False  # warp that frame by a per-token flow before the residual (needs decoder_context)
    context_hole_fill: bool = False  # fill that frame's holes from the nearest valid pixels before it is the base

    def __post_init__(self):
        if self.output_head not in OUTPUT_HEADS:
            raise ValueError(f"output_head {self.output_head!r} not in {OUTPUT_HEADS}")
        if self.decoder_context and self.output_head != "conv":
            raise ValueError("decoder_context needs output_head 'conv' (the context enters the conv head)")
        if self.context_warp and not self.decoder_context:
            raise ValueError("context_warp needs decoder_context (it warps the context frame)")
        if self.context_hole_fill and not self.decoder_context:
            raise ValueError("context_hole_fill needs decoder_context (it fills the context frame)")


@dataclass
class UNetConfig:
    model_channels: int = 256
    channel_mult: tuple[int, ...] = (1, 2)
    num_res_blocks: int = 1
    attention_levels: tuple[int, ...] = (0, 1)  # levels whose blocks get per-plane 2-D attention
    heads: int = 8
    norm_groups: int = 32


@dataclass
class CouplingConfig:
    kind: str = "stca"  # one of COUPLING_KINDS
    slots: str = "deep"  # "deep": every block at the deepest level (4 in the reference); "all": every block
    heads: int = 8

    def __post_init__(self):
        if self.kind not in COUPLING_KINDS:
            raise ValueError(f"coupling kind {self.kind!r} not in {COUPLING_KINDS}")
        if self.slots not in COUPLING_SLOTS:
            raise ValueError(f"coupling slots {self.slots!r} not in {COUPLING_SLOTS}")


@dataclass
class DiffusionConfig:
    timesteps: int = 1000
    beta_start: float = 0.0015  # LDM "linear": sqrt(beta) linear between these, then squared
    beta_end: float = 0.0195
    shared_noise: bool = True  # one epsilon for both modalities (False: independent, an ablation)
    shared_timestep: bool = True  # one t per sample for both modalities (False: independent, an ablation)
    dropout_probs: tuple[float, float, float] = (0.5, 0.25, 0.25)  # both / rgb-only / depth-only conditioned
    prediction: str = "eps"  # network output: "eps" (the paper's) or "v" (v-prediction); diffusion.PREDICTION_TYPES
    sampler: str = "ddim"  # sampler at inference, one of SAMPLERS (DPM-Solver++ ignores eta)
    sampling_steps: int = 100  # network evaluations per sample at inference
    eta: float = 1.0  # DDIM stochasticity (reference default)

    def __post_init__(self):
        if abs(sum(self.dropout_probs) - 1.0) > 1e-6:
            raise ValueError(f"dropout_probs {self.dropout_probs} must sum to 1")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler {self.sampler!r} not in {SAMPLERS}")


class ClipGeometry:
    """Latent shapes and the dict form of a model config (a dataclass with `resolution`, `cond_frames`,
    `target_frames` and `autoencoder.patch`); both model families' configs share it."""

    def _shape(self, frames: int) -> TriplaneShape:
        grid = self.resolution // self.autoencoder.patch
        return TriplaneShape(frames, grid, grid)

    def target_shape(self) -> TriplaneShape:
        return self._shape(self.target_frames)

    def cond_shape(self) -> TriplaneShape:
        return self._shape(self.cond_frames)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class SyncVPConfig(ClipGeometry):
    name: str = "tiny"
    resolution: int = 64  # square frames
    cond_frames: int = 2
    target_frames: int = 8
    depth_near: float = 1.0  # metres; nearer depths saturate at model value +1
    depth_far: float = 80.0  # metres; farther depths (and invalid pixels) map to -1
    depth_mapping: str = "inverse"  # metres -> model space: "inverse" (the paper's) or "log" (depth.py)
    shared_autoencoder: bool = True  # one AE per modality for both clip lengths
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    coupling: CouplingConfig = field(default_factory=CouplingConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)

    def __post_init__(self):
        if self.resolution % self.autoencoder.patch:
            raise ValueError(f"resolution {self.resolution} is not a multiple of patch {self.autoencoder.patch}")
        if not 0 < self.depth_near < self.depth_far:
            raise ValueError("need 0 < depth_near < depth_far")
        if self.depth_mapping not in DEPTH_MAPPINGS:
            raise ValueError(f"depth_mapping {self.depth_mapping!r} not in {DEPTH_MAPPINGS}")
        # every UNet level halves T, H' and W' of the target planes
        self.target_shape().downsampled(2 ** (len(self.unet.channel_mult) - 1))

    @classmethod
    def from_dict(cls, d: dict) -> SyncVPConfig:
        parts = {"autoencoder": AutoencoderConfig, "unet": UNetConfig,
                 "coupling": CouplingConfig, "diffusion": DiffusionConfig}
        top = {k: v for k, v in d.items() if k not in parts}
        nested = {k: _from_fields(part, d[k]) for k, part in parts.items() if k in d}
        return cls(**top, **nested)


def _from_fields(part, values: dict):
    # JSON/YAML turn tuples into lists; the dataclasses hold tuples
    return part(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


PRESETS: dict[str, SyncVPConfig] = {
    "tiny": SyncVPConfig(
        name="tiny",
        resolution=64,
        depth_far=256.0,  # covers the synthetic generator's 250 m sensor range
        depth_mapping="log",
        shared_autoencoder=True,
        autoencoder=AutoencoderConfig(width=96, patch=8, layers=2, heads=4, head_dim=24, ff_mult=2,
                                      embed_dim=8, projector_layers=1, projector_heads=4,
                                      projector_head_dim=24, projector_mlp=192,
                                      output_head="conv", head_channels=16, decoder_context=True,
                                      context_warp=True, context_hole_fill=True),
        unet=UNetConfig(model_channels=40, channel_mult=(1, 2), num_res_blocks=1,
                        attention_levels=(1,), heads=4, norm_groups=8),
        coupling=CouplingConfig(kind="stca", slots="deep", heads=4),
        # DDIM, 2 steps, eta 0: the fewest evaluations on the quality-versus-evaluations curve within 3 % of
        # DDIM-25 eta 1, and of the samplers at 2 the lowest depth AbsRel (docs/model-card.md)
        diffusion=DiffusionConfig(prediction="v", sampling_steps=2, eta=0.0),
    ),
    "paper-64": SyncVPConfig(name="paper-64", resolution=64, shared_autoencoder=False),
    "paper-128": SyncVPConfig(name="paper-128", resolution=128, shared_autoencoder=False),
}


def get_config(name: str) -> SyncVPConfig:
    """A fresh copy of a preset (callers may edit it)."""
    if name not in PRESETS:
        raise ValueError(f"unknown config {name!r}; presets: {', '.join(PRESETS)}")
    return SyncVPConfig.from_dict(PRESETS[name].to_dict())
