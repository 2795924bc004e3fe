"""End-to-end latency of syncvp_predictor and the cost of publishing its output message (not a test).

Starts the node (CPU, one torch thread, 64×64; by default at the node's own defaults: the bundled model, its
sampler and steps, horizon 28) as a child process, feeds it 64×64 RGB-D at `--rate` Hz stamped with the wall
clock, and measures per prediction:
- end-to-end: receipt of the prediction minus its header stamp (the newest input stamp);
- in the node (from /diagnostics): inference, message build + publish, and node clock at publish minus stamp.
Then, in this process, builds and publishes the same `--horizon` + `--horizon`-frame 64² RGBDPrediction
`--publish-reps` times to
one subscriber, timing `prediction_message` and `publish` separately, and builds the `~/output/cloud`
PointCloud2 of one predicted 64² frame (`point_cloud`) as often.

    .venv/bin/python benchmarks/bench_node.py [--checkpoint bundled] [--horizon 28] [--steps 0] [--seconds 20]
        [--json out.json]
"""
from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import threading
import time

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # never multicast off this machine
os.environ.setdefault("ROS_LOG_DIR", str(pathlib.Path(__file__).resolve().parents[1] / "build" / "ros_log"))
os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from syncvp_core.arguments import COUNT, POSITIVE, POSITIVE_INT, OneLineParser  # noqa: E402
from syncvp_core.modalities import ConditioningMode  # noqa: E402
from syncvp_ros.image_conversion import array_to_image  # noqa: E402
from syncvp_ros.msg import RGBDPrediction  # noqa: E402
from syncvp_ros.point_cloud import point_cloud  # noqa: E402
from syncvp_ros.prediction_message import prediction_message  # noqa: E402
from syncvp_ros.ros_time import stamp_ns  # noqa: E402
from syncvp_ros.sync_buffer import Frame, Window  # noqa: E402

SIZE = 64


def summary(values: list[float]) -> dict:
    a = np.asarray(values) * 1e3
    if a.size == 0:
        return {"n": 0}
    return {"n": int(a.size), "mean_ms": float(a.mean()), "p50_ms": float(np.percentile(a, 50)),
            "p90_ms": float(np.percentile(a, 90)), "max_ms": float(a.max())}


def run_node(args, node) -> dict:
    params = pathlib.Path(tempfile.mkdtemp()) / "bench.yaml"
    params.write_text(f"""/**/syncvp_predictor:
  ros__parameters:
    checkpoint: {args.checkpoint}
    device: cpu
    cpu_threads: 1
    horizon: {args.horizon}
    ddim_steps: {args.steps}
    seed: 0
    diagnostics_period: 0.1
""")
    exe = os.path.join(os.path.dirname(sys.executable), "syncvp-predictor")
    proc = subprocess.Popen([exe, "--ros-args", "--params-file", str(params)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    e2e, node_samples, last_predicted = [], {"inference": [], "publish": [], "age": []}, [None]

    def on_prediction(msg):
        e2e.append((node.get_clock().now().nanoseconds - stamp_ns(msg.header.stamp)) * 1e-9)

    def on_diagnostics(array):
        for status in array.status:
            if status.name.endswith(": prediction"):
                v = {kv.key: kv.value for kv in status.values}
                if v["predicted"] != last_predicted[0] and v["inference latency [s]"] != "none":
                    last_predicted[0] = v["predicted"]
                    node_samples["inference"].append(float(v["inference latency [s]"]))
                    node_samples["publish"].append(float(v["publish time [s]"]))
                    node_samples["age"].append(float(v["age at publish [s]"]))

    node.create_subscription(RGBDPrediction, "/syncvp_predictor/output/prediction", on_prediction, 10)
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 50)
    rgb_pub = node.create_publisher(Image, "/syncvp_predictor/input/rgb", 10)
    depth_pub = node.create_publisher(Image, "/syncvp_predictor/input/depth", 10)
    rng = np.random.default_rng(0)
    try:
        deadline = time.monotonic() + 120
        while not e2e and time.monotonic() < deadline:  # warm-up: model load and the first prediction
            publish_pair(node, rgb_pub, depth_pub, rng)
            time.sleep(1.0 / args.rate)
        e2e.clear()
        for v in node_samples.values():
            v.clear()
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            publish_pair(node, rgb_pub, depth_pub, rng)
            time.sleep(1.0 / args.rate)
        time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return {"end_to_end": summary(e2e), "node_inference": summary(node_samples["inference"]),
            "node_build_and_publish": summary(node_samples["publish"]), "node_age_at_publish":
            summary(node_samples["age"])}


def publish_pair(node, rgb_pub, depth_pub, rng):
    stamp = node.get_clock().now().to_msg()
    rgb = array_to_image(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8), "rgb8")
    depth = array_to_image(rng.uniform(2, 40, (SIZE, SIZE)).astype(np.float32), "32FC1")
    for msg, pub in ((rgb, rgb_pub), (depth, depth_pub)):
        msg.header.stamp, msg.header.frame_id = stamp, "camera"
        pub.publish(msg)


def publish_cost(node, reps: int, horizon: int) -> dict:
    """Message build and publish of one `horizon` + `horizon`-frame 64² prediction, with one subscriber listening."""
    received = []
    node.create_subscription(RGBDPrediction, "/bench/prediction", lambda m: received.append(1), 10)
    pub = node.create_publisher(RGBDPrediction, "/bench/prediction", 10)
    deadline = time.monotonic() + 10
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    rng = np.random.default_rng(0)
    frames = tuple(Frame(k * 100_000_000, "camera", None) for k in range(2))
    window = Window(ConditioningMode.RGBD, frames, frames)
    rgb = rng.integers(0, 255, (horizon, SIZE, SIZE, 3), dtype=np.uint8)
    depth = rng.uniform(2, 40, (horizon, SIZE, SIZE)).astype(np.float32)
    k = [50.0, 0.0, 31.5, 0.0, 50.0, 31.5, 0.0, 0.0, 1.0]
    build, publish, cloud_build = [], [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        msg = prediction_message(window, rgb, depth, None, 2, "tiny")
        t1 = time.perf_counter()
        pub.publish(msg)
        t2 = time.perf_counter()
        cloud = point_cloud(depth[-1], rgb[-1], k, msg.header)
        t3 = time.perf_counter()
        build.append(t1 - t0)
        publish.append(t2 - t1)
        cloud_build.append(t3 - t2)
        time.sleep(0.01)
    time.sleep(0.5)
    return {"message_build": summary(build), "publish": summary(publish), "cloud_build": summary(cloud_build),
            "received": len(received), "message_bytes": int(sum(len(i.data) for i in (*msg.rgb, *msg.depth))),
            "cloud_points": cloud.width}


def main() -> None:
    parser = OneLineParser(prog="bench_node.py", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="bundled", help="the node's checkpoint parameter (bundled)")
    parser.add_argument("--horizon", type=POSITIVE_INT, default=28, help="predicted frames (28, the node's default)")
    parser.add_argument("--steps", type=COUNT, default=0,
                        help="network evaluations per 8-frame chunk (0: the checkpoint's default)")
    parser.add_argument("--rate", type=POSITIVE, default=10.0, help="input rate [Hz]")
    parser.add_argument("--seconds", type=POSITIVE, default=20.0, help="measured feeding time after warm-up")
    parser.add_argument("--publish-reps", type=POSITIVE_INT, default=200, help="message builds timed (200)")
    parser.add_argument("--json", type=pathlib.Path, help="also write the results here")
    args = parser.parse_args()

    rclpy.init()
    node = rclpy.create_node("syncvp_bench")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    try:
        results = {"config": {"checkpoint": args.checkpoint, "size": SIZE, "horizon": args.horizon,
                              "ddim_steps": args.steps, "rate_hz": args.rate, "seconds": args.seconds, "device": "cpu",
                              "torch_threads": 1, "cpus": os.cpu_count()},
                   **run_node(args, node), **publish_cost(node, args.publish_reps, args.horizon)}
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown()

    print(f"{'metric':<26}{'n':>5}{'mean ms':>10}{'p50 ms':>10}{'p90 ms':>10}{'max ms':>10}")
    for key, value in results.items():
        if isinstance(value, dict) and "n" in value and value["n"]:
            print(f"{key:<26}{value['n']:>5}{value['mean_ms']:>10.1f}{value['p50_ms']:>10.1f}"
                  f"{value['p90_ms']:>10.1f}{value['max_ms']:>10.1f}")
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
