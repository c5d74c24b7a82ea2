"""Verdicts from recorded counter series: rx stall and page_pool teardown.

Pure functions over samples, so every rule can be tested on recorded or synthetic series
without a VM. The watchdog that records the samples (guest counters over SSH, device
counters over QMP) feeds these.
"""

from dataclasses import dataclass, field
from typing import Any

PASS = "PASS"
STALL = "STALL"
LEAK = "LEAK"
INCONCLUSIVE = "INCONCLUSIVE"

DEFAULT_STALL_THRESHOLD = 2.0
DEFAULT_POOL_GRACE = 3.0


def counter_delta(before: int, after: int, bits: int = 64) -> int:
    """after - before for a free-running counter of `bits` width (wraps are forward)."""
    return (after - before) % (1 << bits)


@dataclass(frozen=True)
class QueueSample:
    """One watchdog sample of one rx queue."""

    t: float  # seconds since the run started
    guest_rx: int  # packets the driver delivered on this queue
    alloc_fail: int  # rx-alloc-fail of this queue
    drop_no_sbq: int  # device drops for lack of an sbq buffer
    drop_no_lbq: int  # device drops for lack of lbq buffers
    sbq_owned: int  # buffers the device holds now
    lbq_owned: int
    counter_bits: int = 64  # width of the cumulative counters above


@dataclass
class StallVerdict:
    verdict: str
    reason: str
    queue: int | None = None
    buffer_queue: str | None = None  # "sbq" or "lbq"
    stalled_for: float = 0.0
    evidence: list[dict[str, Any]] = field(default_factory=list)


def _starved(prev: QueueSample, cur: QueueSample) -> str | None:
    """Which buffer queue left frames dropping with nothing delivered in (prev, cur]."""
    bits = cur.counter_bits
    rx_moved = counter_delta(prev.guest_rx, cur.guest_rx, bits) > 0
    if rx_moved:
        return None
    if counter_delta(prev.drop_no_sbq, cur.drop_no_sbq, bits) > 0 and cur.sbq_owned == 0:
        return "sbq"
    if counter_delta(prev.drop_no_lbq, cur.drop_no_lbq, bits) > 0 and cur.lbq_owned == 0:
        return "lbq"
    return None


def rx_stall_verdict(series: dict[int, list[QueueSample]], pressure_end: float,
                     threshold: float = DEFAULT_STALL_THRESHOLD) -> StallVerdict:
    """Judge a run: series maps queue -> samples in time order; pressure_end is when the
    memory pressure or fault injection stopped.

    STALL: on some queue, frames kept reaching the device and were dropped for lack of
    buffers while it owned none in a buffer queue and guest rx did not move, for longer
    than threshold after the pressure ended (while pressure lasts, starving is expected).
    INCONCLUSIVE: no allocation failure happened at all, so the run proved nothing.
    PASS otherwise: reception recovered within threshold.
    """
    failed = any(
        counter_delta(s[0].alloc_fail, s[-1].alloc_fail, s[-1].counter_bits) > 0
        for s in series.values() if len(s) >= 2)
    worst: StallVerdict | None = None
    for queue, samples in sorted(series.items()):
        run_start: float | None = None
        run_bq: str | None = None
        for prev, cur in zip(samples, samples[1:], strict=False):
            bq = _starved(prev, cur)
            if bq is None:
                run_start, run_bq = None, None
                continue
            if run_start is None:
                run_start, run_bq = prev.t, bq
            # Only time after the pressure ended counts against the driver.
            stalled_for = cur.t - max(run_start, pressure_end)
            if stalled_for > threshold and (worst is None or stalled_for > worst.stalled_for):
                worst = StallVerdict(
                    STALL,
                    f"queue {queue}: {run_bq} empty, device dropping, rx frozen for "
                    f"{stalled_for:.1f}s after the pressure ended (threshold {threshold}s)",
                    queue=queue, buffer_queue=run_bq, stalled_for=stalled_for,
                    evidence=[s.__dict__ for s in samples
                              if run_start - threshold <= s.t <= cur.t + threshold])
    if worst is not None:
        return worst
    observed_until = min((s[-1].t for s in series.values() if s), default=0.0)
    if observed_until < pressure_end + threshold:
        return StallVerdict(INCONCLUSIVE, f"samples end {observed_until - pressure_end:.1f}s "
                            f"after the pressure ended: too soon to judge (threshold "
                            f"{threshold}s)")
    if not failed:
        return StallVerdict(INCONCLUSIVE, "no rx allocation failure happened: the run "
                            "did not exercise the refill path")
    return StallVerdict(PASS, f"rx recovered within {threshold}s after the pressure ended")


@dataclass(frozen=True)
class PoolSnapshot:
    """page-pool-get at one moment: pool id -> its attributes (inflight, detach-time...)."""

    t: float
    pools: dict[int, dict[str, Any]]


@dataclass
class PoolVerdict:
    verdict: str
    reason: str
    leaked: list[dict[str, Any]] = field(default_factory=list)


def teardown_verdict(before: PoolSnapshot, after: list[PoolSnapshot], event_time: float,
                     grace: float = DEFAULT_POOL_GRACE) -> PoolVerdict:
    """Each pool that existed before the teardown event must be gone, or at inflight 0,
    within grace seconds of it. A pool that drains later than that is a leak too: the
    grace period is the contract."""
    leaked = []
    for pool_id in sorted(before.pools):
        history = [(s.t, s.pools.get(pool_id)) for s in after]
        clean_at = next((t for t, p in history if p is None or p.get("inflight", 0) == 0),
                        None)
        if clean_at is not None and clean_at - event_time <= grace:
            continue
        last = next((p for _, p in reversed(history) if p is not None), before.pools[pool_id])
        leaked.append({
            "id": pool_id,
            "inflight": last.get("inflight"),
            "detach-time": last.get("detach-time"),
            "drained_after": None if clean_at is None else round(clean_at - event_time, 2),
            "history": [{"t": t, "inflight": None if p is None else p.get("inflight")}
                        for t, p in history],
        })
    if leaked:
        ids = ", ".join(str(p["id"]) for p in leaked)
        return PoolVerdict(LEAK, f"page_pool(s) {ids} not released within {grace}s", leaked)
    return PoolVerdict(PASS, f"all {len(before.pools)} pool(s) released within {grace}s")
