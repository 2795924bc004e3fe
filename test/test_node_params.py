"""Parameters: the table and its checks (plain), config/predictor.yaml, set-time rejection on an in-process node,
and start-up errors (bad parameters, device, checkpoint, params file) exiting non-zero with one line."""
import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from syncvp_ros.parameters import DEFAULTS, SPECS, PredictorParams, descriptor, unknown_parameters, validate

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "predictor.yaml"
SPEC = {s.name: s for s in SPECS}


def flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        out.update(flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
    return out


def test_every_parameter_has_a_description_and_a_consistent_descriptor():
    for spec in SPECS:
        d = descriptor(spec)
        assert d.name == spec.name and len(d.description) > 10
        if spec.range is not None:
            lo, hi = spec.range
            assert lo <= spec.default <= hi, spec.name
            rng = d.integer_range if isinstance(spec.default, int) and not isinstance(spec.default, bool) \
                else d.floating_point_range
            assert (rng[0].from_value, rng[0].to_value) == (lo, hi)
    read_only = {s.name for s in SPECS if s.read_only}
    assert {"checkpoint", "device", "qos.input.reliability", "qos.output.reliability"} <= read_only
    assert {"horizon", "ddim_steps", "sync_slop", "stale_timeout.depth", "debug.mosaic"}.isdisjoint(read_only)
    assert DEFAULTS["checkpoint"] == "bundled"
    assert PredictorParams.from_values(DEFAULTS).stale_timeout_depth == DEFAULTS["stale_timeout.depth"]


@pytest.mark.parametrize("change,needle", [
    ({"device": "tpu"}, "device 'tpu'"),
    ({"device": "cuda:x"}, "device"),
    ({"sampler": "plms"}, "sampler 'plms'"),
    ({"qos.input.reliability": "sometimes"}, "qos.input.reliability"),
    ({"depth.min": 5.0, "depth.max": 5.0}, "depth.min"),
    ({"checkpoint": " "}, "checkpoint"),
])
def test_validate_names_the_reason(change, needle):
    errors = validate({**DEFAULTS, **change})
    assert len(errors) == 1 and needle in errors[0]
    with pytest.raises(ValueError, match=needle.split()[0]):
        PredictorParams.from_values({**DEFAULTS, **change})


def test_unknown_parameter_names_come_with_the_nearest_declared_one():
    declared = set(DEFAULTS) | {"use_sim_time"}
    assert unknown_parameters(["horizn", "horizon", "zzz_not_a_thing", "use_sim_time"], declared) == [
        "'horizn' (did you mean 'horizon'?)", "'zzz_not_a_thing'"]


def test_config_file_names_only_known_parameters_with_valid_values_of_the_right_type():
    doc = yaml.safe_load(CONFIG.read_text())
    (key, body), = doc.items()
    assert key.endswith("syncvp_predictor")
    values = flatten(body["ros__parameters"])
    assert set(values) <= set(SPEC), set(values) - set(SPEC)
    for name, value in values.items():
        assert type(value) is type(SPEC[name].default), name  # rclpy rejects an int for a double
        if SPEC[name].range:
            assert SPEC[name].range[0] <= value <= SPEC[name].range[1], name
    assert validate({**DEFAULTS, **values}) == []
    assert values["checkpoint"] == "bundled"


# ---- set-time rejection on a live (in-process) node --------------------------------------------------------
@pytest.fixture(scope="module")
def node():
    import rclpy
    from rclpy.parameter import Parameter

    from syncvp_ros.predictor_node import PredictorNode

    rclpy.init()
    n = PredictorNode(parameter_overrides=[Parameter("checkpoint", value="preset:tiny"),
                                           Parameter("device", value="cpu")])
    yield n
    n.shutdown()
    n.destroy_node()
    rclpy.shutdown()


def _set(node, **values):
    from rclpy.parameter import Parameter
    return node.set_parameters_atomically([Parameter(k.replace("__", "."), value=v) for k, v in values.items()])


def test_out_of_range_values_are_rejected_on_set_with_the_reason(node):
    result = _set(node, horizon=0)
    assert not result.successful and "horizon" in result.reason and "range" in result.reason
    assert node.params.horizon == DEFAULTS["horizon"]


def test_read_only_and_cross_parameter_rules_are_rejected_on_set(node):
    result = _set(node, device="cuda")
    assert not result.successful and "read-only" in result.reason
    result = _set(node, depth__min=50.0, depth__max=10.0)
    assert not result.successful and "depth.min (50.0) must be below depth.max (10.0)" in result.reason


def test_valid_changes_apply_to_the_running_node(node):
    result = _set(node, horizon=4, sync_slop=0.05, stale_timeout__depth=2.0, debug__mosaic=True)
    assert result.successful
    assert (node.params.horizon, node.params.debug_mosaic) == (4, True)
    assert node.buffer.config.sync_slop_ns == 50_000_000
    assert node.buffer.config.stale_timeout_ns["depth"] == 2_000_000_000


def test_sampler_choice_applies_to_the_next_prediction(node):
    from syncvp_core.sampler import DDIMSampler, DPMSolverSampler

    assert isinstance(node._predictor_for(node.params).sampler, DDIMSampler)  # the checkpoint's
    assert _set(node, sampler="dpmsolver", ddim_steps=6).successful
    sampler = node._predictor_for(node.params).sampler
    assert isinstance(sampler, DPMSolverSampler) and len(sampler.timesteps) == 6
    result = _set(node, sampler="plms")
    assert not result.successful and "sampler 'plms'" in result.reason
    assert _set(node, sampler="", ddim_steps=0).successful


# ---- start-up errors: one line, non-zero exit ----------------------------------------------------------------
CORRUPT = "corrupt.safetensors"


@pytest.mark.parametrize("overrides,needle", [
    ({"device": "cuda:7"}, "cuda:7"),
    ({"checkpoint": CORRUPT}, "cannot read checkpoint"),
    ({"checkpoint": "/no/such/model.safetensors"}, "not found"),
    ({"checkpoint": "preset:huge"}, "unknown preset"),
    ({"horizon": 0}, "horizon out of range"),
    ({"eta": 1}, "expecting type 'DOUBLE'"),
    ({"depth.min": 9.0, "depth.max": 1.0}, "depth.min (9.0) must be below depth.max (1.0)"),
])
def test_startup_errors_name_the_reason(node, tmp_path, overrides, needle):
    """In-process (a new interpreter per case would cost seconds of torch import): the same StartupError main()
    prints as its one line. Runs beside the module's node, so a failed start must clean up its own node."""
    from rclpy.parameter import Parameter

    from syncvp_ros.predictor_node import PredictorNode, StartupError

    (tmp_path / CORRUPT).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    params = {"checkpoint": "preset:tiny", **overrides}
    if params["checkpoint"] == CORRUPT:
        params["checkpoint"] = str(tmp_path / CORRUPT)
    with pytest.raises(StartupError) as err:
        PredictorNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_startup_errors_exit_non_zero_with_one_line(ros_env, tmp_path):
    cases = {  # (program, ROS arguments, what the line must name); the second fails in rcl, before any node
        "unknown device": ([sys.executable, str(ROOT / "scripts" / "ros" / "predictor")],  # the ros2 run launcher
                           ["-p", "checkpoint:=preset:tiny", "-p", "device:=tpu"], "device 'tpu'"),
        "missing params file": ([os.path.join(os.path.dirname(sys.executable), "syncvp-predictor")],
                                ["--params-file", str(tmp_path / "nope.yaml")], "nope.yaml"),
    }
    procs = {name: subprocess.Popen([*program, "--ros-args", *args], env=ros_env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
             for name, (program, args, _) in cases.items()}
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=90)
        ours = [line for line in err.splitlines() if line.startswith("syncvp_predictor:")]
        assert proc.returncode == 2, (name, err)
        assert len(ours) == 1 and cases[name][2] in ours[0], (name, err)
        assert "Traceback" not in err, (name, err)


def test_default_qos_is_rep_2003(node):
    """Best-effort (sensor data) subscriptions and reliable publishers, as seen in the ROS graph (which does not
    carry history and depth)."""
    from rclpy.qos import ReliabilityPolicy

    from syncvp_ros.predictor_node import TOPICS

    for key in ("rgb", "depth", "camera_info"):
        (info,) = node.get_subscriptions_info_by_topic(node.resolve_topic_name(TOPICS[key]))
        assert info.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
    for key in ("prediction", "mosaic"):
        (info,) = node.get_publishers_info_by_topic(node.resolve_topic_name(TOPICS[key]))
        assert info.qos_profile.reliability == ReliabilityPolicy.RELIABLE


def test_prediction_period_selects_windows_on_a_timer_not_per_frame(node):
    """With prediction_period > 0 frames only fill the buffers; the node-clock timer hands out the window."""
    import rclpy
    from rclpy.parameter import Parameter

    from syncvp_ros.image_conversion import array_to_image
    from syncvp_ros.predictor_node import PredictorNode
    from syncvp_ros.sync_buffer import DEPTH, RGB

    timed = PredictorNode(parameter_overrides=[Parameter(k, value=v) for k, v in {
        "checkpoint": "preset:tiny", "device": "cpu", "prediction_period": 0.2, "horizon": 1, "ddim_steps": 1,
        "stale_timeout.rgb": 5.0, "stale_timeout.depth": 5.0}.items()])
    try:
        now = timed.get_clock().now().nanoseconds
        for stamp in (now - 200_000_000, now - 100_000_000):
            for modality, pixels, encoding in ((RGB, np.zeros((96, 128, 3), np.uint8), "rgb8"),
                                               (DEPTH, np.full((96, 128), 4.0, np.float32), "32FC1")):
                msg = array_to_image(pixels, encoding)
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
                timed._on_frame(modality, msg)
        assert timed.slot.counters().received == 0 and timed.buffer.count(RGB) == 2
        deadline = time.monotonic() + 10
        while timed.slot.counters().received == 0 and time.monotonic() < deadline:
            rclpy.spin_once(timed, timeout_sec=0.1)
        assert timed.slot.counters().received == 1
    finally:
        timed.shutdown()
        timed.destroy_node()
