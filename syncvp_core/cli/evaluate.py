"""syncvp-eval: roll a model out on held-out clips and score the predicted frames against ground truth.

Scores SyncVP (RGB+depth conditioning), its RGB-only and depth-only guidance modes and the copy-last-frame
baseline on the same clips, per predicted frame and on average: RGB SSIM / PSNR / LPIPS / FVD; depth AbsRel /
RMSE / δ<1.25 on valid pixels plus SSIM / LPIPS / FVD on depth rendered grey (the paper's convention).
Writes DIR/metrics.json, per-horizon plots, a sample strip and a GIF; see docs/evaluation.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from syncvp_core.arguments import POSITIVE_INT, OneLineParser
from syncvp_core.config import SAMPLERS
from syncvp_core.evaluation.pipeline import EvalRequest, run, summary_table
from syncvp_core.evaluation.scoring import METHODS, TRAINING_MEAN
from syncvp_core.modalities import CONDITIONING_MODES


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="syncvp-eval", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="checkpoint file, preset:NAME (random init) or bundled")
    parser.add_argument("--data", required=True, help="dataset spec, e.g. synthetic:DIR (see docs/data.md)")
    parser.add_argument("--split", default=None, help="dataset split to draw clips from (default: all of it)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created)")
    parser.add_argument("--cond", type=POSITIVE_INT, default=2, help="observed frames (must match the model; 2)")
    parser.add_argument("--horizon", type=POSITIVE_INT, default=28, help="predicted frames per clip (28)")
    parser.add_argument("--modalities", choices=CONDITIONING_MODES, default="rgbd", help="what to score (rgbd)")
    parser.add_argument("--samples", type=POSITIVE_INT, default=32,
                        help="clips, spread evenly over the data (32; fewer if the data has fewer)")
    parser.add_argument("--batch-size", type=POSITIVE_INT, default=4, help="clips per model call (4)")
    parser.add_argument("--sampler", choices=SAMPLERS, default=None, help="ddim or dpmsolver (default: the config's)")
    parser.add_argument("--steps", type=POSITIVE_INT, default=None, help="DDIM steps (default: the config's)")
    parser.add_argument("--eta", type=float, default=None, help="DDIM eta (default: the config's)")
    parser.add_argument("--guidance-scale", type=float, default=0.0, help="modality guidance w (0: plain)")
    parser.add_argument("--mean-of", type=POSITIVE_INT, default=1, metavar="K",
                        help="point estimate: the mean of K predictions drawn in one batch (1: one sample)")
    parser.add_argument("--decoder-context", action=argparse.BooleanOptionalAction, default=True,
                        help="decode on the frame before each chunk, for a model whose decoders take one (on; "
                             "--no-decoder-context: an ablation)")
    parser.add_argument("--train-data", default=None,
                        help="training data spec: adds the training-mean baseline (its mean frame and depth map)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (0)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: cuda if available")
    parser.add_argument("--skip", nargs="+", choices=("lpips", "fvd"), default=[], metavar="METRIC",
                        help="skip these slow network-based metrics: lpips, fvd")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=None, metavar="METHOD",
                        help=f"methods to score: {', '.join(METHODS)} (all; {TRAINING_MEAN} with --train-data)")
    return parser


def request_from(args) -> EvalRequest:
    return EvalRequest(**{f.name: getattr(args, f.name) for f in dataclasses.fields(EvalRequest)})


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = run(request_from(args))
    except (ValueError, OSError, RuntimeError) as err:
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"syncvp-eval: error: {message}", file=sys.stderr)
        return 1
    print(summary_table(summary))
    print(f"\nwrote {', '.join(summary['files'])} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
