"""Every method's depth is scored on the same pixels; the training-mean baseline; the K-sample point estimate."""
import torch

from syncvp_core.evaluation.scoring import COPY_LAST, TRAINING_MEAN, depth_scoring_pixels, evaluate, training_mean_frames
from syncvp_core.rollout import _mean_of_samples


def clips(batch=2, frames=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    depth = torch.rand(batch, frames, 16, 16, generator=g) * 20 + 2
    depth[:, 1, :2] = float("nan")  # a hole in the last observed frame: copy-last has no value there
    depth[:, 3:, -1] = 300.0  # beyond the model's range
    return {"rgb": torch.rand(batch, frames, 3, 16, 16, generator=g), "depth": depth}


def test_scoring_pixels_are_valid_in_range_and_predicted_by_every_method():
    batch = clips()
    truth = batch["depth"][:, 2:]
    copied = batch["depth"][:, 1:2].expand_as(truth)
    mask = depth_scoring_pixels(truth, None, [copied, torch.full_like(truth, 5.0)], 1.0, 256.0)
    assert not mask[:, :, :2].any() and not mask[:, 1:, -1].any()
    assert mask[:, :, 2:-1].all()


def test_methods_are_scored_on_the_same_depth_pixels():
    """A method that predicts the truth where copy-last has holes gains nothing from those pixels."""
    batch = clips()
    mean = {"rgb": torch.rand(3, 16, 16), "depth": torch.full((16, 16), 7.0)}
    result = evaluate([batch], None, cond_frames=2, horizon=4, methods=(COPY_LAST, TRAINING_MEAN), near=1.0,
                      far=256.0, training_mean=mean)
    truth = batch["depth"][:, 2:]
    mask = depth_scoring_pixels(truth, None, [batch["depth"][:, 1:2].expand_as(truth)], 1.0, 256.0)
    expected = ((7.0 - truth).abs() / truth * mask).sum((-2, -1)) / mask.sum((-2, -1))
    got = result.frames[(TRAINING_MEAN, "depth", "abs_rel")]
    assert torch.allclose(torch.from_numpy(got), expected.double(), atol=1e-9)


def test_training_mean_frames_average_valid_depth_per_pixel():
    items = [clips(batch=1, seed=s) for s in range(3)]
    dataset = [{k: v[0] for k, v in item.items()} for item in items]
    mean = training_mean_frames(dataset)
    stacked = torch.stack([d["depth"] for d in dataset])
    expected = torch.nanmean(stacked.flatten(0, 1), 0)
    assert torch.allclose(mean["depth"], expected, atol=1e-4)
    assert torch.allclose(mean["rgb"], torch.stack([d["rgb"] for d in dataset]).flatten(0, 1).mean(0), atol=1e-6)


def test_point_estimate_is_the_mean_of_each_clips_samples():
    video = torch.arange(12.0).reshape(6, 2)  # 2 clips × 3 samples
    video[1, 0] = float("nan")  # a sample without a value there: the others decide
    mean = _mean_of_samples(video, 3)
    assert torch.allclose(mean, torch.tensor([[2.0, 3.0], [8.0, 9.0]]))
