"""syncvp-bag synth / info / record and the rclpy-free bag helpers (bags.io, bags.schedule).

Bags are checked with rosbags' own Reader and the metadata.yaml text, not with our reader, and the pixels with
an independent np.frombuffer decode against syncvp_core's generator.
"""
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from syncvp_core.data.synthetic.sequence import generate_sequence
from syncvp_ros.bags import cli, io
from syncvp_ros.bags.schedule import DropWindow, Schedule, parse_drop, parse_remap
from syncvp_ros.processes import ChildProcess

BIN = Path(sys.executable).parent
JAZZY = get_typestore(Stores.ROS2_JAZZY)


def synth(tmp_path, *args, name="drive"):
    out = tmp_path / name
    assert cli.main(["synth", str(out), "--quiet", *args]) == 0
    return out


def read_all(path):
    """topic -> [(log time, deserialised message)], with rosbags directly."""
    out = {}
    with Reader(path) as reader:
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t, JAZZY.deserialize_cdr(raw, conn.msgtype)))
    return out


def stamp_ns(header):
    return header.stamp.sec * 10**9 + header.stamp.nanosec


@pytest.mark.parametrize("storage,suffix", [("mcap", ".mcap"), ("sqlite3", ".db3")])
def test_synth_round_trip(tmp_path, capsys, storage, suffix):
    frames, rate, size, seed, start = 6, 5.0, 16, 3, 2.0
    out = synth(tmp_path, "--frames", str(frames), "--rate", str(rate), "--size", str(size), "--seed", str(seed),
                "--start", str(start), "--storage", storage, "--json")
    summary = json.loads(capsys.readouterr().out)
    assert summary["topics"]["/camera/color/image_raw"] == frames

    meta = yaml.safe_load((out / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["version"] == 9 and meta["storage_identifier"] == storage
    assert [Path(p).suffix for p in meta["relative_file_paths"]] == [suffix]
    assert (out / meta["relative_file_paths"][0]).is_file()
    topics = {t["topic_metadata"]["name"]: t for t in meta["topics_with_message_count"]}
    expected_types = {"/clock": "rosgraph_msgs/msg/Clock",
                      "/camera/color/image_raw": "sensor_msgs/msg/Image",
                      "/camera/depth/image_raw": "sensor_msgs/msg/Image",
                      "/camera/color/camera_info": "sensor_msgs/msg/CameraInfo",
                      "/camera/depth/camera_info": "sensor_msgs/msg/CameraInfo"}
    assert {n: t["topic_metadata"]["type"] for n, t in topics.items()} == expected_types
    assert all(t["message_count"] == frames for t in topics.values())
    image_qos = topics["/camera/color/image_raw"]["topic_metadata"]["offered_qos_profiles"][0]
    assert (image_qos["reliability"], image_qos["durability"], image_qos["depth"]) == ("reliable", "volatile", 10)
    assert topics["/clock"]["topic_metadata"]["offered_qos_profiles"][0]["reliability"] == "best_effort"
    # the type hash rclpy reports for sensor_msgs/msg/Image in Jazzy
    assert topics["/camera/color/image_raw"]["topic_metadata"]["type_description_hash"] == JAZZY.hash_rihs01(
        "sensor_msgs/msg/Image")

    messages = read_all(out)
    times = [round((start + i / rate) * 1e9) for i in range(frames)]
    for topic in expected_types:
        assert [t for t, _ in messages[topic]] == times
    assert [c.clock.sec * 10**9 + c.clock.nanosec for _, c in messages["/clock"]] == times

    truth = generate_sequence(seed, 0, frames, size, rate)
    for i, ((t, rgb), (_, depth), (_, info)) in enumerate(zip(messages["/camera/color/image_raw"],
                                                               messages["/camera/depth/image_raw"],
                                                               messages["/camera/color/camera_info"])):
        assert stamp_ns(rgb.header) == stamp_ns(depth.header) == stamp_ns(info.header) == t
        assert (rgb.encoding, rgb.step, depth.encoding, depth.step) == ("rgb8", 3 * size, "32FC1", 4 * size)
        assert rgb.header.frame_id == depth.header.frame_id == "camera_color_optical_frame"
        np.testing.assert_array_equal(np.frombuffer(rgb.data, np.uint8).reshape(size, size, 3), truth.rgb[i])
        np.testing.assert_array_equal(np.frombuffer(depth.data, "<f4").reshape(size, size), truth.depth[i])
        np.testing.assert_allclose(info.k.reshape(3, 3), truth.scene.intrinsics)
        assert (info.width, info.height, info.distortion_model) == (size, size, "plumb_bob")


def test_synth_carla_layout(tmp_path):
    out = synth(tmp_path, "--preset", "carla", "--frames", "2", "--size", "16", "--seed", "1")
    messages = read_all(out)
    truth = generate_sequence(1, 0, 2, 16, 10.0)
    (_, rgb), (_, depth) = messages["/carla/ego_vehicle/rgb_front/image"][0], \
        messages["/carla/ego_vehicle/depth_front/image"][0]
    assert (rgb.encoding, rgb.header.frame_id) == ("bgra8", "ego_vehicle/rgb_front")
    assert (depth.encoding, depth.header.frame_id) == ("32FC1", "ego_vehicle/depth_front")
    bgra = np.frombuffer(rgb.data, np.uint8).reshape(16, 16, 4)
    np.testing.assert_array_equal(bgra[..., 2::-1], truth.rgb[0])
    assert (bgra[..., 3] == 255).all()
    assert "/carla/ego_vehicle/depth_front/camera_info" in messages


def test_synth_overrides_and_16uc1(tmp_path):
    out = synth(tmp_path, "--frames", "1", "--size", "16", "--depth-encoding", "16UC1", "--depth-topic", "/d",
                "--depth-frame-id", "depth_optical")
    (_, depth), = read_all(out)["/d"]
    mm = np.frombuffer(depth.data, "<u2").reshape(16, 16)
    truth = generate_sequence(0, 0, 1, 16, 10.0).depth[0]
    assert depth.encoding == "16UC1" and depth.header.frame_id == "depth_optical"
    valid = np.isfinite(truth)
    assert (mm[~valid] == 0).all() and (~valid).any()  # sky: no reading
    in_range = valid & (truth * 1000 <= 65535)  # farther than 16 bits of mm: no reading, as a real sensor
    np.testing.assert_allclose(mm[in_range], np.round(truth[in_range] * 1000))
    assert (mm[valid & ~in_range] == 0).all()


def test_info_json_matches_bag(tmp_path, capsys):
    out = synth(tmp_path, "--frames", "3", "--size", "8", "--rate", "4")
    capsys.readouterr()
    assert cli.main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["messages"] == 15 and math.isclose(info["duration_s"], 0.5)
    assert info["topics"]["/camera/depth/image_raw"]["qos"][0]["reliability"] == "reliable"


@pytest.mark.parametrize("damage", ["truncate", "missing"])
def test_damaged_bag_is_one_line_naming_it(tmp_path, capsys, damage):
    out = synth(tmp_path, "--frames", "3", "--size", "8")
    storage = next(out.glob("*.mcap"))
    if damage == "truncate":
        storage.write_bytes(storage.read_bytes()[: storage.stat().st_size // 2])
    else:
        out = tmp_path / "nope"
    capsys.readouterr()
    assert cli.main(["info", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(out) in err[0] and "Traceback" not in err[0]


@pytest.mark.parametrize("argv,fix", [
    (["synth", "x", "--rgb-encoding", "yuv422"], "RGB encoding"),
    (["synth", "x", "--frames", "0"], "--frames"),
    (["synth", "x", "--size", "4"], "size >= 8"),
    (["synth", "x", "--depth-topic", "relative"], "absolute"),
    (["play", "b", "--drop", "/d@3:1"], "START < END"),
    (["play", "b", "--remap", "/a=/b"], "FROM:=TO"),
    (["record", "rel", "--out", "x"], "absolute"),
])
def test_bad_arguments_exit_with_one_line(tmp_path, monkeypatch, capsys, argv, fix):
    monkeypatch.chdir(tmp_path)
    try:
        code = cli.main(argv)
    except SystemExit as exit:  # argparse's own checks
        code = exit.code
    assert code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fix in err[0]


def test_existing_output_is_refused(tmp_path, capsys):
    out = synth(tmp_path, "--frames", "1", "--size", "8")
    before = sorted(p.name for p in out.iterdir())
    assert cli.main(["synth", str(out), "--quiet"]) == 1
    assert "exists already" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == before


def test_parse_remap_and_drop():
    assert parse_remap("/a/b:=/c") == ("/a/b", "/c")
    drop = parse_drop("/cam/depth@1.5:inf")
    assert drop == DropWindow("/cam/depth", 1.5, math.inf)
    assert drop.covers("/cam/depth", 1.5) and drop.covers("/cam/depth", 1e6)
    assert not drop.covers("/cam/depth", 1.4999) and not drop.covers("/cam/rgb", 2.0)
    assert not parse_drop("/d@0:1").covers("/d", 1.0)  # END is excluded
    for bad in ("/d@1", "/d@a:b", "d@0:1", "/d@-1:2", "/d@2:2"):
        with pytest.raises(ValueError):
            parse_drop(bad)


@given(start=st.integers(0, 10**12), span=st.integers(1, 10**11), rate=st.floats(0.1, 10.0),
       pass_index=st.integers(0, 5), fraction=st.floats(0.0, 1.0))
def test_schedule_clock_matches_message_times(start, span, rate, pass_index, fraction):
    schedule = Schedule(start, start + span, rate)
    t = start + round(fraction * span)
    due = schedule.wall_offset(pass_index, t)
    assert math.isclose(due - pass_index * schedule.pass_seconds, (t - start) / 1e9 / rate, abs_tol=1e-9)
    assert abs(schedule.bag_time(due, pass_index) - t) <= 1 + 1e-6 * span  # the clock shows the message's time
    assert schedule.bag_time(due + 10 * schedule.pass_seconds + 1, pass_index) == start + span  # clamped in pass


def test_prediction_type_is_registered():
    store = io.typestore()
    fields = dict(store.fielddefs[io.PREDICTION_TYPE][1])
    assert {"header", "guidance_mode", "rgb_conditioning_stamps", "time_offsets", "rgb", "depth",
            "camera_info", "diffusion_steps", "model_id"} <= set(fields)


def test_record_live_topics_match_published(tmp_path, ros_env):
    import rclpy
    from rclpy.context import Context
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rclpy.serialization import deserialize_message
    from builtin_interfaces.msg import Duration, Time
    from sensor_msgs.msg import Image
    from syncvp_ros.msg import RGBDPrediction

    out = tmp_path / "recorded"
    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node("bag_test_publisher", context=context)
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    pubs = {"/test/image": node.create_publisher(Image, "/test/image", qos),
            "/test/prediction": node.create_publisher(RGBDPrediction, "/test/prediction", qos)}
    sent = {"/test/image": [], "/test/prediction": []}
    recorder = ChildProcess("recorder", [str(BIN / "syncvp-bag"), "record", "/test/image", "/test/prediction",
                                         "--out", str(out), "--quiet", "--json"], env=ros_env)
    try:
        for topic in pubs:
            recorder.wait_for_line(f"recording {topic} ", timeout=60)
        deadline = time.monotonic() + 30
        for topic, pub in pubs.items():  # the recorder's subscription is matched from our side too
            while not pub.get_subscription_count():
                assert time.monotonic() < deadline, f"recorder never matched {topic}"
                time.sleep(0.05)
        for i in range(5):
            image = Image(height=2, width=3, encoding="mono8", step=3, data=bytes(range(i, i + 6)))
            image.header.stamp = Time(sec=100 + i)
            image.header.frame_id = "cam"
            pubs["/test/image"].publish(image)
            sent["/test/image"].append(image)
            prediction = RGBDPrediction(guidance_mode="rgb", model_id="tiny-x", diffusion_steps=2,
                                        rgb=[image], time_offsets=[Duration(nanosec=100_000_000 * (k + 1))
                                                                   for k in range(2)],
                                        rgb_conditioning_stamps=[Time(sec=99 + i), Time(sec=100 + i)])
            prediction.header = image.header
            pubs["/test/prediction"].publish(prediction)
            sent["/test/prediction"].append(prediction)
        for pub in pubs.values():
            assert pub.wait_for_all_acked(rclpy.duration.Duration(seconds=30))
        hashes = {t: node.get_publishers_info_by_topic(t)[0].topic_type_hash for t in pubs}
    finally:
        assert recorder.stop(timeout=20) == 0
        node.destroy_node()
        rclpy.shutdown(context=context)

    meta = yaml.safe_load((out / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    topics = {t["topic_metadata"]["name"]: t["topic_metadata"] for t in meta["topics_with_message_count"]}
    assert topics["/test/prediction"]["type"] == io.PREDICTION_TYPE
    for topic, meta_topic in topics.items():
        assert meta_topic["type_description_hash"] == str(hashes[topic])  # rosbags' hash == rclpy's
        assert meta_topic["offered_qos_profiles"][0]["reliability"] == "reliable"
    received = {t: [] for t in pubs}
    with Reader(out) as reader:
        for conn, _, raw in reader.messages():
            received[conn.topic].append(deserialize_message(raw, type(sent[conn.topic][0])))
    assert received == sent


def copy_last_reference(rgb, depth, starts, cond, horizon):
    """Per-step means over windows of copy-last PSNR (RGB in [0,1]) and AbsRel / δ<1.25 (depth), in numpy."""
    psnr, abs_rel, delta1 = (np.zeros((len(starts), horizon)) for _ in range(3))
    for w, s in enumerate(starts):
        last_rgb, last_depth = rgb[s + cond - 1] / 255.0, depth[s + cond - 1].astype(np.float64)
        for k in range(horizon):
            target = s + cond + k
            psnr[w, k] = 10 * np.log10(1.0 / np.mean((last_rgb - rgb[target] / 255.0) ** 2))
            gt = depth[target].astype(np.float64)
            mask = np.isfinite(gt) & (gt > 0) & np.isfinite(last_depth) & (last_depth > 0)
            abs_rel[w, k] = np.mean(np.abs(last_depth[mask] - gt[mask]) / gt[mask])
            delta1[w, k] = np.mean(np.maximum(last_depth[mask] / gt[mask], gt[mask] / last_depth[mask]) < 1.25)
    return {"psnr": psnr.mean(0), "abs_rel": abs_rel.mean(0), "delta1": delta1.mean(0)}


def test_eval_offline_writes_outputs_and_copy_last_is_exact(tmp_path, capsys):
    frames, size, seed, horizon = 11, 64, 5, 8  # two windows of 2 + 8 frames
    bag = synth(tmp_path, "--frames", str(frames), "--size", str(size), "--seed", str(seed))
    out = tmp_path / "eval"
    capsys.readouterr()
    assert cli.main(["eval", str(bag), "--rgb-topic", "/camera/color/image_raw", "--depth-topic",
                         "/camera/depth/image_raw", "--out", str(out), "--checkpoint", "preset:tiny", "--horizon",
                         str(horizon), "--steps", "2", "--skip", "lpips", "fvd", "--methods", "syncvp", "copy-last",
                         "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    for name in ("metrics.json", "per_horizon_rgb.png", "per_horizon_depth.png", "sample_strip.png", "sample.gif"):
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "metrics.json").read_text()) == summary
    assert summary["clips"] == 2 and summary["methods"] == ["syncvp", "copy-last"]
    truth = generate_sequence(seed, 0, frames, size, 10.0)
    reference = copy_last_reference(truth.rgb, truth.depth, [0, 1], 2, horizon)
    copy_last = summary["results"]["copy-last"]
    np.testing.assert_allclose(copy_last["rgb"]["psnr"]["per_step"], reference["psnr"], rtol=1e-5)
    np.testing.assert_allclose(copy_last["depth"]["abs_rel"]["per_step"], reference["abs_rel"], rtol=1e-5)
    np.testing.assert_allclose(copy_last["depth"]["delta1"]["per_step"], reference["delta1"], rtol=1e-6)


def prediction_message(truth, stamps, index, mode, horizon, cond=2):
    """An RGBDPrediction (type-store) made at frame `index` whose frames are the true future: a perfect one."""
    from syncvp_ros.bags.synth import camera_info_message, image_message

    types = io.typestore().types
    ns = stamps[index]
    period = stamps[1] - stamps[0]
    Time, Duration = types["builtin_interfaces/msg/Time"], types["builtin_interfaces/msg/Duration"]
    cond_stamps = [Time(sec=s // 10**9, nanosec=s % 10**9) for s in stamps[index - cond + 1:index + 1]]
    future = [min(index + k, len(truth.rgb) - 1) for k in range(1, horizon + 1)]
    return types[io.PREDICTION_TYPE](
        header=types["std_msgs/msg/Header"](stamp=cond_stamps[-1], frame_id="cam"), guidance_mode=mode,
        rgb_conditioning_stamps=cond_stamps, depth_conditioning_stamps=cond_stamps if mode == "rgbd" else [],
        time_offsets=[Duration(sec=0, nanosec=k * period) for k in range(1, horizon + 1)],
        rgb=[image_message(truth.rgb[f], "rgb8", ns, "cam") for f in future],
        depth=[image_message(np.nan_to_num(truth.depth[f], nan=1000.0), "32FC1", ns, "cam") for f in future],
        camera_info=camera_info_message(truth.scene.intrinsics, 64, ns, "cam"), diffusion_steps=2,
        model_id="tiny-0123456789ab")


def test_eval_predictions_matches_stamps(tmp_path, capsys):
    frames, size, seed, horizon = 12, 64, 2, 4
    bag = synth(tmp_path, "--frames", str(frames), "--size", str(size), "--seed", str(seed))
    truth = generate_sequence(seed, 0, frames, size, 10.0)
    stamps = [round((10.0 + i / 10.0) * 1e9) for i in range(frames)]
    made_at = [(3, "rgbd"), (5, "rgb"), (9, "rgbd")]  # the last one runs 2 frames past the bag's end
    predictions = tmp_path / "predictions"
    with io.BagWriter(predictions) as writer:
        writer.add_topic("/p", io.PREDICTION_TYPE)
        for index, mode in made_at:
            writer.write_message("/p", stamps[index] + 50_000_000,
                                 prediction_message(truth, stamps, index, mode, horizon))
    out = tmp_path / "eval"
    capsys.readouterr()
    assert cli.main(["eval", str(bag), "--rgb-topic", "/camera/color/image_raw", "--depth-topic",
                         "/camera/depth/image_raw", "--predictions", str(predictions), "--prediction-topic", "/p",
                         "--out", str(out), "--skip", "lpips", "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    for name in ("metrics.json", "per_horizon_rgb.png", "per_horizon_depth.png", "sample_strip.png", "sample.gif",
                 "guidance_timeline.png"):
        assert (out / name).stat().st_size > 0, name
    assert summary["guidance_modes"] == {"rgbd": 2, "rgb": 1, "depth": 0}
    assert [t["mode"] for t in summary["timeline"]] == ["rgbd", "rgb", "rgbd"]
    np.testing.assert_allclose([t["stamp_s"] for t in summary["timeline"]], [0.3, 0.5, 0.9])
    perfect = summary["results"]["syncvp"]
    assert perfect["depth"]["abs_rel"]["per_step"] == [0.0] * horizon  # sky (NaN truth) is not scored
    assert perfect["depth"]["delta1"]["per_step"] == [1.0] * horizon
    assert perfect["rgb"]["psnr"]["per_step"] == [None] * horizon  # identical frames: infinite PSNR
    # copy-last: the frame at the newest conditioning stamp; the prediction at frame 9 has ground truth for 2 steps
    per_window = [copy_last_reference(truth.rgb, truth.depth, [i - 1], 2, horizon if i + horizon < frames else 2)
                  for i, _ in made_at]
    for metric, modality in (("psnr", "rgb"), ("abs_rel", "depth")):
        expected = [np.mean([w[metric][k] for w in per_window if k < len(w[metric])]) for k in range(horizon)]
        np.testing.assert_allclose(summary["results"]["copy-last"][modality][metric]["per_step"], expected, rtol=1e-5)
    assert summary["by_guidance_mode"]["rgb"]["predictions"] == 1


def test_eval_damaged_input_is_one_line(tmp_path, capsys):
    bag = synth(tmp_path, "--frames", "3", "--size", "8")
    storage = next(bag.glob("*.mcap"))
    storage.write_bytes(storage.read_bytes()[:100])
    capsys.readouterr()
    assert cli.main(["eval", str(bag), "--rgb-topic", "/camera/color/image_raw", "--depth-topic",
                         "/camera/depth/image_raw", "--out", str(tmp_path / "e"), "--checkpoint", "preset:tiny"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bag) in err[0]


def test_eval_predictions_keeps_results_before_damage(tmp_path, capsys):
    frames, horizon = 16, 4
    bag = synth(tmp_path, "--frames", str(frames), "--size", "64")
    truth = generate_sequence(0, 0, frames, 64, 10.0)
    stamps = [round((10.0 + i / 10.0) * 1e9) for i in range(frames)]
    predictions = tmp_path / "predictions"
    with io.BagWriter(predictions, "sqlite3") as writer:
        writer.add_topic("/p", io.PREDICTION_TYPE)
        for index in range(2, 10):
            writer.write_message("/p", stamps[index], prediction_message(truth, stamps, index, "rgbd", horizon))
    storage = next(predictions.glob("*.db3"))
    data = bytearray(storage.read_bytes())
    page = int(len(data) * 0.7) // 4096 * 4096
    data[page:page + 4096] = b"\xff" * 4096  # a broken page two thirds in
    storage.write_bytes(bytes(data))
    out = tmp_path / "eval"
    capsys.readouterr()
    assert cli.main(["eval", str(bag), "--rgb-topic", "/camera/color/image_raw", "--depth-topic",
                         "/camera/depth/image_raw", "--predictions", str(predictions), "--prediction-topic", "/p",
                         "--out", str(out), "--skip", "lpips", "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(predictions) in err[0] and "corrupt" in err[0]
    kept = json.loads((out / "metrics.json").read_text())
    assert not kept["complete"] and 0 < kept["clips"] < 8
    assert (out / "per_horizon_rgb.png").is_file()


def test_16uc1_marks_out_of_range_and_invalid_depth_as_zero():
    from syncvp_ros.bags.synth import encode_depth

    depth = np.array([[1.5, np.nan, np.inf, 70.0, 65.0, -1.0]], np.float32)
    assert encode_depth(depth, "16UC1").tolist() == [[1500, 0, 0, 0, 65000, 0]]


def test_a_rosbag2_folder_named_like_a_ros1_bag_reads_everywhere(tmp_path, capsys):
    from syncvp_core.cli import data as data_cli
    from syncvp_core.data.rosbag import rosbag_sequence

    bag = synth(tmp_path, "--frames", "12", "--size", "16", name="drive.bag")  # the README's own example name
    sequence = rosbag_sequence(bag, "/camera/color/image_raw", "/camera/depth/image_raw", size=16)
    assert len(sequence.rgb) == 12
    capsys.readouterr()
    spec = f"rosbag:{bag}?rgb=/camera/color/image_raw&depth=/camera/depth/image_raw"
    assert data_cli.main(["info", spec, "--json"]) == 0, capsys.readouterr().err


def test_eval_names_a_missing_prediction_topic_and_lists_the_bag_s_topics(tmp_path, capsys):
    bag = synth(tmp_path, "--frames", "3", "--size", "8")
    capsys.readouterr()
    assert cli.main(["eval", str(bag), "--rgb-topic", "/camera/color/image_raw", "--depth-topic",
                         "/camera/depth/image_raw", "--predictions", str(bag), "--out", str(tmp_path / "e"),
                         "--skip", "lpips", "--quiet"]) == 1
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert "no topic /syncvp_predictor/output/prediction" in err and "/clock" in err and "carries" not in err
    assert list(io.read_messages(bag, ["/not/there"])) == []  # not every topic, as rosbags would give


def test_record_with_sim_time_holds_messages_until_the_first_clock(tmp_path, ros_env):
    import rclpy
    from builtin_interfaces.msg import Time
    from rclpy.context import Context
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image

    out = tmp_path / "recorded"
    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node("bag_clock_publisher", context=context)
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    images = node.create_publisher(Image, "/test/early", qos)
    clock = node.create_publisher(Clock, "/clock", qos)
    recorder = ChildProcess("recorder", [str(BIN / "syncvp-bag"), "record", "/test/early", "--use-sim-time",
                                         "--out", str(out), "--quiet"], env=ros_env)
    try:
        recorder.wait_for_line("recording /test/early ", timeout=60)
        deadline = time.monotonic() + 30
        while not (images.get_subscription_count() and clock.get_subscription_count()):
            assert time.monotonic() < deadline, "recorder never matched"
            time.sleep(0.05)
        for i in range(5):
            if i == 3:  # three messages before sim time starts, two after
                clock.publish(Clock(clock=Time(sec=50)))
                assert clock.wait_for_all_acked(rclpy.duration.Duration(seconds=30))
                time.sleep(1.0)
            images.publish(Image(height=1, width=1, encoding="mono8", step=1, data=bytes([i])))
            assert images.wait_for_all_acked(rclpy.duration.Duration(seconds=30))
    finally:
        assert recorder.stop(timeout=20) == 0
        node.destroy_node()
        rclpy.shutdown(context=context)
    (recorded,) = read_all(out).values()
    assert [bytes(m.data)[0] for _, m in recorded] == [0, 1, 2, 3, 4]
    assert all(t >= 50 * 10**9 for t, _ in recorded), [t for t, _ in recorded]


def test_recorded_too_far_depth_is_scored_at_the_model_s_far_end_and_unknown_is_left_out():
    from syncvp_ros.bags.evaluation import _prediction_tensors
    from syncvp_ros.image_conversion import array_to_image
    from syncvp_ros.msg import RGBDPrediction

    depth = np.array([[2.0, np.inf, np.nan]], np.float32)
    msg = RGBDPrediction(rgb=[array_to_image(np.zeros((1, 3, 3), np.uint8), "rgb8")],
                         depth=[array_to_image(depth, "32FC1")])
    scored = _prediction_tensors(msg, 80.0)["depth"][0, 0]
    assert scored[0] == 2.0 and scored[1] == 80.0 and scored[2].isnan()
