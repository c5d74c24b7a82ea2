"""From a finished run's samples to its verdict records (report.json `verdicts`)."""

import re
import time
from typing import Any

from ..run.runstate import RunState
from ..vm import nics
from . import ledger
from .verdicts import (
    INCONCLUSIVE,
    LEAK,
    PASS,
    StallVerdict,
    data_race_verdict,
    kcsan_counters,
    mmio_verdict,
    rx_stall_verdict,
    teardown_verdict,
)

FAIL = "FAIL"
DMA_ERROR_COUNT = "/sys/kernel/debug/dma-api/error_count"
KCSAN_DEBUGFS = "/sys/kernel/debug/kcsan"


def dma_api_errors(state: RunState) -> int | None:
    res = state.topo["dut"].run(f"cat {DMA_ERROR_COUNT}", timeout=20)
    return int(res.stdout) if res.ok and res.stdout.strip().isdigit() else None


def kcsan_state(state: RunState) -> dict[str, int]:
    """KCSAN's counters on the DUT; empty when it cannot be read."""
    res = state.topo["dut"].run(f"cat {KCSAN_DEBUGFS}", timeout=20)
    return kcsan_counters(res.stdout) if res.ok else {}


def judge_data_race(state: RunState, before: dict[str, int]) -> dict[str, Any]:
    """The DUT ran its NIC driver's KCSAN twin: its console must hold no KCSAN report, and
    KCSAN must have watched (vm `kcsan: true`)."""
    after = kcsan_state(state)
    reports = [f.line for f in state.topo["dut"].console_findings() if f.kind == "data-race"]
    v = data_race_verdict(reports, before, after)
    return {"name": "data-race", "verdict": v.verdict, "reason": v.reason,
            "kcsan_before": before, "kcsan_after": after}


def judge_rx_stall(state: RunState, threshold: float) -> dict[str, Any]:
    assert state.watchdog is not None
    end = state.pressure_end()
    if end is None:
        v = StallVerdict(INCONCLUSIVE, "no memory pressure phase ran: nothing to recover from")
    else:
        windows = [(a, b) for a, b in state.pressure_windows if b >= 0]
        traffic = [(a, b) for a, b in state.traffic_windows]
        v = rx_stall_verdict(state.watchdog.queue_series(traffic), end, threshold, windows)
    model = state.watchdog.model
    return {"name": "rx-stall", "verdict": v.verdict, "reason": v.reason, "queue": v.queue,
            "nic": model.name, "device_evidence": model.evidence or "none",
            "evidence_note": evidence_note(model),
            "stalled_queues": v.queues, "buffer_queue": v.buffer_queue,
            "stalled_for": round(v.stalled_for, 2), "threshold": threshold,
            "pressure": state.pressure_windows,
            "evidence": v.evidence}


def evidence_note(model: nics.NicModel) -> str:
    """What the rx-stall verdict of this model stands on, for the report."""
    where = {nics.EVIDENCE_BQNIC: "bqnic's own counters over QMP (buffers owned and drops, "
                                  "per buffer queue and queue)",
             nics.EVIDENCE_VIRTQUEUE: "QEMU's x-query-virtio-queue-status of rx queue 0 "
                                      "(buffers the device holds), judged for the whole "
                                      "device; frames count as arriving while the peer "
                                      "sends",
             nics.EVIDENCE_TRACE: f"QEMU trace events {', '.join(model.trace_events)}, "
                                  "counted for the whole device (no buffer count)",
             nics.EVIDENCE_GUEST_DEVICE_STATS: "the device's per-queue counters as its "
                                               "driver reads them (ethtool -S; no buffer "
                                               "count)"}
    text = where.get(model.evidence or "", "no device-side source: guest and peer "
                     "evidence only")
    return f"{model.name}: {text}" + (f". {model.note}" if model.note else "")


def judge_teardown(state: RunState, grace: float) -> dict[str, Any]:
    """Three witnesses: page-pool-get (netlink: pools with a .netdev), the page_pool ledger
    (tracepoints: every pool) and the console ("stalled pool shutdown", after 60 s). Any
    that sees a leak makes it a LEAK; the report says what each saw."""
    assert state.watchdog is not None
    netlink = teardown_verdict(state.teardown_events(), state.watchdog.pool_snapshots(), grace)
    pools, known_until = ledger.build(list(state.watchdog.guest))
    must_destroy = [e.start for e in state.teardown_events() if e.must_destroy]
    book = ledger.ledger_verdict(pools, known_until, must_destroy, state.sinks_closed_at,
                                 grace)
    warnings = ledger.stalled_shutdowns(state.topo["dut"].console_text())
    stalled = ledger.leak_warnings(warnings, list(state.watchdog.guest),
                                   state.sinks_closed_at, grace)
    verdicts = (netlink.verdict, book.verdict)
    if LEAK in verdicts or stalled:
        verdict = LEAK
    elif PASS in verdicts:
        verdict = PASS
    else:
        verdict = INCONCLUSIVE
    seen = [f"netlink: {netlink.verdict}: {netlink.reason}",
            f"ledger: {book.verdict}: {book.reason}"]
    if stalled:
        seen.append(f"console: {stalled[0]}")
    elif warnings:
        seen.append(f"console: {len(warnings)} stalled-shutdown warning(s) while unread "
                    "sockets held pages (not a leak)")
    return {"name": "teardown", "verdict": verdict, "reason": "; ".join(seen),
            "events": len(state.events), "pools_checked": netlink.checked, "grace": grace,
            "leaked": netlink.leaked,
            "witnesses": {"netlink": netlink.verdict, "ledger": book.verdict,
                          "console": "stalled pool shutdown" if stalled else
                          "patient" if warnings else "quiet"},
            "ledger": {"verdict": book.verdict, "checked": book.checked,
                       "leaked": book.leaked, "pools": book.pools},
            "console_stalled": [line for _, line in warnings][:5]}


def judge_dma(state: RunState, api_before: int | None) -> dict[str, Any]:
    """DMA-API debug's error count must not move; the device must see no DMA error but
    those the scenario injected (pressure dma_fault)."""
    api_after = dma_api_errors(state)
    device = state.watchdog.dma_errors() if state.watchdog else None
    injected = state.watchdog.dma_faults_injected() if state.watchdog else 0
    problems = []
    if api_before is not None and api_after is not None and api_after != api_before:
        problems.append(f"DMA-API debug errors {api_before} -> {api_after}")
    if device and device > injected:
        problems.append(f"the device saw {device - injected} DMA error(s)" +
                        (f" besides the {injected} injected" if injected else ""))
    verdict = FAIL if problems else PASS
    reason = "; ".join(problems) or (
        f"DMA-API error count unchanged ({api_after}), device DMA errors "
        f"{'not read' if device is None else 0}" +
        (f" besides the {injected} injected" if injected else ""))
    off = dma_debug_switched_off(state.topo["dut"].console_text())
    if off:
        # Its own tracking failed an allocation (failslab, memory pressure): the witness
        # is gone from then on, and the verdict says so rather than pass in silence.
        reason += f"; DMA-API debugging switched itself off mid-run ({off!r}): " \
                  "mappings made after that were not checked"
    return {"name": "dma", "verdict": verdict, "reason": reason,
            "dma_api_errors": [api_before, api_after], "device_dma_errors": device,
            "device_dma_faults_injected": injected, "dma_debug_off": off}


DMA_DEBUG_OFF = re.compile(r"DMA-API: [^\n]*(?:dma-debug disabled|disabling)[^\n]*")


def dma_debug_switched_off(console: str) -> str | None:
    """The kernel's line saying DMA-API debugging turned itself off, if it did."""
    m = DMA_DEBUG_OFF.search(console)
    return m.group(0).strip() if m else None


def mmio_intervals(state: RunState) -> list[tuple[int, int]]:
    """(register reads, interrupts) per device sample interval, where the model counts
    register reads (bqnic)."""
    samples = [d for d in (state.watchdog.device if state.watchdog else [])
               if d.mmio_reads is not None]
    return [(b.mmio_reads - a.mmio_reads,
             sum(q.get("interrupts", 0) for q in b.queues) -
             sum(q.get("interrupts", 0) for q in a.queues))
            for a, b in zip(samples, samples[1:], strict=False)]


def judge_mmio(state: RunState) -> tuple[dict[str, Any] | None, str | None]:
    """The verdict record, or None and why it does not apply."""
    intervals = mmio_intervals(state)
    if not intervals:
        return None, (f"{state.watchdog.model.name if state.watchdog else 'the DUT NIC'} "
                      "does not count the driver's register reads")
    v = mmio_verdict(intervals)
    if v is None:
        return None, "the queues were never busy enough to tell a hot path from tools"
    return {"name": "mmio", "verdict": v.verdict, "reason": v.reason, "reads": v.reads,
            "interrupts": v.interrupts, "busy_intervals": v.intervals}, None


BQL_INFLIGHT = "/sys/class/net/test0/queues/tx-*/byte_queue_limits/inflight"


def judge_bql(state: RunState, settle: float = 5.0) -> dict[str, Any]:
    """Once nothing is sent, BQL must hold no byte in flight on any tx queue: a driver that
    frees queued skbs with its ring (close, reconfigure, XDP swap) without
    netdev_tx_reset_queue() leaves bytes BQL waits for forever, and a queue that stops
    for good once they reach its limit."""
    dut = state.topo["dut"]
    command = f"grep -H . {BQL_INFLIGHT} 2>/dev/null"
    deadline = time.monotonic() + settle
    while True:
        res = dut.run(command, timeout=20)
        held = {}
        for line in res.stdout.splitlines():
            path, _, value = line.rpartition(":")
            queue = path.split("/queues/")[-1].split("/")[0]
            if value.strip().isdigit() and int(value) > 0:
                held[queue] = int(value)
        if not held or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    if not res.stdout.strip():
        return {"name": "bql", "verdict": PASS, "reason": "no BQL on test0's tx queues",
                "inflight": {}}
    if held:
        worst = max(held, key=lambda q: held[q])
        return {"name": "bql", "verdict": FAIL, "inflight": held,
                "reason": f"{worst}: BQL holds {held[worst]} byte(s) in flight {settle:.0f} s "
                          "after the traffic stopped (skbs freed without "
                          "netdev_tx_reset_queue()?)" +
                          (f"; also {', '.join(q for q in held if q != worst)}"
                           if len(held) > 1 else "")}
    return {"name": "bql", "verdict": PASS, "inflight": {},
            "reason": "no byte left in flight on any tx queue once the traffic stopped"}
