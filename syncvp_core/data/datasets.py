"""`open_dataset(spec, ...)`: every data source as a `ClipDataset`.

Specs are `KIND:PATH` with optional `?key=value&key=value` options (docs/data.md lists them):
    synthetic:DIR                                  written by `syncvp-data synth`
    cityscapes:DIR?fx=2262.52&baseline=0.209313&scale8=1
    folder:DIR?depth_scale=0.001
    rosbag:PATH?rgb=/camera/image&depth=/camera/depth&slop=0.02
Every kind takes `skip_bad=1` to go on past unreadable files (each logged once) instead of raising DataError.
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from .clips import ClipDataset
from .errors import DataError
from .synthetic.files import synthetic_sequences

KINDS = ("synthetic", "cityscapes", "folder", "rosbag")


class _Options:
    """The `?key=value` options of one spec, typed on access; leftovers are reported as unknown."""

    def __init__(self, spec: str, query: str):
        self.spec = spec
        try:
            self.values = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=True)) if query else {}
        except ValueError:
            raise ValueError(f"dataset spec {spec!r}: options must look like ?key=value&key=value") from None
        self.used: set[str] = set()

    def text(self, key: str, default: str | None = None) -> str | None:
        self.used.add(key)
        return self.values.get(key, default)

    def number(self, key: str, default: float) -> float:
        raw = self.text(key)
        try:
            value = default if raw is None else float(raw)
        except ValueError:
            raise ValueError(f"dataset spec {self.spec!r}: option {key}={raw} is not a number") from None
        if not value > 0:
            raise ValueError(f"dataset spec {self.spec!r}: option {key} must be > 0")
        return value

    def flag(self, key: str) -> bool:
        raw = (self.text(key) or "0").lower()
        if raw not in ("0", "1", "true", "false", "yes", "no"):
            raise ValueError(f"dataset spec {self.spec!r}: option {key} takes 1/0, true/false or yes/no")
        return raw in ("1", "true", "yes")

    def check_all_used(self) -> None:
        if unknown := sorted(set(self.values) - self.used):
            raise ValueError(f"dataset spec {self.spec!r}: unknown option(s) {', '.join(unknown)}; "
                             f"this kind takes {', '.join(sorted(self.used))}")


def open_dataset(spec: str, clip_length: int, stride: int = 1, size: int = 64, split: str | None = None,
                 ) -> ClipDataset:
    """The clips of the data described by `spec` (see the module docstring); split None means all the data.

    A malformed spec raises ValueError; a missing or corrupt file raises DataError (a ValueError) naming it.
    """
    kind, sep, rest = spec.partition(":")
    path_text, _, query = rest.partition("?")
    if not sep or kind not in KINDS or not path_text:
        raise ValueError(f"dataset spec {spec!r}: expected KIND:PATH[?key=value&...] with KIND one of "
                         f"{', '.join(KINDS)}")
    path = Path(path_text).expanduser()
    options = _Options(spec, query)
    skip_bad = options.flag("skip_bad")
    if not path.exists():
        raise DataError(path, "not found")
    if kind == "synthetic":
        options.check_all_used()
        sequences = synthetic_sequences(path, split)
    elif kind == "cityscapes":
        from .cityscapes import DisparityToDepth, cityscapes_sequences
        default = DisparityToDepth()
        convert = DisparityToDepth(fx=options.number("fx", default.fx), baseline=options.number("baseline",
                                   default.baseline), scale8=options.number("scale8", default.scale8))
        options.check_all_used()
        sequences = cityscapes_sequences(path, split, convert)
    elif kind == "folder":
        from .folder import folder_sequences
        depth_scale = options.number("depth_scale", 0.001)
        options.check_all_used()
        sequences = folder_sequences(path, split, depth_scale, skip_bad)
    else:
        from .rosbag import rosbag_sequence
        if split is not None:
            raise ValueError(f"dataset spec {spec!r}: a rosbag is one recording without splits; pass split=None")
        rgb_topic, depth_topic = options.text("rgb"), options.text("depth")
        if not rgb_topic or not depth_topic:
            raise ValueError(f"dataset spec {spec!r}: rosbag needs ?rgb=/image/topic&depth=/depth/topic")
        slop, depth_scale = options.number("slop", 0.02), options.number("depth_scale", 0.001)
        options.check_all_used()
        sequences = [rosbag_sequence(path, rgb_topic, depth_topic, slop, depth_scale, size, skip_bad)]
    return ClipDataset(sequences, clip_length, stride, size, skip_bad)


def rosbag_spec(path, rgb_topic: str, depth_topic: str, slop: float) -> str:
    """The `rosbag:` spec `open_dataset` reads for a recording's RGB and depth topics (slop in seconds)."""
    return f"rosbag:{path}?" + urlencode({"rgb": rgb_topic, "depth": depth_topic, "slop": slop}, safe="/")
