"""The stall and teardown verdicts on recorded counter series."""

from bqlab.verdicts import (
    INCONCLUSIVE,
    LEAK,
    PASS,
    STALL,
    PoolSnapshot,
    QueueSample,
    counter_delta,
    rx_stall_verdict,
    teardown_verdict,
)


def series(points: list[tuple], bits: int = 64, dt: float = 0.5) -> list[QueueSample]:
    """points: (guest_rx, alloc_fail, drop_no_sbq, drop_no_lbq, sbq_owned, lbq_owned)."""
    return [QueueSample(i * dt, *p, counter_bits=bits) for i, p in enumerate(points)]


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
    assert (v.queue, v.buffer_queue) == (1, "sbq")
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
    return PoolSnapshot(t, {int(k[1:]): {"id": int(k[1:]), "inflight": v}
                            for k, v in inflight.items()})


def test_pools_released_in_time_pass() -> None:
    before = pools(0.0, p1=256, p2=256)
    after = [pools(1.0, p1=10), pools(2.0)]
    assert teardown_verdict(before, after, event_time=0.5).verdict == PASS


def test_pool_left_with_pages_in_flight_is_a_leak() -> None:
    before = pools(0.0, p7=256, p8=256)
    after = [pools(1.0, p7=256), pools(4.0, p7=256)]
    v = teardown_verdict(before, after, event_time=0.5)
    assert v.verdict == LEAK
    [leak] = v.leaked
    assert leak["id"] == 7 and leak["inflight"] == 256 and leak["drained_after"] is None
    assert [h["inflight"] for h in leak["history"]] == [256, 256]


def test_pool_that_drains_late_is_a_leak() -> None:
    before = pools(0.0, p3=64)
    after = [pools(1.0, p3=64), pools(3.0, p3=2), pools(4.5, p3=0)]
    v = teardown_verdict(before, after, event_time=1.0, grace=3.0)
    assert v.verdict == LEAK and v.leaked[0]["drained_after"] == 3.5
    assert teardown_verdict(before, after, event_time=1.0, grace=4.0).verdict == PASS
