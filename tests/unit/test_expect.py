"""expect: a negative control states what it must show; positives must PASS."""

from bqlab.scenario import expect


def report(verdict: str, **verdicts: str) -> dict:
    return {"verdict": verdict, "diagnosis": "d",
            "verdicts": [{"name": k.replace("_", "-"), "verdict": v}
                         for k, v in verdicts.items()]}


def test_positive_scenario_must_pass() -> None:
    assert expect.check({}, report("PASS", rx_stall="PASS")).met
    miss = expect.check({}, report("FAIL", rx_stall="STALL"))
    assert not miss.met and miss.got == "FAIL"


def test_negative_control_must_show_its_verdict() -> None:
    assert expect.check({"rx-stall": "STALL"}, report("FAIL", rx_stall="STALL")).met
    missed = expect.check({"rx-stall": "STALL"}, report("PASS", rx_stall="PASS"))
    assert not missed.met and "expected STALL, got PASS" in missed.detail


def test_a_verdict_that_was_never_judged_is_not_met() -> None:
    got = expect.check({"teardown": "LEAK"}, report("FAIL", rx_stall="STALL"))
    assert not got.met and "not judged" in got.detail


def test_an_errored_run_proves_nothing() -> None:
    got = expect.check({"dut-alive": "FAIL"}, report("ERROR", dut_alive="FAIL"))
    assert not got.met and "ERROR" in got.detail
