"""Cityscapes sequences in the layout SyncVP uses: ROOT/{rgb,depth}/{train,val,test}/<city>/*.png.

Files are named like Cityscapes, `<city>_<seq:6 digits>_<frame:6 digits>[_suffix].png` (e.g.
`aachen_000000_000019_leftImg8bit.png` and `aachen_000000_000019_disparity.png`); RGB and depth pair by
(city, seq, frame), and a sequence is a run of consecutive frame numbers within one (city, seq).
Depth comes from disparity PNGs (see `DisparityToDepth`).
"""
from __future__ import annotations

import dataclasses
import itertools
import re
from pathlib import Path

import numpy as np

from .clips import FileSequence, image_values
from .errors import DataError

NAME = re.compile(r"(?P<city>.+)_(?P<seq>\d{6})_(?P<frame>\d{6})(?:_[^/]*)?\.png")
SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class DisparityToDepth:
    """Cityscapes disparity PNG -> metres.

    16-bit (the official `disparity/` files): d = (p − 1) / 256 px for p > 0, p = 0 invalid.
    8-bit (SyncVP's preprocessed release, whose conversion is not published): we assume q is disparity in
    full-resolution pixels times 1/scale8, i.e. d = q·scale8, q = 0 invalid.
    depth = fx·baseline / d; d <= 0 is invalid. Defaults: the Cityscapes camera (fx at 2048×1024).
    """

    fx: float = 2262.52  # px
    baseline: float = 0.209313  # m
    scale8: float = 1.0  # disparity px per 8-bit unit

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """uint16 or uint8 disparity image -> float32 depth in metres, NaN where invalid."""
        if values.dtype == np.uint16:
            disparity = (values.astype(np.float32) - 1.0) / 256.0
            disparity[values == 0] = 0.0
        else:
            disparity = values.astype(np.float32) * self.scale8
        with np.errstate(divide="ignore"):
            depth = np.float32(self.fx * self.baseline) / disparity
        depth[disparity <= 0] = np.nan
        return depth

    def read_file(self, path: Path) -> np.ndarray:
        """A disparity PNG -> float32 depth in metres, NaN where invalid."""
        return self(image_values(path))


def _index(folder: Path) -> dict[tuple[str, str, int], Path]:
    """(city, seq, frame) -> file for every Cityscapes-named PNG under folder/<city>/."""
    found = {}
    for path in sorted(folder.glob("*/*.png")):
        if m := NAME.fullmatch(path.name):
            found[m["city"], m["seq"], int(m["frame"])] = path
    return found


def cityscapes_sequences(root: Path, split: str | None, convert: DisparityToDepth = DisparityToDepth()
                         ) -> list[FileSequence]:
    """Every run of consecutive frames with both RGB and disparity, over one split (None: all that exist)."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"{root}: Cityscapes split must be one of {', '.join(SPLITS)}, not {split!r}")
    splits = [split] if split else [s for s in SPLITS if (root / "rgb" / s).is_dir()]
    for s in splits:
        for modality in ("rgb", "depth"):
            if not (root / modality / s).is_dir():
                raise DataError(root / modality / s, "folder not found (expected ROOT/{rgb,depth}/SPLIT/<city>/)")
    if not splits:
        raise DataError(root / "rgb", f"has none of the split folders {', '.join(SPLITS)}")
    sequences = []
    for s in splits:
        rgb, depth = _index(root / "rgb" / s), _index(root / "depth" / s)
        keys = sorted(rgb.keys() & depth.keys())
        # a run of consecutive frame numbers within one (city, seq) keeps (city, seq, frame - position) constant
        for _, run in itertools.groupby(enumerate(keys), key=lambda ik: (ik[1][0], ik[1][1], ik[1][2] - ik[0])):
            run = [key for _, key in run]
            city, seq, first = run[0]
            sequences.append(FileSequence(f"{city}_{seq}_{first:06d}", tuple(rgb[k] for k in run),
                                          tuple(depth[k] for k in run), convert.read_file))
    if not sequences:
        raise DataError(root, f"no RGB/disparity pairs named <city>_<seq>_<frame>*.png in split(s) {', '.join(splits)}")
    return sequences
