"""A rosbag2 recording (sqlite3 or MCAP) with an RGB and a depth sensor_msgs/msg/Image topic, read with `rosbags`.

RGB and depth messages pair by header stamp (the log time when the stamp is zero): each RGB frame with its
nearest depth frame when they are each other's nearest and within `slop` seconds. Frames are decoded and
brought to the model size while the bag is read, so memory stays small for long recordings.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import torch
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from ..image_msg import image_to_array, rgb_from_image
from .clips import check_same_aspect
from .errors import DataError
from .transforms import resize_depth, resize_rgb

log = logging.getLogger(__name__)

# Depth encodings the loader reads (the node takes 32FC1 and 16UC1; recorded bags may also carry mono16).
DEPTH_ENCODINGS = ("32FC1", "16UC1", "mono16")


def depth_metres(msg, depth_scale: float) -> np.ndarray:
    """H×W float32 metres: 32FC1 is metres, 16UC1/mono16 are integer units × depth_scale (0 = invalid)."""
    if msg.encoding not in DEPTH_ENCODINGS:
        raise ValueError(f"depth topic has encoding {msg.encoding!r}; expected 32FC1 or 16UC1")
    pixels = image_to_array(msg)
    return pixels if msg.encoding == "32FC1" else pixels.astype(np.float32) * np.float32(depth_scale)


def pair_by_stamp(a: np.ndarray, b: np.ndarray, slop: int) -> list[tuple[int, int]]:
    """(i, j) where sorted stamps a[i] and b[j] are each other's nearest and at most `slop` apart."""
    def nearest(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        right = np.clip(np.searchsorted(y, x), 1, len(y) - 1) if len(y) > 1 else np.zeros(len(x), int)
        left = np.maximum(right - 1, 0)
        return np.where(np.abs(y[left] - x) <= np.abs(y[right] - x), left, right)

    if not len(a) or not len(b):
        return []
    a_to_b, b_to_a = nearest(a, b), nearest(b, a)
    return [(i, int(j)) for i, j in enumerate(a_to_b) if b_to_a[j] == i and abs(int(a[i]) - int(b[j])) <= slop]


@dataclasses.dataclass(frozen=True)
class BagSequence:
    """Paired frames of one bag, already at the model size."""

    name: str
    rgb: np.ndarray  # N×size×size×3 uint8
    depth: np.ndarray  # N×size×size float32 metres, NaN invalid
    stamps: np.ndarray  # N int64 ns, of the RGB frames

    def __len__(self) -> int:
        return len(self.rgb)

    def read(self, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        return self.rgb[indices], self.depth[indices]


@dataclasses.dataclass
class _Stream:
    stamps: list[int] = dataclasses.field(default_factory=list)
    frames: list[np.ndarray] = dataclasses.field(default_factory=list)
    shapes: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    skipped: int = 0


def _find_topic(reader: Reader, path: Path, topic: str):
    images = sorted({c.topic for c in reader.connections if c.msgtype == "sensor_msgs/msg/Image"})
    matches = [c for c in reader.connections if c.topic == topic]
    if not matches:
        raise DataError(path, f"no topic {topic}; its Image topics are: {', '.join(images) or 'none'}")
    if matches[0].msgtype != "sensor_msgs/msg/Image":
        raise DataError(path, f"topic {topic} is {matches[0].msgtype}, not sensor_msgs/msg/Image")
    return matches


def rosbag_sequence(path: Path, rgb_topic: str, depth_topic: str, slop: float = 0.02, depth_scale: float = 0.001,
                    size: int = 64, skip_bad: bool = False) -> BagSequence:
    """Read, decode, resize and pair the two topics of the bag at `path` (a rosbag2 folder or its storage file)."""
    bag = path.parent if path.is_file() else path  # rosbag2 is a folder; accept its .db3/.mcap too
    streams = {rgb_topic: _Stream(), depth_topic: _Stream()}
    # rosbags' Reader for rosbag2 itself, not AnyReader: AnyReader takes any folder named *.bag for ROS 1 (and
    # `syncvp-bag synth drive.bag` is a rosbag2 folder of that name).
    typestore = get_typestore(Stores.ROS2_JAZZY)
    try:
        with Reader(bag) as reader:
            connections = _find_topic(reader, bag, rgb_topic) + _find_topic(reader, bag, depth_topic)
            for connection, log_time, raw in reader.messages(connections=connections):
                msg = typestore.deserialize_cdr(raw, connection.msgtype)
                stream = streams[connection.topic]
                stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec or log_time
                try:
                    pixels = rgb_from_image(msg) if connection.topic == rgb_topic else depth_metres(msg, depth_scale)
                except ValueError as err:
                    if not skip_bad:
                        raise DataError(bag, f"{connection.topic} message stamped {stamp} ns: {err}") from None
                    stream.skipped += 1
                    continue
                if connection.topic == rgb_topic:
                    rgb = torch.from_numpy(pixels).permute(2, 0, 1).float().div_(255.0)
                    frame = (resize_rgb(rgb, size) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
                else:
                    frame = resize_depth(torch.from_numpy(pixels), size).numpy()
                stream.stamps.append(stamp)
                stream.frames.append(frame)
                stream.shapes.append(pixels.shape[:2])
    except DataError:
        raise
    except Exception as err:  # ReaderError, sqlite3, MCAP and deserialisation errors on a truncated/corrupt file
        raise DataError(path, f"cannot read rosbag2 ({type(err).__name__}: {err})") from None
    for topic, stream in streams.items():
        if stream.skipped:
            log.warning("skipping unreadable data: %s: %d undecodable message(s) on %s", bag, stream.skipped, topic)
    rgb, depth = streams[rgb_topic], streams[depth_topic]
    rgb_order, depth_order = np.argsort(rgb.stamps, kind="stable"), np.argsort(depth.stamps, kind="stable")
    rgb_stamps = np.asarray(rgb.stamps, np.int64)[rgb_order]
    depth_stamps = np.asarray(depth.stamps, np.int64)[depth_order]
    pairs = [(rgb_order[i], depth_order[j]) for i, j in pair_by_stamp(rgb_stamps, depth_stamps, round(slop * 1e9))]
    if not pairs:
        raise DataError(bag, f"no {rgb_topic} / {depth_topic} messages within {slop} s of each other "
                             f"({len(rgb.stamps)} RGB, {len(depth.stamps)} depth)")
    for i, j in pairs:
        check_same_aspect(bag, rgb.shapes[i], depth.shapes[j])
    return BagSequence(name=bag.name, rgb=np.stack([rgb.frames[i] for i, _ in pairs]),
                       depth=np.stack([depth.frames[j] for _, j in pairs]),
                       stamps=np.array([rgb.stamps[i] for i, _ in pairs], np.int64))
