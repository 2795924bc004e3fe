"""syncvp-model-info: parameter counts, FLOPs per joint DDIM step and the STCA attention-FLOP ratio of a config.

FLOPs are measured with torch's FlopCounterMode (matmuls, convolutions and attention; 1 MAC = 2 FLOP) on one
forward of the joint network at batch 1 (both UNet branches + coupling), run on the meta device so that even
the paper-128 model costs no memory or compute. The STCA ratio is split (per-plane) vs full cross-attention,
attention core only (scores, softmax, A·V), at the token shape of each STCA level.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from syncvp_core.checkpoint import read_config
from syncvp_core.arguments import OneLineParser
from syncvp_core.config import PRESETS, SyncVPConfig, get_config
from syncvp_core.model import SyncVP, count_parameters
from syncvp_core.stca import attention_flop_ratio


def resolve_config(name: str) -> SyncVPConfig:
    """A preset name or a checkpoint file (its stored config)."""
    if name in PRESETS:
        return get_config(name)
    if Path(name).is_file():
        return read_config(name)
    raise ValueError(f"unknown config {name!r}: use one of {', '.join(PRESETS)} or a checkpoint file")


def measure_step(model: SyncVP) -> dict:
    """One joint-network forward at batch 1 under FlopCounterMode: GFLOP in total and per part, and the
    (token shape, channels) each coupling block sees."""
    cfg, net = model.cfg, model.net
    device = next(model.parameters()).device
    x = torch.zeros(1, cfg.autoencoder.embed_dim, cfg.target_shape().tokens, device=device)
    cond = torch.zeros(1, cfg.autoencoder.embed_dim, cfg.cond_shape().tokens, device=device)
    t = torch.zeros(1, dtype=torch.long, device=device)
    levels = []
    hooks = [block.register_forward_pre_hook(lambda _, args: levels.append((args[2], args[0].shape[1])))
             for block in net.couplings]
    with torch.no_grad(), FlopCounterMode(display=False) as joint:
        net(x, x, t, cond, cond)
    for hook in hooks:
        hook.remove()
    parts = {}
    for name, branch in (("unet_rgb", net.rgb_branch), ("unet_depth", net.depth_branch)):
        if branch is not None:  # the "single_network" ablation has no separate branches
            with torch.no_grad(), FlopCounterMode(display=False) as alone:
                branch(x, t, cond)
            parts[name] = alone.get_total_flops() / 1e9
    parts["stca"] = sum(sum(flops.values()) for name, flops in joint.get_flop_counts().items()
                        if name.startswith("SyncVPNet.couplings.") and name.count(".") == 2) / 1e9
    return {"total": joint.get_total_flops() / 1e9, "parts": parts, "levels": levels}


def model_info(cfg: SyncVPConfig) -> dict:
    with torch.device("meta"):
        model = SyncVP(cfg)
    step = measure_step(model)
    ratios = [{"frames": s.frames, "height": s.height, "width": s.width, "tokens": s.tokens, "channels": c,
               "ratio": attention_flop_ratio(s, c, cfg.coupling.heads)} for s, c in step["levels"]]
    return {"config": cfg.name, "resolution": cfg.resolution, "coupling": cfg.coupling.kind,
            "params": count_parameters(model),
            "gflop_per_ddim_step": step["total"], "gflop_per_ddim_step_parts": step["parts"],
            "stca_attention_flop_ratio": ratios}


def print_table(info: dict) -> None:
    print(f"SyncVP config {info['config']} ({info['resolution']}×{info['resolution']})")
    print(f"{'parameters':<28}{'count':>14}")
    for key, n in info["params"].items():
        print(f"  {key:<26}{n:>14,}")
    print(f"{'GFLOP per joint DDIM step':<28}{info['gflop_per_ddim_step']:>14.2f}   (batch 1, FlopCounterMode)")
    for part, g in info["gflop_per_ddim_step_parts"].items():
        print(f"  {part:<26}{g:>14.2f}")
    print("STCA attention FLOP, split / full cross-attention (attention core):")
    for level in info["stca_attention_flop_ratio"]:
        print(f"  T={level['frames']} H'={level['height']} W'={level['width']} (L={level['tokens']}, "
              f"C={level['channels']}): {level['ratio']:.3f}")


def main(argv=None) -> int:
    parser = OneLineParser(prog="syncvp-model-info", description=__doc__.splitlines()[0])
    parser.add_argument("config", metavar="CONFIG", help=f"preset ({', '.join(PRESETS)}) or a checkpoint file")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)
    try:
        cfg = resolve_config(args.config)
    except (ValueError, RuntimeError) as e:
        parser.exit(2, f"syncvp-model-info: {e}\n")
    info = model_info(cfg)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print_table(info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
