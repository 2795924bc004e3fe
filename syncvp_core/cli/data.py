"""`syncvp-data`: write synthetic RGB-D driving data, inspect any data set spec, preview clips.

    syncvp-data synth --out DIR --sequences N [--frames 30 --size 64 --seed S --val-sequences K ...]
    syncvp-data info SPEC [--clip-length 10 --stride 1 --size 64 --split train]
    syncvp-data preview SPEC --out FILE.png [--clip I]
Human-readable output by default, one JSON object on stdout with --json. A bad argument or file exits
non-zero with one line saying what to fix.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from syncvp_core.arguments import COUNT, FRACTION, POSITIVE, POSITIVE_INT, OneLineParser
from syncvp_core.data.synthetic.files import write_dataset
from syncvp_core.data.synthetic.sequence import DEFAULT_MAX_RANGE, SensorModel


def _add_clip_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="data set spec: synthetic:DIR, cityscapes:DIR, folder:DIR or "
                                     "rosbag:PATH?rgb=/topic&depth=/topic (options: docs/data.md)")
    parser.add_argument("--clip-length", type=POSITIVE_INT, default=10, help="frames per clip (default 10)")
    parser.add_argument("--stride", type=POSITIVE_INT, default=1, help="frame step inside a clip (default 1)")
    parser.add_argument("--size", type=POSITIVE_INT, default=64, help="model resolution (default 64)")
    parser.add_argument("--split", default=None, help="train / val / test (default: all data)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="syncvp-data", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    synth = commands.add_parser("synth", help="generate a synthetic RGB-D driving data set",
                                description="Render N sequences (one seq_NNNNN.npz each) and meta.json into DIR.")
    synth.add_argument("--out", type=Path, required=True, help="output folder")
    synth.add_argument("--sequences", type=POSITIVE_INT, required=True, help="number of sequences")
    synth.add_argument("--frames", type=POSITIVE_INT, default=30, help="frames per sequence (default 30)")
    synth.add_argument("--size", type=POSITIVE_INT, default=64, help="square frame size in pixels (default 64)")
    synth.add_argument("--seed", type=int, default=0, help="data set seed (default 0)")
    synth.add_argument("--val-sequences", type=COUNT, default=0, help="last K sequences form 'val'")
    synth.add_argument("--test-sequences", type=COUNT, default=0, help="last K sequences form 'test'")
    synth.add_argument("--fps", type=POSITIVE, default=17.0, help="frame rate (default 17, as Cityscapes)")
    synth.add_argument("--depth-noise", type=FRACTION, default=0.0,
                       help="relative depth noise at 10 m, growing with depth like stereo (default 0)")
    synth.add_argument("--holes", type=FRACTION, default=0.0, help="fraction of depth pixels lost in blobs")
    synth.add_argument("--max-range", type=POSITIVE, default=DEFAULT_MAX_RANGE,
                       help=f"depth sensor range in metres, farther depth is invalid (default {DEFAULT_MAX_RANGE:g}, inside the tiny model's 256 m; inf: unlimited)")
    synth.add_argument("--samples", type=POSITIVE_INT, default=2,
                       help="antialiasing: samples×samples RGB rays per pixel (default 2)")
    synth.add_argument("--workers", type=POSITIVE_INT, default=1, help="processes (default 1)")
    synth.add_argument("--overwrite", action="store_true", help="replace a data set already in --out")
    synth.add_argument("--json", action="store_true", help="print one JSON object instead of text")

    info = commands.add_parser("info", help="count sequences and clips of a spec and summarise sample clips",
                               description="Open a data set spec and report its size and value ranges.")
    _add_clip_arguments(info)
    info.add_argument("--samples", type=POSITIVE_INT, default=8, help="clips to summarise (default 8)")

    preview = commands.add_parser("preview", help="write a PNG of one clip: RGB above, depth below",
                                  description="Save one clip as an image: RGB frames on top, inverse depth below "
                                              "(turbo colour map, invalid black).")
    _add_clip_arguments(preview)
    preview.add_argument("--out", type=Path, required=True, help="PNG file to write")
    preview.add_argument("--clip", type=int, default=0, help="clip index (default 0)")
    return parser


def _synth(args) -> dict:
    sensor = SensorModel(args.depth_noise, args.holes, args.max_range)
    started = time.perf_counter()
    with tqdm(total=args.sequences, unit="seq", desc="synth", disable=None) as bar:
        meta = write_dataset(args.out, args.sequences, args.frames, args.size, args.seed, args.val_sequences,
                             args.test_sequences, args.fps, sensor, args.samples, args.workers, args.overwrite,
                             bar.update)
    seconds = time.perf_counter() - started
    frames = args.sequences * args.frames
    return {"out": str(args.out), "sequences": args.sequences, "frames": args.frames, "size": args.size,
            "splits": {name: len(files) for name, files in meta["splits"].items()},
            "bytes": sum(p.stat().st_size for p in args.out.iterdir()), "seconds": round(seconds, 3),
            "frames_per_second": round(frames / seconds, 1)}


def _synth_text(r: dict) -> str:
    splits = ", ".join(f"{name} {n}" for name, n in r["splits"].items() if n)
    return (f"wrote {r['sequences']} sequences x {r['frames']} frames at {r['size']}x{r['size']} to {r['out']} "
            f"({r['bytes'] / 1e6:.1f} MB) in {r['seconds']:.1f} s, {r['frames_per_second']:.0f} frames/s; {splits}")


def _info(args) -> dict:
    from syncvp_core.data.datasets import open_dataset  # imports torch: not needed for --help or synth

    ds = open_dataset(args.spec, args.clip_length, args.stride, args.size, args.split)
    picks = np.unique(np.linspace(0, len(ds) - 1, min(args.samples, len(ds))).round().astype(int))
    valid, depths, rgb_means = [], [], []
    for index in tqdm(picks, unit="clip", desc="info", disable=None):
        clip = ds[int(index)]
        valid.append(float(clip["valid"].float().mean()))
        depths.append(clip["depth"][clip["valid"]].numpy())
        rgb_means.append(clip["rgb"].mean(dim=(0, 2, 3)).numpy())
    depth = np.concatenate(depths)
    quantiles = np.quantile(depth, [0.0, 0.5, 1.0]).round(3).tolist() if depth.size else [None] * 3
    return {"spec": args.spec, "split": args.split, "sequences": len(ds.sequences), "clips": len(ds),
            "clip_length": args.clip_length, "stride": args.stride, "size": args.size,
            "frames": sum(len(s) for s in ds.sequences), "sampled_clips": len(picks),
            "valid_depth_fraction": round(float(np.mean(valid)), 4),
            "depth_m": dict(zip(("min", "median", "max"), quantiles)),
            "rgb_mean": np.mean(rgb_means, axis=0).round(4).tolist()}


def _info_text(r: dict) -> str:
    d = r["depth_m"]
    return (f"{r['spec']}: {r['sequences']} sequences, {r['frames']} frames, {r['clips']} clips of "
            f"{r['clip_length']} (stride {r['stride']}) at {r['size']}x{r['size']}\n"
            f"over {r['sampled_clips']} sampled clips: valid depth {100 * r['valid_depth_fraction']:.1f}%, "
            f"depth min/median/max {d['min']} / {d['median']} / {d['max']} m, "
            f"RGB mean {' '.join(f'{v:.3f}' for v in r['rgb_mean'])}")


def _preview(args) -> dict:
    from matplotlib import colormaps
    from PIL import Image

    from syncvp_core.data.datasets import open_dataset

    ds = open_dataset(args.spec, args.clip_length, args.stride, args.size, args.split)
    if not -len(ds) <= args.clip < len(ds):
        raise ValueError(f"--clip {args.clip} is out of range: this data set has {len(ds)} clips")
    clip = ds[args.clip]
    rgb = (clip["rgb"].permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    depth = clip["depth"].numpy()
    inverse = np.where(clip["valid"].numpy(), 1.0 / np.where(clip["valid"].numpy(), depth, 1.0), 0.0)
    scale = np.quantile(inverse[clip["valid"].numpy()], 0.98) if clip["valid"].any() else 1.0
    colored = (colormaps["turbo"](np.clip(inverse / scale, 0, 1))[..., :3] * 255).astype(np.uint8)
    colored[~clip["valid"].numpy()] = 0
    sheet = np.concatenate([np.concatenate(list(rgb), axis=1), np.concatenate(list(colored), axis=1)], axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(args.out)
    return {"out": str(args.out), "spec": args.spec, "clip": args.clip, "source": clip["source"],
            "start": clip["start"], "frames": len(rgb), "size": args.size}


def _preview_text(r: dict) -> str:
    return f"wrote {r['out']}: clip {r['clip']} ({r['source']} from frame {r['start']}, {r['frames']} frames)"


COMMANDS = {"synth": (_synth, _synth_text), "info": (_info, _info_text), "preview": (_preview, _preview_text)}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run, text = COMMANDS[args.command]
    try:
        result = run(args)
    except (ValueError, OSError) as err:  # DataError is a ValueError; both name the file or option to fix
        print(f"syncvp-data {args.command}: error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result) if args.json else text(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
