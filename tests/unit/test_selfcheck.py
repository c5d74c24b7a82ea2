"""bqlab selfcheck: expected against got for each scenario, and the exit code it deserves."""

from pathlib import Path

import pytest
from bqlab import cli
from bqlab.errors import ExitCode
from bqlab.run import runner
from bqlab.run.report import RunReport


@pytest.fixture
def fake_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, tuple]:
    """scenario name -> (exit code, {verdict name: verdict}) that the fake run reports."""
    outcomes: dict[str, tuple] = {}

    def run(sc, built) -> RunReport:
        code, verdicts = outcomes[sc.name]
        rep = RunReport(sc.name, sc.source, tmp_path, exit_code=code, expect=sc.expect,
                        steps=[], verdicts=[{"name": k, "verdict": v, "reason": "r"}
                                            for k, v in verdicts.items()])
        if code == ExitCode.INFRA_FAILURE:
            rep.error = "QEMU died"
        return rep

    monkeypatch.setattr(runner, "run_scenario", run)
    monkeypatch.setattr(cli, "_built", lambda args, purpose="run": None)
    monkeypatch.setattr(cli, "say_accelerator", lambda built: None)
    return outcomes


def test_every_expectation_met_passes(fake_runs: dict, capsys) -> None:
    fake_runs["rx-stall"] = (ExitCode.PASS, {"rx-stall": "PASS"})
    fake_runs["rx-stall-buggy"] = (ExitCode.VERDICT_FAILED, {"rx-stall": "STALL"})
    assert cli.main(["selfcheck", "rx-stall", "rx-stall-buggy"]) == 0
    out = capsys.readouterr().out
    assert "2 of 2 scenarios show what they expect" in out


def test_a_negative_control_that_passes_is_a_mismatch(fake_runs: dict, capsys) -> None:
    fake_runs["rx-stall-buggy"] = (ExitCode.PASS, {"rx-stall": "PASS"})
    assert cli.main(["selfcheck", "rx-stall-buggy"]) == 1
    assert "expected STALL, got PASS" in capsys.readouterr().out


def test_a_run_the_lab_could_not_finish_exits_3(fake_runs: dict) -> None:
    fake_runs["rx-stall-buggy"] = (ExitCode.INFRA_FAILURE, {})
    assert cli.main(["selfcheck", "rx-stall-buggy"]) == 3
