"""config/fastdds_large_frames.xml takes effect in a real rclpy process started with `ros_environment(...,
dds_profile)` (Jazzy's Fast DDS 2 reads FASTRTPS_DEFAULT_PROFILES_FILE, Fast DDS 3 FASTDDS_...): the
participant's shared-memory segment is 16 MiB instead of the default 512 KiB, and UDP stays on loopback."""
import pathlib
import subprocess
import sys

from syncvp_ros.processes import ros_environment

ROOT = pathlib.Path(__file__).resolve().parents[1]
PROBE = """
import os, rclpy
rclpy.init()
node = rclpy.create_node("profile_probe")
segments = {line.split()[-1] for line in open("/proc/self/maps") if "/dev/shm/fastrtps_" in line
            and "_port" not in line and not line.rstrip().endswith("_el")}
print(max(os.path.getsize(s) for s in segments))
node.destroy_node()
rclpy.shutdown()
"""


def segment_bytes(env) -> int:
    run = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return int(run.stdout.split()[-1])


def test_the_large_frame_profile_enlarges_the_shared_memory_segment(tmp_path):
    default = ros_environment(tmp_path)
    for name in ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE"):
        default.pop(name, None)
    profiled = ros_environment(tmp_path, dds_profile=ROOT / "config" / "fastdds_large_frames.xml")
    assert segment_bytes(default) < 2**20 and segment_bytes(profiled) >= 16 * 2**20
