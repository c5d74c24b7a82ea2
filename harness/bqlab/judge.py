"""From a finished run's samples to its verdict records (report.json `verdicts`)."""

import time
from typing import Any

from .runstate import RunState
from .verdicts import (
    INCONCLUSIVE,
    PASS,
    StallVerdict,
    rx_stall_verdict,
    teardown_verdict,
)

FAIL = "FAIL"
DMA_ERROR_COUNT = "/sys/kernel/debug/dma-api/error_count"


def dma_api_errors(state: RunState) -> int | None:
    res = state.topo["dut"].run(f"cat {DMA_ERROR_COUNT}", timeout=20)
    return int(res.stdout) if res.ok and res.stdout.strip().isdigit() else None


def judge_rx_stall(state: RunState, threshold: float) -> dict[str, Any]:
    assert state.watchdog is not None
    end = state.pressure_end()
    if end is None:
        v = StallVerdict(INCONCLUSIVE, "no memory pressure phase ran: nothing to recover from")
    else:
        windows = [(a, b) for a, b in state.pressure_windows if b >= 0]
        v = rx_stall_verdict(state.watchdog.queue_series(), end, threshold, windows)
    return {"name": "rx-stall", "verdict": v.verdict, "reason": v.reason, "queue": v.queue,
            "stalled_queues": v.queues, "buffer_queue": v.buffer_queue,
            "stalled_for": round(v.stalled_for, 2), "threshold": threshold,
            "pressure": state.pressure_windows,
            "evidence": v.evidence}


def judge_teardown(state: RunState, grace: float) -> dict[str, Any]:
    assert state.watchdog is not None
    v = teardown_verdict(state.teardown_events(), state.watchdog.pool_snapshots(), grace)
    return {"name": "teardown", "verdict": v.verdict, "reason": v.reason,
            "events": len(state.events), "pools_checked": v.checked, "grace": grace,
            "leaked": v.leaked}


def judge_dma(state: RunState, api_before: int | None) -> dict[str, Any]:
    """DMA-API debug's error count must not move; the device must see no DMA error."""
    api_after = dma_api_errors(state)
    device = state.watchdog.dma_errors() if state.watchdog else None
    problems = []
    if api_before is not None and api_after is not None and api_after != api_before:
        problems.append(f"DMA-API debug errors {api_before} -> {api_after}")
    if device:
        problems.append(f"the device saw {device} DMA error(s)")
    verdict = FAIL if problems else PASS
    reason = "; ".join(problems) or (
        f"DMA-API error count unchanged ({api_after}), device DMA errors "
        f"{'not read' if device is None else 0}")
    return {"name": "dma", "verdict": verdict, "reason": reason,
            "dma_api_errors": [api_before, api_after], "device_dma_errors": device}


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
