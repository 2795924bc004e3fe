"""Which weights a stage trains and where the others come from.

A checkpoint says which of its weights are meaningful ("provides": module prefixes, e.g. "autoencoders.rgb",
"net.rgb_branch", "latent_stats.rgb_8f"); a stage starts from a fresh model and copies those weights from each
`--init` file. The switches (the joint stage's shared noise / timestep / modality dropout, the autoencoder stage's
context hole fill) live only in the model config: a flag given when a run starts sets them there, and a resumed
run whose flags differ from the model it continues is refused (`check_switches`).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from syncvp_core.autoencoder import TriplaneAutoencoder
from syncvp_core.checkpoint import CheckpointError, config_differences, load_checkpoint
from syncvp_core.config import DiffusionConfig, get_config
from syncvp_core.model import SyncVP
from syncvp_core.modalities import MODALITIES
from syncvp_core.train.settings import TrainConfig, TrainingError

# Model-config fields the switch flags may set; they may differ from the --init files.
SWITCHES = ("diffusion.shared_noise", "diffusion.shared_timestep", "diffusion.dropout_probs",
            "autoencoder.context_hole_fill")


def autoencoder_prefixes(model: SyncVP, modality: str, frames) -> list[str]:
    """State-dict prefixes of the autoencoder(s) that encode `modality` clips of these lengths."""
    key = {id(ae): k for k, ae in model.autoencoders.items()}
    return sorted({f"autoencoders.{key[id(model.autoencoder_for(modality, f))]}" for f in frames})


def statistics_prefixes(model: SyncVP, modality: str) -> list[str]:
    """State-dict prefixes of the latent statistics of `modality` (every clip length)."""
    return sorted(f"latent_stats.{k}" for k in model.latent_stats if k.startswith(f"{modality}_"))


def trained_prefixes(cfg: TrainConfig, model: SyncVP) -> list[str]:
    """Module prefixes (state-dict names) that this stage trains."""
    if cfg.stage == "autoencoder":
        prefixes = autoencoder_prefixes(model, cfg.modality, autoencoder_frames(cfg, model))
        if not cfg.decoder_only:
            return prefixes
        return [f"{p}.{part}" for p in prefixes for part in TriplaneAutoencoder.DECODER_PARTS]
    if cfg.stage == "diffusion":
        return [f"net.{cfg.modality}_branch"]
    return ["net"]


def autoencoder_frames(cfg: TrainConfig, model: SyncVP) -> tuple[int, ...]:
    served = (model.cfg.cond_frames, model.cfg.target_frames)
    if cfg.frames is None:
        if not model.cfg.shared_autoencoder:
            raise TrainingError(f"model {model.cfg.name!r} has one autoencoder per clip length: "
                                f"give --frames {served[0]} or {served[1]}")
        return served
    if cfg.frames not in served:
        raise TrainingError(f"--frames must be {served[0]} or {served[1]}, not {cfg.frames}")
    return (cfg.frames,)


def needed_prefixes(cfg: TrainConfig, model: SyncVP) -> list[str]:
    """Weights that must come from --init files for this stage to make sense."""
    if cfg.stage == "autoencoder":
        return autoencoder_prefixes(model, cfg.modality, autoencoder_frames(cfg, model)) if cfg.decoder_only else []
    modalities = [cfg.modality] if cfg.stage == "diffusion" else list(MODALITIES)
    frames = (model.cfg.cond_frames, model.cfg.target_frames)
    return [p for m in modalities for p in autoencoder_prefixes(model, m, frames)]


def _matches(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def merge_prefixes(*groups) -> list[str]:
    """The union of prefix lists, without prefixes inside others ("net.rgb_branch" goes into "net")."""
    union = set().union(*groups)
    return sorted(p for p in union if not _matches(p, union - {p}))


def provided_by(ckpt) -> list[str]:
    """What a checkpoint's weights are good for; a file not written by syncvp-train counts as a whole model."""
    return ckpt.extra.get("provides", ["autoencoders", "net"])


def initial_model(cfg: TrainConfig, say) -> tuple[SyncVP, list[str]]:
    """A fresh model with the weights each --init file provides copied in; (model, prefixes provided so far)."""
    checkpoints = []
    for path in cfg.init:
        if not Path(path).is_file():
            raise TrainingError(f"--init {path}: file not found")
        try:
            checkpoints.append((path, load_checkpoint(path)))
        except CheckpointError as e:
            raise TrainingError(str(e)) from None
    if checkpoints:
        model_cfg = checkpoints[0][1].model.cfg
    else:
        try:
            model_cfg = get_config(cfg.model)
        except ValueError as e:
            raise TrainingError(str(e)) from None
    for path, value in switch_overrides(cfg).items():
        part, name = path.split(".")
        try:  # replace() runs the part's checks: a switch may not fit the model (hole fill without context)
            setattr(model_cfg, part, dataclasses.replace(getattr(model_cfg, part), **{name: value}))
        except ValueError as e:
            raise TrainingError(str(e)) from None
    torch.manual_seed(cfg.seed)
    model = SyncVP(model_cfg)
    provided: list[str] = []
    state = model.state_dict()
    for path, ckpt in checkpoints:
        diff = [d for d in config_differences(ckpt.model.cfg, model_cfg) if not d.startswith(SWITCHES)]
        if diff:
            raise TrainingError(f"--init {path} has a different model config: {'; '.join(diff)}")
        prefixes = provided_by(ckpt)
        clash = sorted(set(prefixes) & set(provided))
        if clash:
            raise TrainingError(f"--init {path} provides {', '.join(clash)} again (give each part once)")
        source = ckpt.model.state_dict()
        state.update({n: source[n] for n in state if _matches(n, prefixes)})
        provided += prefixes
    model.load_state_dict(state)
    missing = [p for p in needed_prefixes(cfg, model) if p not in provided]
    if missing:
        raise TrainingError(f"the {cfg.stage} stage needs trained {', '.join(missing)}: pass their stage-1 "
                            "checkpoint(s) with --init")
    if cfg.stage == "joint":
        random_branches = [f"net.{m}_branch" for m in MODALITIES if not _matches(f"net.{m}_branch", provided)]
        if random_branches:
            say(f"note: {', '.join(random_branches)} start from random weights (no stage-2 --init file for them)")
    return model, provided


def switch_overrides(cfg: TrainConfig) -> dict:
    """The model-config fields ("part.field") that the switch flags given on the command line set."""
    overrides = {}
    if cfg.stage == "autoencoder" and cfg.context_hole_fill is not None:
        overrides["autoencoder.context_hole_fill"] = cfg.context_hole_fill
    if cfg.stage != "joint":
        return overrides
    if cfg.shared_noise is not None:
        overrides["diffusion.shared_noise"] = cfg.shared_noise
    if cfg.shared_timestep is not None:
        overrides["diffusion.shared_timestep"] = cfg.shared_timestep
    if cfg.modality_dropout is not None:
        overrides["diffusion.dropout_probs"] = (DiffusionConfig().dropout_probs if cfg.modality_dropout
                                                else (1.0, 0.0, 0.0))
    return overrides


def check_switches(cfg: TrainConfig, model_cfg, out) -> None:
    """A resumed run continues its model: refuse a switch that differs from it (one line)."""
    def current(path):
        part, name = path.split(".")
        return tuple_or(getattr(getattr(model_cfg, part), name))

    differ = [f"{path.split('.')[1]} = {current(path)} (asked {tuple_or(value)})"
              for path, value in switch_overrides(cfg).items() if current(path) != tuple_or(value)]
    if differ:
        raise TrainingError(f"{out} was trained with {'; '.join(differ)}: a switch cannot change on --resume "
                            "(start a new run from the --init files instead)")


def tuple_or(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


def set_trainable(model: nn.Module, prefixes: list[str]) -> None:
    for name, p in model.named_parameters():
        p.requires_grad_(_matches(name, prefixes))
