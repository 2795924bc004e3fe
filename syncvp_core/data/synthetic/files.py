"""The on-disk synthetic format (docs/data.md): `seq_NNNNN.npz` per sequence and `meta.json`, written and read."""
from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import json
import math
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DataError
from .sequence import SensorModel, SyntheticSequence, generate_sequence

FORMAT = "syncvp-synthetic"
FORMAT_VERSION = 1


# ------------------------------------------------------------------------------------------------------ writing

def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, then rename, so readers never see half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sequence_file(index: int) -> str:
    return f"seq_{index:05d}.npz"


def write_sequence(path: Path, seq: SyntheticSequence) -> None:
    def write(tmp: Path):
        with open(tmp, "wb") as f:
            np.savez_compressed(f, rgb=seq.rgb, depth=seq.depth, intrinsics=seq.scene.intrinsics,
                                ego_speed=np.float64(seq.scene.ego_speed))
    _atomic_write(path, write)


def split_names(sequences: int, val: int = 0, test: int = 0) -> dict[str, list[int]]:
    """Sequence indices per split: the last `test` are test, the `val` before them val, the rest train."""
    if sequences < 1 or val < 0 or test < 0 or val + test > sequences:
        raise ValueError("need sequences >= 1 and 0 <= val + test <= sequences")
    train = sequences - val - test
    return {"train": list(range(train)), "val": list(range(train, train + val)),
            "test": list(range(train + val, sequences))}


def _write_one(out: Path, index: int, seed: int, frames: int, size: int, fps: float, sensor: SensorModel,
               samples: int) -> tuple[str, dict]:
    seq = generate_sequence(seed, index, frames, size, fps, sensor, samples)
    write_sequence(out / sequence_file(index), seq)
    return sequence_file(index), seq.record()


def write_dataset(out: Path, sequences: int, frames: int = 30, size: int = 64, seed: int = 0, val: int = 0,
                  test: int = 0, fps: float = 17.0, sensor: SensorModel = SensorModel(), samples: int = 2,
                  workers: int = 1, overwrite: bool = False, progress: Callable[[int], None] | None = None) -> dict:
    """Generate and write a synthetic data set with `workers` processes.

    meta.json is written last, so its presence means the set is complete; with `overwrite` the old meta.json
    goes first and sequence files the new set does not list are removed at the end.
    """
    splits = split_names(sequences, val, test)
    if frames < 1 or size < 8 or fps <= 0 or samples < 1 or workers < 1:
        raise ValueError("need frames >= 1, size >= 8, fps > 0, samples >= 1 and workers >= 1")
    meta_path = out / "meta.json"
    if meta_path.exists() and not overwrite:
        raise ValueError(f"{out} already holds a data set (meta.json); choose another folder or overwrite it "
                         "(synth --overwrite)")
    out.mkdir(parents=True, exist_ok=True)
    meta_path.unlink(missing_ok=True)
    job = functools.partial(_write_one, out, seed=seed, frames=frames, size=size, fps=fps, sensor=sensor,
                            samples=samples)
    records = {}
    with concurrent.futures.ProcessPoolExecutor(workers) if workers > 1 else contextlib.nullcontext() as pool:
        for name, record in (pool.map(job, range(sequences)) if pool else map(job, range(sequences))):
            records[name] = record
            if progress:
                progress(1)
    meta = {"format": FORMAT, "version": FORMAT_VERSION, "seed": seed, "frames": frames, "size": size, "fps": fps,
            "samples_per_pixel": samples * samples, "sensor": dataclasses.asdict(sensor),
            "splits": {name: [sequence_file(i) for i in idx] for name, idx in splits.items()},
            "sequences": records}
    if math.isinf(sensor.max_range):  # an unlimited range asked for with --max-range inf
        meta["sensor"]["max_range"] = None  # JSON has no infinity
    _atomic_write(meta_path, lambda tmp: tmp.write_text(json.dumps(meta, indent=1)))
    for stale in set(p.name for p in out.glob("seq_*.npz")) - set(records):
        (out / stale).unlink()
    return meta


# ------------------------------------------------------------------------------------------------------ reading

@dataclasses.dataclass(frozen=True)
class NpzSequence:
    """One `seq_*.npz` of the synthetic format: rgb uint8 T×H×W×3, depth float T×H×W metres (NaN invalid)."""

    path: Path
    length: int

    @property
    def name(self) -> str:
        return self.path.stem

    def __len__(self) -> int:
        return self.length

    def read(self, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        try:
            # opened here, not by np.load, which leaks the handle when the zip is corrupt
            with open(self.path, "rb") as f, np.load(f, allow_pickle=False) as npz:
                rgb, depth = npz["rgb"], npz["depth"]
        except FileNotFoundError:
            raise DataError(self.path, "file not found") from None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            raise DataError(self.path, f"corrupt sequence file ({err})") from None
        if rgb.dtype != np.uint8 or rgb.ndim != 4 or rgb.shape[3] != 3 or depth.shape != rgb.shape[:3]:
            raise DataError(self.path, f"expected rgb uint8 T×H×W×3 and depth T×H×W, got {rgb.shape} {depth.shape}")
        if len(rgb) < self.length:
            raise DataError(self.path, f"has {len(rgb)} frames, meta.json says {self.length}")
        return rgb[indices], depth[indices].astype(np.float32)


def synthetic_sequences(root: Path, split: str | None) -> list[NpzSequence]:
    """The sequences of a `syncvp-data synth` folder; split None means all of them."""
    meta_path = root / "meta.json"
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise DataError(meta_path, "not found; is this a folder written by `syncvp-data synth`?") from None
    except (OSError, ValueError) as err:
        raise DataError(meta_path, f"cannot parse ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError(meta_path, f"not a {FORMAT} meta.json")
    splits = meta["splits"]
    if split is None:
        names = [name for files in splits.values() for name in files]
    elif splits.get(split):
        names = splits[split]
    else:
        nonempty = sorted(name for name, files in splits.items() if files)
        raise ValueError(f"{root}: split {split!r} has no sequences; use one of {', '.join(nonempty)} or None")
    return [NpzSequence(root / name, int(meta["frames"])) for name in sorted(names)]
