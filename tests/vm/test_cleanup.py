"""No QEMU outlives the harness: not on Ctrl-C, a scenario timeout, SIGKILL or a panic."""

import subprocess
import time
from pathlib import Path

from .conftest import (
    DATA_DIR,
    interrupt,
    only_report,
    qemu_pids_under,
    run_bqlab,
    start_bqlab,
    wait_no_qemu,
)


def _wait_for_line(proc: subprocess.Popen, needle: str, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return "".join(seen)
    raise AssertionError(f"never saw {needle!r}; output:\n{''.join(seen)}")


def test_ctrl_c_stops_every_vm(built, bqlab_env: dict[str, str], tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    proc = start_bqlab(["run", "smoke", "--set", "steps[3].iperf3.seconds=120"], bqlab_env)
    try:
        _wait_for_line(proc, "step 0 ping", 240)  # booted and working
        assert len(qemu_pids_under(artifacts)) == 2
        interrupt(proc)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 3, out
    assert wait_no_qemu(artifacts) == []
    report = only_report(artifacts)
    assert report["verdict"] == "ERROR" and "interrupted" in report["error"]


def test_sigkill_of_the_harness_takes_qemu_along(built, bqlab_env: dict[str, str],
                                                 tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    proc = start_bqlab(["up"], bqlab_env)
    try:
        _wait_for_line(proc, "Ctrl-C stops both VMs", 240)
        assert len(qemu_pids_under(artifacts)) == 2
        proc.kill()  # no handler runs: only PR_SET_PDEATHSIG is left to act
        proc.wait(10)
    finally:
        proc.kill()
    assert wait_no_qemu(artifacts) == []


def test_scenario_timeout_stops_every_vm(built, bqlab_env: dict[str, str],
                                         tmp_path: Path) -> None:
    res = run_bqlab(["run", str(DATA_DIR / "hang.yaml")], bqlab_env, timeout=300)
    assert res.returncode == 3, res.stdout + res.stderr
    assert "timed out after 45s" in res.stderr
    assert wait_no_qemu(tmp_path / "artifacts", seconds=1) == []
    assert only_report(tmp_path / "artifacts")["verdict"] == "ERROR"


def test_guest_panic_fails_with_the_excerpt(built, bqlab_env: dict[str, str],
                                            tmp_path: Path) -> None:
    res = run_bqlab(["run", str(DATA_DIR / "panic.yaml")], bqlab_env, timeout=300)
    assert res.returncode == 1, res.stdout + res.stderr
    report = only_report(tmp_path / "artifacts")
    kinds = [f["kind"] for f in report["console_findings"]["dut"]]
    assert "panic" in kinds
    assert "sysrq triggered crash" in res.stderr
    assert wait_no_qemu(tmp_path / "artifacts", seconds=1) == []


def test_dut_that_stops_answering_fails_the_dut(built, bqlab_env: dict[str, str],
                                                tmp_path: Path) -> None:
    res = run_bqlab(["run", str(DATA_DIR / "dut-hang.yaml")], bqlab_env, timeout=400)
    assert res.returncode == 1, res.stdout + res.stderr
    report = only_report(tmp_path / "artifacts")
    dead = [v for v in report["verdicts"] if v["name"] == "dut-alive"]
    assert dead and dead[0]["verdict"] == "FAIL", report
    # The NMI made the silent guest speak: a panic with its backtrace on the console.
    kinds = [f["kind"] for f in report["console_findings"].get("dut", [])]
    assert "panic" in kinds, report
    assert wait_no_qemu(tmp_path / "artifacts", seconds=1) == []
