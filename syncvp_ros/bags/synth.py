"""`syncvp-bag synth`: a synthetic drive (syncvp_core.data.synthetic) as a rosbag2 bag of real sensor messages.

Per frame: /clock, then RGB and depth `sensor_msgs/Image` with their `CameraInfo`, all stamped with the frame
time (log time = header stamp, as a recording made with sim time has). Topic names, encodings and frame ids
follow a preset (`generic`, or `carla`: the CARLA ROS bridge's names, bgra8 RGB and 32FC1 depth) that options
can override. The frames are `synthetic.generate_sequence(seed, 0, frames, size, fps=rate)`.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from syncvp_core.data.synthetic.sequence import generate_sequence
from syncvp_core.image_msg import DEPTH_ENCODINGS, RGB_ENCODINGS
from syncvp_ros.bags.io import BagWriter, qos, typestore
from syncvp_ros.image_conversion import array_to_image
from syncvp_ros.ros_time import split_ns

# REP 118's other depth form: millimetres in 16 bits, 0 = no reading.
MM_PER_M = 1000.0


@dataclass(frozen=True)
class CameraTopics:
    """Where and how a drive's RGB-D camera publishes."""

    rgb: str
    depth: str
    rgb_info: str
    depth_info: str
    rgb_frame: str
    depth_frame: str
    rgb_encoding: str = "rgb8"
    depth_encoding: str = "32FC1"
    clock: str = "/clock"

    def __post_init__(self):
        if self.rgb_encoding not in RGB_ENCODINGS:
            raise ValueError(f"RGB encoding {self.rgb_encoding!r}: use one of {', '.join(RGB_ENCODINGS)}")
        if self.depth_encoding not in DEPTH_ENCODINGS:
            raise ValueError(f"depth encoding {self.depth_encoding!r}: use one of {', '.join(DEPTH_ENCODINGS)}")
        for topic in (self.rgb, self.depth, self.rgb_info, self.depth_info, self.clock):
            if not topic.startswith("/"):
                raise ValueError(f"topic {topic!r}: use an absolute name (starting with /)")


PRESETS = {
    # A pixel-aligned RGB-D driver (depth registered to the colour camera, as realsense's aligned_depth_to_color).
    "generic": CameraTopics(rgb="/camera/color/image_raw", depth="/camera/depth/image_raw",
                            rgb_info="/camera/color/camera_info", depth_info="/camera/depth/camera_info",
                            rgb_frame="camera_color_optical_frame", depth_frame="camera_color_optical_frame"),
    # The CARLA ROS bridge with config/carla_objects.json (docs/carla.md).
    "carla": CameraTopics(rgb="/carla/ego_vehicle/rgb_front/image", depth="/carla/ego_vehicle/depth_front/image",
                          rgb_info="/carla/ego_vehicle/rgb_front/camera_info",
                          depth_info="/carla/ego_vehicle/depth_front/camera_info",
                          rgb_frame="ego_vehicle/rgb_front", depth_frame="ego_vehicle/depth_front",
                          rgb_encoding="bgra8"),
}

SENSOR_QOS = qos(reliable=True, depth=10)  # camera drivers and the CARLA bridge: reliable, depth 10
CLOCK_QOS = qos(reliable=False, depth=1)  # rclcpp's ClockQoS


def preset(name: str, **overrides) -> CameraTopics:
    """A preset with some fields replaced (None values leave the preset's)."""
    if name not in PRESETS:
        raise ValueError(f"preset {name!r}: use one of {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})


def encode_rgb(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """`H×W×3` uint8 RGB -> the pixel layout of an RGB encoding."""
    if encoding == "mono8":
        return np.round(rgb.astype(np.float32) @ np.float32([0.299, 0.587, 0.114])).astype(np.uint8)
    pixels = rgb[..., ::-1] if encoding.startswith("bgr") else rgb
    if encoding.endswith("a8"):
        pixels = np.concatenate([pixels, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=-1)
    return np.ascontiguousarray(pixels)


def encode_depth(depth: np.ndarray, encoding: str) -> np.ndarray:
    """`H×W` float32 metres (NaN invalid) -> 32FC1 as is, or 16UC1 millimetres with 0 for invalid.

    Depth beyond the 16-bit range (65.535 m) is out of the sensor's range, so it is invalid (0) as a real
    16UC1 driver reports it, never clipped to a wrong 65.535 m.
    """
    if encoding == "32FC1":
        return depth.astype(np.float32)
    mm = np.nan_to_num(depth * MM_PER_M, nan=0.0, posinf=0.0, neginf=0.0)
    mm = np.where((mm > 0) & (mm <= np.iinfo(np.uint16).max), np.round(mm), 0.0)
    return mm.astype(np.uint16)


def _stamp(ns: int):
    sec, nanosec = split_ns(ns)
    return typestore().types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)


def _header(ns: int, frame_id: str):
    return typestore().types["std_msgs/msg/Header"](stamp=_stamp(ns), frame_id=frame_id)


def image_message(pixels: np.ndarray, encoding: str, ns: int, frame_id: str):
    """A type-store Image, laid out by image_conversion.array_to_image (the node's own converter)."""
    ros_image = array_to_image(pixels, encoding)
    return typestore().types["sensor_msgs/msg/Image"](
        header=_header(ns, frame_id), height=ros_image.height, width=ros_image.width, encoding=encoding,
        is_bigendian=int(ros_image.is_bigendian), step=ros_image.step,
        data=np.frombuffer(bytes(ros_image.data), np.uint8))


def camera_info_message(k: np.ndarray, size: int, ns: int, frame_id: str):
    """An ideal pinhole (no distortion), as the CARLA bridge publishes."""
    types = typestore().types
    p = np.zeros((3, 4))
    p[:, :3] = k
    return types["sensor_msgs/msg/CameraInfo"](
        header=_header(ns, frame_id), height=size, width=size, distortion_model="plumb_bob",
        d=np.zeros(5), k=np.asarray(k, np.float64).ravel(), r=np.eye(3).ravel(), p=p.ravel(),
        binning_x=0, binning_y=0,
        roi=types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


@dataclass(frozen=True)
class SynthSpec:
    frames: int = 40
    rate: float = 10.0  # Hz
    size: int = 64
    seed: int = 0
    start: float = 10.0  # s, stamp of the first frame

    def __post_init__(self):
        if self.frames < 1 or not self.rate > 0 or self.size < 8 or self.start < 0:
            raise ValueError("synth needs frames >= 1, rate > 0, size >= 8 and start >= 0")

    def stamp_ns(self, frame: int) -> int:
        return round((self.start + frame / self.rate) * 1e9)


def write_synthetic_bag(path, spec: SynthSpec, topics: CameraTopics, storage: str = "mcap",
                        progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Renders the drive, then writes it frame by frame (calling `progress(1)` per frame); messages per topic."""
    clock_type = typestore().types["rosgraph_msgs/msg/Clock"]
    with BagWriter(path, storage) as bag:
        drive = generate_sequence(spec.seed, 0, spec.frames, spec.size, spec.rate)
        k = drive.scene.intrinsics
        bag.add_topic(topics.clock, "rosgraph_msgs/msg/Clock", [CLOCK_QOS])
        for topic, msgtype in ((topics.rgb_info, "sensor_msgs/msg/CameraInfo"), (topics.rgb, "sensor_msgs/msg/Image"),
                               (topics.depth_info, "sensor_msgs/msg/CameraInfo"),
                               (topics.depth, "sensor_msgs/msg/Image")):
            bag.add_topic(topic, msgtype, [SENSOR_QOS])
        for i, (rgb, depth) in enumerate(zip(drive.rgb, drive.depth)):
            ns = spec.stamp_ns(i)
            bag.write_message(topics.clock, ns, clock_type(clock=_stamp(ns)))
            bag.write_message(topics.rgb_info, ns, camera_info_message(k, spec.size, ns, topics.rgb_frame))
            bag.write_message(topics.rgb, ns, image_message(encode_rgb(rgb, topics.rgb_encoding),
                                                            topics.rgb_encoding, ns, topics.rgb_frame))
            bag.write_message(topics.depth_info, ns, camera_info_message(k, spec.size, ns, topics.depth_frame))
            bag.write_message(topics.depth, ns, image_message(encode_depth(depth, topics.depth_encoding),
                                                              topics.depth_encoding, ns, topics.depth_frame))
            if progress:
                progress(1)
        return dict(bag.counts)
