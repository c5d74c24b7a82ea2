"""A DUT that stops answering is a FAIL of the DUT (exit 1), not an infrastructure error."""

from pathlib import Path
from types import SimpleNamespace

import pytest
from bqlab.errors import ExitCode, InfraError
from bqlab.run import runner
from bqlab.run.report import RunReport
from bqlab.vm import liveness
from bqlab.vm.console import scan_file

DATA = Path(__file__).parent / "data"


class FakeVm:
    def __init__(self, alive: bool = True, booted: bool = True):
        self.name = "dut"
        self._alive = alive
        self.ssh = object() if booted else None
        self.ssh_ready_at = 12.0 if booted else 0.0
        self.nmis = 0
        self.qmp = SimpleNamespace(cmd=self._qmp)

    def _qmp(self, command: str, **_kw) -> None:
        assert command == "inject-nmi"
        self.nmis += 1

    def alive(self) -> bool:
        return self._alive


@pytest.fixture(autouse=True)
def no_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(liveness, "NMI_SETTLE", 0.0)


def test_silent_dut_with_qemu_running_is_a_death_and_gets_an_nmi(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(liveness, "answers", lambda vm, timeout=0: False)
    dut = FakeVm()
    death = liveness.check_dut({"dut": dut}, InfraError("dut: `ip link` timed out after 30s"))
    assert death is not None and "stopped answering" in death.how
    assert "timed out" in death.how
    assert dut.nmis == 1


def test_dut_that_still_answers_leaves_the_error_to_the_lab(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(liveness, "answers", lambda vm, timeout=0: True)
    dut = FakeVm()
    assert liveness.check_dut({"dut": dut}, InfraError("QMP call timed out")) is None
    assert dut.nmis == 0


def test_dut_that_never_booted_or_whose_qemu_exited_is_not_judged_here(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(liveness, "answers", lambda vm, timeout=0: False)
    assert liveness.check_dut({"dut": FakeVm(booted=False)}, InfraError("x")) is None
    assert liveness.check_dut({"dut": FakeVm(alive=False)}, InfraError("x")) is None
    assert liveness.check_dut({"peer": FakeVm()}, InfraError("x")) is None


class FakeTopo:
    accel, accel_reason = "tcg,thread=multi", "KVM not used: test"
    configs: list = []

    def __init__(self, console: Path):
        self.console = console
        # a kernel artifact without decoding material: reports stay as printed
        self.built = SimpleNamespace(bzimage=console.parent / "no-kernel" / "bzImage")

    def findings(self) -> dict:
        return {"dut": scan_file(self.console), "peer": []}


def _finish(tmp_path: Path, console: Path, death: liveness.Death | None,
            error: str | None) -> RunReport:
    rep = RunReport("hang", "test", tmp_path)
    if death is not None:
        rep.exit_code, rep.death = ExitCode.VERDICT_FAILED, death
    else:
        rep.exit_code, rep.error = ExitCode.INFRA_FAILURE, error
    runner._finish(rep, FakeTopo(console), 0.0)
    return rep


def test_recorded_hang_is_a_fail_naming_the_first_console_report(tmp_path: Path) -> None:
    death = liveness.Death("dut", "the DUT stopped answering while its QEMU ran")
    rep = _finish(tmp_path, DATA / "oops-null.log", death, None)
    assert rep.exit_code == ExitCode.VERDICT_FAILED and rep.verdict == "FAIL"
    verdict = next(v for v in rep.verdicts if v["name"] == "dut-alive")
    first = rep.findings["dut"][0]
    assert first["text"] in verdict["reason"]
    assert "stopped answering" in rep.diagnosis()
    assert (tmp_path / "report.json").is_file()


def test_recorded_hang_with_a_silent_console_still_fails(tmp_path: Path) -> None:
    quiet = tmp_path / "console.log"
    quiet.write_text("[    1.0] bqlab-init: starting sshd\n")
    death = liveness.Death("dut", "the DUT stopped answering while its QEMU ran")
    rep = _finish(tmp_path, quiet, death, None)
    assert rep.verdict == "FAIL" and "no kernel report" in rep.diagnosis()


def test_recorded_lab_failure_with_a_clean_console_stays_an_error(tmp_path: Path) -> None:
    quiet = tmp_path / "console.log"
    quiet.write_text("[    1.0] bqlab-init: starting sshd\n")
    rep = _finish(tmp_path, quiet, None, "peer: QMP call timed out after 10s")
    assert rep.exit_code == ExitCode.INFRA_FAILURE and rep.verdict == "ERROR"


def test_a_dut_command_that_never_returns_is_a_death_even_if_ssh_answers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from bqlab.vm.ssh import CommandTimeout

    monkeypatch.setattr(liveness, "answers", lambda vm, timeout=0: True)
    dut = FakeVm()
    ran: list[str] = []
    dut.run = lambda command, timeout=0: ran.append(command)  # type: ignore[attr-defined]
    stuck = CommandTimeout("dut: `ethtool -G test0 rx 512` timed out after 120s", host="dut")
    death = liveness.check_dut({"dut": dut}, stuck)
    assert death is not None and "never completed" in death.how and "ethtool" in death.how
    assert any("sysrq-trigger" in c for c in ran)  # where it is stuck goes to the console
    # the same timeout on the peer, with the DUT answering, is not the DUT's
    peer_slow = CommandTimeout("peer: `pktgen` timed out after 60s", host="peer")
    assert liveness.check_dut({"dut": FakeVm()}, peer_slow) is None


def test_recorded_crash_of_the_dut_is_a_dut_alive_fail(tmp_path: Path) -> None:
    rep = _finish(tmp_path, DATA / "oops-null.log", None,
                  "dut: VM is gone.\nQEMU exited with 0; last console lines ...")
    assert rep.exit_code == ExitCode.VERDICT_FAILED
    [dead] = [v for v in rep.verdicts if v["name"] == "dut-alive"]
    assert "crashed" in dead["reason"] and rep.findings["dut"][0]["text"] in dead["reason"]
    assert rep.diagnosis().startswith("dut-alive FAIL")
