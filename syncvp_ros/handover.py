"""The hand-over from the executor thread to the inference thread: a one-item, latest-only slot and its counters.

Latest-only: a window that waits while inference runs is replaced by a newer one, so the node always predicts
from the newest inputs instead of working through a backlog.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class Counters:
    received: int = 0   # windows handed to the slot
    predicted: int = 0  # published
    dropped: int = 0    # superseded by a newer window (or discarded on a clock jump) before inference, or
    #                     its inference cancelled at shutdown
    failed: int = 0     # inference raised
    pending: int = 0    # waiting in the slot or being inferred


class LatestSlot:
    """A one-item, latest-only hand-over from the executor to the inference thread; keeps the counters.

    Invariant: received = predicted + dropped + failed + pending.
    """

    def __init__(self):
        self._cond = threading.Condition()
        self._item = None
        self._in_flight = 0
        self._closed = False
        self._counts = Counters()

    def post(self, item) -> None:
        with self._cond:
            self._counts.received += 1
            if self._item is not None:
                self._counts.dropped += 1
            self._item = item
            self._cond.notify()

    def discard(self) -> None:
        """Drop the waiting item (it belongs to a time line that no longer exists)."""
        with self._cond:
            if self._item is not None:
                self._counts.dropped += 1
                self._item = None

    def take(self, timeout: float | None = None):
        """The newest item (marked in flight), or None when closed or after `timeout` seconds."""
        with self._cond:
            self._cond.wait_for(lambda: self._item is not None or self._closed, timeout)
            if self._closed or self._item is None:
                return None
            item, self._item = self._item, None
            self._in_flight += 1
            return item

    def done(self, outcome: str) -> None:
        """The taken item ended as "predicted", "failed" or "dropped" (cancelled: the node is stopping)."""
        with self._cond:
            self._in_flight -= 1
            setattr(self._counts, outcome, getattr(self._counts, outcome) + 1)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def counters(self) -> Counters:
        with self._cond:
            c = self._counts
            return Counters(c.received, c.predicted, c.dropped, c.failed,
                            self._in_flight + (self._item is not None))
