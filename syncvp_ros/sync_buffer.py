"""Ring buffers per modality, RGB-D pairing, staleness and guidance-mode selection.

No rclpy here: times are integer nanoseconds on the node clock (sim time during bag replay), passed in by the
caller, so every rule below is unit-tested with synthetic stamps.

Rules (docs/node.md):
- A frame is kept only if its stamp is newer than the newest of its modality and not ahead of the clock by
  more than the modality's stale timeout; otherwise it is rejected as `out_of_order`. A frame whose aspect
  ratio differs from the fresh other modality's is rejected as `size_mismatch` (its crop would not match).
- A modality is *fresh* while `now - newest stamp <= stale_timeout`, and *usable* when it is fresh and holds
  `cond_frames` frames. A gap longer than the stale timeout empties its buffer first, so a recovered sensor is
  used again only once it has delivered the conditioning frames anew.
- Guidance mode: both usable -> rgbd (newest `cond_frames` RGB/depth pairs within `sync_slop`); only RGB -> rgb;
  only depth -> depth; neither fresh -> no prediction (an error). A fresh modality that does not yet hold
  `cond_frames` frames is waited for (no single-modality window meanwhile).
- The node clock going backwards (bag loop) empties every buffer.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from syncvp_core.modalities import MODALITIES, ConditioningMode, Modality

RGB, DEPTH = Modality.RGB.value, Modality.DEPTH.value
# RGB and depth frames whose aspect ratios differ by more than this do not show the same field of view.
ASPECT_TOLERANCE = 0.01


class Rejected(ValueError):
    """A frame the buffer refuses; `kind` is its counter, as syncvp_core.image_msg.BadImage."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind


@dataclass(frozen=True)
class Frame:
    stamp_ns: int
    frame_id: str
    data: np.ndarray


@dataclass(frozen=True)
class Window:
    """The conditioning frames of one prediction, oldest first (empty tuple for a modality not used)."""

    mode: ConditioningMode
    rgb: tuple[Frame, ...]
    depth: tuple[Frame, ...]

    @property
    def newest(self) -> Frame:
        """The newest conditioning frame (RGB wins a tie): its stamp and frame_id head the prediction."""
        return max(self.rgb[-1:] + self.depth[-1:], key=lambda f: f.stamp_ns)

    @property
    def key(self) -> tuple:
        return self.mode, tuple(f.stamp_ns for f in self.rgb), tuple(f.stamp_ns for f in self.depth)

    @property
    def frame_period_ns(self) -> int:
        """Mean spacing of the conditioning stamps: the spacing of the predicted frames too."""
        frames = self.rgb or self.depth
        if len(frames) < 2:
            return 0
        return (frames[-1].stamp_ns - frames[0].stamp_ns) // (len(frames) - 1)


@dataclass(frozen=True)
class SyncConfig:
    cond_frames: int
    capacity: int
    sync_slop_ns: int
    stale_timeout_ns: dict[str, int]

    def __post_init__(self):
        if self.capacity < self.cond_frames:
            raise ValueError(f"buffer capacity {self.capacity} < conditioning frames {self.cond_frames}")


@dataclass(frozen=True)
class Selection:
    """What the buffers allow right now: a window (or None) and, without one, why."""

    mode: ConditioningMode | None
    window: Window | None
    reason: str
    both_stale: bool = False


class SyncBuffer:
    """Per-modality ring buffers keyed by header stamp. Not thread-safe: use it from the executor thread only."""

    def __init__(self, config: SyncConfig):
        self.config = config
        self._rings: dict[str, deque[Frame]] = {m: deque(maxlen=config.capacity) for m in MODALITIES}
        self._last_now: int | None = None
        self._last_key: tuple | None = None
        self.clock_jumps = 0

    def reconfigure(self, config: SyncConfig) -> None:
        """New slop / timeouts / capacity; frames already buffered are kept (newest ones if capacity shrinks)."""
        self.config = config
        self._rings = {m: deque(ring, maxlen=config.capacity) for m, ring in self._rings.items()}

    def observe_clock(self, now_ns: int) -> bool:
        """Note the node clock; True (buffers emptied) when it went backwards since the last call."""
        jumped = self._last_now is not None and now_ns < self._last_now
        self._last_now = now_ns
        if jumped:
            self.clear()
            self.clock_jumps += 1
        return jumped

    def clear(self) -> None:
        for ring in self._rings.values():
            ring.clear()
        self._last_key = None

    def newest(self, modality: str) -> Frame | None:
        ring = self._rings[modality]
        return ring[-1] if ring else None

    def __len__(self) -> int:
        return sum(len(r) for r in self._rings.values())

    def count(self, modality: str) -> int:
        return len(self._rings[modality])

    def age_ns(self, modality: str, now_ns: int) -> int | None:
        newest = self.newest(modality)
        return None if newest is None else now_ns - newest.stamp_ns

    def fresh(self, modality: str, now_ns: int) -> bool:
        age = self.age_ns(modality, now_ns)
        return age is not None and age <= self.config.stale_timeout_ns[modality]

    def usable(self, modality: str, now_ns: int) -> bool:
        return self.fresh(modality, now_ns) and self.count(modality) >= self.config.cond_frames

    def push(self, modality: str, frame: Frame, now_ns: int) -> None:
        """Store a frame, or raise `Rejected` (out_of_order, size_mismatch) without touching the buffers."""
        timeout = self.config.stale_timeout_ns[modality]
        if frame.stamp_ns > now_ns + timeout:
            raise Rejected("out_of_order", f"stamp {frame.stamp_ns * 1e-9:.3f} s is ahead of the node clock "
                                           f"({now_ns * 1e-9:.3f} s) by more than the stale timeout")
        ring = self._rings[modality]
        if ring and frame.stamp_ns <= ring[-1].stamp_ns:
            raise Rejected("out_of_order", f"stamp {frame.stamp_ns * 1e-9:.3f} s is not newer than the last "
                                           f"{modality} frame ({ring[-1].stamp_ns * 1e-9:.3f} s)")
        other = RGB if modality == DEPTH else DEPTH
        if self.fresh(other, now_ns):
            (h, w), (oh, ow) = frame.data.shape[:2], self.newest(other).data.shape[:2]
            if abs((w * oh) / (h * ow) - 1.0) > ASPECT_TOLERANCE:
                raise Rejected("size_mismatch", f"{modality} {w}x{h} and {other} {ow}x{oh} differ in aspect ratio")
        if ring and frame.stamp_ns - ring[-1].stamp_ns > timeout:
            ring.clear()  # the sensor was stale: condition only on frames from after its recovery
        ring.append(frame)

    def select(self, now_ns: int) -> Selection:
        """The guidance mode and window the buffers allow at `now_ns` (no de-duplication)."""
        n = self.config.cond_frames
        rgb_ok, depth_ok = self.usable(RGB, now_ns), self.usable(DEPTH, now_ns)
        filling = [m for m in MODALITIES if self.fresh(m, now_ns) and not self.usable(m, now_ns)]
        if filling and (rgb_ok or depth_ok):
            # A fresh modality short of frames (start-up, recovery) is about to be usable: predicting without it
            # would spend a whole inference on the weaker single-modality guidance.
            return Selection(ConditioningMode.RGBD, None, f"waiting for {n} {filling[0]} conditioning frames")
        if rgb_ok and depth_ok:
            pairs = self._pairs()
            if len(pairs) < n:
                return Selection(ConditioningMode.RGBD, None, f"fewer than {n} RGB/depth pairs within sync_slop")
            pairs = pairs[-n:]
            return Selection(ConditioningMode.RGBD, Window(ConditioningMode.RGBD, tuple(r for r, _ in pairs),
                                                       tuple(d for _, d in pairs)), "")
        if rgb_ok:
            return Selection(ConditioningMode.RGB, Window(ConditioningMode.RGB, tuple(self._rings[RGB])[-n:], ()), "")
        if depth_ok:
            return Selection(ConditioningMode.DEPTH, Window(ConditioningMode.DEPTH, (), tuple(self._rings[DEPTH])[-n:]), "")
        if not any(self.fresh(m, now_ns) for m in MODALITIES):
            reason = "RGB and depth are both stale" if len(self) else "no RGB or depth frame received"
            return Selection(None, None, reason, both_stale=True)
        return Selection(None, None, f"waiting for {n} conditioning frames")

    def next_window(self, now_ns: int) -> Window | None:
        """A window not handed out before, or None (nothing new, or nothing usable)."""
        window = self.select(now_ns).window
        if window is None or window.key == self._last_key:
            return None
        self._last_key = window.key
        return window

    def _pairs(self) -> list[tuple[Frame, Frame]]:
        """RGB/depth pairs, oldest first: each RGB frame with the nearest unused older-side depth frame in slop."""
        slop = self.config.sync_slop_ns
        depth = list(self._rings[DEPTH])
        pairs = []
        j = len(depth)  # depth frames from index j on are taken or newer than anything still to pair
        for rgb in reversed(self._rings[RGB]):
            best = None
            for i in range(j - 1, -1, -1):
                delta = abs(depth[i].stamp_ns - rgb.stamp_ns)
                if delta <= slop and (best is None or delta < abs(depth[best].stamp_ns - rgb.stamp_ns)):
                    best = i
                if depth[i].stamp_ns < rgb.stamp_ns - slop:
                    break
            if best is not None:
                pairs.append((rgb, depth[best]))
                j = best
        return pairs[::-1]
