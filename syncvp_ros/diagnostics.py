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

from syncvp_core.modalities import ConditioningMode
from syncvp_ros.handover import Counters
from syncvp_ros.sync_buffer import Selection, SyncBuffer

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR
# An input whose estimated transport loss over the rate window exceeds this fraction is reported as WARN.
LOSS_WARN_FRACTION = 0.05


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


def _missing(gap_ns: int, period_ns: int) -> int:
    """Frames that should lie in a stamp gap of `gap_ns` on a stream of period `period_ns`."""
    return max(0, round(gap_ns / period_ns) - 1)


class LossEstimator:
    """Frames lost on the way, estimated from gaps in the header stamps against the stream's own period.

    Every message that arrives counts, accepted or rejected (a rejected frame was not lost). The period is the
    shortest stamp spacing since the stream (re)started: even a stream losing most frames delivers a consecutive
    pair now and then, while a mean or median would absorb the loss. A stream that has never delivered two
    consecutive frames (every other frame lost from the start) looks like one at half the rate. A gap longer
    than `outage_ns` is an outage (the input is reported stale), not counted as loss.
    """

    def __init__(self, window_ns: int = 5_000_000_000, max_events: int = 600):
        self._window_ns = window_ns
        self._stamps: deque[int] = deque(maxlen=max_events)
        self._period = 0
        self.lost_total = 0

    def observe(self, stamp_ns: int, outage_ns: int) -> None:
        if self._stamps and stamp_ns <= self._stamps[-1]:
            return  # a duplicate or out-of-order stamp says nothing about loss
        if self._stamps and stamp_ns - self._stamps[-1] > outage_ns:
            self._stamps.clear()
        if self._stamps:
            gap = stamp_ns - self._stamps[-1]
            self._period = min(self._period, gap) if self._period else gap
            self.lost_total += _missing(gap, self._period)
        self._stamps.append(stamp_ns)

    def reset(self) -> None:
        """A new time line (backward clock jump): forget the stamps and the period."""
        self._stamps.clear()
        self._period = 0

    def recent(self, now_ns: int) -> tuple[int, int]:
        """(frames arrived, frames lost) over the last `window_ns` before `now_ns`."""
        stamps = [t for t in self._stamps if now_ns - t <= self._window_ns]
        if not self._period:
            return len(stamps), 0
        return len(stamps), sum(_missing(b - a, self._period) for a, b in zip(stamps, stamps[1:]))


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
    arrived_recent: int = 0
    lost_recent: int = 0
    lost_total: int = 0
    before_clock: int = 0  # frames ignored because sim time had not started (no /clock yet)
    before_clock_since_last: int = 0

    @property
    def loss_fraction(self) -> float:
        seen = self.arrived_recent + self.lost_recent
        return self.lost_recent / seen if seen else 0.0


class InputMonitor:
    """Accepted / rejected counts and message rate of one modality (executor thread only)."""

    def __init__(self, modality: str):
        self.modality = modality
        self.rate = RateMeter()
        self.loss = LossEstimator()
        self.accepted = 0
        self.rejected: Counter = Counter()
        self.before_clock = 0
        self._since_last = 0
        self._before_clock_since_last = 0
        self._last_reason = ""

    def arrived(self, stamp_ns: int, outage_ns: int) -> None:
        """Every message with a stamp, before it is checked: the loss estimate's input."""
        self.loss.observe(stamp_ns, outage_ns)

    def ignore_before_clock(self) -> None:
        self.before_clock += 1
        self._before_clock_since_last += 1

    def reset_timeline(self) -> None:
        """After a backward clock jump: rates and gaps of the old time line mean nothing."""
        self.rate.reset()
        self.loss.reset()

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
        arrived, lost = self.loss.recent(now_ns)
        stats = InputStats(self.modality, self.rate.rate_hz(now_ns), None if age is None else age * 1e-9,
                           self.accepted, buffer.count(self.modality), buffer.fresh(self.modality, now_ns),
                           buffer.usable(self.modality, now_ns), Counter(self.rejected), self._since_last,
                           self._last_reason, arrived, lost, self.loss.lost_total, self.before_clock,
                           self._before_clock_since_last)
        self._since_last = self._before_clock_since_last = 0
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


def _input_verdict(s: InputStats) -> tuple[int, str]:
    """Level and message of one input; bad messages come first: a stream whose every frame is rejected must
    say why, not merely that it went stale."""
    if s.rejected_since_last:
        state = ("nothing accepted" if s.age_s is None else
                 f"stale ({s.age_s:.2f} s since the newest accepted stamp)" if not s.fresh else "")
        return WARN, f"{s.rejected_since_last} bad message(s) since the last report: {s.last_reject_reason}" + (
            f"; {state}" if state else "")
    if s.age_s is None:
        if s.before_clock_since_last:
            return WARN, f"waiting for /clock (use_sim_time): {s.before_clock_since_last} frame(s) ignored"
        return WARN, "no frame received"
    if not s.fresh:
        return WARN, f"stale ({s.age_s:.2f} s since the newest stamp)"
    if s.loss_fraction > LOSS_WARN_FRACTION:
        return WARN, (f"{100 * s.loss_fraction:.0f} % of frames lost in transport (estimate): use reliable input "
                      "QoS or the large-frame DDS profile (docs/node.md)")
    if not s.usable:
        return OK, "collecting conditioning frames"
    return OK, "ok"


def input_status(prefix: str, s: InputStats, hardware_id: str) -> DiagnosticStatus:
    level, message = _input_verdict(s)
    values = [_kv("rate [Hz]", s.rate_hz), _kv("age [s]", "none" if s.age_s is None else s.age_s),
              _kv("accepted", s.accepted), _kv("buffered", s.buffered), _kv("fresh", s.fresh),
              _kv("lost (estimate, last 5 s)", s.lost_recent), _kv("loss [%]", 100 * s.loss_fraction),
              _kv("lost (estimate, total)", s.lost_total), _kv("ignored before /clock", s.before_clock),
              _kv("rejected", sum(s.rejected.values()))]
    values += [_kv(f"rejected.{kind}", n) for kind, n in sorted(s.rejected.items())]
    if s.last_reject_reason:
        values.append(_kv("last rejection", s.last_reject_reason))
    return DiagnosticStatus(level=level, name=f"{prefix}: {s.modality} input", message=message,
                            hardware_id=hardware_id, values=values)


def prediction_status(prefix: str, p: PredictorStats, hardware_id: str) -> DiagnosticStatus:
    sel = p.selection
    if sel.both_stale:
        level, message = ERROR, f"no prediction: {sel.reason}"
    elif sel.mode is None:
        level, message = WARN, sel.reason
    elif sel.mode is ConditioningMode.RGBD:
        level, message = (OK, "rgbd guidance") if sel.window is not None else (WARN, sel.reason)
    else:
        missing = "depth" if sel.mode is ConditioningMode.RGB else "rgb"
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
