"""Helpers for the multi-process node tests: the node as a child process with this process's driver node beside
it, a sim-time RGB-D feeder, collectors.

The feeder owns time: it publishes /clock and stamps every frame with it, so the node (use_sim_time) judges
staleness on exactly the time line the test controls, and a backward clock jump is one assignment.
"""
from __future__ import annotations

import os
import pathlib
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter_client import AsyncParameterClient
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image

from syncvp_ros.image_conversion import array_to_image
from syncvp_ros.processes import ChildProcess

VENV_BIN = os.path.dirname(sys.executable)
SHIPPED_PARAMS = pathlib.Path(__file__).resolve().parents[1] / "config" / "predictor.yaml"
NS = 1_000_000_000


def to_time(ns: int) -> Time:
    return Time(sec=ns // NS, nanosec=ns % NS)


def to_ns(t: Time) -> int:
    return t.sec * NS + t.nanosec


def wait_until(predicate, timeout: float, poll: float = 0.02, what: str = "condition"):
    """Poll until `predicate()` is truthy (returns it) or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")


class NodeProcess(ChildProcess):
    """`syncvp-predictor --ros-args ...` as a child (output kept and logged); stopped with SIGINT, then SIGKILL."""

    def __init__(self, ros_args: list[str], env: dict, log_path):
        super().__init__("syncvp_predictor", [os.path.join(VENV_BIN, "syncvp-predictor"), "--ros-args", *ros_args],
                         env=env, log=log_path)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.tail(n=len(self.lines))

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
        raise RuntimeError("no VmRSS")


class NodeRig:
    """The node in its own process, and in this one rclpy with a driver node (subscriptions, a parameter client of
    the node) spun on an executor thread.

    The node reads the shipped config, then `params` (the test's overrides, as params-file text), with its
    private input names remapped onto `inputs` (the docs' remapping form); its log goes to tmp_path/node.log.
    `subscriptions` are (type, topic, callback, depth), made before the executor spins.
    """

    def __init__(self, tmp_path, params: str, inputs: dict, driver: str, subscriptions=()):
        params_file = tmp_path / "test_params.yaml"
        params_file.write_text(params)
        env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")
        remaps = [a for key, topic in inputs.items() for a in ("-r", f"~/input/{key}:={topic}")]
        self.proc = NodeProcess(["--params-file", str(SHIPPED_PARAMS), "--params-file", str(params_file), *remaps],
                                env, tmp_path / "node.log")
        rclpy.init()
        self.node = rclpy.create_node(driver)
        for msg_type, topic, callback, depth in subscriptions:
            self.node.create_subscription(msg_type, topic, callback, depth)
        self.params = AsyncParameterClient(self.node, "/syncvp_predictor")
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()

    def close(self):
        self.proc.stop()
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown()


def synthetic_rgb(tick: int, height: int, width: int) -> np.ndarray:
    """A horizontal gradient scrolling one pixel per tick (H×W×3 uint8 RGB)."""
    x = (np.arange(width)[None, :] + tick) % width
    y = np.arange(height)[:, None]
    return np.stack(np.broadcast_arrays(x * 255 // width, y * 255 // height, (x + y) % 256), -1).astype(np.uint8)


def synthetic_depth(tick: int, height: int, width: int) -> np.ndarray:
    """A ground-plane-like depth (H×W float32 metres): far at the top, near at the bottom."""
    rows = np.linspace(40.0, 3.0, height, dtype=np.float32)[:, None]
    return np.broadcast_to(rows - 0.05 * (tick % 10), (height, width)).astype(np.float32).copy()


def encode_rgb(rgb: np.ndarray, encoding: str) -> np.ndarray:
    if encoding == "mono8":
        return rgb[..., 0].copy()
    out = rgb[..., ::-1] if encoding.startswith("bgr") else rgb
    if encoding.endswith("a8"):
        out = np.concatenate([out, np.full(out.shape[:2] + (1,), 255, np.uint8)], -1)
    return np.ascontiguousarray(out)


@dataclass
class Feeder:
    """Publishes /clock, then RGB, depth and CameraInfo every `period` of wall time, all stamped with sim time.

    Switch modalities with `send_rgb` / `send_depth`; `inject` queues extra (bad) messages published right after
    a tick's frames (one batch per tick), built from that tick's stamp; `jump_to(ns)` moves sim time.
    `depth_fn(tick, height, width)` replaces the depth scene; `lose(modality, tick)` True withholds that frame
    (a frame lost on the way: its stamp is skipped, `lost` records it).
    """

    node: object
    topics: dict
    height: int = 96
    width: int = 128
    period: float = 0.1
    start_ns: int = 1000 * NS
    rgb_frame: str = "cam_rgb"
    depth_frame: str = "cam_depth"
    send_rgb: bool = True
    send_depth: bool = True
    send_info: bool = True
    depth_fn: object = None
    lose: object = None
    now_ns: int = 0
    published: list = field(default_factory=list)  # (wall time, modality, stamp ns)
    lost: list = field(default_factory=list)  # (modality, stamp ns)
    _inject: list = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self):
        qos = 10
        self.clock_pub = self.node.create_publisher(Clock, "/clock", qos)
        self.rgb_pub = self.node.create_publisher(Image, self.topics["rgb"], qos)
        self.depth_pub = self.node.create_publisher(Image, self.topics["depth"], qos)
        self.info_pub = self.node.create_publisher(CameraInfo, self.topics["camera_info"], qos)
        self.now_ns = self.start_ns
        self.tick = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join()

    def inject(self, make_messages):
        """`make_messages(stamp_ns)` -> [(publisher, msg), ...], published after the next tick's frames."""
        with self._lock:
            self._inject.append(make_messages)

    def jump_to(self, ns: int):
        with self._lock:
            self.now_ns = ns

    def last_stamp(self, modality: str) -> int | None:
        with self._lock:
            stamps = [s for _, m, s in self.published if m == modality]
        return stamps[-1] if stamps else None

    def newest_before(self, wall: float) -> int | None:
        """The stamp of the last frame published before wall time `wall` (the newest on the current time line)."""
        with self._lock:
            stamps = [s for w, _, s in self.published if w <= wall]
        return stamps[-1] if stamps else None

    def image(self, pixels: np.ndarray, encoding: str, stamp: int, frame_id: str) -> Image:
        msg = array_to_image(pixels, encoding)
        msg.header.stamp, msg.header.frame_id = to_time(stamp), frame_id
        return msg

    def camera_info(self, stamp: int) -> CameraInfo:
        info = CameraInfo(height=self.height, width=self.width, distortion_model="plumb_bob", d=[0.0] * 5,
                          k=[100.0, 0.0, 63.5, 0.0, 100.0, 47.5, 0.0, 0.0, 1.0],
                          r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                          p=[100.0, 0.0, 63.5, 0.0, 0.0, 100.0, 47.5, 0.0, 0.0, 0.0, 1.0, 0.0])
        info.header.stamp, info.header.frame_id = to_time(stamp), self.rgb_frame
        return info

    def _run(self):
        rgb_encodings = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
        next_wall = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                self.now_ns += int(self.period * NS)
                stamp, tick = self.now_ns, self.tick
                inject = self._inject[:1]  # one batch per tick: a burst must fit the node's KEEP_LAST depth
                del self._inject[:1]
            self.tick += 1
            self.clock_pub.publish(Clock(clock=to_time(stamp)))
            wall = time.monotonic()
            sent = {m: on and not (self.lose and self.lose(m, tick)) for m, on in (("rgb", self.send_rgb),
                                                                                  ("depth", self.send_depth))}
            if sent["rgb"]:
                # Cycle through every RGB encoding and both depth encodings: the live path converts them all.
                enc = rgb_encodings[tick % len(rgb_encodings)]
                self.rgb_pub.publish(self.image(encode_rgb(synthetic_rgb(tick, self.height, self.width), enc),
                                                enc, stamp, self.rgb_frame))
                if self.send_info:
                    self.info_pub.publish(self.camera_info(stamp))
            if sent["depth"]:
                depth = (self.depth_fn or synthetic_depth)(tick, self.height, self.width)
                millimetres = np.where(np.isfinite(depth), np.round(depth * 1000), 0).astype(np.uint16)  # 0 invalid
                msg = (self.image(depth, "32FC1", stamp, self.depth_frame) if tick % 2 else
                       self.image(millimetres, "16UC1", stamp, self.depth_frame))
                self.depth_pub.publish(msg)
            with self._lock:
                self.published += [(wall, m, stamp) for m, on in sent.items() if on]
                self.lost += [(m, stamp) for m, on in (("rgb", self.send_rgb), ("depth", self.send_depth))
                              if on and not sent[m]]
            for make in inject:
                for pub, msg in make(stamp):
                    pub.publish(msg)
            next_wall += self.period
            self._stop.wait(max(0.0, next_wall - time.monotonic()))


class Collector:
    """Thread-safe record of received messages with their wall receipt time."""

    def __init__(self):
        self._lock = threading.Lock()
        self.items: list = []

    def __call__(self, msg):
        with self._lock:
            self.items.append((time.monotonic(), msg))

    def since(self, wall: float) -> list:
        with self._lock:
            return [m for w, m in self.items if w >= wall]

    def timed_since(self, wall: float) -> list:
        with self._lock:
            return [(w, m) for w, m in self.items if w >= wall]


def diag_status(array, suffix: str):
    """(level int, message, {key: value}) of the status whose name ends with `suffix`, or None."""
    for status in array.status:
        if status.name.endswith(suffix):
            return ord(status.level), status.message, {kv.key: kv.value for kv in status.values}
    return None
