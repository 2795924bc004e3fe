"""syncvp-bag: write, inspect, play, record and evaluate rosbag2 bags without `ros2 bag` (see docs/bags.md)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from syncvp_core.arguments import COUNT, NON_NEGATIVE, POSITIVE, POSITIVE_INT, OneLineParser

PROG = "syncvp-bag"


def _emit(args, summary: dict, human: str) -> None:
    print(json.dumps(summary, indent=2) if args.json else human)


def cmd_synth(args) -> int:
    from syncvp_ros.bags import synth

    topics = synth.preset(args.preset, rgb=args.rgb_topic, depth=args.depth_topic,
                          rgb_info=args.rgb_info_topic, depth_info=args.depth_info_topic,
                          rgb_encoding=args.rgb_encoding, depth_encoding=args.depth_encoding,
                          rgb_frame=args.rgb_frame_id, depth_frame=args.depth_frame_id)
    spec = synth.SynthSpec(frames=args.frames, rate=args.rate, size=args.size, seed=args.seed, start=args.start)
    with tqdm(total=spec.frames, unit="frame", desc="synth", disable=args.quiet) as bar:
        counts = synth.write_synthetic_bag(args.out, spec, topics, args.storage, progress=bar.update)
    summary = {"bag": args.out, "storage": args.storage, "frames": spec.frames, "rate": spec.rate,
               "size": spec.size, "seed": spec.seed, "topics": counts}
    _emit(args, summary, f"wrote {args.out} ({args.storage}): {spec.frames} frames of {spec.size}x{spec.size} "
                         f"at {spec.rate:g} Hz, topics " + ", ".join(f"{t} ({n})" for t, n in counts.items()))
    return 0


def cmd_info(args) -> int:
    from syncvp_ros.bags.io import bag_info

    info = bag_info(args.bag)
    topics = {name: {"type": t.msgtype, "count": t.count,
                     "qos": [{"reliability": q.reliability.name.lower(), "durability": q.durability.name.lower(),
                              "history": q.history.name.lower(), "depth": q.depth} for q in t.qos]}
              for name, t in sorted(info.topics.items())}
    summary = {"bag": str(info.path), "storage": info.storage, "start_ns": info.start_ns, "end_ns": info.end_ns,
               "duration_s": info.duration_s, "messages": info.message_count, "topics": topics}
    lines = [f"{info.path}: {info.storage}, {info.message_count} messages, {info.duration_s:.3f} s "
             f"from {info.start_ns / 1e9:.3f} s"]
    for name, t in topics.items():
        qos = ", ".join(f"{q['reliability']}/{q['durability']} {q['history']} {q['depth']}" for q in t["qos"])
        lines.append(f"  {name:<48} {t['type']:<32} {t['count']:>7}  {qos or 'no QoS recorded'}")
    _emit(args, summary, "\n".join(lines))
    return 0


def cmd_play(args) -> int:
    from syncvp_ros.bags.player import PlayOptions, play_bag
    from syncvp_ros.bags.schedule import parse_drop, parse_remap

    options = PlayOptions(rate=args.rate, loop=args.loop or args.loops > 0, clock_hz=args.clock, delay=args.delay,
                          remaps=dict(parse_remap(r) for r in args.remap),
                          drops=[parse_drop(d) for d in args.drop], max_passes=args.loops,
                          wait_for=args.wait_for, wait_timeout=args.wait_timeout)
    result = play_bag(args.bag, options, progress=not args.quiet)
    summary = {"bag": args.bag, "passes": result.passes, "published": dict(result.published),
               "withheld": dict(result.withheld), "wall_s": round(result.wall_seconds, 3),
               "interrupted": result.interrupted}
    withheld = ", ".join(f"{t} {n}" for t, n in result.withheld.items()) or "none"
    _emit(args, summary, f"played {args.bag}: {result.passes} pass(es), {sum(result.published.values())} messages "
                         f"in {result.wall_seconds:.2f} s, withheld: {withheld}"
                         + (" (interrupted)" if result.interrupted else ""))
    return 0


def cmd_record(args) -> int:
    from syncvp_ros.bags.recorder import record_bag

    for topic in args.topics:
        if not topic.startswith("/"):
            raise ValueError(f"topic {topic!r}: use an absolute name (starting with /)")
    with tqdm(unit="msg", desc="record", disable=args.quiet) as bar:
        counts, skipped, unseen = record_bag(args.out, args.topics, args.storage, args.duration, args.use_sim_time,
                                             on_message=lambda _topic: bar.update())
    summary = {"bag": args.out, "topics": counts, "skipped": skipped, "never_seen": unseen}
    human = f"recorded {args.out}: " + (", ".join(f"{t} ({n})" for t, n in counts.items()) or "nothing")
    if unseen:
        human += f"; never published: {', '.join(unseen)}"
    _emit(args, summary, human)
    return 0


def cmd_eval(args) -> int:
    if args.predictions:
        from syncvp_core.evaluation.pipeline import learned_metrics
        from syncvp_ros.bags.evaluation import evaluate_predictions

        metrics = learned_metrics(sorted({*args.skip, "fvd"}), "cpu")  # no FVD on recorded predictions
        with tqdm(unit="prediction", desc="eval", disable=args.quiet) as bar:
            summary = evaluate_predictions(
                args.bag, args.predictions, {"rgb": args.rgb_topic, "depth": args.depth_topic}, args.prediction_topic,
                args.out, args.checkpoint, args.slop, metrics.lpips,
                {k: v for k, v in metrics.skipped.items() if k != "fvd"}, progress=bar.update)
    else:
        from syncvp_core.data.datasets import rosbag_spec
        from syncvp_core.evaluation.pipeline import EvalRequest, run

        summary = run(EvalRequest(
            checkpoint=args.checkpoint or "bundled", data=rosbag_spec(args.bag, args.rgb_topic, args.depth_topic,
                                                                      args.slop),
            out=Path(args.out), horizon=args.horizon, seed=args.seed, device=args.device, batch_size=args.batch_size,
            steps=args.steps, eta=args.eta, skip=list(args.skip or []), methods=args.methods,
            samples=sys.maxsize if args.samples is None else args.samples))  # default: every window of the bag
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        from syncvp_core.evaluation.pipeline import summary_table
        print(summary_table(summary))
        print(f"\nwrote {', '.join(summary['files'])} to {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    def command(name: str, help_text: str, func):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        p.add_argument("--json", action="store_true", help="print a JSON summary instead of the text one")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        return p

    p = command("synth", "write a synthetic RGB-D drive (RGB, depth, camera_info, /clock) as a rosbag2 bag",
                cmd_synth)
    p.add_argument("out", metavar="OUT", help="bag folder to create")
    p.add_argument("--frames", type=POSITIVE_INT, default=40, help="frames (default 40)")
    p.add_argument("--rate", type=POSITIVE, default=10.0, help="frame rate in Hz (default 10)")
    p.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")
    p.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")
    p.add_argument("--start", type=NON_NEGATIVE, default=10.0, help="stamp of the first frame in seconds (default 10)")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="storage plugin (default mcap)")
    p.add_argument("--preset", choices=("generic", "carla"), default="generic",
                   help="topic names, encodings and frame ids (carla: the CARLA ROS bridge's); options below override")
    for name, what in (("rgb-topic", "RGB image topic"), ("depth-topic", "depth image topic"),
                       ("rgb-info-topic", "RGB camera_info topic"), ("depth-info-topic", "depth camera_info topic"),
                       ("rgb-encoding", "rgb8, bgr8, rgba8, bgra8 or mono8"),
                       ("depth-encoding", "32FC1 (metres) or 16UC1 (millimetres)"),
                       ("rgb-frame-id", "RGB header frame_id"), ("depth-frame-id", "depth header frame_id")):
        p.add_argument(f"--{name}", help=what)

    p = command("info", "topics, types, message counts, QoS and time span of a bag", cmd_info)
    p.add_argument("bag", metavar="BAG")

    p = command("play", "publish a bag's messages with their original timing", cmd_play)
    p.add_argument("bag", metavar="BAG")
    p.add_argument("--rate", type=POSITIVE, default=1.0, help="playback speed factor (default 1)")
    p.add_argument("--loop", action="store_true", help="start over at the end until SIGINT / SIGTERM")
    p.add_argument("--loops", type=COUNT, default=0, metavar="N", help="play N passes (implies --loop)")
    p.add_argument("--clock", type=NON_NEGATIVE, nargs="?", const=40.0, default=0.0, metavar="HZ",
                   help="publish /clock from the playback position (default 40 Hz) instead of the bag's own, "
                        "for nodes with use_sim_time")
    p.add_argument("--delay", type=NON_NEGATIVE, default=0.0, help="seconds to wait before the first message, "
                                                                   "for subscribers to connect (default 0)")
    p.add_argument("--wait-for", action="append", default=[], metavar="TOPIC",
                   help="before playing, wait until TOPIC (bag name) has a subscriber")
    p.add_argument("--wait-timeout", type=POSITIVE, default=30.0,
                   help="seconds --wait-for may take before giving up (default 30)")
    p.add_argument("--remap", action="append", default=[], metavar="FROM:=TO", help="publish topic FROM as TO")
    p.add_argument("--drop", action="append", default=[], metavar="TOPIC@START:END",
                   help="withhold TOPIC (bag name) from START to END seconds after the bag start, in every pass")

    p = command("record", "record topics (any installed type, RGBDPrediction included) to a bag", cmd_record)
    p.add_argument("topics", nargs="+", metavar="TOPIC")
    p.add_argument("--out", required=True, metavar="BAG", help="bag folder to create")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="storage plugin (default mcap)")
    p.add_argument("--duration", type=NON_NEGATIVE, default=0.0,
                   help="seconds to record (default: until SIGINT / SIGTERM)")
    p.add_argument("--use-sim-time", action="store_true", help="stamp messages with /clock time")

    p = command("eval", "evaluate a bag offline like syncvp-eval, or score recorded predictions against it "
                        "(--predictions)", cmd_eval)
    p.add_argument("bag", metavar="BAG", help="the input bag (RGB and depth images)")
    p.add_argument("--rgb-topic", required=True)
    p.add_argument("--depth-topic", required=True)
    p.add_argument("--out", required=True, type=Path, help="output folder (metrics.json, plots, GIF)")
    p.add_argument("--checkpoint", help="model: checkpoint file, preset:NAME or bundled (default bundled; with "
                                        "--predictions only its depth range is used, default from model_id)")
    p.add_argument("--predictions", metavar="BAG", help="a recording of the node's RGBDPrediction topic")
    p.add_argument("--prediction-topic", default="/syncvp_predictor/output/prediction",
                   help="prediction topic in --predictions (default /syncvp_predictor/output/prediction)")
    p.add_argument("--slop", type=POSITIVE, default=0.02, help="largest stamp difference of matched frames, s (0.02)")
    p.add_argument("--horizon", type=POSITIVE_INT, default=28, help="predicted frames per window (28)")
    p.add_argument("--samples", type=POSITIVE_INT,
                   help="windows to evaluate, spread over the bag (default: every window)")
    p.add_argument("--batch-size", type=POSITIVE_INT, default=4, help="windows per model call (4)")
    p.add_argument("--steps", type=POSITIVE_INT, help="DDIM steps (default: the model's)")
    p.add_argument("--eta", type=float, help="DDIM eta (default: the model's)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (0): the evaluation is deterministic")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--skip", nargs="+", choices=("lpips", "fvd"), default=[], metavar="METRIC",
                   help="skip these slow network-based metrics: lpips, fvd")
    p.add_argument("--methods", nargs="+", metavar="METHOD",
                   help="offline: methods to score (default all: syncvp, its guidance modes, copy-last)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from syncvp_ros.bags.io import BagError

    try:
        return args.func(args)
    except (BagError, ValueError, OSError, RuntimeError) as exc:  # DataError and CheckpointError among them
        print(f"{PROG} {args.command}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
