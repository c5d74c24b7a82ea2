"""The page_pool ledger: every pool's life from tracepoints, visible to netlink or not.

bqlab-watch --ledger streams, from a tracefs instance in the DUT:
- page_pool_create_percpu entry and return (kprobes): the creating device, the pool;
- page_pool:page_pool_release: a pool's destruction (page_pool_destroy), then each retry
  of its release work (every second) while pages are in flight, with inflight, hold and
  release counts. The pool is freed at the event that shows inflight 0.

Pools whose driver gives them no .netdev (vmxnet3) are invisible to page-pool-get; the
ledger sees them all. Pure functions over recorded samples, like verdicts.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .verdicts import INCONCLUSIVE, LEAK, PASS, PoolVerdict

if TYPE_CHECKING:
    from .watchdog import GuestSample

# page_pool_release_retry() runs every DEFER_TIME (1 s): a pool that drains shows its
# inflight-0 event up to that much later.
RETRY_PERIOD = 1.0
STALLED_SHUTDOWN = "stalled pool shutdown"


def _pool_key(value: Any) -> str:
    """Pool pointers as the tracepoint (%p, unhashed) and the kretprobe (0x...) print them."""
    text = str(value).lower().removeprefix("0x")
    return text.zfill(16)


@dataclass
class PoolLife:
    pool: str
    device: str | None = None  # the creating device (struct device name), if seen
    created: float | None = None  # harness seconds
    destroyed: float | None = None  # first page_pool_release event: page_pool_destroy()
    freed: float | None = None  # the release event with inflight 0
    inflight: int | None = None  # at the latest release event
    hold: int | None = None
    release: int | None = None
    releases: list[dict[str, Any]] = field(default_factory=list)  # [{t, inflight}]

    def as_dict(self) -> dict[str, Any]:
        r = lambda v: None if v is None else round(v, 2)  # noqa: E731
        return {"pool": self.pool, "device": self.device, "created": r(self.created),
                "destroyed": r(self.destroyed), "freed": r(self.freed),
                "inflight": self.inflight, "hold": self.hold, "release": self.release,
                "releases": self.releases[-8:]}


def build(samples: list[GuestSample]) -> tuple[dict[str, PoolLife], float | None]:
    """Pool lives from the guest samples, on the harness clock; and the time of the last
    sample that carried the ledger (how far it is known)."""
    pools: dict[str, PoolLife] = {}  # every life, by pool and generation
    current: dict[str, PoolLife] = {}  # pool pointer -> its latest life (memory is reused)
    creating: dict[int, str] = {}  # pid -> device, between the kprobe and its return
    known_until = None

    def new_life(key: str, **kw: Any) -> PoolLife:
        life = PoolLife(key, **kw)
        pools[f"{key}#{len(pools)}"] = current[key] = life
        return life

    for s in samples:
        if s.guest_t is None:
            continue
        known_until = s.t
        for ev in s.ledger:
            t = s.t - (s.guest_t - ev["ts"])  # the guest's monotonic clock, moved to ours
            name = ev["event"]
            if name == "pp_create":
                creating[ev["pid"]] = str(ev.get("dev", "")) or None
            elif name == "pp_created":
                key = _pool_key(ev["pool"])
                if key.strip("0") == "" or key.startswith("ffffffffffff"):
                    continue  # NULL or an ERR_PTR: no pool was made
                new_life(key, device=creating.pop(ev["pid"], None), created=t)
            elif name == "page_pool_release":
                key = _pool_key(ev["page_pool"])
                life = current.get(key)
                if life is None or life.freed is not None:
                    life = new_life(key)  # created before the ledger started
                if life.destroyed is None:
                    life.destroyed = t
                life.inflight, life.hold, life.release = \
                    ev.get("inflight"), ev.get("hold"), ev.get("release")
                life.releases.append({"t": round(t, 2), "inflight": life.inflight})
                if life.inflight == 0 and life.freed is None:
                    life.freed = t
    return pools, known_until


@dataclass
class LedgerVerdict(PoolVerdict):
    pools: list[dict[str, Any]] = field(default_factory=list)  # every life, for the report


def ledger_verdict(pools: dict[str, PoolLife], known_until: float | None,
                   must_destroy_at: list[float], sinks_closed: float | None,
                   grace: float) -> LedgerVerdict:
    """Every pool destroyed must be freed (inflight 0) within grace of its destruction, or
    of closing the unread sockets that held its pages; every pool created before an ifdown
    or rmmod must have been destroyed by it."""
    if known_until is None:
        return LedgerVerdict(INCONCLUSIVE, "no page_pool ledger (tracefs unavailable in the "
                             "guest?)")
    leaked, unjudged = [], []
    checked = 0
    for life in pools.values():
        if life.destroyed is not None:
            settled = life.destroyed
            if sinks_closed is not None and sinks_closed > life.destroyed:
                settled = sinks_closed
            deadline = settled + grace + RETRY_PERIOD
            if life.freed is not None and life.freed <= deadline:
                checked += 1
                continue
            if known_until < deadline:
                unjudged.append(life.pool)
                continue
            checked += 1
            leaked.append({**life.as_dict(), "why": (
                f"inflight {life.inflight} {grace:.0f} s after its destruction"
                if life.freed is None else
                f"freed {life.freed - settled:.1f} s after its destruction, past the grace")})
        elif life.created is not None:
            due = [t for t in must_destroy_at if t > life.created]
            if due and known_until >= min(due) + grace:
                checked += 1
                leaked.append({**life.as_dict(), "why": "never destroyed, though the "
                               "interface went down (or its driver was removed)"})
    summary = [life.as_dict() for life in pools.values()]
    if leaked:
        desc = ", ".join(f"{p['pool'][-8:]} ({p['why']})" for p in leaked[:4])
        more = f" and {len(leaked) - 4} more" if len(leaked) > 4 else ""
        return LedgerVerdict(LEAK, f"{len(leaked)} page_pool(s) not released: {desc}{more}",
                             leaked, checked, summary)
    if unjudged:
        return LedgerVerdict(INCONCLUSIVE, f"{len(unjudged)} pool(s) destroyed too late in "
                             "the run to judge", [], checked, summary)
    if not checked:
        return LedgerVerdict(INCONCLUSIVE, "no page_pool was destroyed: nothing to judge",
                             [], 0, summary)
    return LedgerVerdict(PASS, f"all {checked} destroyed page_pool(s) freed within {grace}s",
                         [], checked, summary)


CONSOLE_TIME = re.compile(r"^\[\s*(\d+\.\d+)\]")


def stalled_shutdowns(console: str) -> list[tuple[float | None, str]]:
    """The kernel's own witness: page_pool_release_retry() warns 60 s after a destroy
    while pages are in flight (and every 60 s after). With the console time (seconds
    since boot, the guest's monotonic clock) of each warning."""
    out = []
    for line in console.splitlines():
        if STALLED_SHUTDOWN in line:
            m = CONSOLE_TIME.match(line.strip())
            out.append((float(m.group(1)) if m else None, line.strip()))
    return out


def leak_warnings(warnings: list[tuple[float | None, str]], samples: list[GuestSample],
                  sinks_closed: float | None, grace: float) -> list[str]:
    """The warnings that are a leak: printed once nothing legitimately held pages any more
    (unread sockets hold them until they are closed; a warning while they were open, for
    a pool destroyed under them, is the kernel being patient, not a leak)."""
    anchor = next((s for s in reversed(samples) if s.guest_t is not None), None)
    leaks = []
    for uptime, line in warnings:
        if sinks_closed is None or uptime is None or anchor is None:
            leaks.append(line)
            continue
        at = anchor.t - (anchor.guest_t - uptime)  # on the harness clock
        if at > sinks_closed + grace:
            leaks.append(line)
    return leaks
