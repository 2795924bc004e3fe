"""The end-to-end demo: a synthetic drive through the live predictor node, with a depth dropout, evaluated.

    python -m syncvp_ros.demo --out demo_out [--frames 80] [--steps 0] [--horizon 8] [--rate 0.5] [--skip lpips]

1. writes a synthetic rosbag2 drive (`syncvp-bag synth`);
2. starts the node as its own process with config/predictor.yaml (sim time, the demo's horizon and steps);
3. records its predictions and /diagnostics (`syncvp-bag record --use-sim-time`);
4. plays the drive with /clock and depth withheld over its middle (`syncvp-bag play --clock --drop`);
5. scores the recorded predictions against the drive and copy-last (`syncvp-bag eval --predictions`);
6. writes OUT/report.md: metrics against copy-last, the guidance-mode timeline (rgbd -> rgb -> rgbd), latency,
   and a GIF of ground truth vs prediction; OUT/summary.json holds the same numbers.
Every process it starts is ended before it returns (SIGINT, then SIGKILL), also on errors and Ctrl-C.
"""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from syncvp_core.arguments import COUNT, POSITIVE, POSITIVE_INT, OneLineParser, number
from syncvp_core.evaluation.pipeline import learned_metrics
from syncvp_core.evaluation.scoring import COPY_LAST
from syncvp_ros.bags.evaluation import PREDICTED, PredictionRecord, evaluate_predictions, read_predictions
from syncvp_ros.bags.io import BagError, read_messages, typestore
from syncvp_ros.bags.synth import PRESETS, SynthSpec, write_synthetic_bag
from syncvp_ros.processes import ProcessError, play_through_node, ros_environment, share_file

PROG = "python -m syncvp_ros.demo"
PREDICTIONS = "/syncvp_predictor/output/prediction"
DIAGNOSTICS = "/diagnostics"
DROPOUT = (0.4, 0.7)  # depth withheld over this share of the drive
DDS_PROFILE = ("config", "fastdds_large_frames.xml")  # best-effort large frames arrive whole (docs/node.md)
LATENCY_KEYS = {"inference latency [s]": "inference", "age at publish [s]": "age_at_publish"}


def quantiles(values) -> dict:
    v = np.asarray(values, np.float64)
    if not v.size:
        return {"count": 0}
    return {"count": int(v.size), "mean": float(v.mean()), "p50": float(np.percentile(v, 50)),
            "p95": float(np.percentile(v, 95)), "max": float(v.max())}


def latency(recording: Path, records: list[PredictionRecord]) -> dict:
    """Node-reported inference time and age at publish (/diagnostics, sampled once per period, deduplicated),
    and each prediction's age when the recorder received it (sim time: receipt minus the observation stamp)."""
    store = typestore()
    samples = {name: [] for name in LATENCY_KEYS.values()}
    for m in read_messages(recording, [DIAGNOSTICS]):
        for status in store.deserialize_cdr(m.rawdata, m.msgtype).status:
            for kv in status.values:
                if kv.key in LATENCY_KEYS and kv.value != "none":
                    samples[LATENCY_KEYS[kv.key]].append(float(kv.value))
    out = {name: quantiles(sorted(set(values))) for name, values in samples.items()}
    # sim time 0: the recorder had no /clock yet
    out["age_at_receipt"] = quantiles([(r.received_ns - r.stamp_ns) / 1e9 for r in records if r.received_ns])
    return out


def metric_rows(summary: dict) -> list[tuple[str, str, str, float | None, float | None]]:
    """(modality, metric, arrow, syncvp mean, copy-last mean) for every metric scored."""
    rows = []
    results = summary["results"]
    for modality in summary["modalities"]:
        for metric, values in results[PREDICTED][modality].items():
            if metric == "fvd":
                continue
            arrow = "↑" if metric in summary["higher_is_better"] else "↓"
            rows.append((modality, metric, arrow, values["mean"],
                         results[COPY_LAST][modality].get(metric, {}).get("mean")))
    return rows


def _cell(value, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def summary_table(report: dict) -> str:
    lines = [f"{'metric':<18}{'syncvp':>10}{'copy-last':>11}"]
    lines += [f"{modality + ' ' + metric + arrow:<18}{_cell(ours):>10}{_cell(copy):>11}"
              for modality, metric, arrow, ours, copy in metric_rows(report["evaluation"])]
    modes = report["evaluation"]["guidance_modes"]
    lines.append(f"predictions: {report['evaluation']['clips']} ({', '.join(f'{m} {n}' for m, n in modes.items())})"
                 f"; guidance timeline: {' -> '.join(report['mode_sequence'])}")
    inference = report["latency"]["inference"]
    if inference["count"]:
        lines.append(f"inference latency: p50 {inference['p50']:.3f} s, p95 {inference['p95']:.3f} s")
    return "\n".join(lines)


def write_report(out: Path, report: dict) -> Path:
    ev = report["evaluation"]
    s = report["settings"]
    lines = [
        "# syncvp demo: the live node on a synthetic drive with a depth dropout", "",
        f"{s['frames']} frames at {s['rate_hz']:g} Hz ({s['size']}×{s['size']}), played at {s['play_rate']:g}× with "
        f"/clock; depth withheld from {s['dropout_s'][0]:.1f} s to {s['dropout_s'][1]:.1f} s. Node: "
        f"`{s['params_file']}` with horizon {s['horizon']}, {s['steps'] or 'the model default'} sampling steps, model "
        f"{', '.join(ev['model_ids'])} (device {report['device']}). Each prediction is scored against the frames "
        f"that followed it in the drive; copy-last repeats its newest conditioning frame.", "",
        "## Metrics (mean over predicted frames and predictions)", "",
        "| modality | metric | syncvp (node) | copy-last |", "|---|---|---|---|",
        *[f"| {modality} | {metric} {arrow} | {_cell(ours)} | {_cell(copy)} |"
          for modality, metric, arrow, ours, copy in metric_rows(ev)], "",
        f"Skipped: {'; '.join(f'{k} ({v})' for k, v in ev['skipped'].items()) or 'nothing'}.", "",
        "By guidance mode (the node's predictions):", "",
        "| mode | predictions | RGB SSIM | depth AbsRel |", "|---|---|---|---|",
        *[f"| {mode} | {entry['predictions']} | {_cell(entry.get('rgb', {}).get('ssim'))} | "
          f"{_cell(entry.get('depth', {}).get('abs_rel'))} |" for mode, entry in ev["by_guidance_mode"].items()], "",
        "## Guidance-mode timeline", "",
        f"Sequence: **{' → '.join(report['mode_sequence'])}** (shaded: depth withheld).", "",
        "![guidance timeline](eval/guidance_timeline.png)", "",
        "## Latency", "",
        "| what | count | mean (s) | p50 (s) | p95 (s) | max (s) |", "|---|---|---|---|---|---|",
        *[f"| {name.replace('_', ' ')} | {q['count']} | {_cell(q.get('mean'), 3)} | {_cell(q.get('p50'), 3)} | "
          f"{_cell(q.get('p95'), 3)} | {_cell(q.get('max'), 3)} |" for name, q in report["latency"].items()], "",
        "Inference and age at publish are the node's /diagnostics (sampled once per second); age at receipt is "
        "the recorder's sim time at receipt minus the prediction's observation stamp.", "",
        "## Ground truth vs prediction", "",
        "![ground truth vs prediction](eval/sample.gif)", "",
        "![per-horizon RGB](eval/per_horizon_rgb.png)", "", "![per-horizon depth](eval/per_horizon_depth.png)", "",
        "Files: `summary.json` (everything above), `eval/metrics.json`, `drive/` (the played bag), `recording/` "
        "(predictions and diagnostics), `logs/`.", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def mode_sequence(records) -> list[str]:
    """The guidance modes in recording order with repeats collapsed (startup RGB-only frames dropped)."""
    modes = [r.mode for r in records]
    if "rgbd" in modes:
        modes = modes[modes.index("rgbd"):]
    return [m for i, m in enumerate(modes) if i == 0 or m != modes[i - 1]]


def run(args) -> dict:
    out = args.out
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} exists and is not empty: choose a new --out")
    out.mkdir(parents=True, exist_ok=True)
    params_file = Path(args.params_file) if args.params_file else share_file("config", "predictor.yaml")
    topics = PRESETS["generic"]
    spec = SynthSpec(frames=args.frames, rate=args.rate_hz, size=args.size, seed=args.seed)
    duration = (args.frames - 1) / args.rate_hz
    dropout = (round(DROPOUT[0] * duration, 3), round(DROPOUT[1] * duration, 3))
    dds_profile = share_file(*DDS_PROFILE) if args.dds_profile is None else (args.dds_profile or None)
    env = ros_environment(out / "logs" / "ros", int(os.environ.get("ROS_DOMAIN_ID", 1 + os.getpid() % 100)),
                          dds_profile)
    with tqdm(total=3, desc="demo", unit="stage", disable=args.quiet) as stages:
        stages.set_postfix_str("synthetic drive")
        write_synthetic_bag(out / "drive", spec, topics)
        stages.update()
        stages.set_postfix_str("node + player + recorder")
        pipeline = play_through_node(
            out, env, out / "drive", params_file,
            {"use_sim_time": True, "horizon": args.horizon, "ddim_steps": args.steps, "seed": args.seed},
            {"~/input/rgb": topics.rgb, "~/input/depth": topics.depth, "~/input/camera_info": topics.rgb_info},
            [PREDICTIONS, DIAGNOSTICS],
            ["--clock", "--rate", str(args.rate), "--drop", f"{topics.depth}@{dropout[0]}:{dropout[1]}"],
            wait_for=[topics.rgb, topics.depth], record_args=["--use-sim-time"])
        stages.update()
        stages.set_postfix_str("evaluation")
        metrics = learned_metrics(sorted({*args.skip, "fvd"}), "cpu")  # LPIPS when its weights are installed
        evaluation = evaluate_predictions(
            out / "drive", pipeline.recording, {"rgb": topics.rgb, "depth": topics.depth}, PREDICTIONS, out / "eval",
            lpips=metrics.lpips, skipped={k: v for k, v in metrics.skipped.items() if k != "fvd"}, shade=[dropout])
        stages.update()
    records = [r for r, _ in read_predictions(pipeline.recording, PREDICTIONS)]
    device = re.search(r"model \S+ on (\S+) ", (out / "logs" / "node.log").read_text())
    report = {
        "settings": {"frames": args.frames, "rate_hz": args.rate_hz, "size": args.size, "seed": args.seed,
                     "horizon": args.horizon, "steps": args.steps, "play_rate": args.rate, "dropout_s": dropout,
                     "params_file": str(params_file), "dds_profile": str(dds_profile or "")},
        "device": device.group(1) if device else "unknown",
        "node_exit": pipeline.node_exit, "evaluation": evaluation, "mode_sequence": mode_sequence(records),
        "latency": latency(pipeline.recording, records)}
    (out / "summary.json").write_text(json.dumps(report, indent=2))
    report["report"] = str(write_report(out, report))
    return report


def main(argv=None) -> int:
    parser = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder (new or empty)")
    parser.add_argument("--frames", type=number(int, at_least=20), default=80,
                        help="frames of the drive, >= 20 for a dropout in the middle (80)")
    parser.add_argument("--rate-hz", type=POSITIVE, default=10.0, help="frame rate of the drive (10 Hz)")
    parser.add_argument("--size", type=number(int, at_least=8), default=64, help="image side (64, the tiny model's)")
    parser.add_argument("--steps", type=COUNT, default=0,
                        help="network evaluations per chunk (0: the checkpoint's default, 2 for the bundled model)")
    parser.add_argument("--horizon", type=POSITIVE_INT, default=8, help="predicted frames (8)")
    parser.add_argument("--rate", type=POSITIVE, default=0.5,
                        help="playback speed (0.5, so a CPU node predicts often enough to show the dropout)")
    parser.add_argument("--seed", type=int, default=0, help="drive and sampling seed (0)")
    parser.add_argument("--params-file", help="node parameters (default config/predictor.yaml)")
    parser.add_argument("--dds-profile", metavar="FILE",
                        help="Fast DDS profile for every process (default config/fastdds_large_frames.xml; '' = none)")
    parser.add_argument("--skip", nargs="+", choices=("lpips",), default=[], metavar="METRIC",
                        help="skip LPIPS (the slowest metric)")
    parser.add_argument("--json", action="store_true", help="print summary.json instead of the table")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        report = run(args)
    except (ProcessError, BagError, ValueError, OSError) as err:
        print(f"{PROG}: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2) if args.json else f"{summary_table(report)}\nreport: {report['report']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
