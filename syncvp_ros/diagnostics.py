"""/diagnostics for the predictor (diagnostic_updater is not available): rates, ages, levels, DiagnosticArray.

No rclpy: the node passes snapshots in and publishes the array this module builds. Three statuses:
`<node>: rgb input`, `<node>: depth input` and `<node>: prediction`; the last one's level is the node's
verdict (OK with RGB-D guidance, WARN with one modality or no pair, ERROR when both inputs are stale).
"""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from syncvp_ros.sync_buffer import Counters, GuidanceMode, Selection, SyncBuffer

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR


class RateMeter:
    """Message rate over the last `window_ns`, from the messages' header stamps: the sensor's own rate, which
    executor and /clock delivery jitter on a loaded machine do not distort (stamps are on the node clock's
    time scale, as staleness already assumes)."""

    def __init__(self, window_ns: int = 5_000_000_000, max_events: int = 200):
        self._times: deque[int] = deque(maxlen=max_events)
        self._window_ns = window_ns

    def tick(self, now_ns: int) -> None:
        self._times.append(now_ns)

    def reset(self) -> None:
        self._times.clear()

    def rate_hz(self, now_ns: int) -> float:
        recent = [t for t in self._times if now_ns - t <= self._window_ns]
        if len(recent) < 2 or recent[-1] == recent[0]:
            return 0.0
        return (len(recent) - 1) * 1e9 / (recent[-1] - recent[0])


class Throttle:
    """At most one pass per key every `period_s` (steady seconds): per-kind throttled logging of bad messages."""

    def __init__(self, period_s: float):
        self._period = period_s
        self._last: dict[object, float] = {}

    def allow(self, key, now_s: float) -> bool:
        last = self._last.get(key)
        if last is not None and now_s - last < self._period:
            return False
        self._last[key] = now_s
        return True


@dataclass
class InputStats:
    """What one modality's diagnostics report; `rejected` counts bad messages by kind since start."""

    modality: str
    rate_hz: float
    age_s: float | None
    accepted: int
    buffered: int
    fresh: bool
    usable: bool
    rejected: Counter = field(default_factory=Counter)
    rejected_since_last: int = 0
    last_reject_reason: str = ""


class InputMonitor:
    """Accepted / rejected counts and message rate of one modality (executor thread only)."""

    def __init__(self, modality: str):
        self.modality = modality
        self.rate = RateMeter()
        self.accepted = 0
        self.rejected: Counter = Counter()
        self._since_last = 0
        self._last_reason = ""

    def accept(self, stamp_ns: int) -> None:
        self.accepted += 1
        self.rate.tick(stamp_ns)

    def reject(self, kind: str, reason: str) -> None:
        self.rejected[kind] += 1
        self._since_last += 1
        self._last_reason = reason

    def snapshot(self, buffer: SyncBuffer, now_ns: int) -> InputStats:
        """Stats for one diagnostics report; bad messages are counted "since the last report" from here on."""
        age = buffer.age_ns(self.modality, now_ns)
        stats = InputStats(self.modality, self.rate.rate_hz(now_ns), None if age is None else age * 1e-9,
                           self.accepted, buffer.count(self.modality), buffer.fresh(self.modality, now_ns),
                           buffer.usable(self.modality, now_ns), Counter(self.rejected), self._since_last,
                           self._last_reason)
        self._since_last = 0
        return stats


@dataclass
class PredictorStats:
    selection: Selection
    last_mode: str
    counters: Counters
    inference_s: float | None
    publish_s: float | None
    age_at_publish_s: float | None
    device: str
    model: str
    clock_jumps: int


def _kv(key: str, value) -> KeyValue:
    if isinstance(value, float):
        value = f"{value:.4f}"
    return KeyValue(key=key, value=str(value))


def input_status(prefix: str, s: InputStats, hardware_id: str) -> DiagnosticStatus:
    if s.age_s is None:
        level, message = WARN, "no frame received"
    elif not s.fresh:
        level, message = WARN, f"stale ({s.age_s:.2f} s since the newest stamp)"
    elif s.rejected_since_last:
        level, message = WARN, f"{s.rejected_since_last} bad message(s): {s.last_reject_reason}"
    elif not s.usable:
        level, message = OK, "collecting conditioning frames"
    else:
        level, message = OK, "ok"
    values = [_kv("rate [Hz]", s.rate_hz), _kv("age [s]", "none" if s.age_s is None else s.age_s),
              _kv("accepted", s.accepted), _kv("buffered", s.buffered), _kv("fresh", s.fresh),
              _kv("rejected", sum(s.rejected.values()))]
    values += [_kv(f"rejected.{kind}", n) for kind, n in sorted(s.rejected.items())]
    return DiagnosticStatus(level=level, name=f"{prefix}: {s.modality} input", message=message,
                            hardware_id=hardware_id, values=values)


def prediction_status(prefix: str, p: PredictorStats, hardware_id: str) -> DiagnosticStatus:
    sel = p.selection
    if sel.both_stale:
        level, message = ERROR, f"no prediction: {sel.reason}"
    elif sel.mode is None:
        level, message = WARN, sel.reason
    elif sel.mode is GuidanceMode.RGBD:
        level, message = (OK, "rgbd guidance") if sel.window is not None else (WARN, sel.reason)
    else:
        missing = "depth" if sel.mode is GuidanceMode.RGB else "rgb"
        level, message = WARN, f"{sel.mode.value} guidance only: {missing} stale"
    c = p.counters
    values = [_kv("guidance mode", sel.mode.value if sel.mode else "none"), _kv("last guidance mode", p.last_mode),
              _kv("received", c.received), _kv("predicted", c.predicted), _kv("dropped", c.dropped),
              _kv("failed", c.failed), _kv("pending", c.pending),
              _kv("inference latency [s]", "none" if p.inference_s is None else p.inference_s),
              _kv("publish time [s]", "none" if p.publish_s is None else p.publish_s),
              _kv("age at publish [s]", "none" if p.age_at_publish_s is None else p.age_at_publish_s),
              _kv("device", p.device), _kv("model", p.model), _kv("clock jumps", p.clock_jumps)]
    return DiagnosticStatus(level=level, name=f"{prefix}: prediction", message=message,
                            hardware_id=hardware_id, values=values)


def diagnostic_array(prefix: str, stamp: Time, inputs: list[InputStats], predictor: PredictorStats,
                     hardware_id: str) -> DiagnosticArray:
    status = [input_status(prefix, s, hardware_id) for s in inputs]
    status.append(prediction_status(prefix, predictor, hardware_id))
    array = DiagnosticArray(status=status)
    array.header.stamp = stamp
    return array
