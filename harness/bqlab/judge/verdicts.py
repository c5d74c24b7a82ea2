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

# bqnic's pseudo-ring for a queue stopped by a DMA error (qemu-device/SPEC.md 7)
STOPPED = "stopped"

DEFAULT_STALL_THRESHOLD = 2.0
DEFAULT_POOL_GRACE = 3.0
DEFAULT_INTERVAL = 0.25  # seconds between watchdog samples


def counter_delta(before: int, after: int, bits: int = 64) -> int:
    """after - before for a free-running counter of `bits` width (wraps are forward)."""
    return (after - before) % (1 << bits)


@dataclass(frozen=True)
class QueueSample:
    """One watchdog sample of one rx queue, in the terms of any NIC model.

    A model's buffer rings are named as it names them: bqnic's "sbq" and "lbq", "rx" for a
    model with one ring per queue. `turned_away` counts the frames the device could not
    take for lack of buffers (dropped, or refused and held back by QEMU); `owned` is how
    many buffers the device holds now, None where the model does not say."""

    t: float  # seconds since the run started
    guest_rx: int  # packets the driver delivered on this queue
    alloc_fail: int  # rx allocation failures the driver counted on this queue (0: none)
    turned_away: dict[str, int]  # per ring, cumulative
    owned: dict[str, int | None]  # per ring, now
    counter_bits: int = 64  # width of the cumulative counters above

    @classmethod
    def bqnic(cls, t: float, guest_rx: int, alloc_fail: int, drop_no_sbq: int,
              drop_no_lbq: int, sbq_owned: int, lbq_owned: int,
              counter_bits: int = 64, drop_stopped: int | None = None) -> "QueueSample":
        """drop_stopped: frames for the queue while a DMA error had it stopped (a device
        that was never reset after one takes nothing in, whatever the buffers)."""
        turned_away = {"sbq": drop_no_sbq, "lbq": drop_no_lbq}
        owned: dict[str, int | None] = {"sbq": sbq_owned, "lbq": lbq_owned}
        if drop_stopped is not None:
            turned_away[STOPPED] = drop_stopped
            owned[STOPPED] = 0  # a stopped queue takes no buffer at all
        return cls(t, guest_rx, alloc_fail, turned_away, owned, counter_bits)

    def as_evidence(self) -> dict[str, Any]:
        """Flat, for report.json: bqnic's keys stay drop_no_sbq, sbq_owned, ..."""
        flat: dict[str, Any] = {"t": self.t, "guest_rx": self.guest_rx,
                                "alloc_fail": self.alloc_fail}
        for ring, n in self.turned_away.items():
            flat[f"drop_no_{ring}"] = n
        for ring, n in self.owned.items():
            flat[f"{ring}_owned"] = n
        flat["counter_bits"] = self.counter_bits
        return flat

    @classmethod
    def from_evidence(cls, flat: dict[str, Any]) -> "QueueSample":
        rings = [k[len("drop_no_"):] for k in flat if k.startswith("drop_no_")]
        return cls(flat["t"], flat["guest_rx"], flat["alloc_fail"],
                   {r: flat[f"drop_no_{r}"] for r in rings},
                   {r: flat.get(f"{r}_owned") for r in rings},
                   flat.get("counter_bits", 64))


@dataclass
class StallVerdict:
    verdict: str
    reason: str
    queue: int | None = None
    buffer_queue: str | None = None  # "sbq" or "lbq"
    stalled_for: float = 0.0
    evidence: list[dict[str, Any]] = field(default_factory=list)  # the worst queue's samples
    queues: list[int] = field(default_factory=list)  # every queue that stalled


# The most buffers of each ring one frame can need: one sbq buffer (a small frame, or the
# headers of a split one), and for lbq a 9216-byte jumbo frame (bqnic's largest) over the
# driver's 3072-byte lbq buffers. A device that owns this many can take any frame. "rx":
# one descriptor per frame (virtio-net's mergeable buffers, e1000e/igb at MTU 1500).
MAX_BUFFERS_PER_FRAME = {"sbq": 1, "lbq": 3, "rx": 1}


def _owned(sample: QueueSample, ring: str) -> int | None:
    return sample.owned.get(ring)


def _starved(prev: QueueSample, cur: QueueSample) -> str | None:
    """Which ring left frames turned away with nothing delivered in (prev, cur].

    Starved means the device owns fewer buffers than a frame needs, not none: a jumbo
    frame needs 3 lbq buffers, so a queue stuck at 1 or 2 drops every such frame. The
    turned-away counter itself says a frame found too few; the owned count at the end of
    the interval (where the model reports one) says the driver has not put that right
    since.
    """
    bits = cur.counter_bits
    if counter_delta(prev.guest_rx, cur.guest_rx, bits) > 0:
        return None
    for ring, turned_away in cur.turned_away.items():
        if counter_delta(prev.turned_away.get(ring, turned_away), turned_away, bits) == 0:
            continue
        owned = cur.owned.get(ring)
        if owned is None or owned < MAX_BUFFERS_PER_FRAME.get(ring, 1):
            return ring
    return None


def _counted_from(t: float, windows: list[tuple[float, float]]) -> float | None:
    """Where time that counts against the driver starts for a sample at t: the end of the
    last pressure window before t; None while t is inside a window (starving is expected
    then)."""
    ends = [end for start, end in windows if end <= t]
    if any(start <= t < end for start, end in windows):
        return None
    return max(ends) if ends else None


def _exercised(samples: list[QueueSample]) -> bool:
    """The pressure reached the refill path: the driver counted an allocation failure, or
    (for a driver that counts none) the device went short of buffers."""
    first, last = samples[0], samples[-1]
    if counter_delta(first.alloc_fail, last.alloc_fail, last.counter_bits) > 0:
        return True
    return any(counter_delta(first.turned_away.get(r, n), n, last.counter_bits) > 0
               for r, n in last.turned_away.items())


def _posted(sample: QueueSample, ring: str) -> str:
    if ring == STOPPED:
        return "the device stopped the queue on a DMA error and nothing reset it"
    owned = _owned(sample, ring)
    if owned is None:
        return "the device does not say how many buffers it holds"
    return f"{owned} buffer(s) posted, fewer than a frame needs"


def _why_starved(sample: QueueSample, ring: str) -> str:
    if ring == STOPPED:
        return _posted(sample, ring)
    return f"{ring} starved ({_posted(sample, ring)})"


def rx_stall_verdict(series: dict[int, list[QueueSample]], pressure_end: float,
                     threshold: float = DEFAULT_STALL_THRESHOLD,
                     windows: list[tuple[float, float]] | None = None) -> StallVerdict:
    """Judge a run: series maps queue -> samples in time order; pressure_end is when the
    memory pressure or fault injection stopped.

    STALL: on some queue, frames kept reaching the device and were dropped for lack of
    buffers while it owned none in a buffer queue and guest rx did not move, for longer
    than threshold after the pressure ended (while pressure lasts, starving is expected).
    INCONCLUSIVE: no allocation failure happened at all, so the run proved nothing.
    PASS otherwise: reception recovered within threshold.
    """
    pressure_windows = [(float(a), float(b)) for a, b in windows] if windows else \
        [(float("-inf"), pressure_end)]
    failed = any(_exercised(s) for s in series.values() if len(s) >= 2)
    stalls: dict[int, StallVerdict] = {}  # the longest stall of each queue
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
            # Only time after a pressure window ended counts against the driver: each
            # window's end starts the clock again (a queue left dry between two windows
            # is a stall too, even if a later change brings it back).
            since = _counted_from(cur.t, pressure_windows)
            if since is None:
                continue
            stalled_for = cur.t - max(run_start, since)
            if stalled_for > threshold and \
                    (queue not in stalls or stalled_for > stalls[queue].stalled_for):
                stalls[queue] = StallVerdict(
                    STALL,
                    f"queue {queue}: {_why_starved(cur, run_bq)}, device "
                    f"turning frames away, rx frozen for {stalled_for:.1f}s after the "
                    f"pressure ended (threshold {threshold}s)",
                    queue=queue, buffer_queue=run_bq, stalled_for=stalled_for,
                    evidence=[s.as_evidence() for s in samples
                              if run_start - threshold <= s.t <= cur.t + threshold])
    if stalls:
        worst = max(stalls.values(), key=lambda v: v.stalled_for)
        worst.queues = sorted(stalls)
        if len(stalls) > 1:
            worst.reason += "; also " + ", ".join(
                f"queue {q} ({v.buffer_queue}, {v.stalled_for:.1f}s)"
                for q, v in sorted(stalls.items()) if v is not worst)
        return worst
    observed_until = min((s[-1].t for s in series.values() if s), default=0.0)
    if observed_until < pressure_end + threshold:
        return StallVerdict(INCONCLUSIVE, f"samples end {observed_until - pressure_end:.1f}s "
                            f"after the pressure ended: too soon to judge (threshold "
                            f"{threshold}s)")
    if not failed:
        return StallVerdict(INCONCLUSIVE, "no rx allocation failure happened, and the "
                            "device never went short of buffers: the run did not exercise "
                            "the refill path")
    return StallVerdict(PASS, f"rx recovered within {threshold}s after the pressure ended")


@dataclass(frozen=True)
class PoolSnapshot:
    """page-pool-get at one moment: pool id -> its attributes (inflight, detach-time...)."""

    t: float
    pools: dict[int, dict[str, Any]]


@dataclass(frozen=True)
class TeardownEvent:
    """Something that may destroy the interface's page_pools: XDP attach or detach, ifdown,
    a ring or channel change, rmmod."""

    what: str
    start: float
    end: float
    pools: dict[int, dict[str, Any]]  # the interface's pools just before it
    must_destroy: bool = False  # ifdown, rmmod: no pool of the interface may stay live
    # When unread sockets held pages at the event: the time they were closed. Their pages
    # are legitimately in flight until then.
    sinks_closed: float | None = None
    # False when no fresh sample came before it: pools born since the last one are missing.
    pools_known: bool = True

    @property
    def settled(self) -> float:
        return max(self.end, self.sinks_closed or 0.0)


@dataclass
class PoolVerdict:
    verdict: str
    reason: str
    leaked: list[dict[str, Any]] = field(default_factory=list)
    checked: int = 0


def _inflight(pool: dict[str, Any] | None) -> int | None:
    return None if pool is None else pool.get("inflight", 0)


def teardown_verdict(events: list[TeardownEvent], snapshots: list[PoolSnapshot],
                     grace: float = DEFAULT_POOL_GRACE) -> PoolVerdict:
    """Each pool an event destroyed must be gone, or at inflight 0, within grace seconds of
    the event (or of closing the sockets that held its pages).

    Judged on the first snapshot after that deadline, so a pool that drains later is a
    leak too: the grace period is the contract. A pool still live without a detach-time
    was kept by the driver (not every driver rebuilds its rings for every change), except
    after ifdown or rmmod, where keeping one means it was never destroyed.
    """
    leaked: list[dict[str, Any]] = []
    unjudged: list[str] = []
    checked = 0
    judged: set[int] = set()  # a pool is judged once, by the event that destroyed it
    for event in events:
        if not event.pools_known:
            unjudged.append(f"born before {event.what} (no fresh sample before it)")
        deadline = event.settled + grace
        later = [s for s in snapshots if s.t > event.start]
        after = next((s for s in later if s.t >= deadline), None)
        for pool_id in sorted(event.pools):
            if pool_id in judged:
                continue
            if after is None:
                checked += 1
                unjudged.append(f"{pool_id} ({event.what})")
                continue
            pool = after.pools.get(pool_id)
            detached = pool is not None and "detach-time" in pool
            if pool is not None and _inflight(pool) != 0 and not detached \
                    and not event.must_destroy:
                continue  # kept in use by the driver: a later event may destroy it
            checked += 1
            judged.add(pool_id)
            if pool is None or _inflight(pool) == 0:
                continue
            drained = next((s.t for s in later if s.t > after.t
                            and _inflight(s.pools.get(pool_id)) in (None, 0)), None)
            leaked.append({
                "id": pool_id,
                "event": event.what,
                "event_time": round(event.end, 2),
                "inflight": _inflight(pool),
                "detach-time": pool.get("detach-time"),
                "destroyed": detached,
                "drained_after": None if drained is None else round(drained - event.settled, 2),
                "history": [{"t": round(s.t, 2), "inflight": _inflight(s.pools.get(pool_id))}
                            for s in later if s.t <= max(deadline + grace, after.t)],
            })
    if leaked:
        desc = ", ".join(
            f"pool {p['id']} ({p['event']}: inflight {p['inflight']}"
            f"{'' if p['destroyed'] else ', never destroyed'})" for p in leaked[:6])
        more = f" and {len(leaked) - 6} more" if len(leaked) > 6 else ""
        return PoolVerdict(LEAK, f"{len(leaked)} page_pool(s) not released within {grace}s: "
                           f"{desc}{more}", leaked, checked)
    if unjudged:
        return PoolVerdict(INCONCLUSIVE, f"pool(s) not judged (no sample {grace}s after "
                           f"their teardown, or none before it): {', '.join(unjudged[:6])}",
                           [], checked)
    if not checked:
        return PoolVerdict(INCONCLUSIVE, "no page_pool was torn down: nothing to judge")
    return PoolVerdict(PASS, f"all {checked} torn-down page_pool(s) released within {grace}s",
                       [], checked)


# Register reads in the hot path: judged where the device counts the driver's register
# reads (bqnic's mmio_reads) against the interrupts it sent, over the sample intervals
# in which the queues were busy. A driver that reads a register per interrupt or per
# poll (a cause register, a consumer index, a flush after a doorbell) reads about one
# per interrupt or more; one that takes completions from memory reads only what tools
# ask for (ethtool -S, qstats: a few reads per watchdog sample).
MMIO_BUSY_INTERRUPTS = 100  # interrupts in one sample interval: the queues are busy
MMIO_READS_PER_INTERRUPT = 0.5


@dataclass(frozen=True)
class MmioVerdict:
    verdict: str  # PASS or FAIL
    reason: str
    reads: int
    interrupts: int
    intervals: int


def mmio_verdict(intervals: list[tuple[int, int]],
                 limit: float = MMIO_READS_PER_INTERRUPT,
                 busy: int = MMIO_BUSY_INTERRUPTS) -> MmioVerdict | None:
    """intervals: (register reads, interrupts) per device sample interval. None when no
    interval was busy (too little traffic to tell a hot path from a tool's reads)."""
    judged = [(r, i) for r, i in intervals if i >= busy and r >= 0]
    if not judged:
        return None
    reads, irqs = sum(r for r, _ in judged), sum(i for _, i in judged)
    per = reads / irqs
    where = (f"{reads} register reads for {irqs} interrupts ({per:.2f} per interrupt) "
             f"over {len(judged)} busy sample intervals")
    if per > limit:
        return MmioVerdict("FAIL", f"{where}: the driver reads device registers in its "
                           f"hot path (limit {limit} per interrupt; completions should "
                           "come from memory)", reads, irqs, len(judged))
    return MmioVerdict(PASS, f"{where} (limit {limit})", reads, irqs, len(judged))


@dataclass(frozen=True)
class DataRaceVerdict:
    verdict: str
    reason: str


def kcsan_counters(text: str) -> dict[str, int]:
    """/sys/kernel/debug/kcsan: "enabled: 1", then "setup_watchpoints: 123" and the like."""
    counters = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and value.strip().lstrip("-").isdigit():
            counters[name.strip()] = int(value)
    return counters


def data_race_verdict(reports: list[str], before: dict[str, int],
                      after: dict[str, int]) -> DataRaceVerdict:
    """reports: the DUT's KCSAN report titles ("BUG: KCSAN: data-race in f / g"), first
    first; before/after: KCSAN's counters around the steps. A PASS needs KCSAN to have
    watched: without a watchpoint set up in the run, nothing was checked."""
    def delta(name: str) -> int:
        return after.get(name, 0) - before.get(name, 0)

    watched = delta("setup_watchpoints")
    races = delta("data_races") + delta("assert_failures")
    if reports:
        more = f" (and {len(reports) - 1} more)" if len(reports) > 1 else ""
        return DataRaceVerdict("FAIL", reports[0].removeprefix("BUG: ") + more)
    if races > 0:  # rate-limited off the console (KCSAN_REPORT_ONCE_IN_MS)
        return DataRaceVerdict("FAIL", f"KCSAN counted {races} data race(s); its reports "
                               "did not reach the console")
    if after.get("enabled") != 1:
        return DataRaceVerdict("FAIL", "KCSAN was off at the end of the run: nothing "
                               "was checked")
    if watched <= 0:
        return DataRaceVerdict("FAIL", "KCSAN set up no watchpoint during the steps: the "
                               "instrumented driver did not run, nothing was checked")
    return DataRaceVerdict(PASS, f"no data race in {watched} KCSAN watchpoints set up "
                           "in the instrumented driver")
