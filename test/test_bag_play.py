"""`syncvp-bag play` drives the predictor node in another process: sim time from --clock, a depth dropout
from --drop, and a loop whose backward clock jump the node must survive. The predictions are recorded with
`syncvp-bag record` (wall-clock log times, so the recording order is the arrival order across passes).

Kept small: 32 px frames (the tiny model works at 64), 2 DDIM steps, horizon 8, a 5 s bag played at 0.7x so
that even a loaded 2-core machine makes a few predictions inside the dropout.
"""
from pathlib import Path

import pytest

from syncvp_ros.bags import io
from syncvp_ros.bags.evaluation import read_predictions
from syncvp_ros.processes import ChildProcess, bag_command, play_through_node

ROOT = Path(__file__).resolve().parents[1]
PREDICTIONS = "/syncvp_predictor/output/prediction"
FRAMES, RATE = 50, 10.0
DROP = (1.5, 3.5)  # s from the bag start, depth withheld
TOPICS = {"rgb": "/camera/color/image_raw", "depth": "/camera/depth/image_raw",
          "camera_info": "/camera/color/camera_info"}
FAST_NODE = {"checkpoint": "preset:tiny", "use_sim_time": True, "horizon": 8, "ddim_steps": 2, "seed": 0,
             "stale_timeout.depth": 0.3, "stale_timeout.rgb": 0.3}


def passes(records):
    """Split recording-order records where the stamp goes backwards (a loop restart)."""
    out = [[]]
    for r in records:
        if out[-1] and r.stamp_ns < out[-1][-1].stamp_ns:
            out.append([])
        out[-1].append(r)
    return out


@pytest.fixture
def drive(tmp_path):
    bag = tmp_path / "drive"
    assert ChildProcess("synth", bag_command("synth", bag, "--frames", FRAMES, "--rate", RATE, "--size", 32,
                                             "--quiet")).wait(timeout=120) == 0
    return bag


def test_play_clock_drop_and_loop_drive_the_node(tmp_path, ros_env, drive):
    drop = f"{TOPICS['depth']}@{DROP[0]}:{DROP[1]}"
    run = play_through_node(tmp_path, ros_env, drive, ROOT / "config" / "predictor.yaml", FAST_NODE,
                            {f"~/input/{k}": v for k, v in TOPICS.items()}, [PREDICTIONS, "/diagnostics"],
                            ["--clock", "--loops", "2", "--rate", "0.7", "--drop", drop],
                            wait_for=[TOPICS["rgb"], TOPICS["depth"]])
    assert run.node_exit == 0
    withheld = 2 * round((DROP[1] - DROP[0]) * RATE)
    assert "2 pass(es)" in run.player_output and f"withheld: {TOPICS['depth']} {withheld}" in run.player_output
    recorded = run.recording

    start = io.bag_info(drive).start_ns
    records = [r for r, _ in read_predictions(recorded, PREDICTIONS)]
    assert len(records) >= 4, f"only {len(records)} predictions"
    first, *later = passes(records)
    assert later and later[0], "no prediction after the loop's clock jump"
    # until the first depth frame is in, the node may predict from RGB alone: the timeline starts at RGB-D
    first = first[[r.mode for r in first].index("rgbd"):]

    def seconds(r):
        return (r.stamp_ns - start) / 1e9

    modes = [(round(seconds(r), 2), r.mode) for r in first]
    # the timeline of pass 1: rgbd before the dropout, rgb inside it (depth stale), rgbd again after it
    assert any(m == "rgbd" and t < DROP[0] for t, m in modes), modes
    assert any(m == "rgb" and DROP[0] < t <= DROP[1] + 0.1 for t, m in modes), modes
    assert any(m == "rgbd" and t > DROP[1] for t, m in modes), modes
    for r in first:
        if r.mode == "rgb":  # only while depth was withheld, and then without depth conditioning
            assert DROP[0] < seconds(r) <= DROP[1] + 0.1 and not r.depth_cond
        else:
            assert r.mode == "rgbd" and len(r.depth_cond) == len(r.rgb_cond) == 2
    for r in records:
        assert len(r.targets) == 8 and r.size == 64

    # /diagnostics saw the jump too
    store = io.typestore()
    jumps = [int(kv.value) for m in io.read_messages(recorded, ["/diagnostics"])
             for status in store.deserialize_cdr(m.rawdata, m.msgtype).status
             for kv in status.values if kv.key == "clock jumps"]
    assert jumps and max(jumps) >= 1
