"""The node over real DDS against the fault matrix of issue 12: one `syncvp-predictor` process (REAL tiny model,
random init, 2 DDIM steps, horizon 4) fed 128×128 RGB-D on sim time by this process; the checks run in order.

Frames before the first /clock, an unknown params-file key, no single-modality prediction while a fresh
modality fills up, REP 118 depth around holes, the point cloud, estimated transport loss, a stream whose every
frame is rejected, long strings and tiny images, and shutdown in the middle of a 256-frame rollout.
"""
import signal
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from sensor_msgs.msg import PointCloud2

from ros_helpers import NS, Collector, Feeder, NodeRig, diag_status, to_ns, to_time, wait_until
from syncvp_core.image_msg import image_to_array
from syncvp_ros.image_conversion import array_to_image
from syncvp_ros.msg import RGBDPrediction

SIZE = 128  # input frames: the centre square is the whole frame, and 2×2 input blocks make one model pixel
DEPTH_MIN, DEPTH_MAX = 0.5, 6.0
CLOUD_STEP = 2
PARAMS = f"""/**/syncvp_predictor:
  ros__parameters:
    use_sim_time: true
    checkpoint: preset:tiny
    device: cpu
    ddim_steps: 2
    horizon: 4
    seed: 0
    horizn: 12
    stale_timeout: {{rgb: 0.5, depth: 0.5}}
    qos: {{input: {{reliability: reliable, depth: 10}}}}
    diagnostics_period: 0.2
    depth: {{min: {DEPTH_MIN}, max: {DEPTH_MAX}}}
    cloud: {{step: {CLOUD_STEP}}}
"""
INPUTS = {"rgb": "/f/rgb", "depth": "/f/depth", "camera_info": "/f/camera_info"}
PREFIX = "/syncvp_predictor"

# A 2-5 m scene with about 7 % holes, in 2×2 blocks aligned with the model's pixels.
HOLE_BLOCKS = np.random.default_rng(0).random((SIZE // 2, SIZE // 2)) < 0.07
HOLES = np.kron(HOLE_BLOCKS, np.ones((2, 2), bool))


def holey_scene(tick, height, width):
    depth = np.broadcast_to(np.linspace(5.0, 2.0, height, dtype=np.float32)[:, None], (height, width)).copy()
    depth[HOLES] = np.nan
    return depth


class Rig(NodeRig):
    def __init__(self, tmp_path):
        self.predictions, self.diagnostics, self.clouds = Collector(), Collector(), Collector()
        super().__init__(tmp_path, PARAMS, INPUTS, "syncvp_fault_driver", [
            (RGBDPrediction, f"{PREFIX}/output/prediction", self.predictions, 50),
            (PointCloud2, f"{PREFIX}/output/cloud", self.clouds, 50),
            (DiagnosticArray, "/diagnostics", self.diagnostics, 100)])
        self.feeder = Feeder(self.node, INPUTS, height=SIZE, width=SIZE, depth_fn=holey_scene)

    def close(self):
        if self.feeder._thread.is_alive():
            self.feeder.stop()
        super().close()

    def reports(self, suffix: str, since: float):
        return [diag_status(a, suffix) for a in self.diagnostics.since(since) if diag_status(a, suffix)]

    def wait_report(self, suffix: str, predicate, since: float, timeout: float = 60.0, what: str = "a report"):
        return wait_until(lambda: next((r for r in self.reports(suffix, since) if predicate(*r)), None), timeout,
                          what=what)

    def set_params(self, **values):
        assert self.params.wait_for_services(20.0)
        future = self.params.set_parameters([Parameter(k, value=v) for k, v in values.items()])
        results = wait_until(lambda: future.result() if future.done() else None, 20.0, what="set_parameters")
        assert all(r.successful for r in results.results), results


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    r = Rig(tmp_path_factory.mktemp("faults"))
    try:
        yield r
    finally:
        r.close()


def test_an_unknown_params_file_key_is_named_with_the_nearest_declared_one(rig):
    line = rig.proc.wait_for_line("unknown parameter", timeout=120)
    assert "'horizn' (did you mean 'horizon'?)" in line


def test_frames_before_the_first_clock_are_counted(rig):
    wait_until(lambda: rig.node.count_subscribers(INPUTS["rgb"]) > 0, 120, what="the node's RGB subscription")
    wait_until(lambda: rig.reports("rgb input", 0), 60, what="diagnostics")
    time.sleep(1.0)  # a reliable match is complete well before this
    for k in range(5):
        rig.feeder.rgb_pub.publish(rig.feeder.image(np.zeros((SIZE, SIZE, 3), np.uint8), "rgb8", (k + 1) * NS, "c"))
    level, message, values = rig.wait_report("rgb input", lambda lvl, msg, v: v["ignored before /clock"] == "5",
                                             0, what="5 frames ignored before /clock")
    assert level == 1 and "waiting for /clock" in message and values["accepted"] == "0"


def test_no_single_modality_prediction_while_a_fresh_modality_fills_up_and_no_cloud_without_camera_info(rig):
    rig.feeder.send_info = False
    rig.feeder.start()  # each tick sends RGB, then depth: RGB has 2 frames while depth has 1
    wait_until(lambda: len(rig.predictions.since(0)) >= 3, 120, what="three predictions")
    assert {m.guidance_mode for m in rig.predictions.since(0)} == {"rgbd"}
    assert rig.clouds.since(0) == [] and rig.proc.log().count("~/output/cloud is not published") == 1
    rig.feeder.send_info = True
    # after a depth outage, the recovered depth stream is waited for, not skipped
    rig.feeder.send_depth = False
    wall = time.monotonic()
    rig.wait_report("prediction", lambda lvl, msg, v: v["guidance mode"] == "rgb", wall, what="rgb guidance")
    rig.feeder.send_depth = True
    wall = time.monotonic()
    resumed = wait_until(lambda: [s for w, m, s in rig.feeder.published if m == "depth" and w >= wall], 10)[0]
    wait_until(lambda: [m for m in rig.predictions.since(wall)
                        if m.guidance_mode == "rgbd" and to_ns(m.header.stamp) > resumed], 60, what="rgbd again")
    # (the RGB frame of the tick that brought depth back arrives before that depth frame: rgb is right there)
    late = [m for m in rig.predictions.since(wall) if to_ns(m.header.stamp) > resumed]
    assert {m.guidance_mode for m in late} == {"rgbd"}


def test_predicted_depth_is_rep118_around_holes(rig):
    msg = wait_until(lambda: [m for m in rig.predictions.since(time.monotonic() - 1) if m.guidance_mode == "rgbd"],
                     60, what="an rgbd prediction")[-1]
    for image in msg.depth:
        depth = image_to_array(image)
        assert image.encoding == "32FC1"
        assert np.array_equal(np.isnan(depth), HOLE_BLOCKS)  # unknown where the newest input had no measurement
        finite = depth[np.isfinite(depth)]
        assert ((finite >= DEPTH_MIN) & (finite <= DEPTH_MAX)).all()  # clamped; beyond depth.max is +inf
        assert not np.isneginf(depth).any()


def test_the_cloud_is_the_chosen_predicted_frame_back_projected(rig):
    since = time.monotonic()
    msg = wait_until(lambda: rig.predictions.since(since), 60, what="a prediction")[0]
    k = CLOUD_STEP - 1
    stamp = to_ns(msg.header.stamp) + msg.time_offsets[k].sec * NS + msg.time_offsets[k].nanosec
    cloud = wait_until(lambda: [c for c in rig.clouds.since(since) if to_ns(c.header.stamp) == stamp], 30,
                       what="the prediction's cloud")[0]
    assert cloud.header.frame_id == rig.feeder.rgb_frame and cloud.is_dense and cloud.height == 1
    assert [(f.name, f.offset, f.datatype) for f in cloud.fields] == [("x", 0, 7), ("y", 4, 7), ("z", 8, 7),
                                                                      ("rgb", 12, 7)]
    points = np.frombuffer(bytes(cloud.data), np.float32).reshape(-1, 4)
    depth, rgb = image_to_array(msg.depth[k]), image_to_array(msg.rgb[k])
    fx, _, cx, _, fy, cy = msg.camera_info.k[:6]
    v, u = np.nonzero(np.isfinite(depth))
    z = depth[v, u]
    assert cloud.width == len(z) == len(points)
    np.testing.assert_allclose(points[:, 0], (u - cx) * z / fx, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(points[:, 1], (v - cy) * z / fy, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(points[:, 2], z)
    packed = points[:, 3].view(np.uint32)
    np.testing.assert_array_equal(np.stack([packed >> 16, (packed >> 8) & 255, packed & 255], 1), rgb[v, u])


def test_transport_loss_is_estimated_from_stamp_gaps(rig):
    rig.feeder.lose = lambda modality, tick: modality == "depth" and tick % 4 == 0  # 25 % of depth frames
    wall = time.monotonic()
    level, message, values = rig.wait_report(
        "depth input", lambda lvl, msg, v: lvl == 1 and "lost in transport" in msg, wall, what="a loss WARN")
    time.sleep(5.5)  # one whole estimate window of loss
    level, message, values = rig.reports("depth input", time.monotonic() - 0.5)[-1]
    assert 15.0 <= float(values["loss [%]"]) <= 35.0, values
    true_lost = len(rig.feeder.lost)
    assert abs(int(values["lost (estimate, total)"]) - true_lost) <= 2, (values, true_lost)
    rig.feeder.lose = None
    assert rig.reports("rgb input", time.monotonic() - 0.5)[-1][2]["loss [%]"] == "0.0000"


def test_a_stream_whose_every_frame_is_rejected_keeps_saying_why(rig):
    rig.feeder.depth_fn = lambda tick, h, w: np.full((60, 80), 3.0, np.float32)  # against 128×128 RGB
    wall = time.monotonic()
    rig.wait_report("depth input", lambda lvl, msg, v: "stale" in msg, wall, what="depth going stale")
    time.sleep(1.0)
    later = rig.reports("depth input", time.monotonic() - 0.9)
    assert later and all(lvl == 1 and "aspect ratio" in msg and "stale" in msg for lvl, msg, _ in later), later
    assert "aspect ratio" in later[-1][2]["last rejection"]
    rig.feeder.depth_fn = holey_scene


def test_long_strings_are_cut_and_tiny_images_rejected(rig):
    before = rig.reports("rgb input", time.monotonic() - 0.5)[-1][2]

    def bad(stamp):
        long_encoding = array_to_image(np.zeros((SIZE, SIZE, 3), np.uint8), "rgb8")
        long_encoding.encoding = "x" * 300
        tiny = array_to_image(np.zeros((1, 1, 3), np.uint8), "rgb8")
        for msg, t in ((long_encoding, stamp + 10_000_000), (tiny, stamp + 20_000_000)):
            msg.header.stamp, msg.header.frame_id = to_time(t), "f" * 2000
        return [(rig.feeder.rgb_pub, long_encoding), (rig.feeder.rgb_pub, tiny)]

    def more(values, kind):
        return int(values.get(f"rejected.{kind}", 0)) > int(before.get(f"rejected.{kind}", 0))

    rig.feeder.inject(bad)
    _, _, values = rig.wait_report("rgb input", lambda lvl, msg, v: more(v, "too_small") and more(v, "encoding"),
                                   time.monotonic() - 0.5, what="the two rejections")
    rejections = [line for line in rig.proc.lines if "rejected rgb message (encoding)" in line]
    assert rejections and all(len(line) < 250 for line in rejections), rejections
    assert all(len(kv) < 300 for kv in values.values())


def test_shutdown_in_the_middle_of_a_long_rollout_is_prompt_and_clean(rig):
    rig.set_params(horizon=256, ddim_steps=50)  # minutes of work per window on a CPU

    def deep_in_a_long_rollout():
        last = max((w for w, _ in rig.predictions.timed_since(0)), default=0.0)
        busy = rig.reports("prediction", time.monotonic() - 0.5)
        return time.monotonic() - last > 3.0 and busy and int(busy[-1][2]["pending"]) >= 1

    wait_until(deep_in_a_long_rollout, 60, poll=0.2, what="the worker in a long rollout")
    rig.feeder.stop()
    start = time.monotonic()
    rig.proc.proc.send_signal(signal.SIGTERM)
    rc = rig.proc.proc.wait(30)
    elapsed = time.monotonic() - start
    log = rig.proc.log()
    assert rc == 0 and "terminate called" not in log and "Traceback" not in log, log[-2000:]
    assert elapsed < 5.0, elapsed
