"""The bundled model: shipped in the package, loaded by default, predicts 2 -> 8 on a synthetic clip.

Its latency is that of the `tiny` architecture, measured by benchmarks/bench_core.py (no timed test here).
"""
import math
from pathlib import Path

import pytest
import torch

import syncvp_core
from syncvp_core.checkpoint import load_model, model_id
from syncvp_core.config import get_config
from syncvp_core.data.synthetic.sequence import generate_sequence
from syncvp_core.rollout import RolloutPredictor
from syncvp_ros.parameters import DEFAULTS

pytestmark = pytest.mark.usefixtures("one_torch_thread")
WEIGHTS = Path(syncvp_core.__file__).parent / "weights" / "tiny.safetensors"


def test_bundled_model_is_shipped_small_and_is_the_node_default():
    assert WEIGHTS.is_file() and WEIGHTS.stat().st_size <= 25 * 1024 * 1024
    assert DEFAULTS["checkpoint"] == "bundled"
    model = load_model("bundled")
    assert model.cfg.to_dict() == get_config("tiny").to_dict()
    assert model_id(model).startswith("tiny-")


def test_bundled_model_predicts_two_to_eight_on_a_synthetic_clip():
    model = load_model("bundled")
    seq = generate_sequence(seed=123, index=0, frames=10, size=model.cfg.resolution)
    rgb = torch.from_numpy(seq.rgb[:2]).permute(0, 3, 1, 2).float().div(255)[None]
    depth = torch.from_numpy(seq.depth[:2])[None]
    out = RolloutPredictor(model).predict(rgb=rgb, depth=depth, horizon=8,
                                          generator=torch.Generator().manual_seed(0))
    assert out.rgb.shape == (1, 8, 3, 64, 64) and out.depth.shape == (1, 8, 64, 64)
    assert out.guidance_mode == "rgbd"
    assert float(out.rgb.min()) >= 0 and float(out.rgb.max()) <= 1
    valid = torch.isfinite(out.depth)
    assert valid.float().mean() > 0.5
    d = out.depth[valid]
    assert float(d.min()) >= model.cfg.depth_near * 0.999 and float(d.max()) <= model.cfg.depth_far * 1.001
    # it continues the scene it was shown: the first predicted frame is close to the last conditioning frame
    # (its decoder builds on that frame) but not a copy of it (the latent moves it)
    change = float((out.rgb[0, 0] - rgb[0, -1]).abs().mean())
    assert 1e-3 < change < 0.12
    assert not math.isnan(float(out.depth.nanmean()))
