"""Reading a release directory: the five `.pth` files, the architecture inferred from their tensors, strict key
coverage, and one clear `CheckpointError` line for a foreign, corrupt or missing file.

A release (the authors' `download.sh`, or the compat fixture) is a directory with

    ae_rgb_8f_<name>.pth  ae_depth_8f_<name>.pth  ae_rgb_2f_<name>.pth  ae_depth_2f_<name>.pth  syncvp_<name>.pth

(`<name>` is `cityscapes` or `bair` in the release, `fixture` in the fixture), each a flat fp32 state dict
(FORMAT.md §2). Nothing is hard-coded to the paper's widths: widths, layer counts, frames, resolution, UNet levels
and STCA slots come from the tensor shapes. Three values are not in the tensors and take the reference code's
fixed values: the UNet and STCA head counts (8) and the schedule (LDM linear 0.0015..0.0195, 1000 steps).
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import torch

from syncvp_core.checkpoint_format import CheckpointError
from syncvp_core.checkpoint_format import one_line as _one_line
from syncvp_core.config import DiffusionConfig

from .codec import DepthCodec
from .config import ReferenceAutoencoderConfig, ReferenceConfig, ReferenceSTCAConfig, ReferenceUNetConfig
from .model import ReferenceSyncVP

AE_MEMBERS = ("ae_rgb_8f", "ae_depth_8f", "ae_rgb_2f", "ae_depth_2f")
MEMBERS = AE_MEMBERS + ("syncvp",)
UNET = "diffusion_model.diff_rgb.diffusion_model."
STCA = "diffusion_model.cross_attns."
# the reference evaluation's sampler: DDIM, 100 steps, eta 1 (FORMAT.md §4)
RELEASE_DIFFUSION = dict(timesteps=1000, beta_start=0.0015, beta_end=0.0195, prediction="eps", sampler="ddim",
                         sampling_steps=100, eta=1.0)


def release_files(directory) -> tuple[str, dict[str, Path]]:
    """(name, {member: path}) of the release in `directory`; CheckpointError naming what is missing."""
    directory = Path(directory)
    names = sorted(m[1] for p in directory.glob("syncvp_*.pth") if (m := re.fullmatch(r"syncvp_(.+)\.pth", p.name)))
    if not names:
        names = sorted({m[1] for p in directory.glob("ae_*.pth")
                        if (m := re.fullmatch(r"ae_(?:rgb|depth)_\d+f_(.+)\.pth", p.name))})
    if len(names) != 1:
        found = "none" if not names else ", ".join(names)
        raise CheckpointError(f"{directory} must hold one release (ae_{{rgb,depth}}_{{2f,8f}}_<name>.pth and "
                              f"syncvp_<name>.pth); release names found: {found}")
    files = {member: directory / f"{member}_{names[0]}.pth" for member in MEMBERS}
    missing = [p.name for p in files.values() if not p.is_file()]
    if missing:
        raise CheckpointError(f"{directory} is missing {', '.join(missing)} of release {names[0]!r}")
    return names[0], files


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A flat state dict from a `.pth`, safely (weights only) onto the CPU."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load raises many types (unpickling, zip, EOF, runtime) on foreign bytes
        raise CheckpointError(f"cannot read {path} as a PyTorch state dict: {_one_line(e)}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} is not a flat state dict of tensors (a SyncVP release file is)")
    return state


def _count(state: dict, prefix: str) -> int:
    """How many indices i have keys starting with `prefix` + 'i.'."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    return len({m[1] for key in state if (m := pattern.match(key))})


def _shape(state: dict, key: str, path: Path, what: str) -> torch.Size:
    if key not in state:
        raise CheckpointError(f"{path} is not a released SyncVP {what}: it has no {key!r}")
    return state[key].shape


def infer_autoencoder(state: dict, path: Path) -> tuple[ReferenceAutoencoderConfig, int, int]:
    """(architecture, resolution, frames) of one autoencoder file."""
    def shape(key):
        return _shape(state, key, path, "autoencoder")

    width, frames, grid = shape("xy_token")[-1], shape("xy_pos_embedding")[1] - 1, shape("yt_pos_embedding")[1] - 1
    _, channels, patch, _ = shape("to_pixel.1.weight")
    inner = shape("encoder.layers.0.0.fn.to_qkv.weight")[0] // 3
    dim_head = 2 * shape("encoder.frame_rot_emb.inv_freqs")[0]
    cfg = ReferenceAutoencoderConfig(
        width=width, layers=_count(state, "encoder.layers."), patch=patch, channels=channels,
        embed_dim=shape("pre_xy.weight")[0], inner=inner, heads=inner // dim_head,
        projector_layers=_count(state, "xy_quant_attn.layers."),
        projector_heads=shape("xy_quant_attn.layers.0.0.fn.to_qkv.weight")[0] // 3 // (width // 8),
        projector_mlp=shape("xy_quant_attn.layers.0.1.fn.net.0.weight")[0])
    return cfg, grid * patch, frames


def infer_unet(state: dict, path: Path) -> tuple[ReferenceUNetConfig, int, tuple[int, ...]]:
    """(UNet architecture, target latent tokens, STCA slots) of a `syncvp_<name>.pth`."""
    def shape(key):
        return _shape(state, UNET + key, path, "joint model")

    mc, tokens = shape("input_blocks.0.0.weight")[0], shape("zeros")[-1]
    n_in, n_out = _count(state, UNET + "input_blocks."), _count(state, UNET + "output_blocks.")
    # the first output block that ends in an up-sampling ResBlock closes the deepest level
    ups = [k for k in range(n_out) if any(UNET + f"output_blocks.{k}.{j}.in_layers.0.weight" in state
                                          for j in (1, 2))]
    res_blocks = ups[0] if ups else n_out - 1
    levels = n_in // (res_blocks + 1)
    first = [level * (res_blocks + 1) + 1 for level in range(levels)]  # first ResBlock of each level
    cfg = ReferenceUNetConfig(
        model_channels=mc, num_res_blocks=res_blocks,
        channel_mult=tuple(shape(f"input_blocks.{k}.0.out_layers.3.weight")[0] // mc for k in first),
        attention_levels=tuple(level for level, k in enumerate(first)
                               if UNET + f"input_blocks.{k}.1.qkv.weight" in state))
    slots = tuple(sorted({int(m[1]) for key in state if (m := re.match(re.escape(STCA) + r"(\d+)\.", key))}))
    return cfg, tokens, slots


def infer_config(states: dict[str, dict], files: dict[str, Path], name: str) -> ReferenceConfig:
    """The architecture the five state dicts imply (checked for consistency between the files)."""
    ae, resolution, target = infer_autoencoder(states["ae_rgb_8f"], files["ae_rgb_8f"])
    _, _, cond = infer_autoencoder(states["ae_rgb_2f"], files["ae_rgb_2f"])
    unet, tokens, slots = infer_unet(states["syncvp"], files["syncvp"])
    cfg = ReferenceConfig(name=f"reference-{name}", resolution=resolution, cond_frames=cond, target_frames=target,
                          autoencoder=ae, unet=unet, stca=ReferenceSTCAConfig(slots=slots),
                          diffusion=DiffusionConfig(**RELEASE_DIFFUSION))
    if cfg.target_shape().tokens != tokens:
        raise CheckpointError(f"{files['syncvp']} expects {tokens}-token latents, the autoencoders give "
                              f"{cfg.target_shape().tokens}: the files are not from one release")
    return cfg


def load_state(module: torch.nn.Module, state: dict, path: Path) -> None:
    """Strict load of a module built on the meta device (the tensors are taken over, not copied)."""
    try:
        module.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not fit the architecture its release implies: {_one_line(e)}") from None


def load_directory(directory, device="cpu", depth_codec: DepthCodec | None = None) -> ReferenceSyncVP:
    """The released model in `directory`, ready (eval mode, on `device`); `depth_codec` overrides the default."""
    name, files = release_files(directory)
    states = {member: read_state_dict(path) for member, path in files.items()}
    cfg = infer_config(states, files, name)
    if depth_codec is not None:
        cfg = replace(cfg, depth_codec=depth_codec)
    model = build(cfg, device="meta")
    load_state(model.net, states["syncvp"], files["syncvp"])
    for member in AE_MEMBERS:
        modality, frames = member.split("_")[1:]
        ae = model.autoencoder_for(modality, {"8f": cfg.target_frames, "2f": cfg.cond_frames}[frames])
        load_state(ae, states[member], files[member])
    return model.to(device).eval()


def build(cfg: ReferenceConfig, device="cpu") -> ReferenceSyncVP:
    """A model of `cfg` with default-initialised weights (on "meta": shapes only, for loading or key checks)."""
    with torch.device(device):
        return ReferenceSyncVP(cfg)

