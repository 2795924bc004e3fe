"""What every loader shares: fixed-length clips cut from frame sequences, at the model's square size.

A loader describes its data as `FrameSequence`s (a name, a length and a way to read frames at native
resolution); `ClipDataset` cuts them into clips and applies the shared crop + resize (`transforms.py`).
"""
from __future__ import annotations

import bisect
import dataclasses
import logging
import re
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch
from PIL import Image

from .errors import DataError
from .transforms import resize_depth, resize_rgb

log = logging.getLogger(__name__)


class FrameSequence(Protocol):
    """One continuous recording."""

    name: str

    def __len__(self) -> int: ...

    def read(self, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(rgb uint8 N×H×W×3, depth float32 N×h×w metres with NaN/0/inf invalid) of frames `indices`."""


@dataclasses.dataclass(frozen=True)
class FileSequence:
    """A recording stored one file per frame: RGB images and depth files matched by position."""

    name: str
    rgb: tuple[Path, ...]
    depth: tuple[Path, ...]
    read_depth: Callable[[Path], np.ndarray]  # a depth file -> H×W float32 metres (NaN/0/inf invalid)

    def __len__(self) -> int:
        return len(self.rgb)

    def read(self, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        return (np.stack([read_rgb(self.rgb[i]) for i in indices]),
                np.stack([self.read_depth(self.depth[i]) for i in indices]))


def natural_key(name: str) -> list:
    """Sort key that puts frame_2 before frame_10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def read_image(path: Path) -> Image.Image:
    """A fully decoded image; a missing, truncated or non-image file raises DataError naming it."""
    try:
        with Image.open(path) as img:
            img.load()
            return img
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except (OSError, SyntaxError, ValueError) as err:  # Pillow's ways of saying corrupt or truncated
        raise DataError(path, f"cannot decode image ({err})") from None


def read_rgb(path: Path) -> np.ndarray:
    """H×W×3 uint8 from any 8-bit colour or grey image."""
    img = read_image(path)
    if img.mode not in ("RGB", "RGBA", "L", "P", "LA"):
        raise DataError(path, f"expected an 8-bit colour or grey image, got Pillow mode {img.mode}")
    return np.asarray(img.convert("RGB"))


def image_values(path: Path) -> np.ndarray:
    """The single-channel values of a depth/disparity image: uint16 for 16-bit PNGs, uint8 for 8-bit ones
    (the first channel of a 3-channel 8-bit image, which SyncVP's release uses for depth)."""
    img = read_image(path)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        values = np.asarray(img)
        if values.min(initial=0) < 0 or values.max(initial=0) > 65535:
            raise DataError(path, "32-bit image values outside the 16-bit range")
        return values.astype(np.uint16)
    if img.mode in ("L", "RGB"):
        values = np.asarray(img)
        return values if values.ndim == 2 else values[..., 0]
    raise DataError(path, f"expected a 16-bit or 8-bit single-channel image, got Pillow mode {img.mode}")


def check_same_aspect(name, rgb_hw: tuple[int, int], depth_hw: tuple[int, int]) -> None:
    """RGB and depth are cropped and resized independently, so they must share the aspect ratio (field of view)."""
    (h, w), (dh, dw) = rgb_hw, depth_hw
    if abs(h * dw - w * dh) > 0.01 * h * dw:
        raise DataError(name, f"RGB is {w}x{h} but depth is {dw}x{dh}: the aspect ratios must match")


def to_model_size(rgb: np.ndarray, depth: np.ndarray, size: int, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 N×H×W×3 and metres N×h×w at native resolution -> (N×3×size×size in [0,1], N×size×size, NaN invalid)."""
    check_same_aspect(name, rgb.shape[1:3], depth.shape[1:3])
    rgb_t = torch.from_numpy(np.ascontiguousarray(rgb)).permute(0, 3, 1, 2).float().div_(255.0)
    return resize_rgb(rgb_t, size), resize_depth(torch.from_numpy(np.asarray(depth, np.float32)), size)


class ClipDataset(torch.utils.data.Dataset):
    """Every clip of `clip_length` frames, `stride` frames apart, from every sequence (windows start at every frame).

    Items: {"rgb": T×3×size×size float32 [0,1], "depth": T×size×size float32 metres (NaN invalid),
    "valid": T×size×size bool, "source": sequence name, "start": first frame index}.
    With `skip_bad`, a clip that hits an unreadable file is replaced by the next readable one and the file is
    logged once (per worker process); otherwise the DataError propagates.
    """

    def __init__(self, sequences: list[FrameSequence], clip_length: int, stride: int = 1, size: int = 64,
                 skip_bad: bool = False):
        if clip_length < 1 or stride < 1 or size < 1:
            raise ValueError(f"need clip_length >= 1, stride >= 1 and size >= 1 (got {clip_length}, {stride}, {size})")
        self.sequences, self.clip_length, self.stride, self.size = sequences, clip_length, stride, size
        self.skip_bad = skip_bad
        span = (clip_length - 1) * stride + 1
        counts = [max(0, len(seq) - span + 1) for seq in sequences]
        self._ends = np.cumsum(counts).tolist()
        if not self._ends or self._ends[-1] == 0:
            longest = max((len(seq) for seq in sequences), default=0)
            raise ValueError(f"no clip of {clip_length} frames at stride {stride} ({span} frames) fits: "
                             f"{len(sequences)} sequence(s), the longest has {longest} frames")
        self._bad_clips: set[int] = set()
        self._reported: set[str] = set()

    def __len__(self) -> int:
        return self._ends[-1]

    def locate(self, index: int) -> tuple[int, int]:
        """(sequence index, start frame) of clip `index`."""
        if not 0 <= index < len(self):
            raise IndexError(f"clip {index} out of range 0..{len(self) - 1}")
        seq = bisect.bisect_right(self._ends, index)
        return seq, index - (self._ends[seq - 1] if seq else 0)

    def load(self, index: int) -> dict:
        seq_index, start = self.locate(index)
        seq = self.sequences[seq_index]
        rgb, depth = seq.read(list(range(start, start + self.clip_length * self.stride, self.stride)))
        rgb, depth = to_model_size(rgb, depth, self.size, seq.name)
        return {"rgb": rgb, "depth": depth, "valid": ~torch.isnan(depth), "source": seq.name, "start": start}

    def __getitem__(self, index: int) -> dict:
        if index < 0:
            index += len(self)
        if not self.skip_bad:
            return self.load(index)
        for offset in range(len(self)):
            candidate = (index + offset) % len(self)
            if candidate in self._bad_clips:
                continue
            try:
                return self.load(candidate)
            except DataError as err:
                self._bad_clips.add(candidate)
                report_skipped(err, self._reported)
        raise DataError(self.sequences[0].name, "every clip hits an unreadable file")


def report_skipped(err: DataError, reported: set[str]) -> None:
    """Log a skipped file once."""
    if err.path not in reported:
        reported.add(err.path)
        log.warning("skipping unreadable data: %s", err)
