"""Two measurements of issue 12's fault matrix against the real node (a child process, tiny model, CPU; not a test).

    .venv/bin/python benchmarks/bench_faults.py loss [--profile] [--width 741 --height 500 --frames 60]
    .venv/bin/python benchmarks/bench_faults.py shutdown [--horizon 256] [--signal INT|TERM]

`loss`: this process publishes `--frames` bgr8 + 16UC1 frames at 10 Hz (best effort, wall-clock stamps) to the node
(default, best-effort input QoS), then reads the node's /diagnostics: frames that arrived (`accepted`, all frames
are valid) against the node's own loss estimate. `--profile` runs node and publisher with
config/fastdds_large_frames.xml. `shutdown`: the node gets `--horizon` frames per prediction at 50 DDIM steps;
once a rollout has run for 3 s, the signal is sent and the time until the process has exited is measured
(`--idle`: no frames, the baseline exit time).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
PROFILE = ROOT / "config" / "fastdds_large_frames.xml"
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # never multicast off this machine
os.environ.setdefault("ROS_LOG_DIR", str(ROOT / "build" / "ros_log"))
os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
if "--profile" in sys.argv:  # before rclpy loads: the profile is read when the first participant is made
    os.environ["FASTRTPS_DEFAULT_PROFILES_FILE"] = os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(PROFILE)

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from syncvp_ros.image_conversion import array_to_image  # noqa: E402
from syncvp_ros.processes import ChildProcess, predictor_command  # noqa: E402

TOPICS = {"rgb": "/bench/rgb", "depth": "/bench/depth"}


class Rig:
    """The node as a child, and this process's publishers and /diagnostics subscription."""

    def __init__(self, parameters: dict):
        params = pathlib.Path(tempfile.mkdtemp()) / "p.yaml"
        params.write_text("/**/syncvp_predictor:\n  ros__parameters:\n    checkpoint: preset:tiny\n    device: cpu\n")
        remaps = {f"~/input/{k}": v for k, v in TOPICS.items()}
        self.node_proc = ChildProcess("node", predictor_command(params, parameters, remaps), dict(os.environ))
        rclpy.init()
        self.node = rclpy.create_node("bench_faults")
        self.pubs = {k: self.node.create_publisher(Image, v, qos_profile_sensor_data) for k, v in TOPICS.items()}
        self.status: dict[str, dict] = {}
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()
        self.node_proc.wait_for_line("parameters:", timeout=120)
        deadline = time.monotonic() + 30
        while not all(p.get_subscription_count() for p in self.pubs.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # the first frames after a match can still be lost while it completes

    def _on_diagnostics(self, array):
        for s in array.status:
            self.status[s.name.rsplit(": ", 1)[-1]] = {"message": s.message, **{kv.key: kv.value for kv in s.values}}

    def publish(self, frames: int, width: int, height: int, rate: float = 10.0,
                stop: threading.Event | None = None) -> None:
        rng = np.random.default_rng(0)
        rgb = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        depth = rng.integers(500, 20000, (height, width), dtype=np.uint16)
        for _ in range(frames):
            if stop is not None and stop.is_set():
                return
            stamp = self.node.get_clock().now().to_msg()
            for key, msg in (("rgb", array_to_image(rgb, "bgr8")), ("depth", array_to_image(depth, "16UC1"))):
                msg.header.stamp, msg.header.frame_id = stamp, "cam"
                self.pubs[key].publish(msg)
            time.sleep(1.0 / rate)

    def close(self) -> int:
        rc = self.node_proc.stop(timeout=30)
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown()
        return rc


def measure_loss(args) -> dict:
    rig = Rig({"ddim_steps": 1, "horizon": 1, "diagnostics_period": 0.2})
    try:
        rig.publish(args.frames, args.width, args.height)
        time.sleep(1.5)  # two reports after the last frame
        out = {}
        for key in TOPICS:
            s = rig.status[f"{key} input"]
            arrived = int(s["accepted"]) + int(s["rejected"])
            out[key] = {"sent": args.frames, "arrived": arrived, "true_lost": args.frames - arrived,
                        "estimated_lost": int(s["lost (estimate, total)"]), "message": s["message"]}
    finally:
        rig.close()
    return {"profile": args.profile, "size": f"{args.width}x{args.height}", **out}


def measure_shutdown(args) -> dict:
    rig = Rig({"ddim_steps": 50, "horizon": args.horizon, "diagnostics_period": 0.2})
    stop = threading.Event()
    feeding = threading.Thread(target=rig.publish, args=(0 if args.idle else 1000, 64, 64, 10.0, stop),
                               daemon=True)
    feeding.start()
    deadline = time.monotonic() + (2 if args.idle else 60)
    while rig.status.get("prediction", {}).get("pending", "0") == "0" and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(3.0)  # deep in a rollout of `horizon` frames (tens of seconds on a CPU)
    busy = rig.status["prediction"]["pending"]
    stop.set()
    feeding.join()
    start = time.monotonic()
    rig.node_proc.proc.send_signal(getattr(signal, f"SIG{args.signal}"))
    rc = rig.node_proc.proc.wait(60)
    elapsed = time.monotonic() - start
    log = rig.node_proc.tail(50)
    rig.close()
    return {"horizon": args.horizon, "signal": args.signal, "idle": args.idle, "pending_at_signal": busy, "exit_status": rc,
            "seconds_to_exit": round(elapsed, 3), "terminate_called": "terminate called" in log}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    loss = sub.add_parser("loss", help="estimated vs true loss of large best-effort frames")
    loss.add_argument("--profile", action="store_true", help="use config/fastdds_large_frames.xml")
    loss.add_argument("--width", type=int, default=741)
    loss.add_argument("--height", type=int, default=500)
    loss.add_argument("--frames", type=int, default=60)
    stop = sub.add_parser("shutdown", help="time from a signal to exit during a long rollout")
    stop.add_argument("--horizon", type=int, default=256)
    stop.add_argument("--signal", choices=("INT", "TERM"), default="INT")
    stop.add_argument("--idle", action="store_true", help="send no frames: the exit time without a rollout")
    args = parser.parse_args()
    print(json.dumps(measure_loss(args) if args.what == "loss" else measure_shutdown(args), indent=2))


if __name__ == "__main__":
    main()
