"""The node's output message: an `RGBDPrediction` of one window, with the CameraInfo of the model frame.

No rclpy: the worker thread passes the predicted frames in and publishes what this module builds.
"""
from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header

from syncvp_core.data.transforms import scale_intrinsics
from syncvp_ros.image_conversion import array_to_image
from syncvp_ros.msg import RGBDPrediction
from syncvp_ros.ros_time import ns_to_duration, ns_to_time
from syncvp_ros.sync_buffer import Window


def scale_camera_info(info: CameraInfo, size: int) -> CameraInfo | None:
    """The camera model of the centre-cropped, `size`×`size` model frame (K and P rescaled; R and D kept).

    None for a CameraInfo without a size or calibration (K[2,2] = 0), which cannot be rescaled.
    """
    k = np.asarray(info.k, dtype=np.float64).reshape(3, 3)
    if info.height == 0 or info.width == 0 or k[2, 2] == 0:
        return None
    p = np.asarray(info.p, dtype=np.float64).reshape(3, 4).copy()
    if p[2, 2]:
        p[:, :3] = scale_intrinsics(p[:, :3], info.height, info.width, size)
        p[:2, 3] *= size / min(info.height, info.width)  # Tx = -fx·B and Ty scale with the focal length
    # a new header: the output's stamp is set later, and the received message must stay untouched
    stamp = Time(sec=info.header.stamp.sec, nanosec=info.header.stamp.nanosec)
    header = Header(stamp=stamp, frame_id=info.header.frame_id)
    return CameraInfo(header=header, height=size, width=size, distortion_model=info.distortion_model,
                      d=list(info.d), k=scale_intrinsics(k, info.height, info.width, size).ravel().tolist(),
                      r=list(info.r), p=p.ravel().tolist())


def prediction_message(window: Window, rgb: np.ndarray, depth: np.ndarray, camera_info: CameraInfo | None,
                       diffusion_steps: int, model_id: str) -> RGBDPrediction:
    """RGBDPrediction of one window: `rgb` `T×S×S×3` uint8, `depth` `T×S×S` float32 metres (NaN invalid).

    Every image carries the message header (the observation time): stamping them in the future would confuse
    TF and viewers; `time_offsets` say when each predicted frame is.
    """
    newest = window.newest
    msg = RGBDPrediction(guidance_mode=window.mode.value, diffusion_steps=diffusion_steps, model_id=model_id)
    msg.header.stamp = ns_to_time(newest.stamp_ns)
    msg.header.frame_id = newest.frame_id
    msg.rgb_conditioning_stamps = [ns_to_time(f.stamp_ns) for f in window.rgb]
    msg.depth_conditioning_stamps = [ns_to_time(f.stamp_ns) for f in window.depth]
    msg.time_offsets = [ns_to_duration((k + 1) * window.frame_period_ns) for k in range(len(rgb))]
    msg.rgb = [array_to_image(frame, "rgb8") for frame in rgb]
    msg.depth = [array_to_image(np.asarray(frame, np.float32), "32FC1") for frame in depth]
    for image in (*msg.rgb, *msg.depth):
        image.header = msg.header
    if camera_info is not None:
        msg.camera_info = camera_info
        msg.camera_info.header.stamp = msg.header.stamp
    return msg
