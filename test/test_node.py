"""The node over real DDS: `syncvp-predictor --ros-args --params-file ...` in its own process with the REAL tiny
model (random init, 2 DDIM steps, horizon 8), fed 96×128 RGB-D at 10 Hz by this process on sim time.

One node process serves every check in order (start-up costs seconds): predictions, modality dropout and
recovery, both inputs stale, a backward clock jump, malformed messages, and slow inference under fast input.
"""
import re
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from ros_helpers import NS, Collector, Feeder, NodeRig, diag_status, to_ns, to_time, wait_until
from syncvp_core.data.transforms import scale_intrinsics
from syncvp_core.image_msg import image_to_array
from syncvp_ros.image_conversion import array_to_image
from syncvp_ros.msg import RGBDPrediction

STALE_S = 0.5
FRAME_S = 0.1
DIAG_S = 0.2
PARAMS = f"""/**/syncvp_predictor:
  ros__parameters:
    use_sim_time: true
    checkpoint: preset:tiny
    device: cpu
    ddim_steps: 2
    horizon: 8
    seed: 0
    stale_timeout: {{rgb: {STALE_S}, depth: {STALE_S}}}
    qos: {{input: {{reliability: reliable, depth: 10}}}}  # exact counts for the malformed-message check
    diagnostics_period: {DIAG_S}
    debug: {{mosaic: true}}
"""
INPUTS = {"rgb": "/cam/rgb", "depth": "/cam/depth", "camera_info": "/cam/camera_info"}
PREDICTION = "/syncvp_predictor/output/prediction"


class Rig(NodeRig):
    def __init__(self, tmp_path):
        self.predictions, self.diagnostics, self.mosaics = Collector(), Collector(), Collector()
        # The shipped config first, then this test's overrides (sim time, a fast model, reliable inputs).
        super().__init__(tmp_path, PARAMS, INPUTS, "syncvp_test_driver", [
            (RGBDPrediction, PREDICTION, self.predictions, 50), (DiagnosticArray, "/diagnostics", self.diagnostics, 50),
            (Image, "/syncvp_predictor/debug/mosaic", self.mosaics, 10)])
        self.feeder = Feeder(self.node, INPUTS).start()

    def close(self):
        self.feeder.stop()
        super().close()

    def wait_prediction(self, predicate, since: float, timeout: float = 60.0, what: str = "a prediction"):
        """The first prediction received after wall time `since` that satisfies `predicate`."""
        return wait_until(lambda: next((m for m in self.predictions.since(since) if predicate(m)), None),
                          timeout, what=what)

    def wait_status(self, suffix: str, predicate, since: float, timeout: float = 30.0, what: str = "diagnostics"):
        """(diagnostics stamp ns, level, message, values) of the first status after `since` matching `predicate`."""
        def find():
            for array in self.diagnostics.since(since):
                status = diag_status(array, suffix)
                if status and predicate(*status):
                    return (to_ns(array.header.stamp), *status)
            return None
        return wait_until(find, timeout, what=what)

    def status(self, suffix: str):
        """The newest (level, message, values) of a status, waiting for one fresh report."""
        since = time.monotonic()
        return self.wait_status(suffix, lambda *_: True, since)[1:]

    def inference_s(self) -> float:
        return float(self.status("prediction")[2]["inference latency [s]"])

    def set_params(self, **values):
        assert self.params.wait_for_services(10.0)
        future = self.params.set_parameters([Parameter(k, value=v) for k, v in values.items()])
        return wait_until(lambda: future.result() if future.done() else None, 10.0, what="set_parameters").results


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    r = Rig(tmp_path_factory.mktemp("node"))
    try:
        yield r
    finally:
        r.close()


def test_predictions_carry_the_newest_conditioning_stamp_frame_and_formats(rig):
    # DDS matches the three input subscriptions independently: a prediction made before the camera_info
    # subscription matched has no CameraInfo yet, so wait for one made after (its content is asserted below).
    msg = rig.wait_prediction(lambda m: m.guidance_mode == "rgbd" and m.camera_info.height > 0, since=0, timeout=90,
                              what="an rgbd prediction made after the first CameraInfo")
    rgb_stamps = [to_ns(t) for t in msg.rgb_conditioning_stamps]
    depth_stamps = [to_ns(t) for t in msg.depth_conditioning_stamps]
    published = {s for _, _, s in rig.feeder.published}
    # header: the newest conditioning frame (RGB and depth share stamps here, and RGB wins the tie)
    assert to_ns(msg.header.stamp) == rgb_stamps[-1] == depth_stamps[-1] and msg.header.frame_id == "cam_rgb"
    assert set(rgb_stamps) <= published and np.diff(rgb_stamps).tolist() == [FRAME_S * NS]
    assert [d.sec * NS + d.nanosec for d in msg.time_offsets] == [round((k + 1) * FRAME_S * NS) for k in range(8)]
    assert (msg.diffusion_steps, msg.model_id.startswith("tiny-")) == (2, True)
    assert len(msg.rgb) == len(msg.depth) == 8
    for image in msg.rgb:
        assert (image.encoding, image.height, image.width, image.step) == ("rgb8", 64, 64, 192)
        assert image.header == msg.header
    for image in msg.depth:
        assert (image.encoding, image.height, image.width, image.step) == ("32FC1", 64, 64, 256)
        depth = image_to_array(image)
        assert np.isfinite(depth).any() and (depth[np.isfinite(depth)] > 0).all()
    k = np.array(msg.camera_info.k).reshape(3, 3)
    expected = scale_intrinsics(np.array(rig.feeder.camera_info(0).k).reshape(3, 3), 96, 128, 64)
    assert (msg.camera_info.height, msg.camera_info.width) == (64, 64) and np.allclose(k, expected)
    mosaic = wait_until(lambda: rig.mosaics.since(0), 30, what="a mosaic")[-1]
    assert (mosaic.encoding, mosaic.height, mosaic.width) == ("rgb8", 128, (2 + 8) * 64)
    level, _, values = rig.status("prediction")
    assert level == 0 and values["guidance mode"] == "rgbd" and values["device"] == "cpu"
    for modality in ("rgb", "depth"):
        level, message, values = rig.status(f"{modality} input")
        assert level == 0 and 8.0 < float(values["rate [Hz]"]) < 12.0, (modality, message, values)


@pytest.mark.parametrize("stopped,mode,frame_id", [("depth", "rgb", "cam_rgb"), ("rgb", "depth", "cam_depth")])
def test_a_stale_modality_switches_guidance_and_recovers(rig, stopped, mode, frame_id):
    latency = rig.inference_s()
    setattr(rig.feeder, f"send_{stopped}", False)
    wall = time.monotonic()
    last = rig.feeder.last_stamp(stopped)
    # diagnostics: the switch happens once the stale timeout has passed, plus at most one frame and one report
    stamp, level, message, values = rig.wait_status(
        "prediction", lambda lvl, msg, v: v["guidance mode"] == mode, wall, what=f"{mode} guidance")
    assert level == 1 and stopped in message
    assert (stamp - last) / NS <= STALE_S + FRAME_S + DIAG_S + 0.1
    assert rig.status(f"{stopped} input")[0] == 1
    # predictions: the first one without the stopped modality, within the timeout + a frame + one busy worker
    msg = rig.wait_prediction(lambda m: m.guidance_mode == mode, wall, what=f"a {mode} prediction")
    assert (to_ns(msg.header.stamp) - last) / NS <= STALE_S + FRAME_S + latency + 0.5
    assert msg.header.frame_id == frame_id
    assert len(getattr(msg, f"{stopped}_conditioning_stamps")) == 0
    assert len(getattr(msg, f"{mode}_conditioning_stamps")) == 2
    assert all(m.guidance_mode != "rgbd" or to_ns(m.header.stamp) <= last for m in rig.predictions.since(wall))
    # recovery: RGB-D again once the sensor delivered the conditioning frames anew (nothing from before the gap)
    setattr(rig.feeder, f"send_{stopped}", True)
    wall = time.monotonic()
    msg = rig.wait_prediction(lambda m: m.guidance_mode == "rgbd", wall, what="rgbd again")
    resumed = wait_until(lambda: [s for _, m, s in rig.feeder.published if m == stopped and s > last], 5)[0]
    assert min(to_ns(t) for t in getattr(msg, f"{stopped}_conditioning_stamps")) >= resumed
    assert (to_ns(msg.header.stamp) - resumed) / NS <= FRAME_S + latency + 0.5


def test_both_inputs_stale_gives_no_prediction_and_an_error(rig):
    rig.feeder.send_rgb = rig.feeder.send_depth = False
    wall = time.monotonic()
    last = max(rig.feeder.last_stamp("rgb"), rig.feeder.last_stamp("depth"))
    _, _, message, values = rig.wait_status("prediction", lambda lvl, *_: lvl == 2, wall, what="an ERROR")
    assert "both stale" in message and values["guidance mode"] == "none"
    # Watch for five more reports (a window already in inference may still land, nothing newer may).
    errors = lambda: [a for a in rig.diagnostics.since(wall) if diag_status(a, "prediction")[0] == 2]  # noqa: E731
    wait_until(lambda: len(errors()) >= 6, 10, what="six ERROR reports")
    assert all(to_ns(m.header.stamp) <= last for m in rig.predictions.since(wall))
    rig.feeder.send_rgb = rig.feeder.send_depth = True
    rig.wait_prediction(lambda m: to_ns(m.header.stamp) > last and m.guidance_mode == "rgbd", time.monotonic(),
                        what="predictions after both inputs resumed")


def test_backward_clock_jump_resets_buffers_and_predictions_resume(rig):
    jumps = int(rig.status("prediction")[2]["clock jumps"])
    target = 500 * NS
    rig.feeder.jump_to(target)
    wall = time.monotonic()
    msg = rig.wait_prediction(lambda m: to_ns(m.header.stamp) < 600 * NS, wall, what="a prediction after the jump")
    assert all(target < to_ns(t) < 600 * NS for t in (*msg.rgb_conditioning_stamps, *msg.depth_conditioning_stamps))
    _, _, values = rig.status("prediction")
    assert int(values["clock jumps"]) == jumps + 1
    assert rig.proc.alive()
    assert len(re.findall("clock jumped backwards", rig.proc.log())) == jumps + 1  # one warning per jump


def _bad_messages(feeder, stamp):
    """(topic, counter kind, msg) of every malformed kind, built around the current tick's stamp."""
    pub = {"rgb": feeder.rgb_pub, "depth": feeder.depth_pub}
    later = stamp + 50 * NS // 1000  # newer than this tick's frame, older than the next one

    def image(pixels, as_encoding, t=later, **fields):
        msg = array_to_image(pixels, as_encoding)
        for k, v in fields.items():
            setattr(msg, k, v)
        msg.header.stamp, msg.header.frame_id = to_time(t), "cam"
        return msg

    rgb = np.zeros((96, 128, 3), np.uint8)
    depth = np.full((96, 128), 5.0, np.float32)
    short = image(rgb, "rgb8")
    short.data = bytes(short.data)[:-1]
    odd = image(depth.astype(np.uint16), "16UC1")
    odd.data = bytes(odd.data) + b"\0"
    cases = [
        ("rgb", "encoding", image(rgb, "rgb8", encoding="yuv422")),
        ("rgb", "encoding", image(depth, "32FC1")),
        ("rgb", "step", image(rgb, "rgb8", step=100, data=bytes(100 * 96))),
        ("rgb", "data_length", short),
        ("rgb", "size", image(rgb, "rgb8", height=0, width=0, step=0, data=b"")),
        ("rgb", "out_of_order", image(rgb, "rgb8", t=stamp - NS)),
        ("depth", "encoding", image(rgb, "rgb8")),
        ("depth", "invalid_depth", image(np.full((96, 128), np.nan, np.float32), "32FC1")),
        ("depth", "invalid_depth", image(np.zeros((96, 128), np.uint16), "16UC1")),
        ("depth", "invalid_depth", image(np.where(np.eye(96, 128) > 0, np.inf, -np.inf).astype(np.float32),
                                         "32FC1")),
        ("depth", "size_mismatch", image(np.full((96, 96), 5.0, np.float32), "32FC1")),
        ("depth", "data_length", odd),
    ]
    return [(pub[topic], kind, msg) for topic, kind, msg in cases]


def test_malformed_messages_are_counted_and_never_kill_the_node(rig):
    def rejected(modality):
        values = rig.status(f"{modality} input")[2]
        return {k.removeprefix("rejected."): int(v) for k, v in values.items() if k.startswith("rejected.")}

    before = {m: rejected(m) for m in ("rgb", "depth")}
    expected = {"rgb": {}, "depth": {}}
    rounds = 2
    for _ in range(rounds):
        rig.feeder.inject(lambda stamp: [(pub, msg) for pub, _, msg in _bad_messages(rig.feeder, stamp)])
    for pub, kind, _ in _bad_messages(rig.feeder, 0):
        modality = "rgb" if pub is rig.feeder.rgb_pub else "depth"
        expected[modality][kind] = expected[modality].get(kind, 0) + rounds
    wall = time.monotonic()

    def counted():
        deltas = {m: {k: v - before[m].get(k, 0) for k, v in rejected(m).items() if v - before[m].get(k, 0)}
                  for m in ("rgb", "depth")}
        return deltas if deltas == expected else None

    try:
        wait_until(counted, 20, poll=0.1, what="the rejection counters")
    except AssertionError:
        pytest.fail(f"expected {expected}, counted { {m: rejected(m) for m in before} } (before {before})")
    assert rig.proc.alive()
    rig.wait_status("depth input", lambda lvl, msg, v: lvl == 1 and "bad message" in msg, wall - 1.0,
                    what="a WARN for the bad depth messages")
    rig.wait_prediction(lambda m: m.guidance_mode == "rgbd", time.monotonic(), what="predictions after bad input")
    c = {k: int(v) for k, v in rig.status("prediction")[2].items()
         if k in ("received", "predicted", "dropped", "failed", "pending")}
    assert c["received"] == c["predicted"] + c["dropped"] + c["failed"] + c["pending"] and c["failed"] == 0
    assert "Traceback" not in rig.proc.log()


def test_slow_inference_under_fast_input_drops_superseded_windows_and_predicts_the_latest(rig):
    # set-time validation first: rejected with the reason, nothing applied
    results = rig.set_params(ddim_steps=-1)
    assert not results[0].successful and "ddim_steps" in results[0].reason
    results = rig.set_params(device="cuda")
    assert not results[0].successful and "read-only" in results[0].reason
    before = {k: int(v) for k, v in rig.status("prediction")[2].items() if k in ("received", "predicted", "dropped")}
    rss_before = rig.proc.rss_mb()
    slow_steps = 30  # ~0.5 s per prediction on a CPU core, against a frame every 0.1 s
    assert rig.set_params(ddim_steps=slow_steps)[0].successful
    wall = time.monotonic()

    def three_slow():
        slow = [(w, m) for w, m in rig.predictions.timed_since(wall) if m.diffusion_steps == slow_steps]
        return slow[:3] if len(slow) >= 3 else None

    slow = wait_until(three_slow, 120, poll=0.1, what="three slow predictions")
    # latest-only: each window the worker took was the newest when it became free (the previous publish)
    for (received_prev, _), (_, msg) in zip(slow, slow[1:]):
        newest = rig.feeder.newest_before(received_prev)
        assert to_ns(msg.header.stamp) >= newest - round(2.5 * FRAME_S * NS), (to_ns(msg.header.stamp), newest)
    _, _, values = rig.status("prediction")
    c = {k: int(values[k]) for k in ("received", "predicted", "dropped", "failed", "pending")}
    assert c["received"] == c["predicted"] + c["dropped"] + c["failed"] + c["pending"] and c["pending"] <= 2
    # at 10 Hz against a multi-100-ms inference most windows are superseded, and they are counted
    assert c["dropped"] - before["dropped"] >= 2 * (c["predicted"] - before["predicted"])
    for modality in ("rgb", "depth"):
        assert int(rig.status(f"{modality} input")[2]["buffered"]) <= 8
    assert rig.proc.rss_mb() - rss_before < 100.0
    assert rig.set_params(ddim_steps=2)[0].successful


def test_node_stops_cleanly_on_sigint(rig):
    rig.feeder.stop()
    assert rig.proc.stop() == 0
    log = rig.proc.log()
    assert "Traceback" not in log and "inference failed" not in log
