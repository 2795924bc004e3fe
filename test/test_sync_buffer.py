"""Ring buffers, pairing within sync_slop, staleness on the node clock, guidance-mode selection, sensor recovery,
and clock-jump reset. Synthetic stamps, no rclpy."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncvp_ros.handover import LatestSlot
from syncvp_ros.sync_buffer import DEPTH, RGB, Frame, ConditioningMode, Rejected, SyncBuffer, SyncConfig

MS = 1_000_000
S = 1000 * MS
T0 = 100 * S
RGB_IMG = np.zeros((96, 128, 3), np.uint8)
DEPTH_IMG = np.ones((96, 128), np.float32)


def make(slop_ms=20, stale_ms=500, capacity=8, cond=2):
    return SyncBuffer(SyncConfig(cond_frames=cond, capacity=capacity, sync_slop_ns=slop_ms * MS,
                                 stale_timeout_ns={RGB: stale_ms * MS, DEPTH: stale_ms * MS}))


def push(buf, modality, t, now=None, frame_id=None, data=None):
    data = data if data is not None else (RGB_IMG if modality == RGB else DEPTH_IMG)
    buf.push(modality, Frame(t, frame_id or f"cam_{modality}", data), t if now is None else now)


def feed(buf, start, n, rgb=True, depth=True, depth_lag=3 * MS, period=100 * MS):
    """n ticks of 10 Hz input (depth `depth_lag` behind RGB); returns the new windows, one per tick."""
    windows = []
    for k in range(n):
        t = start + k * period
        if rgb:
            push(buf, RGB, t, now=t + depth_lag)
        if depth:
            push(buf, DEPTH, t + depth_lag, now=t + depth_lag)
        windows.append(buf.next_window(t + depth_lag))
    return windows


def test_both_fresh_pairs_the_newest_frames_within_slop():
    buf = make()
    windows = feed(buf, T0, 5)
    w = windows[-1]
    assert w.mode is ConditioningMode.RGBD
    assert [f.stamp_ns for f in w.rgb] == [T0 + 300 * MS, T0 + 400 * MS]
    assert [f.stamp_ns for f in w.depth] == [T0 + 303 * MS, T0 + 403 * MS]
    assert w.newest.stamp_ns == T0 + 403 * MS and w.newest.frame_id == "cam_depth"
    assert w.frame_period_ns == 100 * MS


def test_one_window_per_new_pair_and_rgb_wins_a_stamp_tie():
    buf = make()
    for k in range(2):
        push(buf, RGB, T0 + k * 100 * MS)
        push(buf, DEPTH, T0 + k * 100 * MS)
    w = buf.next_window(T0 + 100 * MS)
    assert w.mode is ConditioningMode.RGBD and w.newest.frame_id == "cam_rgb"
    assert buf.next_window(T0 + 100 * MS) is None  # nothing new
    push(buf, RGB, T0 + 200 * MS)  # RGB ahead of its depth: the newest pair is unchanged, wait
    assert buf.next_window(T0 + 200 * MS) is None
    push(buf, DEPTH, T0 + 200 * MS)
    assert buf.next_window(T0 + 200 * MS).newest.stamp_ns == T0 + 200 * MS


def test_pairs_outside_slop_give_no_rgbd_window():
    buf = make(slop_ms=20)
    feed(buf, T0, 4, depth_lag=50 * MS)
    sel = buf.select(T0 + 400 * MS)
    assert sel.mode is ConditioningMode.RGBD and sel.window is None and "sync_slop" in sel.reason


def test_pairing_skips_an_unmatched_frame():
    buf = make(slop_ms=20)
    for k in range(4):
        push(buf, RGB, T0 + k * 100 * MS)
        if k != 2:  # depth frame 2 lost
            push(buf, DEPTH, T0 + k * 100 * MS + 5 * MS)
    w = buf.select(T0 + 310 * MS).window
    assert [f.stamp_ns for f in w.rgb] == [T0 + 100 * MS, T0 + 300 * MS]
    assert [f.stamp_ns - r.stamp_ns for f, r in zip(w.depth, w.rgb)] == [5 * MS, 5 * MS]


def test_depth_stale_switches_to_rgb_within_timeout_plus_one_frame_and_recovers():
    buf = make(stale_ms=500)
    feed(buf, T0, 5)
    last_depth = T0 + 403 * MS
    modes = {}
    for k in range(5, 15):  # depth stops
        t = T0 + k * 100 * MS
        push(buf, RGB, t)
        w = buf.next_window(t)
        modes[t] = w.mode if w else None
    first_rgb = min(t for t, m in modes.items() if m is ConditioningMode.RGB)
    assert first_rgb - last_depth <= 500 * MS + 100 * MS
    assert all(m is None for t, m in modes.items() if t < first_rgb)  # waiting for depth, not guessing
    # depth resumes: the first frame alone is not enough (its old frames were dropped after the gap), and while
    # fresh depth fills up, no RGB-only window is spent on it
    t = T0 + 1500 * MS
    push(buf, RGB, t)
    push(buf, DEPTH, t)
    assert buf.next_window(t) is None and buf.count(DEPTH) == 1
    assert "waiting for 2 depth" in buf.select(t).reason
    t += 100 * MS
    push(buf, RGB, t)
    push(buf, DEPTH, t)
    w = buf.next_window(t)
    assert w.mode is ConditioningMode.RGBD and [f.stamp_ns for f in w.depth] == [t - 100 * MS, t]


def test_rgb_stale_gives_depth_only_and_both_stale_gives_nothing():
    buf = make(stale_ms=500)
    feed(buf, T0, 3)
    windows = feed(buf, T0 + 300 * MS, 8, rgb=False)
    assert windows[-1].mode is ConditioningMode.DEPTH and windows[-1].rgb == ()
    assert windows[-1].newest.frame_id == "cam_depth"
    now = T0 + 3 * S
    sel = buf.select(now)
    assert sel.mode is None and sel.window is None and sel.both_stale
    assert buf.next_window(now) is None


def test_at_start_a_fresh_modality_short_of_frames_is_waited_for_not_skipped():
    buf = make()
    push(buf, RGB, T0)
    push(buf, DEPTH, T0 + 3 * MS, now=T0 + 3 * MS)
    push(buf, RGB, T0 + 100 * MS)  # RGB has its 2 frames, fresh depth has 1: no RGB-only prediction
    sel = buf.select(T0 + 100 * MS)
    assert sel.window is None and sel.mode is ConditioningMode.RGBD and "depth" in sel.reason
    push(buf, DEPTH, T0 + 103 * MS, now=T0 + 103 * MS)
    assert buf.next_window(T0 + 103 * MS).mode is ConditioningMode.RGBD
    # a modality that is really stale is not waited for
    late = T0 + 103 * MS + 600 * MS
    push(buf, RGB, late)
    push(buf, RGB, late + 100 * MS)
    assert buf.next_window(late + 100 * MS).mode is ConditioningMode.RGB


def test_waiting_for_conditioning_frames_is_not_both_stale():
    buf = make()
    push(buf, RGB, T0)
    sel = buf.select(T0)
    assert sel.window is None and not sel.both_stale and "waiting" in sel.reason


def test_stale_timeout_is_per_modality():
    buf = SyncBuffer(SyncConfig(2, 8, 20 * MS, {RGB: 200 * MS, DEPTH: 2 * S}))
    feed(buf, T0, 3)
    now = T0 + 1 * S
    assert not buf.fresh(RGB, now) and buf.fresh(DEPTH, now)
    assert buf.select(now).mode is ConditioningMode.DEPTH


def test_out_of_order_and_future_stamps_are_rejected_without_touching_the_buffer():
    buf = make()
    feed(buf, T0, 3)
    before = buf.count(RGB)
    for stamp in (T0 + 200 * MS, T0 + 100 * MS, T0 + 10 * S):  # duplicate, older, far in the future
        with pytest.raises(Rejected) as err:
            push(buf, RGB, stamp, now=T0 + 250 * MS)
        assert err.value.kind == "out_of_order"
    assert buf.count(RGB) == before


def test_aspect_mismatch_against_the_other_modality_is_rejected():
    buf = make()
    push(buf, RGB, T0)
    with pytest.raises(Rejected) as err:
        push(buf, DEPTH, T0, data=np.ones((96, 96), np.float32))
    assert err.value.kind == "size_mismatch" and "aspect" in str(err.value)
    push(buf, DEPTH, T0, data=np.ones((48, 64), np.float32))  # same aspect, half resolution: fine
    assert buf.count(DEPTH) == 1


def test_backward_clock_jump_clears_everything_once():
    buf = make()
    feed(buf, T0, 4)
    assert buf.observe_clock(T0 + 400 * MS) is False
    assert buf.observe_clock(T0 + 500 * MS) is False
    assert buf.observe_clock(T0 - 50 * S) is True
    assert len(buf) == 0 and buf.clock_jumps == 1
    assert buf.observe_clock(T0 - 50 * S + MS) is False and buf.clock_jumps == 1
    windows = feed(buf, T0 - 50 * S, 2)  # the old, newer stamps are gone: the new time line is accepted
    assert windows[-1].mode is ConditioningMode.RGBD


def test_ring_buffers_are_bounded():
    buf = make(capacity=4)
    feed(buf, T0, 50)
    assert buf.count(RGB) == buf.count(DEPTH) == 4


def test_reconfigure_keeps_frames_and_applies_new_slop():
    buf = make(slop_ms=1)
    feed(buf, T0, 3, depth_lag=5 * MS)
    assert buf.select(T0 + 205 * MS).window is None
    buf.reconfigure(SyncConfig(2, 8, 10 * MS, {RGB: 500 * MS, DEPTH: 500 * MS}))
    assert buf.select(T0 + 205 * MS).window.mode is ConditioningMode.RGBD


def test_config_rejects_a_buffer_shorter_than_the_conditioning():
    with pytest.raises(ValueError, match="capacity"):
        SyncConfig(cond_frames=2, capacity=1, sync_slop_ns=0, stale_timeout_ns={RGB: 1, DEPTH: 1})


@given(st.lists(st.tuples(st.sampled_from([RGB, DEPTH]), st.integers(-300, 300), st.integers(0, 2000)),
                max_size=60))
@settings(max_examples=200, deadline=None)
def test_buffer_invariants_under_any_arrival_sequence(events):
    """Whatever arrives (jitter, reordering, gaps): stamps stay strictly increasing per modality, the buffer
    stays bounded, and every window is usable: right sizes, pairs within slop, all frames fresh."""
    buf = make(slop_ms=20, stale_ms=500, capacity=5)
    now = T0
    for modality, jitter_ms, advance_ms in events:
        now += advance_ms * MS // 10
        buf.observe_clock(now)
        try:
            push(buf, modality, now + jitter_ms * MS, now=now)
        except Rejected as e:
            assert e.kind == "out_of_order"
        for m in (RGB, DEPTH):
            stamps = [f.stamp_ns for f in buf._rings[m]]
            assert stamps == sorted(set(stamps)) and len(stamps) <= 5
        w = buf.next_window(now)
        if w is None:
            continue
        assert len(w.rgb or w.depth) == 2
        for frames, m in ((w.rgb, RGB), (w.depth, DEPTH)):
            if frames:
                assert now - frames[-1].stamp_ns <= 500 * MS
        if w.mode is ConditioningMode.RGBD:
            assert all(abs(r.stamp_ns - d.stamp_ns) <= 20 * MS for r, d in zip(w.rgb, w.depth))


# ---- diagnostics built from the buffer state (syncvp_ros.diagnostics, rclpy-free) ---------------------------
def _levels(buf, monitors, now, counters=None):
    from builtin_interfaces.msg import Time

    from syncvp_ros.diagnostics import PredictorStats, diagnostic_array

    stats = PredictorStats(buf.select(now), "rgbd", counters or LatestSlot().counters(), 0.2, 0.002, 0.3, "cpu",
                           "tiny-x", buf.clock_jumps)
    array = diagnostic_array("ns/node", Time(), [monitors[m].snapshot(buf, now) for m in (RGB, DEPTH)], stats, "cpu")
    return {s.name.removeprefix("ns/node: "): (ord(s.level), s.message, {kv.key: kv.value for kv in s.values})
            for s in array.status}


def test_diagnostic_levels_follow_the_guidance_mode():
    from syncvp_ros.diagnostics import InputMonitor

    buf, monitors = make(), {m: InputMonitor(m) for m in (RGB, DEPTH)}
    status = _levels(buf, monitors, T0)
    assert status["prediction"][0] == 2 and "no RGB or depth frame received" in status["prediction"][1]
    for k in range(5):
        t = T0 + k * 100 * MS
        for m in (RGB, DEPTH):
            push(buf, m, t)
            monitors[m].accept(t)
    now = T0 + 400 * MS
    status = _levels(buf, monitors, now)
    assert [status[n][0] for n in ("rgb input", "depth input", "prediction")] == [0, 0, 0]
    assert float(status["rgb input"][2]["rate [Hz]"]) == pytest.approx(10.0)
    assert status["prediction"][2]["guidance mode"] == "rgbd" and status["prediction"][2]["device"] == "cpu"
    now = T0 + 1000 * MS
    for k in range(5, 11):  # depth stopped at T0 + 400 ms
        push(buf, RGB, T0 + k * 100 * MS)
    status = _levels(buf, monitors, now)
    assert status["depth input"][0] == 1 and "stale" in status["depth input"][1]
    assert status["prediction"][0] == 1 and status["prediction"][2]["guidance mode"] == "rgb"
    status = _levels(buf, monitors, T0 + 5 * S)
    assert status["prediction"][0] == 2 and "both stale" in status["prediction"][1]


def test_rejections_are_counted_per_kind_and_warn_once_per_report():
    from syncvp_ros.diagnostics import InputMonitor

    buf, monitors = make(), {m: InputMonitor(m) for m in (RGB, DEPTH)}
    feed(buf, T0, 3)
    for m in (RGB, DEPTH):
        monitors[m].accept(T0)
    monitors[DEPTH].reject("invalid_depth", "no valid depth pixel")
    monitors[DEPTH].reject("invalid_depth", "no valid depth pixel")
    monitors[DEPTH].reject("encoding", "depth input must be 32FC1 (metres) or 16UC1, got 'rgb8'")
    now = T0 + 210 * MS
    level, message, values = _levels(buf, monitors, now)["depth input"]
    assert level == 1 and message.startswith("3 bad message(s)") and "rgb8" in message
    assert (values["rejected"], values["rejected.invalid_depth"], values["rejected.encoding"]) == ("3", "2", "1")
    level, _, values = _levels(buf, monitors, now)["depth input"]  # next report: counts stay, the WARN goes
    assert level == 0 and values["rejected.invalid_depth"] == "2"


def test_counters_reach_the_prediction_status():
    from syncvp_ros.diagnostics import InputMonitor

    slot = LatestSlot()
    for item in range(3):
        slot.post(item)
    slot.take(0)
    values = _levels(make(), {m: InputMonitor(m) for m in (RGB, DEPTH)}, T0, slot.counters())["prediction"][2]
    assert {k: values[k] for k in ("received", "predicted", "dropped", "failed", "pending")} == \
        {"received": "3", "predicted": "0", "dropped": "2", "failed": "0", "pending": "1"}
    assert values["inference latency [s]"] == "0.2000" and values["model"] == "tiny-x"


def test_rate_meter_and_throttle():
    from syncvp_ros.diagnostics import RateMeter, Throttle

    meter = RateMeter(window_ns=2 * S)
    for k in range(30):
        meter.tick(T0 + k * 50 * MS)  # 20 Hz
    assert meter.rate_hz(T0 + 30 * 50 * MS) == pytest.approx(20.0)
    assert meter.rate_hz(T0 + 100 * S) == 0.0  # nothing recent
    throttle = Throttle(5.0)
    assert [throttle.allow("a", t) for t in (0.0, 1.0, 4.9, 5.0)] == [True, False, False, True]
    assert throttle.allow("b", 1.0)
