"""Test-wide set-up. DDS hygiene comes first, before anything can import rclpy."""
import os
import pathlib
import tempfile

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # never multicast off this machine
os.environ.setdefault("ROS_LOG_DIR", str(pathlib.Path(__file__).resolve().parents[1] / "build" / "ros_log"))
# A per-run domain so parallel runs (and other sessions' nodes) cannot see each other.
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
os.environ.setdefault("TMPDIR", tempfile.gettempdir())
# Before torch loads: idle OpenMP threads sleep instead of spinning (children inherit it), see Makefile.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

# Two cores on CI: keep torch from oversubscribing when DDS threads and subprocesses run beside it.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def ros_env():
    """Environment for rclpy child processes (localhost discovery, this run's domain, logs in build/)."""
    env = dict(os.environ)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="module")
def one_torch_thread():
    """Model-heavy modules run torch on one thread: on 2 shared cores a second OpenMP thread mostly waits for a
    busy core and makes small models slower, not faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
