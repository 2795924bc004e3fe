"""Camera frames (NumPy, as decoded) <-> the model's tensors: centre crop and resize to the model size, and back.

No rclpy: the node and the bag evaluation prepare frames the same way through these functions.
"""
from __future__ import annotations

import numpy as np
import torch

from syncvp_core.data.transforms import resize_depth, resize_rgb
from syncvp_core.image_msg import BadImage

# The model resizes the centre square of a frame to its resolution; below a quarter of it, the frame would be an
# upscaled blur of a few pixels (a 1x1 image is "valid" but says nothing).
MIN_SIDE_FRACTION = 0.25


def min_usable_side(resolution: int) -> int:
    return max(1, round(resolution * MIN_SIDE_FRACTION))


def check_usable_size(pixels: np.ndarray, resolution: int) -> None:
    """BadImage `too_small` for a frame whose shorter side is below `min_usable_side(resolution)` pixels."""
    height, width = pixels.shape[:2]
    if min(height, width) < min_usable_side(resolution):
        raise BadImage("too_small", f"image {width}x{height} is smaller than the {min_usable_side(resolution)} "
                                    f"pixels per side the {resolution}x{resolution} model can use")


def window_to_tensors(rgb: list[np.ndarray], depth: list[np.ndarray], size: int):
    """Conditioning frames -> (`1×T×3×S×S` [0,1] or None, `1×T×S×S` metres or None), centre-cropped and resized.

    Frames are resized one by one: a modality may change resolution between frames without breaking the window.
    """
    rgb_t = depth_t = None
    if rgb:
        rgb_t = torch.stack([resize_rgb(torch.from_numpy(f).permute(2, 0, 1).float().div_(255.0), size)
                             for f in rgb]).unsqueeze(0)
    if depth:
        depth_t = torch.stack([resize_depth(torch.from_numpy(f), size) for f in depth]).unsqueeze(0)
    return rgb_t, depth_t


def rgb_to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """`...×3×H×W` in [0,1] -> `...×H×W×3` uint8."""
    return (rgb.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).movedim(-3, -1).cpu().numpy())
