"""The node over real DDS on a converted reference checkpoint: `syncvp-predictor` with `checkpoint:=FILE` (the compat
fixture converted by syncvp-import-reference into this test's tmp dir) starts and publishes RGB-D predictions."""
import pathlib

import numpy as np
import pytest

from ros_helpers import Collector, Feeder, NodeRig, wait_until
from syncvp_core.image_msg import image_to_array
from syncvp_core.reference import convert_directory
from syncvp_ros.msg import RGBDPrediction

RELEASE = pathlib.Path(__file__).resolve().parents[2] / "shared" / "compat" / "checkpoints"
INPUTS = {"rgb": "/cam/rgb", "depth": "/cam/depth", "camera_info": "/cam/camera_info"}
pytestmark = pytest.mark.skipif(not RELEASE.is_dir(), reason=f"compat fixture not found at {RELEASE}")


def test_node_predicts_with_a_converted_reference_checkpoint(tmp_path):
    checkpoint = convert_directory(RELEASE, tmp_path / "reference.safetensors", dtype="fp16")
    params = f"""/**/syncvp_predictor:
  ros__parameters:
    use_sim_time: true
    checkpoint: {checkpoint}
    device: cpu
    ddim_steps: 2
    horizon: 8
"""
    predictions = Collector()
    rig = NodeRig(tmp_path, params, INPUTS, "syncvp_reference_test_driver",
                  [(RGBDPrediction, "/syncvp_predictor/output/prediction", predictions, 10)])
    feeder = Feeder(rig.node, INPUTS).start()
    try:
        msg = wait_until(lambda: next((m for m in predictions.since(0) if m.guidance_mode == "rgbd"), None),
                         120, what=f"an rgbd prediction (node log: {tmp_path / 'node.log'})")
        assert msg.model_id.startswith("reference-fixture-") and msg.diffusion_steps == 2
        assert len(msg.rgb) == len(msg.depth) == 8
        assert all((im.encoding, im.height, im.width) == ("rgb8", 64, 64) for im in msg.rgb)
        for image in msg.depth:  # metres through the disparity codec; NaN where the disparity is < 1 unit
            depth = image_to_array(image)
            assert image.encoding == "32FC1" and depth.shape == (64, 64)
            assert (depth[np.isfinite(depth)] > 0).all()
        assert rig.proc.alive()
    finally:
        feeder.stop()
        rig.close()
