"""`python -m syncvp_ros.demo` at reduced size: its report's files and numbers exist, and no process it started
outlives it."""
import json
import re
import sys
from pathlib import Path

from syncvp_ros.processes import ChildProcess


def processes_logging_to(folder: Path) -> list[int]:
    """PIDs whose ROS_LOG_DIR lies in `folder`: every ROS process the demo started has that environment."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:  # gone, or not ours
            continue
        if any(v.startswith(b"ROS_LOG_DIR=" + str(folder).encode()) for v in environ):
            found.append(int(entry.name))
    return found


def test_demo_report(tmp_path, ros_env):
    out = tmp_path / "demo_out"
    # half speed: even a loaded 2-core machine predicts a few times inside the dropout
    demo = ChildProcess("demo", [sys.executable, "-m", "syncvp_ros.demo", "--out", str(out), "--frames", "40",
                                 "--rate", "0.5", "--skip", "lpips", "--json", "--quiet"], ros_env)
    assert demo.wait(timeout=600) == 0, demo.tail()
    assert processes_logging_to(out) == []

    report = json.loads("\n".join(demo.lines[demo.lines.index("{"):]))
    assert report == {**json.loads((out / "summary.json").read_text()), "report": str(out / "report.md")}
    for name in ("report.md", "eval/metrics.json", "eval/guidance_timeline.png", "eval/sample.gif",
                 "eval/per_horizon_rgb.png", "eval/per_horizon_depth.png", "drive/metadata.yaml",
                 "recording/metadata.yaml"):
        assert (out / name).stat().st_size > 0, name
    evaluation = report["evaluation"]
    assert evaluation["clips"] >= 3 and evaluation["guidance_modes"]["rgbd"] >= 1
    assert report["mode_sequence"][:3] == ["rgbd", "rgb", "rgbd"]
    assert report["node_exit"] == 0
    assert report["settings"]["dds_profile"].endswith("config/fastdds_large_frames.xml")  # by default
    for method in ("syncvp", "copy-last"):
        for modality, metric in (("rgb", "ssim"), ("rgb", "psnr"), ("depth", "abs_rel"), ("depth", "rmse")):
            assert isinstance(evaluation["results"][method][modality][metric]["mean"], float), (method, metric)
    inference = report["latency"]["inference"]
    assert inference["count"] >= 1 and 0 < inference["p50"] <= inference["max"]
    assert report["latency"]["age_at_receipt"]["count"] >= 1

    text = (out / "report.md").read_text()
    ours, copy = (evaluation["results"][m]["rgb"]["ssim"]["mean"] for m in ("syncvp", "copy-last"))
    assert f"| rgb | ssim ↑ | {ours:.4f} | {copy:.4f} |" in text
    assert "rgbd → rgb → rgbd" in text
    assert re.search(r"\| inference \| \d+ \| [0-9.]+ \|", text)
    for image in re.findall(r"!\[[^]]*\]\(([^)]+)\)", text):
        assert (out / image).is_file(), image
