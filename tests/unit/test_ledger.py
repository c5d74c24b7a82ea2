"""The page_pool ledger: pool lives from tracepoint samples, and its teardown verdict."""

from bqlab.judge import ledger
from bqlab.judge.verdicts import INCONCLUSIVE, LEAK, PASS
from bqlab.judge.watchdog import GuestSample

POOL = "ffff888004a1c000"


def sample(t: float, events: list[dict]) -> GuestSample:
    # The guest's clock runs 100 s ahead of the harness's: the ledger must move it.
    return GuestSample(t, 4, {}, {}, ledger=events, guest_t=t + 100.0)


def created(ts: float, pool: str = POOL, pid: int = 7, dev: str = "0000:00:03.0"
            ) -> list[dict]:
    return [{"event": "pp_create", "ts": ts + 100, "pid": pid, "dev": dev},
            {"event": "pp_created", "ts": ts + 100, "pid": pid, "pool": "0x" + pool}]


def release(ts: float, inflight: int, pool: str = POOL) -> dict:
    return {"event": "page_pool_release", "ts": ts + 100, "pid": 1, "page_pool": pool,
            "inflight": inflight, "hold": 600, "release": 600 - inflight, "cnt": 1}


def judge(samples: list[GuestSample], must: list[float] | None = None,
          sinks_closed: float | None = None) -> ledger.LedgerVerdict:
    pools, known = ledger.build(samples)
    return ledger.ledger_verdict(pools, known, must or [], sinks_closed, grace=3.0)


def test_a_pool_freed_at_destruction_passes_and_keeps_its_device() -> None:
    pools, _ = ledger.build([sample(1, created(0.5)), sample(2, [release(1.5, 0)]),
                             sample(8, [])])
    [life] = pools.values()
    assert (life.device, life.created, life.destroyed, life.freed) == \
        ("0000:00:03.0", 0.5, 1.5, 1.5)
    assert judge([sample(1, created(0.5)), sample(2, [release(1.5, 0)]),
                  sample(8, [])]).verdict == PASS


def test_pages_left_in_flight_past_the_grace_leak() -> None:
    retries = [sample(2 + i, [release(1.5 + i, 40)]) for i in range(8)]
    v = judge([sample(1, created(0.5)), *retries])
    assert v.verdict == LEAK and "inflight 40" in v.reason


def test_a_pool_that_drains_within_the_grace_passes() -> None:
    samples = [sample(1, created(0.5)), sample(2, [release(1.5, 40)]),
               sample(3, [release(2.5, 40)]), sample(4, [release(3.5, 0)]), sample(9, [])]
    assert judge(samples).verdict == PASS


def test_unread_sockets_hold_pages_until_they_close() -> None:
    retries = [sample(2 + i, [release(1.5 + i, 40 if i < 6 else 0)]) for i in range(9)]
    assert judge([sample(1, created(0.5)), *retries], sinks_closed=6.0).verdict == PASS
    assert judge([sample(1, created(0.5)), *retries]).verdict == LEAK


def test_a_pool_never_destroyed_by_an_ifdown_leaks() -> None:
    v = judge([sample(1, created(0.5)), sample(9, [])], must=[2.0])
    assert v.verdict == LEAK and "never destroyed" in v.reason
    assert judge([sample(1, created(0.5)), sample(9, [])]).verdict == INCONCLUSIVE


def test_a_destruction_too_late_to_judge_is_inconclusive() -> None:
    v = judge([sample(1, created(0.5)), sample(2, [release(1.5, 40)])])
    assert v.verdict == INCONCLUSIVE


def test_no_ledger_is_inconclusive_not_pass() -> None:
    v = ledger.ledger_verdict({}, None, [], None, 3.0)
    assert v.verdict == INCONCLUSIVE and "no page_pool ledger" in v.reason


def test_an_err_ptr_return_is_no_pool() -> None:
    pools, _ = ledger.build([sample(1, created(0.5, pool="fffffffffffffff4"))])
    assert pools == {}


def test_the_kernels_own_warning_is_a_witness_once_nothing_holds_pages() -> None:
    line = "[   70.100000] page_pool_release_retry() stalled pool shutdown: id 9, 40 " \
        "inflight 60 sec"
    warnings = ledger.stalled_shutdowns(line + "\n[   70.2] other\n")
    assert warnings == [(70.1, line)]
    # guest uptime 100 s is harness time 0 here: the warning came at harness -29.9 s
    samples = [sample(t, []) for t in (-50.0, 0.0)]
    assert ledger.leak_warnings(warnings, samples, sinks_closed=None, grace=3) == [line]
    # unread sockets held the pages until harness time 10: the kernel was only patient
    assert ledger.leak_warnings(warnings, samples, sinks_closed=10.0, grace=3) == []
    assert ledger.leak_warnings(warnings, samples, sinks_closed=-40.0, grace=3) == [line]


def test_a_patient_warning_is_no_console_finding_but_a_leak_warning_is() -> None:
    from pathlib import Path

    from bqlab.run.report import RunReport
    from bqlab.run.runner import _drop_judged_pool_stalls

    def run(console: str | None) -> RunReport:
        rep = RunReport("s", "s.yaml", Path("/nonexistent"))
        rep.findings = {"dut": [{"kind": "pool-stall", "line": 4}, {"kind": "warn", "line": 9}]}
        if console is not None:
            rep.verdicts = [{"name": "teardown", "verdict": "PASS",
                             "witnesses": {"netlink": "PASS", "ledger": "PASS",
                                           "console": console}}]
        _drop_judged_pool_stalls(rep)
        return rep

    assert [f["kind"] for f in run("patient").findings["dut"]] == ["warn"]
    assert len(run("stalled pool shutdown").findings["dut"]) == 2
    assert len(run(None).findings["dut"]) == 2  # not judged: the console finding stands


def test_a_freed_pools_memory_reused_by_the_next_pool_is_a_new_life() -> None:
    """XDP cycles destroy and create pools by the hundred: the allocator hands a freed
    pool's memory to the next one. Each is judged on its own."""
    samples = [sample(1, created(0.5)), sample(2, [release(1.5, 0)]),
               sample(3, created(2.5)), sample(4, [release(3.5, 0)]),
               sample(5, [release(4.5, 7)]), sample(12, [])]
    pools, _ = ledger.build(samples)
    assert [(p.created, p.destroyed, p.freed) for p in pools.values()] == \
        [(0.5, 1.5, 1.5), (2.5, 3.5, 3.5), (None, 4.5, None)]
    v = judge(samples)
    assert v.verdict == LEAK and v.checked == 3
