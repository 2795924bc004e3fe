"""Per-component latency of syncvp_core on the current device (batch 1, random-init weights of a preset).

    benchmarks/bench_core.py --config tiny [--device auto|cpu|cuda] [--sampler ddim|dpmsolver] [--json]
    benchmarks/bench_core.py --config reference-paper-128   (the reference family beside our paper-128)

Components: autoencoder encode (2 conditioning frames) and decode (8 frames) per modality, one joint sampler
step (both branches + coupling + the two sampler updates; DDIM unless --sampler), each coupling block as STCA (per plane) and as full
cross-attention over all tokens (the same block with the split switched off), and one 8-frame RGB-D chunk
(encode, sampling, decode) at 10 / 25 / 100 steps. Each number is the median of several timed runs after
a warm-up run. Goal on a 2-core CPU: the tiny chunk at 25 steps within 1 s.
A `reference-*` config times the reference family (syncvp_core.reference, random weights of the released
architecture; no coupling ablation) as `reference_*` beside our matching preset as `ours_*`, in one run.
"""
from __future__ import annotations

import json
import os
import platform
import sys

import torch

from syncvp_core.checkpoint import load_model
from syncvp_core.arguments import OneLineParser
from syncvp_core.cli.model_info import measure_step
from syncvp_core.config import PRESETS, SAMPLERS
from syncvp_core.devices import resolve_device
from syncvp_core.reference import build
from syncvp_core.reference.config import PRESETS as REFERENCE_PRESETS
from syncvp_core.rollout import RolloutPredictor
from syncvp_core.sampler import guided_eps
from syncvp_core.stca import STCA
from timing import median_seconds  # benchmarks/timing.py, beside this script

CHUNK_STEPS = (10, 25, 100)
OURS_BESIDE = {"reference-paper-128": "paper-128", "reference-fixture": "tiny"}  # our preset timed beside each


def median_ms(fn, device: torch.device, repeats: int) -> dict:
    wall, cpu = median_seconds(fn, repeats, device)
    return {"wall_ms": wall * 1e3, "cpu_ms": cpu * 1e3}


@torch.inference_mode()
def run(config: str, device: torch.device, repeats: int, sampler_kind: str = "ddim",
        chunk_steps=CHUNK_STEPS) -> dict:
    if config in REFERENCE_PRESETS:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = build(REFERENCE_PRESETS[config], device).eval()
    else:
        model = load_model(f"preset:{config}", device=device)
    cfg = model.cfg
    g = torch.Generator(device=device).manual_seed(0)
    size, tc, tt = cfg.resolution, cfg.cond_frames, cfg.target_frames
    rgb = torch.rand(1, tc, 3, size, size, device=device, generator=g)
    depth = torch.rand(1, tc, size, size, device=device, generator=g) * 30 + 2
    cond_rgb, cond_depth = model.encode_rgb(rgb), model.encode_depth(depth)
    x = torch.randn(1, cond_rgb.shape[1], cfg.target_shape().tokens, device=device, generator=g)
    results = {}

    results["encode_rgb_2f"] = median_ms(lambda: model.encode_rgb(rgb), device, repeats)
    results["encode_depth_2f"] = median_ms(lambda: model.encode_depth(depth), device, repeats)
    results["decode_rgb_8f"] = median_ms(lambda: model.decode_rgb(x, tt), device, repeats)
    results["decode_depth_8f"] = median_ms(lambda: model.decode_depth(x, tt), device, repeats)

    predictor = RolloutPredictor(model, steps=100, sampler=sampler_kind)
    sampler, t = predictor.sampler, torch.full((1,), 999, device=device)

    def joint_step():
        eps_rgb, eps_depth = guided_eps(model.net, x, x, t, cond_rgb, cond_depth)
        noise = torch.randn(x.shape, device=device, generator=g)
        sampler.step(eps_rgb, 999, x, noise, stream="rgb")
        sampler.step(eps_depth, 999, x, noise, stream="depth")

    results[f"joint_{sampler_kind}_step"] = median_ms(joint_step, device, repeats)

    # each distinct (token shape, channels) a coupling block sees in the network
    levels = [] if config in REFERENCE_PRESETS else measure_step(model)["levels"]
    for shape, channels in dict.fromkeys(levels):
        h_rgb, h_depth = (torch.randn(1, channels, shape.tokens, device=device, generator=g) for _ in range(2))
        split = STCA(channels, cfg.coupling.heads, cfg.unet.norm_groups).to(device)
        full = STCA(channels, cfg.coupling.heads, cfg.unet.norm_groups, split_planes=False).to(device)
        full.load_state_dict(split.state_dict())
        results[f"coupling_L{shape.tokens}_stca"] = median_ms(lambda: split(h_rgb, h_depth, shape), device, repeats)
        results[f"coupling_L{shape.tokens}_full"] = median_ms(lambda: full(h_rgb, h_depth, shape), device, repeats)

    for steps in chunk_steps:
        predictor = RolloutPredictor(model, steps=steps, sampler=sampler_kind)
        results[f"chunk_8f_{steps}_steps"] = median_ms(
            lambda: predictor.predict(rgb, depth, horizon=tt, generator=g), device, max(1, repeats // 2))
    return results


def main(argv=None) -> int:
    parser = OneLineParser(prog="bench_core.py", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny",
                        help=f"preset: {', '.join([*PRESETS, *REFERENCE_PRESETS])} (default tiny)")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda or cuda:N")
    parser.add_argument("--sampler", choices=SAMPLERS, default="ddim", help="sampler to time (default ddim)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per component (default 5)")
    parser.add_argument("--chunk-steps", type=int, nargs="*", default=list(CHUNK_STEPS), metavar="N",
                        help="steps of the timed 8-frame chunks (default: 10 25 100; none: skip them, e.g. for "
                             "paper sizes on a CPU)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)
    if args.config not in PRESETS and args.config not in REFERENCE_PRESETS:
        parser.error(f"unknown config {args.config!r}: use one of {', '.join([*PRESETS, *REFERENCE_PRESETS])}")
    try:
        device = resolve_device(args.device)
    except ValueError as err:
        parser.error(f"--device: {err}")
    if args.repeats < 1 or args.threads < 0 or any(n < 1 for n in args.chunk_steps):
        parser.error("--repeats and --chunk-steps must be at least 1 and --threads at least 0")
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.config in REFERENCE_PRESETS:
        pair = (("ours", OURS_BESIDE[args.config]), ("reference", args.config))
        latency = {f"{who}_{name}": ms for who, config in pair
                   for name, ms in run(config, device, args.repeats, args.sampler, args.chunk_steps).items()}
    else:
        latency = run(args.config, device, args.repeats, args.sampler, args.chunk_steps)
    report = {"config": args.config, "sampler": args.sampler, "device": str(device),
              "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                              else f"{platform.machine()} CPU, {os.cpu_count()} cores"),
              "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "batch": 1,
              "load_average_1min": os.getloadavg()[0], "latency": latency}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"syncvp_core latency, config {args.config}, {args.sampler}, {report['device']} ({report['device_name']}), "
              f"{report['torch_threads']} torch threads, batch 1, load average {report['load_average_1min']:.1f}")
        print(f"  {'median of runs':<32}{'wall ms':>10}{'CPU ms':>10}")
        for name, ms in latency.items():
            print(f"  {name:<32}{ms['wall_ms']:>10.1f}{ms['cpu_ms']:>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
