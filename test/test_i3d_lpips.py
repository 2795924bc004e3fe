"""The PyTorch I3D and LPIPS ports against the reference outputs of the original jax networks
(docs: /work/shared/docs/metrics-reference.md), on the deterministic inputs that document defines."""
import numpy as np
import pytest
import torch

from syncvp_core.metrics import weights
from syncvp_core.metrics.i3d import I3DFeatures, clip_bounds, same_padding
from syncvp_core.metrics.lpips import load_lpips

needs_i3d = pytest.mark.skipif(not weights.available("i3d-kinetics-400"),
                               reason=weights.install_hint("i3d-kinetics-400"))
needs_lpips = pytest.mark.skipif(not weights.available("lpips-alex"), reason=weights.install_hint("lpips-alex"))


@pytest.fixture(scope="module")
def reference_inputs():
    """(video B×3×T×H×W, img0, img1 N×3×H×W), all in [-1, 1], drawn in the document's order."""
    rng = np.random.default_rng(0)
    b = np.arange(2)[:, None, None, None, None]
    t = np.arange(16)[None, :, None, None, None]
    y = np.arange(224)[None, None, :, None, None]
    x = np.arange(224)[None, None, None, :, None]
    c = np.arange(3)[None, None, None, None, :]
    vid = np.sin((x + 3 * t * (b + 1)) / 17 + c) * np.cos((y - 2 * t) / 23 + b) \
        + 0.2 * rng.standard_normal((2, 16, 224, 224, 3))
    vid = np.clip(vid, -1, 1).astype(np.float32)
    img0 = np.clip(rng.standard_normal((3, 64, 64, 3)) * 0.5, -1, 1)
    img1 = np.clip(img0 + 0.3 * rng.standard_normal(img0.shape), -1, 1)
    as_images = [torch.from_numpy(i.astype(np.float32)).permute(0, 3, 1, 2) for i in (img0, img1)]
    return torch.from_numpy(vid).permute(0, 4, 1, 2, 3), *as_images


def test_same_padding_matches_tensorflow_rule():
    # in 7, kernel 3, stride 2: out ceil(7/2)=4, total pad (4-1)*2+3-7 = 2 -> (1, 1)
    # in 8, kernel 3, stride 2: out 4, total pad 1 -> (0 before, 1 after), the extra pixel goes after
    x = torch.zeros(1, 1, 7, 8)
    padded = same_padding(x, (3, 3), (2, 2), value=1.0)
    assert padded.shape == (1, 1, 9, 9)
    assert bool((padded[0, 0, 0] == 1).all() and (padded[0, 0, -1] == 1).all() and (padded[0, 0, :, -1] == 1).all())
    assert bool((padded[0, 0, 1:-1, :-1] == 0).all())  # the input itself, with no column added before it


def test_clip_bounds_split_like_syncvp():
    assert clip_bounds(30) == [(0, 16), (16, 30)]
    assert clip_bounds(28) == [(0, 16), (16, 28)]
    assert clip_bounds(20) == [(0, 16)]  # a 4-frame tail is too short for I3D
    assert clip_bounds(8) == []


@needs_i3d
def test_i3d_features_match_reference_logits(reference_inputs):
    """Through the FVD entry point: repository-convention video (B×T×3×H×W in [0, 1]), one 16-frame chunk."""
    video, _, _ = reference_inputs
    extractor = I3DFeatures()
    logits = extractor(((video + 1) / 2).permute(0, 2, 1, 3, 4))
    expected = torch.tensor([[0.602773, 5.804674, 0.601050, 4.741171, 1.292645],
                             [1.780772, 5.610960, 3.314070, 4.795949, 0.650375]], dtype=torch.float64)
    assert logits.shape == (2, 400)
    assert torch.allclose(logits[:, :5], expected, atol=3e-5, rtol=0)
    assert logits.argmax(dim=1).tolist() == [327, 327]
    assert torch.allclose(logits.norm(dim=1), torch.tensor([87.26984, 90.76432], dtype=torch.float64),
                          atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="at least 9 frames"):
        extractor(torch.rand(1, 8, 3, 64, 64))


@needs_lpips
@pytest.mark.parametrize("net, expected", [("alex", [0.0357156, 0.0440672, 0.0505807]),
                                           ("vgg16", [0.1245182, 0.1147278, 0.1226395])])
def test_lpips_matches_reference(reference_inputs, net, expected):
    _, img0, img1 = reference_inputs
    model = load_lpips(net)
    with torch.no_grad():
        got = model(img0, img1)
    assert torch.allclose(got, torch.tensor(expected), atol=1e-6, rtol=0)
    # the [0, 1] entry point is the same distance, and a distance to itself is 0
    assert torch.allclose(model.images((img0 + 1) / 2, (img1 + 1) / 2), got, atol=1e-6)
    assert torch.allclose(model(img0, img0), torch.zeros(3), atol=1e-7)
