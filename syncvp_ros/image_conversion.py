"""sensor_msgs/Image ↔ NumPy ↔ model tensors, without cv_bridge (and without rclpy); the output messages.

Reading (`image_to_array`, `rgb_from_image`, `depth_from_image`, `BadImage`) is `syncvp_core.image_msg`, shared
with the bag loader; this module adds writing, the model tensors, CameraInfo scaling, the mosaic and the
prediction message.
"""
from __future__ import annotations

import numpy as np
import torch
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from syncvp_core.data.transforms import resize_depth, resize_rgb, scale_intrinsics
from syncvp_core.image_msg import (  # noqa: F401 - the node's decoding API, re-exported
    DEPTH_ENCODINGS, ENCODINGS, REJECT_KINDS, RGB_ENCODINGS, BadImage, depth_from_image, image_to_array, quoted,
    rgb_from_image)
from syncvp_ros.msg import RGBDPrediction
from syncvp_ros.ros_time import ns_to_duration, ns_to_time
from syncvp_ros.sync_buffer import Window


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


# Turbo-like colour ramp (far = blue, near = red) as control points, linearly interpolated; enough for debugging.
_RAMP = np.array([[48, 18, 59], [70, 131, 248], [26, 228, 182], [164, 252, 60], [250, 186, 57],
                  [227, 69, 13], [122, 4, 3]], np.float32)


def colorize_depth(depth: np.ndarray, min_depth: float, max_depth: float) -> np.ndarray:
    """`H×W` metres -> `H×W×3` uint8, linear in inverse depth (near detail matters most), NaN black."""
    lo, hi = 1.0 / max_depth, 1.0 / max(min_depth, 1e-3)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.clip((1.0 / depth - lo) / (hi - lo), 0.0, 1.0)
    valid = np.isfinite(x)
    pos = np.where(valid, x, 0.0) * (len(_RAMP) - 1)
    i = np.minimum(pos.astype(np.int64), len(_RAMP) - 2)
    w = (pos - i)[..., None]
    out = _RAMP[i] * (1 - w) + _RAMP[i + 1] * w
    out[~valid] = 0
    return out.round().astype(np.uint8)


def mosaic(cond_rgb, cond_depth, pred_rgb, pred_depth, size: int, min_depth: float, max_depth: float) -> np.ndarray:
    """One `2S × (T_cond+T_pred)·S` RGB image: top row RGB, bottom row colour-mapped depth; conditioning first.

    Arguments are `T×S×S×3` uint8 / `T×S×S` metres arrays, or None for a modality that was not used (black).
    """
    n_cond = len(cond_rgb) if cond_rgb is not None else len(cond_depth)
    cols = n_cond + len(pred_rgb)
    out = np.zeros((2 * size, cols * size, 3), np.uint8)
    for row, frames in ((0, [cond_rgb, pred_rgb]), (1, [cond_depth, pred_depth])):
        col = 0
        for block, n in zip(frames, (n_cond, len(pred_rgb))):
            for k in range(n):
                if block is not None:
                    tile = block[k] if row == 0 else colorize_depth(block[k], min_depth, max_depth)
                    out[row * size:(row + 1) * size, (col + k) * size:(col + k + 1) * size] = tile
            col += n
    return out


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
