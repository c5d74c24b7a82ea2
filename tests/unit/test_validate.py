"""bqlab validate's before/after comparison: the conclusion and its exit code, from run
reports alone (the VM test is tests/vm/test_validate.py)."""

import pytest
from bqlab.errors import ExitCode
from bqlab.run.validate import conclude, fisher_one_sided, render, rows


def run(stall: str = "PASS", teardown: str = "PASS", code: int | None = None) -> dict:
    verdicts = [{"name": "rx-stall", "verdict": stall},
                {"name": "teardown", "verdict": teardown}]
    failed = any(v["verdict"] != "PASS" for v in verdicts)
    exit_code = code if code is not None else int(failed)
    verdict = {0: "PASS", 1: "FAIL"}.get(exit_code, "ERROR")
    return {"scenario": "rx-stall", "verdict": verdict, "exit_code": exit_code,
            "verdicts": verdicts, "artifacts": "/a"}


def test_a_fix_is_confirmed_when_what_failed_before_passes_after() -> None:
    got = conclude("rx-stall", [run("STALL")] * 3, [run()] * 3)
    assert (got.kind, got.met, got.exit_code) == ("fix confirmed", True, ExitCode.PASS)
    assert got.text.startswith("fix confirmed: rx-stall STALL 3/3 before, PASS 3/3 after")
    assert got.p_value == pytest.approx(0.05)


def test_a_patch_that_changes_nothing_has_no_effect() -> None:
    got = conclude("rx-stall", [run("STALL")] * 2, [run("STALL")] * 2)
    assert (got.kind, got.exit_code) == ("no effect", ExitCode.VERDICT_FAILED)
    assert got.text == "no effect: rx-stall STALL 2/2 before, STALL 2/2 after"
    # nothing failed on either side: the scenario does not show the bug, no fix is shown
    got = conclude("rx-stall", [run()] * 2, [run()] * 2)
    assert (got.kind, got.exit_code) == ("no effect", ExitCode.VERDICT_FAILED)
    assert "does not show the bug" in got.text


def test_fewer_failures_is_not_a_fix() -> None:
    got = conclude("rx-stall", [run("STALL")] * 4, [run("STALL"), run(), run(), run()])
    assert (got.kind, got.exit_code) == ("not fixed", ExitCode.VERDICT_FAILED)
    assert "STALL 4/4 before, PASS 3/4, STALL 1/4 after" in got.text


def test_a_verdict_that_starts_failing_is_a_regression_even_beside_a_fix() -> None:
    got = conclude("rx-stall", [run("STALL")] * 2, [run(teardown="LEAK")] * 2)
    assert (got.kind, got.exit_code) == ("regression", ExitCode.VERDICT_FAILED)
    assert got.text == "regression in teardown PASS 2/2 before, LEAK 2/2 after"


def test_a_dut_that_dies_after_the_patch_is_a_regression() -> None:
    died = {"scenario": "rx-stall", "verdict": "FAIL", "exit_code": 1, "verdicts": [],
            "artifacts": "/a"}
    got = conclude("rx-stall", [run()] * 2, [died, run()])
    assert got.kind == "regression"
    assert got.text == ("regression in the runs (a step failed or the DUT died): "
                        "PASS 2/2 before, FAIL 1/2, PASS 1/2 after")


def test_a_run_that_could_not_finish_makes_it_inconclusive() -> None:
    got = conclude("rx-stall", [run("STALL")] * 2, [run(), run(code=3)])
    assert (got.kind, got.exit_code) == ("inconclusive", ExitCode.INFRA_FAILURE)


def test_expect_same_accepts_no_change_and_refuses_a_regression() -> None:
    assert conclude("x", [run()] * 2, [run()] * 2, "same").exit_code == ExitCode.PASS
    assert conclude("x", [run("STALL")] * 2, [run("STALL")] * 2, "same").met
    assert not conclude("x", [run()] * 2, [run("STALL")] * 2, "same").met


def test_fisher_tail() -> None:
    assert fisher_one_sided(3, 3, 0, 3) == pytest.approx(0.05)
    assert fisher_one_sided(10, 10, 0, 10) == pytest.approx(1 / 184756)
    assert fisher_one_sided(0, 5, 0, 5) == 1.0
    assert fisher_one_sided(1, 2, 1, 2) == pytest.approx(5 / 6)


def test_the_table_has_the_run_row_first() -> None:
    table = rows([run("STALL")], [run()])
    assert [r.name for r in table] == ["run", "rx-stall", "teardown"]
    text = render("rx-stall", table)
    assert "rx-stall  rx-stall  STALL 1/1  PASS 1/1  fixed" in text


def test_bad_input_exits_2_before_building_anything(tmp_path, capsys) -> None:
    from bqlab import cli

    assert cli.main(["validate", "rx-stall"]) == 2
    assert "nothing to validate" in capsys.readouterr().err
    assert cli.main(["validate", "--kernel-patch", str(tmp_path / "none.patch"),
                     "rx-stall"]) == 2
    assert "no such file" in capsys.readouterr().err
    patch = tmp_path / "p.patch"
    patch.write_text("")
    assert cli.main(["validate", "--kernel-patch", str(patch), "--repeat", "0",
                     "rx-stall"]) == 2
    assert cli.main(["validate", "--kernel-patch", str(patch), "no-such-scenario"]) == 2
