"""The rclpy side of `syncvp-bag record`: raw subscriptions written straight into a `BagWriter`.

Like `ros2 bag record`: a topic is subscribed once it appears in the graph (with the type its publishers
announce), the subscription adapts to the publishers' QoS (reliable only when every publisher is), their
offered profiles go into the bag's metadata, and each message is stamped with its receive time on the
recorder's clock (sim time with `use_sim_time`). With sim time, messages that arrive before the first /clock
(time 0) are held and written at the first clock time, in arrival order; beyond `HOLD_LIMIT` of them, the
oldest are dropped and counted, and if /clock never comes, the held ones are dropped and counted at the end.
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

from syncvp_ros.bags.io import BagError, BagWriter
from syncvp_ros.bags.player import message_class, stop_on_signals
from syncvp_ros.ros_time import split_ns

# Deep enough that a burst of images outlasts a slow write.
RECORD_DEPTH = 100
# Messages kept while waiting for the first /clock (images: a few hundred MB at most).
HOLD_LIMIT = 200


def _qos_time(duration) -> QosTime:
    sec, nsec = split_ns(duration.nanoseconds)
    return QosTime(sec=sec, nsec=nsec)


def offered_qos(profile: QoSProfile) -> Qos:
    """An rclpy endpoint's QoS as rosbag2 metadata stores it."""
    return Qos(
        history=QosHistory[profile.history.name], depth=profile.depth,
        reliability=QosReliability[profile.reliability.name],
        durability=QosDurability[profile.durability.name],
        deadline=_qos_time(profile.deadline), lifespan=_qos_time(profile.lifespan),
        liveliness=QosLiveliness[profile.liveliness.name],
        liveliness_lease_duration=_qos_time(profile.liveliness_lease_duration),
        avoid_ros_namespace_conventions=profile.avoid_ros_namespace_conventions)


def subscription_qos(offered: Sequence[QoSProfile]) -> QoSProfile:
    """Reliable / transient-local only when every publisher offers it, so that none is left unmatched."""
    reliable = bool(offered) and all(p.reliability == ReliabilityPolicy.RELIABLE for p in offered)
    latched = bool(offered) and all(p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in offered)
    return QoSProfile(depth=RECORD_DEPTH,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


class BagRecorder:
    def __init__(self, node: Node, writer: BagWriter, topics: Sequence[str],
                 on_message: Callable[[str], None] | None = None):
        self.node, self.writer, self.on_message = node, writer, on_message
        self.waiting = set(topics)
        self.skipped: dict[str, str] = {}
        self.dropped_before_clock = 0
        self._held: deque[tuple[str, bytes]] = deque()
        self._subscriptions = []

    def discover(self) -> None:
        """Subscribes every wanted topic that has appeared since the last call."""
        for name, types in self.node.get_topic_names_and_types():
            if name not in self.waiting:
                continue
            publishers = self.node.get_publishers_info_by_topic(name)
            if not publishers:
                continue
            self.waiting.discard(name)
            try:
                msg_class = message_class(types[0])
                self.writer.add_topic(name, types[0], [offered_qos(p.qos_profile) for p in publishers])
            except (ValueError, BagError) as exc:
                self.skipped[name] = str(exc)
                self.node.get_logger().warning(f"not recording {name}: {exc}")
                continue
            self.node.get_logger().info(f"recording {name} ({types[0]})")
            self._subscriptions.append(self.node.create_subscription(
                msg_class, name, lambda raw, topic=name: self._write(topic, raw),
                subscription_qos([p.qos_profile for p in publishers]), raw=True))

    def _write(self, topic: str, raw: bytes) -> None:
        self._held.append((topic, raw))
        if len(self._held) > HOLD_LIMIT:
            self._held.popleft()
            self.dropped_before_clock += 1
        self.flush()

    def flush(self) -> None:
        """Writes the held messages once the clock runs (log time 0 would put them before the whole bag)."""
        now = self.node.get_clock().now().nanoseconds
        if now == 0:
            return
        while self._held:
            topic, raw = self._held.popleft()
            self.writer.write(topic, now, raw)
            if self.on_message:
                self.on_message(topic)

    def close(self) -> None:
        self.flush()
        self.dropped_before_clock += len(self._held)
        self._held.clear()


def record_bag(out: str, topics: Sequence[str], storage: str = "mcap", duration: float = 0.0,
               use_sim_time: bool = False, on_message: Callable[[str], None] | None = None
               ) -> tuple[dict[str, int], dict[str, str], list[str]]:
    """Records until SIGINT / SIGTERM or for `duration` seconds (0: no limit); the bag is always closed.

    Returns messages per topic, topics skipped (why) and topics never seen.
    """
    stop = stop_on_signals()
    writer = BagWriter(out, storage)
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = Node("syncvp_bag_recorder", parameter_overrides=[Parameter("use_sim_time", value=use_sim_time)])
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    recorder = BagRecorder(node, writer, topics, on_message)
    deadline = time.monotonic() + duration if duration > 0 else float("inf")
    next_discovery = 0.0
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            if recorder.waiting and time.monotonic() >= next_discovery:
                recorder.discover()
                next_discovery = time.monotonic() + 0.1
            executor.spin_once(timeout_sec=0.05)
            recorder.flush()
    finally:
        recorder.close()
        if recorder.dropped_before_clock:
            node.get_logger().warning(f"{recorder.dropped_before_clock} message(s) arrived before the first /clock "
                                      "and were not recorded")
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown()
        writer.close()
    return dict(writer.counts), recorder.skipped, sorted(recorder.waiting)
