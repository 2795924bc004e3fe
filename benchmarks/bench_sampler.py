"""Quality versus network evaluations of the samplers: one 2 -> 8 chunk per held-out clip (issue 13).

    benchmarks/bench_sampler.py --data synthetic:DIR --out DIR [--checkpoint bundled] [--split test]
        [--clips 32] [--evals 2 4 6 8 10 15 25 50] [--samplers ddim-eta1 ddim-eta0 dpmsolver]

Every sampler runs at every number of evaluations per chunk (= sampling steps: guidance off, one network pass a
step) on the same clips with the same seeds, and syncvp_core.evaluation scores the RGB+depth-conditioned
prediction: RGB LPIPS, RGB SSIM and depth AbsRel, means over the predicted frames and clips. Each point also
gets its LPIPS and AbsRel relative to DDIM eta=1 at 25 evaluations (when that point is measured), the
reference of the node's default steps, and each sampler its fewest evaluations with both within 3 % of it (the
rule for the defaults). Writes OUT/sampler_curve.json and OUT/sampler_curve.png.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from tqdm import tqdm  # noqa: E402

from syncvp_core.checkpoint import load_model  # noqa: E402
from syncvp_core.arguments import POSITIVE_INT, OneLineParser, number  # noqa: E402
from syncvp_core.evaluation.pipeline import batches, learned_metrics, pick_clips  # noqa: E402
from syncvp_core.data.datasets import open_dataset  # noqa: E402
from syncvp_core.devices import resolve_device  # noqa: E402
from syncvp_core.evaluation.scoring import evaluate  # noqa: E402
from syncvp_core.rollout import RolloutPredictor  # noqa: E402

# name -> (sampler kind, DDIM eta; None: the sampler has none)
SAMPLER_RUNS = {"ddim-eta1": ("ddim", 1.0), "ddim-eta0": ("ddim", 0.0), "dpmsolver": ("dpmsolver", None)}
EVALS = (2, 4, 6, 8, 10, 15, 25, 50)
REFERENCE = ("ddim-eta1", 25)
TOLERANCE = 0.03  # a point is as good as the reference when LPIPS and AbsRel are at most 3 % worse
RELATIVE = ("rgb_lpips", "depth_abs_rel")
# (modality, metric) -> key in the output
SCORES = {("rgb", "lpips"): "rgb_lpips", ("rgb", "ssim"): "rgb_ssim", ("depth", "abs_rel"): "depth_abs_rel"}
METHOD = "syncvp"  # conditioned on both modalities


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="bench_sampler.py", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="bundled", help="checkpoint file, preset:NAME or bundled (bundled)")
    parser.add_argument("--data", required=True, help="held-out data spec, e.g. synthetic:DIR (docs/data.md)")
    parser.add_argument("--split", default="test", help="split to draw clips from (test; 'all': the whole set)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created)")
    parser.add_argument("--clips", type=POSITIVE_INT, default=32, help="clips, spread over the split (32)")
    parser.add_argument("--batch-size", type=POSITIVE_INT, default=4, help="clips per model call (4)")
    parser.add_argument("--evals", type=number(int, above=0, below=1001), nargs="+", default=list(EVALS),
                        metavar="N", help=f"network evaluations per chunk ({' '.join(map(str, EVALS))})")
    parser.add_argument("--samplers", nargs="+", choices=SAMPLER_RUNS, default=list(SAMPLER_RUNS),
                        metavar="SAMPLER", help=f"samplers to run: {', '.join(SAMPLER_RUNS)} (all)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (0)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: cuda if available")
    return parser


def curve(args) -> dict:
    device = resolve_device(args.device)
    model = load_model(args.checkpoint, device)
    cfg = model.cfg
    dataset = open_dataset(args.data, clip_length=cfg.cond_frames + cfg.target_frames, size=cfg.resolution,
                           split=None if args.split == "all" else args.split)
    indices = pick_clips(dataset, args.clips)
    metrics = learned_metrics(["fvd"], device)
    runs = [(name, n) for name in dict.fromkeys(args.samplers) for n in sorted(set(args.evals))]
    points = []
    with tqdm(total=len(runs) * len(indices), desc="bench_sampler", unit="clip", file=sys.stderr) as progress:
        for name, evals in runs:
            kind, eta = SAMPLER_RUNS[name]
            predictor = RolloutPredictor(model, steps=evals, eta=eta, sampler=kind)
            progress.set_postfix_str(f"{name} {evals}")

            def with_progress():
                for batch in batches(dataset, indices, args.batch_size):
                    yield batch
                    progress.update(len(batch["rgb"]))

            result = evaluate(with_progress(), predictor, cond_frames=cfg.cond_frames, horizon=cfg.target_frames,
                              methods=(METHOD,), metrics=metrics, near=cfg.depth_near, far=cfg.depth_far,
                              seed=args.seed, device=device).to_dict()["results"][METHOD]
            points.append({"sampler": name, "evals": evals, **{key: result[modality].get(metric, {}).get("mean")
                                                               for (modality, metric), key in SCORES.items()}})
    return {"checkpoint": args.checkpoint, "model": cfg.name, "prediction": cfg.diffusion.prediction,
            "data": args.data, "split": args.split, "clips": len(indices), "horizon": cfg.target_frames,
            "seed": args.seed, "device": str(device), "skipped": metrics.skipped,
            "reference": {"sampler": REFERENCE[0], "evals": REFERENCE[1], "tolerance": TOLERANCE},
            "points": relative_to_reference(points), "fewest_evals_within_tolerance": fewest_within(points)}


def relative_to_reference(points: list[dict]) -> list[dict]:
    """Each point with LPIPS and AbsRel divided by the reference point's (null without a reference)."""
    reference = next((p for p in points if (p["sampler"], p["evals"]) == REFERENCE), None)
    for point in points:
        for key in RELATIVE:
            ok = reference is not None and point[key] is not None and reference[key]
            point[f"{key}_vs_reference"] = point[key] / reference[key] if ok else None
    return points


def fewest_within(points: list[dict]) -> dict[str, int | None]:
    """Per sampler, the fewest evaluations with LPIPS and AbsRel within TOLERANCE of the reference (None: none)."""
    def within(point):
        ratios = [point[f"{key}_vs_reference"] for key in RELATIVE]
        return all(r is not None and r <= 1 + TOLERANCE for r in ratios)

    return {name: min((p["evals"] for p in points if p["sampler"] == name and within(p)), default=None)
            for name in dict.fromkeys(p["sampler"] for p in points)}


def plot(summary: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, len(SCORES), figsize=(4.2 * len(SCORES), 3.4), constrained_layout=True)
    reference = next((p for p in summary["points"] if (p["sampler"], p["evals"]) == REFERENCE), None)
    for ax, ((modality, metric), key) in zip(axes, SCORES.items()):
        if reference is not None and reference[key] is not None and key in RELATIVE:
            ax.axhline(reference[key] * (1 + TOLERANCE), color="grey", linestyle="--",
                       label=f"{TOLERANCE:.0%} worse than {REFERENCE[0]} @ {REFERENCE[1]} (below: within)")
        for name in dict.fromkeys(p["sampler"] for p in summary["points"]):
            line = [(p["evals"], p[key]) for p in summary["points"] if p["sampler"] == name and p[key] is not None]
            if line:
                ax.plot(*zip(*line), marker="o", label=name)
        ax.set_xscale("log")
        ax.set_xticks(sorted({p["evals"] for p in summary["points"]}), minor=False)
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        better = "higher" if metric == "ssim" else "lower"
        ax.set(xlabel="network evaluations per chunk", title=f"{modality} {metric} ({better} is better)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small", loc="center right")
    fig.suptitle(f"{summary['model']} ({summary['checkpoint']}), {summary['clips']} clips, "
                 f"2 → {summary['horizon']}", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = curve(args)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "sampler_curve.json").write_text(json.dumps(summary, indent=2))
        plot(summary, args.out / "sampler_curve.png")
    except (ValueError, OSError, RuntimeError) as err:
        print(f"bench_sampler.py: error: {' '.join(str(err).split()) or type(err).__name__}", file=sys.stderr)
        return 1
    for p in summary["points"]:
        cells = [f"{p[key]:.4f}" if p[key] is not None else "n/a" for key in SCORES.values()]
        print(f"{p['sampler']:<10} {p['evals']:>3} evals  LPIPS {cells[0]}  SSIM {cells[1]}  AbsRel {cells[2]}")
    print(f"wrote sampler_curve.json, sampler_curve.png to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
