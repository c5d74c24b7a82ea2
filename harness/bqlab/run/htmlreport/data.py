"""A run's artifact directory read back into what report.html draws: per-queue series,
page_pool inflight, the timeline and what the verdicts point at. No plotting here.

Reads report.json (its `timeline`, `verdicts`) and watch.jsonl (one JSON object a line, as
Watchdog.save() writes them: `source` guest, device or error). Tolerant: a missing or
truncated watch.jsonl gives fewer series, never an exception.
"""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...judge.verdicts import QueueSample, _starved

NAN = math.nan
DEFAULT_GRACE = 3.0


@dataclass
class Line:
    """One plotted line: NaN in y is a gap (queue down, counter reset)."""

    t: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)

    def add(self, t: float, y: float | None) -> None:
        self.t.append(t)
        self.y.append(NAN if y is None else float(y))


@dataclass
class Stall:
    """The rx-stall verdict's evidence: where to draw it."""

    queue: int | None
    buffer_queue: str | None
    evidence: tuple[float, float]  # first and last evidence sample
    counted: tuple[float, float] | None  # the frozen stretch after the pressure ended
    stalled_for: float


@dataclass
class PoolRow:
    """One pool torn down by one event: its inflight before, just after, at the deadline."""

    event: int
    what: str
    t: float
    pool: int
    before: int | None
    after: str
    at_deadline: str
    leaked: bool


@dataclass
class RunData:
    run_dir: Path
    report: dict[str, Any]
    samples: int = 0  # guest samples in watch.jsonl
    device_samples: int = 0
    interval: float = 0.25
    end: float = 0.0  # the last sample's time
    dut_nic: str | None = None
    rx_rate: dict[int, Line] = field(default_factory=dict)
    alloc_fail: dict[int, Line] = field(default_factory=dict)
    drops_sbq: dict[int, Line] = field(default_factory=dict)
    drops_lbq: dict[int, Line] = field(default_factory=dict)
    drops_stopped: dict[int, Line] = field(default_factory=dict)  # queue stopped (DMA error)
    sbq_owned: dict[int, Line] = field(default_factory=dict)
    lbq_owned: dict[int, Line] = field(default_factory=dict)
    pools: dict[int, Line] = field(default_factory=dict)
    pool_detached: dict[int, float] = field(default_factory=dict)  # first seen detached
    pressure: list[tuple[float, float]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    sinks_closed_at: float | None = None
    stall: Stall | None = None
    leaked: dict[int, str] = field(default_factory=dict)  # pool id -> event
    pool_rows: list[PoolRow] = field(default_factory=list)
    watch_errors: list[str] = field(default_factory=list)

    @property
    def has_device(self) -> bool:
        return self.device_samples > 0

    def verdict(self, name: str) -> dict[str, Any] | None:
        return next((v for v in self.report.get("verdicts") or [] if v.get("name") == name),
                    None)


def read_watch(path: Path) -> tuple[list[dict], list[dict], list[str]]:
    """Guest samples, device samples and watchdog errors, in time order."""
    guest: list[dict] = []
    device: list[dict] = []
    errors: list[str] = []
    if not path.is_file():
        return guest, device, errors
    for line in path.read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a run killed mid-write leaves half a line
        source = rec.get("source")
        if source == "guest":
            guest.append(rec)
        elif source == "device":
            device.append(rec)
        elif source == "error":
            errors.append(str(rec.get("text", "")))
    guest.sort(key=lambda r: r["t"])
    device.sort(key=lambda r: r["t"])
    return guest, device, errors


def rate_line(points: list[tuple[float, int | None]], min_dt: float) -> Line:
    """Per-second rate of a cumulative counter. Samples closer than min_dt to the last one
    used are skipped (lines that arrive bunched after a guest pause would give spikes); a
    missing value or a counter that went back (interface re-created) is a gap."""
    out = Line()
    anchor: tuple[float, int] | None = None
    for t, v in points:
        if v is None:
            out.add(t, None)
            anchor = None
            continue
        if anchor is None:
            anchor = (t, v)
            continue
        dt = t - anchor[0]
        if dt < min_dt:
            continue
        out.add(t, None if v < anchor[1] else (v - anchor[1]) / dt)
        anchor = (t, v)
    return out


def value_line(points: list[tuple[float, int | None]]) -> Line:
    out = Line()
    for t, v in points:
        out.add(t, v)
    return out


def _queue_ids(guest: list[dict], device: list[dict]) -> list[int]:
    """The rx queues in use: those the guest reports (the device has every queue it can)."""
    ids = {int(q) for g in guest for q in g.get("rx_queues", {})}
    if not ids and device:
        ids = set(range(len(device[0].get("queues", []))))
    return sorted(ids)


def _guest_series(d: RunData, guest: list[dict], queues: list[int]) -> None:
    min_dt = d.interval * 0.5
    for q in queues:
        key = str(q)
        rx = [(g["t"], g["rx_queues"].get(key, {}).get("rx-packets")
               if key in g["rx_queues"] else None) for g in guest]
        fail = [(g["t"], g["rx_queues"][key].get("rx-alloc-fail", 0)
                 if key in g["rx_queues"] else None) for g in guest]
        d.rx_rate[q] = rate_line(rx, min_dt)
        d.alloc_fail[q] = value_line(fail)


def _device_series(d: RunData, device: list[dict], queues: list[int]) -> None:
    min_dt = d.interval * 0.5
    for q in queues:
        def col(name: str, q: int = q) -> list[tuple[float, int | None]]:
            return [(s["t"], s["queues"][q].get(name) if q < len(s["queues"]) else None)
                    for s in device]
        d.drops_sbq[q] = rate_line(col("rx_drop_no_sbq"), min_dt)
        d.drops_lbq[q] = rate_line(col("rx_drop_no_lbq"), min_dt)
        if any(v for _, v in col("rx_drop_stopped")):
            d.drops_stopped[q] = rate_line(col("rx_drop_stopped"), min_dt)
        d.sbq_owned[q] = value_line(col("sbq_owned"))
        d.lbq_owned[q] = value_line(col("lbq_owned"))


def _pool_series(d: RunData, guest: list[dict]) -> None:
    """inflight of the DUT interface's pools (and of any pool an event tore down) over
    time; a pool that is gone from page-pool-get is a gap, which ends its line."""
    ids = {int(e["id"]) for ev in d.events for e in ev.get("pools", [])}
    for g in guest:
        ids |= {int(i) for i, p in g.get("pools", {}).items()
                if g.get("ifindex") is not None and p.get("ifindex") == g["ifindex"]}
    ids |= set(d.leaked)
    for pid in sorted(ids):
        line = Line()
        for g in guest:
            p = g.get("pools", {}).get(str(pid))
            line.add(g["t"], None if p is None else p.get("inflight", 0))
            if p is not None and "detach-time" in p and pid not in d.pool_detached:
                d.pool_detached[pid] = g["t"]
        if any(not math.isnan(y) for y in line.y):
            d.pools[pid] = line


def _stall(d: RunData) -> None:
    v = d.verdict("rx-stall")
    if not v or v.get("verdict") != "STALL" or not v.get("evidence"):
        return
    ev = v["evidence"]
    samples = [QueueSample.from_evidence(s) for s in ev]
    pressure_end = max((b for _, b in d.pressure), default=samples[0].t)
    best: tuple[float, float] | None = None  # the longest starved stretch, as judged
    start: float | None = None
    for prev, cur in zip(samples, samples[1:], strict=False):
        if _starved(prev, cur) is None:
            start = None
            continue
        start = prev.t if start is None else start
        counted = (max(start, pressure_end), cur.t)
        if counted[1] > counted[0] and \
                (best is None or counted[1] - counted[0] > best[1] - best[0]):
            best = counted
    d.stall = Stall(v.get("queue"), v.get("buffer_queue"), (ev[0]["t"], ev[-1]["t"]), best,
                    float(v.get("stalled_for") or 0.0))


def _timeline(d: RunData, tl: dict[str, Any] | None) -> None:
    """Pressure windows, events, sinks: from report.json's timeline, or for reports written
    before it existed, what the verdicts recorded."""
    if tl:
        d.interval = float(tl.get("interval") or d.interval)
        d.dut_nic = tl.get("dut_nic")
        d.events = list(tl.get("events") or [])
        d.sinks_closed_at = tl.get("sinks_closed_at")
        windows = tl.get("pressure") or []
    else:
        stall = d.verdict("rx-stall") or {}
        windows = stall.get("pressure") or []
    # A window never closed (the run broke off) lasts until the samples end.
    d.pressure = [(float(a), float(b) if b is not None and b >= 0 else max(d.end, a))
                  for a, b in windows]


def _pool_rows(d: RunData, guest: list[dict]) -> None:
    teardown = d.verdict("teardown") or {}
    grace = float(teardown.get("grace") or DEFAULT_GRACE)
    for n, ev in enumerate(d.events):
        settled = ev["end"]
        if ev.get("sinks_held") and d.sinks_closed_at is not None:
            settled = max(settled, d.sinks_closed_at)
        after = next((g for g in guest if g["t"] > ev["end"]), None)
        due = next((g for g in guest if g["t"] >= settled + grace), None)
        for p in ev.get("pools", []):
            pid = int(p["id"])
            d.pool_rows.append(PoolRow(
                n, ev["what"], ev["end"], pid, p.get("inflight"), _pool_state(after, pid),
                _pool_state(due, pid), d.leaked.get(pid) == ev["what"]))


def _pool_state(sample: dict | None, pid: int) -> str:
    if sample is None:
        return "no sample"
    p = sample.get("pools", {}).get(str(pid))
    if p is None:
        return "gone"
    detached = " (destroyed)" if "detach-time" in p else ""
    return f"{p.get('inflight', 0)}{detached}"


def load_run(run_dir: Path) -> RunData:
    report = json.loads((run_dir / "report.json").read_text())
    guest, device, errors = read_watch(run_dir / "watch.jsonl")
    d = RunData(run_dir, report, samples=len(guest), device_samples=len(device),
                watch_errors=errors)
    d.end = max([s["t"] for s in guest[-1:] + device[-1:]], default=0.0)
    _timeline(d, report.get("timeline"))
    teardown = d.verdict("teardown") or {}
    d.leaked = {int(p["id"]): p.get("event", "") for p in teardown.get("leaked") or []}
    queues = _queue_ids(guest, device)
    _guest_series(d, guest, queues)
    _device_series(d, device, queues)
    _pool_series(d, guest)
    _stall(d)
    _pool_rows(d, guest)
    return d
