"""The latest-only slot between the executor and the inference thread, with its counters (no rclpy)."""
import threading

from syncvp_ros.handover import LatestSlot


def test_latest_slot_keeps_only_the_newest_and_counts():
    slot = LatestSlot()
    for item in range(5):
        slot.post(item)
    c = slot.counters()
    assert (c.received, c.dropped, c.pending) == (5, 4, 1)
    assert slot.take(0) == 4
    slot.post(5)
    slot.discard()
    slot.done("predicted")
    slot.post(6)
    assert slot.take(0) == 6
    slot.done("failed")
    c = slot.counters()
    assert (c.received, c.predicted, c.dropped, c.failed, c.pending) == (7, 1, 5, 1, 0)
    assert slot.take(0.01) is None


def test_latest_slot_under_a_slow_consumer_keeps_the_invariant():
    slot = LatestSlot()
    taken = []

    def consumer():
        while (item := slot.take()) is not None:
            threading.Event().wait(0.002)
            taken.append(item)
            slot.done("predicted")

    worker = threading.Thread(target=consumer)
    worker.start()
    for item in range(2000):
        slot.post(item)
        c = slot.counters()
        assert c.received == c.predicted + c.dropped + c.failed + c.pending and c.pending <= 2
    while slot.counters().pending:
        threading.Event().wait(0.001)
    slot.close()
    worker.join(5)
    c = slot.counters()
    assert c.received == 2000 and c.predicted == len(taken) and c.dropped == 2000 - len(taken) and c.dropped > 0
    assert taken == sorted(taken) and taken[-1] == 1999  # latest-only, in order, and the last one is predicted
