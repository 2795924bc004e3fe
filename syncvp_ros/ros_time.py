"""ROS times as integer nanoseconds and back: every stamp, `Time` and `Duration` conversion of the node side.

No rclpy: `builtin_interfaces` messages only. Reading takes anything with `sec` and `nanosec` (a `Time` or a
`Duration`, rclpy's or a `rosbags` type-store one), so recorded messages convert the same way as live ones.
"""
from __future__ import annotations

from builtin_interfaces.msg import Duration, Time

NS_PER_S = 1_000_000_000


def stamp_ns(t) -> int:
    """A `Time` or `Duration` (anything with `sec` and `nanosec`) -> nanoseconds."""
    return t.sec * NS_PER_S + t.nanosec


def split_ns(ns: int) -> tuple[int, int]:
    """Nanoseconds -> (seconds, nanoseconds in [0, 1e9)), the fields of every ROS time type."""
    return divmod(ns, NS_PER_S)


def ns_to_time(ns: int) -> Time:
    sec, nanosec = split_ns(ns)
    return Time(sec=sec, nanosec=nanosec)


def ns_to_duration(ns: int) -> Duration:
    sec, nanosec = split_ns(ns)
    return Duration(sec=sec, nanosec=nanosec)
