"""rosbag2 bags for `syncvp-bag` (docs/bags.md): io (read / write with `rosbags`), schedule (playback timing),
player and recorder (the rclpy side), synth (synthetic drives), evaluation and timeline (recorded predictions),
cli (the command line)."""
