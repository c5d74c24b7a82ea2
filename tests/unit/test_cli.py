"""Exit codes are a contract; bad input is rejected before anything is built or booted."""

import subprocess
import sys
from pathlib import Path

BQLAB = [sys.executable, "-m", "bqlab.cli"]


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([*BQLAB, *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_bad_scenario_file_exits_2_and_touches_nothing(tmp_path: Path,
                                                       bqlab_env: dict[str, str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nvms: {dut: {cpus: many}}\nsteps: [{ping: {from: dut, to: dut}}]\n")
    bqlab_env["BQLAB_CACHE"] = str(tmp_path / "cache")
    res = run(["run", str(bad)], bqlab_env)
    assert res.returncode == 2, res.stderr
    assert f"{bad}:2: vms.dut.cpus: expected an integer, got 'many'" in res.stderr
    assert not (tmp_path / "artifacts").exists()
    assert not (tmp_path / "cache").exists()


def test_unknown_scenario_exits_2(bqlab_env: dict[str, str]) -> None:
    res = run(["run", "no-such-scenario"], bqlab_env)
    assert res.returncode == 2
    assert "unknown scenario 'no-such-scenario'" in res.stderr


def test_bad_set_exits_2(bqlab_env: dict[str, str]) -> None:
    res = run(["run", "smoke", "--set", "vms.dut.nic=rtl8139"], bqlab_env)
    assert res.returncode == 2
    assert "--set vms.dut.nic=rtl8139" in res.stderr


def test_missing_kernel_patch_exits_2(tmp_path: Path, bqlab_env: dict[str, str]) -> None:
    res = run(["build", "kernel", "--kernel-patch", str(tmp_path / "nope.patch")], bqlab_env)
    assert res.returncode == 2
    assert "nope.patch: no such file" in res.stderr


def test_usage_error_exits_2(bqlab_env: dict[str, str]) -> None:
    assert run(["frobnicate"], bqlab_env).returncode == 2
