"""The rclpy side of `syncvp-bag play`: publishes a bag's raw CDR messages on its original schedule.

Like `ros2 bag play`: each topic is re-offered with its recorded QoS, `--clock` publishes /clock (sim time)
from the playback position instead of the bag's own /clock, and a loop restarts the bag time, so the clock
jumps back at every pass. Timing, loops, dropout windows and remaps are the rclpy-free
`bags.schedule`.
"""
from __future__ import annotations

import importlib
import signal
import threading
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field

import rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rosbags.interfaces import Qos, QosHistory
from rosgraph_msgs.msg import Clock
from tqdm import tqdm

from syncvp_ros.bags.io import BagInfo, bag_info, qos, read_messages
from syncvp_ros.bags.schedule import DropWindow, Schedule
from syncvp_ros.ros_time import ns_to_time

CLOCK_TOPIC = "/clock"
# rclpy's TimeSource subscribes best effort, depth 1 (rclcpp's ClockQoS); only the newest time matters.
CLOCK_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)


def message_class(msgtype: str):
    """`pkg/msg/Name` -> the generated rclpy class."""
    package, _, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError):
        raise ValueError(f"message type {msgtype} is not installed for rclpy") from None


def qos_profile(offered: Sequence[Qos]) -> QoSProfile:
    """The first recorded profile (as `ros2 bag play` re-offers it); reliable, depth 10 when none was recorded.

    Reliability and durability decide matching; history and depth of a remote endpoint are reported as
    unknown / 0 (so recorded), and then become keep-last 10.
    """
    q = offered[0] if offered else qos()
    known = q.history in (QosHistory.KEEP_LAST, QosHistory.KEEP_ALL) and q.depth > 0
    return QoSProfile(history=HistoryPolicy[q.history.name] if known else HistoryPolicy.KEEP_LAST,
                      depth=q.depth if known else 10,
                      reliability=ReliabilityPolicy[q.reliability.name],
                      durability=DurabilityPolicy[q.durability.name])


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT / SIGTERM, so the caller finishes its bag cleanly instead of dying mid-write."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


@dataclass
class PlayOptions:
    rate: float = 1.0
    loop: bool = False
    clock_hz: float = 0.0  # 0: no /clock from the player
    delay: float = 0.0  # seconds before the first message, for subscribers to match
    remaps: dict[str, str] = field(default_factory=dict)
    drops: list[DropWindow] = field(default_factory=list)
    max_passes: int = 0  # with loop: stop after this many passes (0: until signalled)
    wait_for: list[str] = field(default_factory=list)  # bag topics that need a subscriber before playing
    wait_timeout: float = 30.0


@dataclass
class PlayResult:
    passes: int = 0
    published: Counter = field(default_factory=Counter)
    withheld: Counter = field(default_factory=Counter)
    wall_seconds: float = 0.0
    interrupted: bool = False


class BagPlayer:
    def __init__(self, node: Node, info: BagInfo, options: PlayOptions, stop: threading.Event):
        self.node, self.info, self.options, self.stop = node, info, options, stop
        self.schedule = Schedule(info.start_ns, info.end_ns, options.rate)
        self.clock_pub = node.create_publisher(Clock, CLOCK_TOPIC, CLOCK_QOS) if options.clock_hz > 0 else None
        self.publishers = {
            topic.name: node.create_publisher(message_class(topic.msgtype), options.remaps.get(topic.name, topic.name),
                                              qos_profile(topic.qos))
            for topic in info.topics.values() if not (self.clock_pub and topic.name == CLOCK_TOPIC)}
        self._next_tick = 0.0

    def _publish_clock(self, bag_ns: int) -> None:
        self.clock_pub.publish(Clock(clock=ns_to_time(bag_ns)))

    def _wait_until(self, due: float, start: float, pass_index: int) -> bool:
        """Sleeps until `due` wall seconds after `start`, ticking /clock meanwhile; False when stopped."""
        while not self.stop.is_set():
            now = time.monotonic() - start
            if now >= due:
                return True
            if self.clock_pub:
                if now >= self._next_tick:
                    self._publish_clock(self.schedule.bag_time(now, pass_index))
                    self._next_tick = now + 1.0 / self.options.clock_hz
                self.stop.wait(min(due, self._next_tick) - now)
            else:
                self.stop.wait(due - now)
        return False

    def wait_for_subscribers(self) -> None:
        """Blocks until every `wait_for` topic has a subscriber; ValueError naming those without one at timeout."""
        unknown = [t for t in self.options.wait_for if t not in self.publishers]
        if unknown:
            raise ValueError(f"--wait-for {', '.join(unknown)}: not a topic this bag publishes")
        deadline = time.monotonic() + self.options.wait_timeout
        while not self.stop.is_set():
            lonely = [t for t in self.options.wait_for if not self.publishers[t].get_subscription_count()]
            if not lonely:
                return
            if time.monotonic() > deadline:
                raise ValueError(f"no subscriber on {', '.join(lonely)} after {self.options.wait_timeout:g} s")
            self.stop.wait(0.05)

    def play(self, progress: bool = True) -> PlayResult:
        result = PlayResult()
        passes = self.options.max_passes if self.options.loop else 1  # 0: until signalled
        self.wait_for_subscribers()
        self.stop.wait(self.options.delay)
        start = time.monotonic()
        while not self.stop.is_set() and (passes == 0 or result.passes < passes):
            self._play_pass(result.passes, start, result, progress)
            result.passes += 1
        result.interrupted = self.stop.is_set()
        result.wall_seconds = time.monotonic() - start
        return result

    def _play_pass(self, pass_index: int, start: float, result: PlayResult, progress: bool) -> None:
        with closing(read_messages(self.info.path)) as messages, \
                tqdm(total=self.info.message_count, unit="msg", desc=f"pass {pass_index + 1}",
                     disable=not progress, leave=False) as bar:
            for msg in messages:
                bar.update()
                if msg.topic not in self.publishers:
                    continue
                if not self._wait_until(self.schedule.wall_offset(pass_index, msg.timestamp), start, pass_index):
                    return
                if any(d.covers(msg.topic, self.schedule.seconds_into_bag(msg.timestamp)) for d in self.options.drops):
                    result.withheld[msg.topic] += 1
                    continue
                if self.clock_pub:  # the clock reaches a message's time no later than the message
                    self._publish_clock(msg.timestamp)
                self.publishers[msg.topic].publish(msg.rawdata)
                result.published[msg.topic] += 1


def play_bag(path: str, options: PlayOptions, progress: bool = True) -> PlayResult:
    """Opens the bag, starts rclpy, plays; SIGINT / SIGTERM end it between two messages."""
    info = bag_info(path)
    stop = stop_on_signals()
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = Node("syncvp_bag_player")
    try:
        return BagPlayer(node, info, options, stop).play(progress)
    finally:
        node.destroy_node()
        rclpy.shutdown()
