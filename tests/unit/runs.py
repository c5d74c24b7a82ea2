"""Fabricated finished runs (report.json, junit.xml, results.ktap written by RunReport), for
the merge and KTAP tests: no VM involved."""

from pathlib import Path

from bqlab.errors import ExitCode
from bqlab.run.report import RunReport
from bqlab.run.rundir import new_run_dir

STEP = {"index": 0, "kind": "ping", "line": 14, "ok": True, "summary": "3/3 replies",
        "seconds": 1.5, "details": {}}


def _verdict(name: str, verdict: str, reason: str) -> dict:
    return {"name": name, "verdict": verdict, "reason": reason}


def make_run(root: Path, scenario: str, outcome: str, seconds: float = 20.0) -> RunReport:
    """A run of `scenario` ending in `outcome`: PASS, FAIL, INCONCLUSIVE or ERROR."""
    rep = RunReport(scenario, f"/somewhere/{scenario}.yaml", new_run_dir(scenario, root),
                    accelerator="tcg,thread=multi", kernel_release="6.12.117",
                    boot_seconds={"dut": 3.6, "peer": 3.2}, steps=[dict(STEP)],
                    duration=seconds)
    if outcome == "PASS":
        rep.verdicts = [_verdict("rx-stall", "PASS", "rx came back 0.3s after the pressure"),
                        _verdict("dma", "PASS", "no DMA-API errors")]
    elif outcome == "FAIL":
        rep.exit_code = ExitCode.VERDICT_FAILED
        rep.verdicts = [_verdict("rx-stall", "STALL", "queue 0 (sbq) stalled for 4.2s"),
                        _verdict("dma", "PASS", "no DMA-API errors")]
    elif outcome == "INCONCLUSIVE":
        rep.exit_code = ExitCode.VERDICT_FAILED
        rep.verdicts = [_verdict("rx-stall", "INCONCLUSIVE", "no rx-alloc-fail ever moved")]
    elif outcome == "ERROR":
        rep.exit_code = ExitCode.INFRA_FAILURE
        rep.error = "dut: no SSH after 120s\n(console.log ends in the firmware)"
        rep.boot_seconds, rep.steps = {}, []
    else:
        raise ValueError(outcome)
    rep.write()
    assert rep.verdict == outcome, (rep.verdict, outcome)
    return rep
