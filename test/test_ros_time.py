"""Stamp, Time and Duration conversions to nanoseconds and back (syncvp_ros.ros_time, no rclpy)."""
from syncvp_ros.ros_time import ns_to_duration, ns_to_time, stamp_ns

S = 1_000_000_000


def test_stamp_conversions_round_trip():
    for ns in (0, 1, S - 1, 1234 * S + 567):
        assert stamp_ns(ns_to_time(ns)) == ns
        d = ns_to_duration(ns)
        assert d.sec * S + d.nanosec == ns
