"""Decoding the pixels of a sensor_msgs/Image without cv_bridge, and without importing ROS.

Works on any object with the message's fields (`encoding`, `height`, `width`, `step`, `is_bigendian`, `data`):
rclpy messages in the node, `rosbags` messages in the bag loader. Reading honours `step` (row padding) and
`is_bigendian` exactly; a message that does not describe its own buffer (unknown encoding, step shorter than a
row, data length ≠ step × height, zero size) raises `BadImage` with a `kind` the node counts per modality.
Depth follows REP 118: `32FC1` metres with NaN/±inf invalid, `16UC1` driver units (millimetres by default)
with 0 invalid.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Encoding:
    dtype: np.dtype
    channels: int


ENCODINGS = {
    "rgb8": Encoding(np.dtype(np.uint8), 3),
    "bgr8": Encoding(np.dtype(np.uint8), 3),
    "rgba8": Encoding(np.dtype(np.uint8), 4),
    "bgra8": Encoding(np.dtype(np.uint8), 4),
    "mono8": Encoding(np.dtype(np.uint8), 1),
    "16UC1": Encoding(np.dtype(np.uint16), 1),
    "mono16": Encoding(np.dtype(np.uint16), 1),  # 16-bit depth of some drivers (bag loader only)
    "32FC1": Encoding(np.dtype(np.float32), 1),
}
RGB_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
DEPTH_ENCODINGS = ("32FC1", "16UC1")


class BadImage(ValueError):
    """A message the node must reject; `kind` is the counter it lands in (see `REJECT_KINDS`)."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind


# Every reason a frame is rejected, image-level ones here and stream-level ones from sync_buffer.
REJECT_KINDS = ("encoding", "size", "too_small", "step", "data_length", "invalid_depth", "size_mismatch",
                "out_of_order")
# Longest piece of a message's own text (encoding, frame_id) quoted in a reason or a log line: the sender decides
# their length, and a 2,000-character frame_id must not flood the log.
QUOTE_LIMIT = 40


def quoted(text: str, limit: int = QUOTE_LIMIT) -> str:
    """`repr` of a message-supplied string, cut to `limit` characters (with the full length said)."""
    text = str(text)
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


def image_to_array(msg) -> np.ndarray:
    """Copy of the pixels as native-endian `H×W` (one channel) or `H×W×C`, exactly as the message lays them out."""
    enc = ENCODINGS.get(msg.encoding)
    if enc is None:
        raise BadImage("encoding", f"unsupported encoding {quoted(msg.encoding)}")
    height, width = int(msg.height), int(msg.width)
    if height == 0 or width == 0:
        raise BadImage("size", f"empty image {width}x{height}")
    pixel = enc.channels * enc.dtype.itemsize
    if msg.step < width * pixel:
        raise BadImage("step", f"step {msg.step} < width {width} x {pixel} bytes per pixel")
    buf = memoryview(msg.data).cast("B")
    if buf.nbytes != msg.step * height:
        raise BadImage("data_length", f"data length {buf.nbytes} != step {msg.step} x height {height}")
    dtype = enc.dtype.newbyteorder(">" if msg.is_bigendian else "<")
    # A strided view skips the row padding; astype to the native dtype makes the one copy we keep.
    view = np.ndarray((height, width, enc.channels), dtype=dtype, buffer=buf,
                      strides=(msg.step, pixel, enc.dtype.itemsize))
    arr = view.astype(enc.dtype.newbyteorder("="), copy=True)
    return arr[..., 0] if enc.channels == 1 else arr


def rgb_from_image(msg) -> np.ndarray:
    """`H×W×3` uint8 RGB from any of `RGB_ENCODINGS` (BGR reordered, alpha dropped, mono replicated)."""
    if msg.encoding not in RGB_ENCODINGS:
        raise BadImage("encoding",
                       f"RGB input must be one of {', '.join(RGB_ENCODINGS)}, got {quoted(msg.encoding)}")
    arr = image_to_array(msg)
    if msg.encoding == "mono8":
        return np.repeat(arr[..., None], 3, axis=2)
    if msg.encoding.startswith("bgr"):
        return np.ascontiguousarray(arr[..., 2::-1])
    return np.ascontiguousarray(arr[..., :3])


def depth_from_image(msg, uint16_scale: float, min_depth: float, max_depth: float,
                     far_as_inf: bool = False) -> np.ndarray:
    """`H×W` float32 metres, NaN where invalid (REP 118 markers, or outside [min_depth, max_depth]).

    With `far_as_inf`, pixels too far to measure (+inf, or beyond `max_depth`) are +inf instead (REP 118's "too
    far"), so that a consumer can tell far from unknown; the frame still needs one finite valid pixel.
    """
    if msg.encoding not in DEPTH_ENCODINGS:
        raise BadImage("encoding", f"depth input must be 32FC1 (metres) or 16UC1, got {quoted(msg.encoding)}")
    raw = image_to_array(msg)
    if msg.encoding == "16UC1":
        depth = raw.astype(np.float32) * np.float32(uint16_scale)
        depth[raw == 0] = np.nan
    else:
        depth = raw
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(depth) & (depth > 0) & (depth >= min_depth) & (depth <= max_depth)
        far = (depth > max_depth) if far_as_inf else None  # +inf is > any max_depth
    if not valid.any():
        raise BadImage("invalid_depth", f"no valid depth pixel in [{min_depth}, {max_depth}] m")
    depth[~valid] = np.nan
    if far is not None:
        depth[far] = np.inf
    return depth
