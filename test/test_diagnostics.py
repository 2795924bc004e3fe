"""Input diagnostics without rclpy: transport-loss estimate from stamp gaps, and which verdict an input gets."""
from collections import Counter

import numpy as np
import pytest

from syncvp_ros.diagnostics import OK, WARN, InputStats, LossEstimator, input_status

MS = 1_000_000
OUTAGE = 500 * MS


def feed(estimator, stamps, outage=OUTAGE):
    for t in stamps:
        estimator.observe(t, outage)


@pytest.mark.parametrize("loss,period_ms", [(0.25, 100), (0.4, 33), (0.72, 50)])
def test_loss_estimate_matches_true_loss(loss, period_ms):
    stamps = [k * period_ms * MS for k in range(1, 200)]
    lost = np.random.default_rng(3).random(len(stamps)) < loss
    lost[:2] = False  # the stream starts with a consecutive pair
    kept = [t for t, gone in zip(stamps, lost) if not gone]
    estimator = LossEstimator(window_ns=100_000 * MS)
    feed(estimator, kept, outage=100 * period_ms * MS)  # (at 72 % loss, 10 frames in a row go missing)
    true_lost = int(lost[:stamps.index(kept[-1]) + 1].sum())  # frames lost after the last one arrived are unseen
    arrived, recent = estimator.recent(kept[-1])
    assert arrived == len(kept) and recent == estimator.lost_total == true_lost


def test_every_other_frame_lost_from_the_start_looks_like_half_the_rate():
    estimator = LossEstimator()
    feed(estimator, [k * 200 * MS for k in range(20)])
    assert estimator.lost_total == 0
    feed(estimator, [3900 * MS, 4000 * MS])  # one consecutive pair reveals the real period
    assert estimator.recent(4000 * MS)[1] == 19  # the whole window: one missing frame per 200 ms gap


def test_no_loss_reported_for_a_complete_jittery_stream_nor_for_an_outage():
    estimator = LossEstimator()
    jitter = [0, 3, -2, 4, -4, 1]
    feed(estimator, [k * 100 * MS + jitter[k % 6] * MS for k in range(40)])
    feed(estimator, [k * 100 * MS for k in range(60, 80)])  # 2 s silent: stale, not lost
    assert estimator.recent(79 * 100 * MS)[1] == 0 and estimator.lost_total == 0
    feed(estimator, [79 * 100 * MS, 78 * 100 * MS])  # duplicates and out-of-order stamps say nothing
    assert estimator.lost_total == 0
    feed(estimator, [81 * 100 * MS])  # the period survives the outage
    assert estimator.lost_total == 1


def stats(**changes):
    base = dict(modality="depth", rate_hz=10.0, age_s=0.05, accepted=10, buffered=8, fresh=True, usable=True)
    return InputStats(**{**base, **changes})


def test_bad_messages_stay_visible_when_the_stream_goes_stale_or_never_starts():
    reason = "depth 80x60 and rgb 128x128 differ in aspect ratio"
    for extra, state in (({"age_s": 5.35, "fresh": False}, "stale (5.35 s"), ({"age_s": None}, "nothing accepted")):
        status = input_status("n", stats(rejected=Counter(size_mismatch=50), rejected_since_last=10,
                                         last_reject_reason=reason, **extra), "cpu")
        assert status.level == WARN and reason in status.message and state in status.message
        assert {kv.key: kv.value for kv in status.values}["last rejection"] == reason


def test_waiting_for_clock_loss_and_ok_verdicts():
    status = input_status("n", stats(age_s=None, before_clock=4, before_clock_since_last=4), "cpu")
    assert status.level == WARN and "waiting for /clock" in status.message
    assert {kv.key: kv.value for kv in status.values}["ignored before /clock"] == "4"
    status = input_status("n", stats(arrived_recent=30, lost_recent=10), "cpu")
    assert status.level == WARN and "25 % of frames lost" in status.message
    assert input_status("n", stats(arrived_recent=100, lost_recent=2), "cpu").level == OK
