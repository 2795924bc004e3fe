"""NumPy -> sensor_msgs/Image without cv_bridge (and without rclpy): step padding, endianness.

Reading (`image_to_array`, `rgb_from_image`, `depth_from_image`, `BadImage`) is `syncvp_core.image_msg`, shared
with the bag loader, which cannot import ROS; writing needs the `sensor_msgs` class, so it lives here.
"""
from __future__ import annotations

import numpy as np
from sensor_msgs.msg import Image

from syncvp_core.image_msg import ENCODINGS


def array_to_image(arr: np.ndarray, encoding: str, step: int | None = None, is_bigendian: bool = False) -> Image:
    """sensor_msgs/Image of `arr` (`H×W` or `H×W×C` of the encoding's dtype), rows padded to `step` bytes if given."""
    enc = ENCODINGS[encoding]
    arr = np.asarray(arr)
    height, width = arr.shape[:2]
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    if arr.dtype != enc.dtype or channels != enc.channels:
        raise ValueError(f"{encoding} needs {enc.channels} channel(s) of {enc.dtype}, got {arr.shape} {arr.dtype}")
    row = width * channels * enc.dtype.itemsize
    step = row if step is None else step
    if step < row:
        raise ValueError(f"step {step} is shorter than a row ({row} bytes)")
    pixels = arr.astype(enc.dtype.newbyteorder(">" if is_bigendian else "<"), copy=False)
    if step == row:
        data = pixels.tobytes()
    else:
        padded = np.zeros((height, step), np.uint8)
        padded[:, :row] = pixels.reshape(height, -1).view(np.uint8)
        data = padded.tobytes()
    return Image(height=height, width=width, encoding=encoding, is_bigendian=is_bigendian, step=step, data=data)
