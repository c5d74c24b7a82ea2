"""End to end: both VMs boot from the built artifacts and pass traffic over the test link."""

from pathlib import Path

from .conftest import DATA_DIR, only_report, run_bqlab, wait_no_qemu

DATA = DATA_DIR


def test_smoke_scenario_passes(built, bqlab_env: dict[str, str], tmp_path: Path) -> None:
    res = run_bqlab(["run", "smoke"], bqlab_env)
    artifacts = tmp_path / "artifacts"
    assert res.returncode == 0, res.stdout + res.stderr
    report = only_report(artifacts)
    assert report["verdict"] == "PASS"
    assert [s["kind"] for s in report["steps"]] == ["ping", "ping", "ping", "iperf3"]
    assert all(s["ok"] for s in report["steps"])
    assert report["steps"][3]["details"]["mbps"] > 1
    assert "3 received" in report["steps"][0]["summary"]
    run_dir = Path(report["artifacts"])
    for vm in ("dut", "peer"):
        assert "bqlab-init: starting sshd" in (run_dir / vm / "console.log").read_text()
        assert "Linux version" in (run_dir / vm / "dmesg.txt").read_text()
        assert (run_dir / vm / "commands.jsonl").stat().st_size > 0
    assert (run_dir / "junit.xml").is_file()
    assert "smoke" in res.stdout and "PASS" in res.stdout
    assert f"artifacts: {run_dir}" in res.stdout
    assert wait_no_qemu(artifacts) == []


def test_e1000e_as_test_nic(built, bqlab_env: dict[str, str], tmp_path: Path) -> None:
    res = run_bqlab(["run", str(DATA / "e1000e-dut.yaml")], bqlab_env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert only_report(tmp_path / "artifacts")["verdict"] == "PASS"


def test_failing_step_is_a_failed_verdict(built, bqlab_env: dict[str, str],
                                          tmp_path: Path) -> None:
    # Negative control for the step verdict: the peer has no route to this address.
    res = run_bqlab(["run", "smoke", "--set", "steps[0].ping.count=1",
                     "--set", "steps[1]={shell: {on: dut, command: 'ping -c1 -W1 10.99.0.77'}}"],
                    bqlab_env)
    assert res.returncode == 1, res.stdout + res.stderr
    report = only_report(tmp_path / "artifacts")
    assert report["verdict"] == "FAIL"
    assert [s["ok"] for s in report["steps"]][:2] == [True, False]
