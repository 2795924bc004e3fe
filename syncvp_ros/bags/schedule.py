"""The playback arithmetic of `syncvp-bag play`: timing schedule, loops, dropout windows and topic remaps.

No rclpy (the player publishes on this schedule), so plain pytest covers every rule.
"""
from __future__ import annotations

from dataclasses import dataclass


def parse_remap(text: str) -> tuple[str, str]:
    """`FROM:=TO` -> (FROM, TO)."""
    source, sep, target = text.partition(":=")
    if not sep or not source.startswith("/") or not target.startswith("/"):
        raise ValueError(f"remap {text!r}: write FROM:=TO with absolute topic names, e.g. /a:=/b")
    return source, target


@dataclass(frozen=True)
class DropWindow:
    """A topic withheld from `start` to `end` seconds after the bag start (each loop pass alike)."""

    topic: str
    start: float
    end: float

    def covers(self, topic: str, seconds: float) -> bool:
        return topic == self.topic and self.start <= seconds < self.end


def parse_drop(text: str) -> DropWindow:
    """`TOPIC@START:END` (seconds from the bag start; END may be `inf`) -> DropWindow."""
    topic, _, window = text.rpartition("@")
    start, sep, end = window.partition(":")
    try:
        drop = DropWindow(topic, float(start), float(end))
    except ValueError:
        drop = None
    if drop is None or not sep or not topic.startswith("/") or not 0 <= drop.start < drop.end:
        raise ValueError(f"drop {text!r}: write TOPIC@START:END in seconds from the bag start, "
                         f"0 <= START < END, e.g. /depth@2:4")
    return drop


@dataclass(frozen=True)
class Schedule:
    """When each message goes out: bag time scaled by 1/rate; loop passes follow back to back."""

    start_ns: int
    end_ns: int
    rate: float = 1.0

    def __post_init__(self):
        if not self.rate > 0:
            raise ValueError(f"rate {self.rate}: must be > 0")

    @property
    def pass_seconds(self) -> float:
        """Wall seconds of one pass."""
        return (self.end_ns - self.start_ns) / 1e9 / self.rate

    def wall_offset(self, pass_index: int, timestamp_ns: int) -> float:
        """Wall seconds after playback start at which a message of the given pass is due."""
        return pass_index * self.pass_seconds + (timestamp_ns - self.start_ns) / 1e9 / self.rate

    def bag_time(self, wall_seconds: float, pass_index: int) -> int:
        """Bag time (ns) that the clock shows `wall_seconds` after playback start, within that pass."""
        into_pass = wall_seconds - pass_index * self.pass_seconds
        return self.start_ns + min(max(round(into_pass * self.rate * 1e9), 0), self.end_ns - self.start_ns)

    def seconds_into_bag(self, timestamp_ns: int) -> float:
        return (timestamp_ns - self.start_ns) / 1e9
