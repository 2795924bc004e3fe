"""One predicted RGB-D frame as a `sensor_msgs/PointCloud2` (no sensor_msgs_py, no rclpy).

Pinhole back-projection in the camera's optical frame (x right, y down, z forward) with the CameraInfo scaled to
the model resolution: pixel (u, v) at depth z is ((u - cx) z / fx, (v - cy) z / fy, z), pixel centres at integer
u, v as in depth_image_proc. Fields x, y, z are float32; rgb is 0x00RRGGBB stored in the bytes of a float32 (the
PCL / sensor_msgs_py convention RViz reads). Pixels without a finite positive depth (NaN, +inf) are left out, so
the cloud is one row of valid points (`is_dense`).
"""
from __future__ import annotations

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

FIELDS = [PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=1)
          for i, name in enumerate(("x", "y", "z", "rgb"))]
POINT = np.dtype({"names": ["x", "y", "z", "rgb"], "formats": [np.float32] * 4, "offsets": [0, 4, 8, 12],
                  "itemsize": 16})


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """`...×3` uint8 -> `...` float32 whose bytes are 0x00RRGGBB (little-endian uint32)."""
    rgb = rgb.astype(np.uint32)
    return ((rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]).astype("<u4").view("<f4")


def cloud_step_index(step: int, horizon: int) -> int:
    """The predicted frame a `cloud.step` parameter names: 1-based, 0 = the last one, beyond the horizon = the last."""
    return horizon - 1 if step <= 0 else min(step, horizon) - 1


def point_cloud(depth: np.ndarray, rgb: np.ndarray, k: np.ndarray, header: Header) -> PointCloud2:
    """`S×S` metres + `S×S×3` uint8 + 3×3 camera matrix -> PointCloud2 of the valid pixels, row-major order."""
    k = np.asarray(k, np.float64).reshape(3, 3)
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(depth) & (depth > 0)
    v, u = np.nonzero(valid)
    z = depth[v, u].astype(np.float64)
    points = np.empty(len(z), POINT)
    points["x"] = (u - cx) * z / fx
    points["y"] = (v - cy) * z / fy
    points["z"] = z
    points["rgb"] = pack_rgb(rgb[v, u])
    return PointCloud2(header=header, height=1, width=len(z), fields=FIELDS, is_bigendian=False,
                       point_step=POINT.itemsize, row_step=POINT.itemsize * len(z), data=points.tobytes(),
                       is_dense=True)
