"""Child processes (node, player, recorder) that the demo and the tests start and always end, their command
lines, and the package's share files. No rclpy.

Output is read line by line on a thread (kept, optionally copied to a log file), so readiness is a deadline
on a line appearing, not a sleep. Ending is SIGINT, then SIGKILL after a timeout, by PID only.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class ProcessError(RuntimeError):
    """A child did not become ready or exited early; the message carries the tail of its output."""


class ChildProcess:
    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None,
                 log: str | os.PathLike | None = None):
        self.name = name
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._log = open(log, "w") if log else None
        self.proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=env, bufsize=1)
        self._reader = threading.Thread(target=self._read, name=f"{name}-output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                if self._log:
                    self._log.write(line)
                    self._log.flush()
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def tail(self, n: int = 15) -> str:
        with self._changed:
            return "\n".join(self.lines[-n:])

    def wait_for_line(self, pattern: str, timeout: float) -> str:
        """The first output line matching `pattern` (regex search); ProcessError on timeout or exit."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if regex.search(line):
                        return line
                seen = len(self.lines)
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise ProcessError(f"{self.name} exited with {self.proc.returncode} before printing "
                                       f"{pattern!r}:\n{self.tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ProcessError(f"{self.name} did not print {pattern!r} within {timeout:g} s:\n{self.tail()}")
                self._changed.wait(min(left, 0.2))

    def wait(self, timeout: float) -> int:
        """Exit status once it has ended by itself; ProcessError (and stopped) if still running after `timeout`."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise ProcessError(f"{self.name} still running after {timeout:g} s:\n{self.tail()}") from None
        return self._finish()

    def stop(self, timeout: float = 10.0) -> int:
        """SIGINT (a clean shutdown: bags get their metadata), SIGKILL if it is still there after `timeout`."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self._finish()

    def _finish(self) -> int:
        self._reader.join(timeout=5)
        self.proc.stdout.close()
        if self._log:
            self._log.close()
            self._log = None
        return self.proc.returncode

    def __enter__(self) -> ChildProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def ros_environment(log_dir: str | os.PathLike, domain_id: int | None = None,
                    dds_profile: str | os.PathLike | None = None) -> dict[str, str]:
    """This environment plus the DDS hygiene every rclpy child needs: localhost discovery, logs kept aside; with
    `dds_profile`, every child uses that Fast DDS profile (the large-frame one: publishers need it too)."""
    env = dict(os.environ)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # default discovery multicasts off the machine
    env["ROS_LOG_DIR"] = str(Path(log_dir))
    env["PYTHONUNBUFFERED"] = "1"
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    if dds_profile is not None:  # Fast DDS 2 (Jazzy) reads the first variable, Fast DDS 3 the second
        env["FASTRTPS_DEFAULT_PROFILES_FILE"] = env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(dds_profile)
    return env


def share_file(*parts: str) -> Path:
    """A file of the package's share directory: next to the sources (editable install, source tree), else under
    an ament prefix (colcon install: share/syncvp_ros/...)."""
    candidates = [Path(__file__).resolve().parents[1].joinpath(*parts)]
    candidates += [Path(p, "share", "syncvp_ros", *parts)
                   for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"{Path(*parts)} not found in the source tree or any AMENT_PREFIX_PATH share/syncvp_ros")


def _console_script(name: str, module: str) -> list[str]:
    """The installed console script next to this interpreter (a venv), else the module run by it (colcon)."""
    script = Path(sys.executable).parent / name
    return [str(script)] if script.is_file() else [sys.executable, "-m", module]


def predictor_command(params_file: str | os.PathLike, parameters: dict | None = None,
                      remaps: dict[str, str] | None = None) -> list[str]:
    """`syncvp-predictor --ros-args --params-file F -p k:=v ... -r from:=to ...`."""
    argv = [*_console_script("syncvp-predictor", "syncvp_ros.predictor_node"), "--ros-args",
            "--params-file", str(params_file)]
    for key, value in (parameters or {}).items():
        argv += ["-p", f"{key}:={str(value).lower() if isinstance(value, bool) else value}"]
    for source, target in (remaps or {}).items():
        argv += ["-r", f"{source}:={target}"]
    return argv


def bag_command(*args: str) -> list[str]:
    return [*_console_script("syncvp-bag", "syncvp_ros.bags.cli"), *map(str, args)]


@dataclass(frozen=True)
class PipelineRun:
    recording: Path
    node_exit: int
    player_output: str


def play_through_node(work: Path, env: dict[str, str], bag: str | os.PathLike, params_file: str | os.PathLike,
                      node_parameters: dict, remaps: dict[str, str], record_topics: Sequence[str],
                      play_args: Sequence[str], wait_for: Sequence[str], record_args: Sequence[str] = (),
                      timeout: float = 300.0) -> PipelineRun:
    """Node, recorder and player as children, recording into work/recording, logs in work/logs; the bag is
    played once the recorder has subscribed every topic (so the node exists) and the node subscribes every
    `wait_for` topic. Every child is ended before returning; ProcessError if one fails or the node dies."""
    recording, logs = Path(work) / "recording", Path(work) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with ChildProcess("node", predictor_command(params_file, node_parameters, remaps), env,
                      logs / "node.log") as node, \
            ChildProcess("recorder", bag_command("record", *record_topics, "--out", recording, "--quiet",
                                                 *record_args), env, logs / "recorder.log") as recorder:
        for topic in record_topics:
            recorder.wait_for_line(f"recording {re.escape(topic)} ", timeout=120)
        wait = [a for topic in wait_for for a in ("--wait-for", topic)]
        with ChildProcess("player", bag_command("play", bag, "--quiet", *play_args, *wait), env,
                          logs / "player.log") as player:
            if player.wait(timeout) != 0:
                raise ProcessError(f"the player failed:\n{player.tail()}")
        if node.proc.poll() is not None:
            raise ProcessError(f"the node exited with {node.proc.returncode} during playback:\n{node.tail()}")
        if recorder.stop(timeout=30) != 0:
            raise ProcessError(f"the recorder failed:\n{recorder.tail()}")
        return PipelineRun(recording, node.stop(timeout=30), "\n".join(player.lines))
