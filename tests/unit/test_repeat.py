"""--repeat/--until-fail: a tally per outcome, the worst exit code, a flake rate."""

import json
from pathlib import Path

import pytest
from bqlab import cli
from bqlab.errors import ExitCode
from bqlab.run import repeat, runner
from bqlab.run.report import RunReport


def report(name: str, verdict: str, code: int, stall: str = "PASS") -> dict:
    return {"scenario": name, "verdict": verdict, "exit_code": code, "artifacts": f"/a/{name}",
            "verdicts": [{"name": "rx-stall", "verdict": stall}]}


def test_tally_counts_outcomes_and_flake_rate() -> None:
    runs = [report("rx-stall", "PASS", 0)] * 18 + \
        [report("rx-stall", "FAIL", 1, "STALL")] * 2
    [t] = repeat.tally(runs)
    assert t["outcomes"] == {"PASS": 18, "FAIL (rx-stall STALL)": 2}
    assert t["flake_rate"] == 0.1 and t["exit_code"] == 1
    assert len(t["not_passed"]) == 2
    assert "PASS 18/20, FAIL (rx-stall STALL) 2/20; flake rate 10%" in repeat.render([t])


def test_runs_that_agree_have_no_flake() -> None:
    [t] = repeat.tally([report("b", "FAIL", 1, "STALL")] * 5)
    assert t["flake_rate"] == 0 and t["outcomes"] == {"FAIL (rx-stall STALL)": 5}


@pytest.fixture
def fake_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[int]:
    """Each run's exit code, popped in order; records nothing else."""
    codes: list[int] = []

    def run(sc, built, snapshot_on_fail: bool = False) -> RunReport:
        code = ExitCode(codes.pop(0))
        return RunReport(sc.name, sc.source, tmp_path, exit_code=code,
                         verdicts=[{"name": "rx-stall", "reason": "r",
                                    "verdict": "PASS" if code == 0 else "STALL"}])

    monkeypatch.setattr(runner, "run_scenario", run)
    monkeypatch.setattr(cli, "_built", lambda args, purpose="run": None)
    monkeypatch.setattr(cli, "say_accelerator", lambda built: None)
    monkeypatch.setenv("BQLAB_ARTIFACTS", str(tmp_path / "artifacts"))
    return codes


def test_repeat_runs_n_times_and_exits_with_the_worst(fake_run: list[int],
                                                      tmp_path: Path) -> None:
    fake_run.extend([0, 1, 0])
    assert cli.main(["run", "rx-stall", "--repeat", "3"]) == 1
    assert fake_run == []
    [tally] = (tmp_path / "artifacts").glob("*-repeat/report.json")
    data = json.loads(tally.read_text())
    assert data["schema"] == repeat.SCHEMA and data["scenarios"][0]["runs"] == 3


def test_until_fail_stops_at_the_first_failure(fake_run: list[int]) -> None:
    fake_run.extend([0, 0, 1, 0, 0])
    assert cli.main(["run", "rx-stall", "--repeat", "5", "--until-fail"]) == 1
    assert fake_run == [0, 0]  # two runs never started


def test_bad_repeat_is_bad_input(fake_run: list[int]) -> None:
    assert cli.main(["run", "rx-stall", "--repeat", "0"]) == 2
