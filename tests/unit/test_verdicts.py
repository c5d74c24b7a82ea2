"""The stall, teardown and data-race verdicts on recorded counters and reports."""

from bqlab.judge.verdicts import (
    INCONCLUSIVE,
    LEAK,
    PASS,
    STALL,
    PoolSnapshot,
    QueueSample,
    TeardownEvent,
    counter_delta,
    data_race_verdict,
    kcsan_counters,
    rx_stall_verdict,
    teardown_verdict,
)


def series(points: list[tuple], bits: int = 64, dt: float = 0.5) -> list[QueueSample]:
    """points: (guest_rx, alloc_fail, drop_no_sbq, drop_no_lbq, sbq_owned, lbq_owned)."""
    return [QueueSample.bqnic(i * dt, *p, counter_bits=bits) for i, p in enumerate(points)]


def flowing(n: int, rx0: int = 0, fail: int = 5) -> list[tuple]:
    return [(rx0 + 100 * i, fail, 0, 0, 200, 200) for i in range(n)]


def starving(n: int, rx: int, fail: int, drops0: int = 0, bq: str = "lbq") -> list[tuple]:
    if bq == "lbq":
        return [(rx, fail, 0, drops0 + 50 * i, 200, 0) for i in range(n)]
    return [(rx, fail, drops0 + 50 * i, 0, 0, 200) for i in range(n)]


def test_counter_delta_wraps() -> None:
    assert counter_delta(5, 9) == 4
    assert counter_delta(2**32 - 3, 4, bits=32) == 7
    assert counter_delta(2**64 - 1, 0) == 1


def test_recovery_within_threshold_passes() -> None:
    # pressure 0..3 s: starving; ends at 3 s; rx flows again from 4.5 s (1.5 s later)
    pts = [(0, 0, 0, 0, 200, 200)] + starving(9, rx=0, fail=7) + flowing(10, rx0=1)
    v = rx_stall_verdict({0: series(pts)}, pressure_end=3.0)
    assert v.verdict == PASS, v.reason


def test_recovery_just_under_and_just_over_the_threshold() -> None:
    def run(stall_samples: int) -> str:
        pts = starving(stall_samples, rx=0, fail=9) + flowing(10, rx0=1)
        return rx_stall_verdict({0: series(pts, dt=0.1)}, pressure_end=0.0,
                                threshold=2.0).verdict

    assert run(20) == PASS  # frozen until 1.9 s after the pressure
    assert run(23) == STALL  # frozen until 2.2 s


def test_permanent_stall_names_queue_and_buffer_queue() -> None:
    ok = series(flowing(20))
    stalled = series(flowing(4, fail=3) + starving(16, rx=300, fail=40, bq="sbq"))
    v = rx_stall_verdict({0: ok, 1: stalled}, pressure_end=2.0)
    assert v.verdict == STALL
    assert (v.queue, v.buffer_queue, v.queues) == (1, "sbq", [1])
    assert v.stalled_for > 2.0
    assert v.evidence and all("sbq_owned" in e for e in v.evidence)


def test_idle_link_is_not_a_stall() -> None:
    # no frames arrive: no drops, no rx, buffers gone; nothing is being lost
    idle = [(0, 3, 0, 0, 0, 0)] * 12
    assert rx_stall_verdict({0: series(idle)}, pressure_end=1.0).verdict != STALL


def test_device_still_owning_buffers_is_not_a_stall() -> None:
    # drops with buffers present (e.g. cq full) and rx frozen: not this bug
    pts = [(0, 3, 0, 10 * i, 5, 5) for i in range(12)]
    assert rx_stall_verdict({0: series(pts)}, pressure_end=0.0).verdict != STALL


def test_no_allocation_failure_is_inconclusive() -> None:
    v = rx_stall_verdict({0: series(flowing(12, fail=0))}, pressure_end=1.0)
    assert v.verdict == INCONCLUSIVE


def test_too_short_an_observation_is_inconclusive() -> None:
    v = rx_stall_verdict({0: series(starving(6, rx=0, fail=5))}, pressure_end=2.0)
    assert v.verdict == INCONCLUSIVE and "too soon" in v.reason


def test_wrapping_drop_counters_still_show_a_stall() -> None:
    top = 2**32 - 60
    pts = [(7, 1, 0, (top + 50 * i) % 2**32, 100, 0) for i in range(12)]
    v = rx_stall_verdict({0: series(pts, bits=32)}, pressure_end=0.0)
    assert v.verdict == STALL and v.buffer_queue == "lbq"


def pools(t: float, **inflight: int) -> PoolSnapshot:
    """pools(1.0, p3=64, d4=2): live pool 3 with 64 pages in flight, pool 4 destroyed
    (it has a detach-time) with 2."""
    out = {}
    for k, v in inflight.items():
        pool = {"id": int(k[1:]), "inflight": v}
        if k[0] == "d":
            pool["detach-time"] = 100
        out[int(k[1:])] = pool
    return PoolSnapshot(t, out)


def event(start: float, *ids: int, end: float | None = None, must_destroy: bool = False,
          sinks_closed: float | None = None) -> TeardownEvent:
    return TeardownEvent("ifdown", start, start if end is None else end,
                         {i: {"id": i, "inflight": 256} for i in ids}, must_destroy,
                         sinks_closed)


def test_pools_released_in_time_pass() -> None:
    snaps = [pools(0.0, p1=256, p2=256), pools(1.0, d1=10), pools(2.0), pools(4.0)]
    v = teardown_verdict([event(0.5, 1, 2)], snaps)
    assert v.verdict == PASS and v.checked == 2


def test_destroyed_pool_with_nothing_in_flight_is_released() -> None:
    # detached with inflight 0: page_pool's release work frees it within a second
    snaps = [pools(1.0, d1=0), pools(4.0, d1=0)]
    assert teardown_verdict([event(0.5, 1)], snaps).verdict == PASS


def test_pool_left_with_pages_in_flight_is_a_leak() -> None:
    snaps = [pools(1.0, d7=256, p9=256), pools(4.0, d7=256, p9=256)]
    v = teardown_verdict([event(0.5, 7, 8)], snaps)
    assert v.verdict == LEAK
    [leak] = v.leaked
    assert leak["id"] == 7 and leak["inflight"] == 256 and leak["drained_after"] is None
    assert leak["event"] == "ifdown" and leak["destroyed"]
    assert [h["inflight"] for h in leak["history"]] == [256, 256]
    assert "pool 7" in v.reason


def test_pool_that_drains_late_is_a_leak() -> None:
    snaps = [pools(2.0, d3=64), pools(3.9, d3=2), pools(4.5, d3=2), pools(6.0)]
    v = teardown_verdict([event(1.0, 3)], snaps, grace=3.0)
    assert v.verdict == LEAK and v.leaked[0]["drained_after"] == 5.0
    assert teardown_verdict([event(1.0, 3)], snaps, grace=4.9).verdict == PASS


def test_pages_in_unread_sinks_count_from_their_close() -> None:
    # the pool keeps pages while the sockets hold them; closed at 10 s, drained at 11 s
    snaps = [pools(t, d5=300) for t in (2.0, 5.0, 9.0)] + [pools(11.0), pools(14.0)]
    assert teardown_verdict([event(1.0, 5, sinks_closed=10.0)], snaps).verdict == PASS
    assert teardown_verdict([event(1.0, 5)], snaps).verdict == LEAK


def test_pool_kept_by_the_driver_is_not_a_leak_unless_it_had_to_go() -> None:
    # a driver that keeps its rings across an XDP swap keeps its pool (no detach-time)
    snaps = [pools(t, p2=256) for t in (1.0, 3.0, 5.0)]
    assert teardown_verdict([event(0.5, 2)], snaps).verdict == INCONCLUSIVE  # judged none
    v = teardown_verdict([event(0.5, 2, must_destroy=True)], snaps)  # ifdown: must go
    assert v.verdict == LEAK and not v.leaked[0]["destroyed"]


def test_a_pool_is_judged_once() -> None:
    snaps = [pools(t, d4=100) for t in (1.0, 4.0, 6.0, 9.0)]
    v = teardown_verdict([event(0.5, 4), event(5.0, 4)], snaps)
    assert v.verdict == LEAK and len(v.leaked) == 1 and v.checked == 1


def test_no_sample_after_the_grace_period_is_inconclusive() -> None:
    v = teardown_verdict([event(0.5, 1)], [pools(1.0, d1=5), pools(2.0, d1=5)])
    assert v.verdict == INCONCLUSIVE and "no sample" in v.reason


def test_every_stalled_queue_is_named() -> None:
    a = series(starving(20, rx=10, fail=4, bq="sbq"))
    b = series(flowing(3) + starving(17, rx=300, fail=4, bq="lbq"))
    v = rx_stall_verdict({0: a, 1: b}, pressure_end=1.0)
    assert v.verdict == STALL and v.queues == [0, 1] and v.queue == 0
    assert "queue 1 (lbq" in v.reason


def test_jumbo_frames_starve_a_queue_that_still_owns_some_lbq_buffers() -> None:
    # 9000-byte frames need 3 lbq buffers; the driver stopped refilling with 2 posted:
    # every frame is dropped although the buffer queue is not empty.
    pts = flowing(4, fail=3) + [(300, 40, 0, 50 * i, 200, 2) for i in range(16)]
    v = rx_stall_verdict({0: series(pts)}, pressure_end=2.0)
    assert v.verdict == STALL, v.reason
    assert v.buffer_queue == "lbq" and "2 buffer(s)" in v.reason


def test_enough_lbq_buffers_for_any_frame_is_not_starved() -> None:
    pts = flowing(4, fail=3) + [(300, 40, 0, 50 * i, 200, 3) for i in range(16)]
    assert rx_stall_verdict({0: series(pts)}, pressure_end=2.0).verdict != STALL


def test_an_event_without_a_fresh_sample_before_it_cannot_pass() -> None:
    # The sampler fell behind before the second ifdown: the pools the first ifup made
    # are unknown, so the teardown cannot be called clean.
    stale = TeardownEvent("ifdown", 5.0, 5.0, {}, True, None, pools_known=False)
    snaps = [pools(0.0, p1=256), pools(1.0), pools(4.0), pools(9.0)]
    v = teardown_verdict([event(0.5, 1), stale], snaps)
    assert v.verdict == INCONCLUSIVE and "no fresh sample" in v.reason


def test_a_leak_is_still_reported_when_another_event_was_not_judged() -> None:
    stale = TeardownEvent("ifdown", 5.0, 5.0, {}, True, None, pools_known=False)
    snaps = [pools(0.0, p1=256), pools(1.0, d1=40), pools(4.0, d1=40), pools(9.0, d1=40)]
    assert teardown_verdict([event(0.5, 1), stale], snaps).verdict == LEAK


def test_a_queue_left_dry_between_two_pressure_windows_is_a_stall() -> None:
    # windows 0-2 s and 6-8 s; the queue starves from 1 s until the second window's
    # changes bring it back at 7 s: 4 s dry after the first window ended.
    pts = starving(15, rx=0, fail=3) + flowing(10, rx0=1)
    windows = [(0.0, 2.0), (6.0, 8.0)]
    v = rx_stall_verdict({0: series(pts)}, pressure_end=8.0, windows=windows)
    assert v.verdict == STALL, v.reason
    # judged on the last window's end alone, the same series looks recovered
    assert rx_stall_verdict({0: series(pts)}, pressure_end=8.0).verdict == PASS


def test_short_dry_spells_after_each_window_pass() -> None:
    # dry 1.5 s after each window (threshold 2 s), flowing in between
    pts = (starving(7, rx=0, fail=3) + flowing(6, rx0=1) + starving(7, rx=600, fail=6)
           + flowing(8, rx0=601))
    windows = [(0.0, 2.0), (6.5, 8.5)]
    v = rx_stall_verdict({0: series(pts)}, pressure_end=8.5, windows=windows)
    assert v.verdict == PASS, v.reason


def _stopped_series(stopped_from: float, reset_at: float | None, end: float = 8.0,
                    dt: float = 0.25) -> list[QueueSample]:
    """bqnic after a DMA error: buffers posted, frames dropped as rx_drop_stopped and
    nothing delivered from stopped_from until a reset (None: never)."""
    out, rx, dropped, t = [], 0, 0, 0.0
    while t <= end:
        stopped = t >= stopped_from and (reset_at is None or t < reset_at)
        if stopped:
            dropped += 50
        else:
            rx += 50
        out.append(QueueSample.bqnic(t, rx, 1, 0, 0, 200, 200, drop_stopped=dropped))
        t = round(t + dt, 3)
    return out


def test_a_queue_left_stopped_after_a_dma_error_is_a_stall() -> None:
    """Its buffers are posted and none is short: only the stopped counter shows that
    frames reach the device and go nowhere."""
    v = rx_stall_verdict({0: _stopped_series(2.0, None)}, pressure_end=3.0,
                         windows=[(2.0, 3.0)])
    assert v.verdict == STALL and v.buffer_queue == "stopped", v.reason
    assert "stopped the queue on a DMA error" in v.reason


def test_a_queue_reset_within_the_fault_window_passes() -> None:
    v = rx_stall_verdict({0: _stopped_series(2.0, 2.9)}, pressure_end=3.0,
                         windows=[(2.0, 3.0)])
    assert v.verdict == PASS, v.reason


KCSAN_DEBUGFS = """enabled: 1
used_watchpoints: 0
setup_watchpoints: 5120
data_races: 0
assert_failures: 0
no_capacity: 0
report_races: 0
races_unknown_origin: 0
unencodable_accesses: 0
encoding_false_positives: 0

blacklisted functions: <none>
"""


def test_kcsan_counters_parse_the_debugfs_file() -> None:
    counters = kcsan_counters(KCSAN_DEBUGFS)
    assert counters["enabled"] == 1
    assert counters["setup_watchpoints"] == 5120
    assert "blacklisted functions" not in counters


def test_a_kcsan_report_fails_the_data_race_verdict() -> None:
    before = {"enabled": 1, "setup_watchpoints": 10, "data_races": 0}
    after = {"enabled": 1, "setup_watchpoints": 9000, "data_races": 2}
    v = data_race_verdict(["BUG: KCSAN: data-race in bqnic_poll / bqnic_poll",
                           "BUG: KCSAN: data-race in bqnic_get_stats64 / bqnic_poll"],
                          before, after)
    assert v.verdict == "FAIL"
    assert v.reason == "KCSAN: data-race in bqnic_poll / bqnic_poll (and 1 more)"


def test_races_kcsan_counted_but_did_not_print_still_fail() -> None:
    v = data_race_verdict([], {"enabled": 1, "data_races": 1, "setup_watchpoints": 5},
                          {"enabled": 1, "data_races": 3, "setup_watchpoints": 900})
    assert v.verdict == "FAIL" and "2 data race" in v.reason


def test_no_watchpoint_or_kcsan_off_is_no_pass() -> None:
    """A PASS must mean KCSAN watched the driver run, not that nothing was looked at."""
    idle = data_race_verdict([], {"enabled": 1, "setup_watchpoints": 40},
                             {"enabled": 1, "setup_watchpoints": 40})
    assert idle.verdict == "FAIL" and "no watchpoint" in idle.reason
    off = data_race_verdict([], {"enabled": 1, "setup_watchpoints": 40},
                            {"enabled": 0, "setup_watchpoints": 900})
    assert off.verdict == "FAIL" and "off" in off.reason
    unread = data_race_verdict([], {}, {})
    assert unread.verdict == "FAIL"


def test_watched_and_quiet_passes() -> None:
    v = data_race_verdict([], {"enabled": 1, "setup_watchpoints": 40},
                          {"enabled": 1, "setup_watchpoints": 8040})
    assert v.verdict == "PASS" and "8000" in v.reason


def test_dma_debug_that_switched_itself_off_is_said() -> None:
    """failslab on radix_tree_node fails DMA-API debug's own cacheline tracking, which then
    turns itself off: the dma verdict must say its witness is gone, not pass in silence."""
    from bqlab.judge.run_verdicts import dma_debug_switched_off

    console = ("[   10.9] bqnic 0000:00:03.0 test0: up\n"
               "[   10.922193] DMA-API: cacheline tracking ENOMEM, dma-debug disabled\n")
    assert dma_debug_switched_off(console) == \
        "DMA-API: cacheline tracking ENOMEM, dma-debug disabled"
    assert dma_debug_switched_off("DMA-API: debugging out of memory - disabling\n")
    assert dma_debug_switched_off("DMA-API: preallocated 65536 debug entries\n") is None
