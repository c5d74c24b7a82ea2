"""`bqlab doctor`: says why KVM is not used, lists the cache, exits non-zero with fixes."""

import json
from pathlib import Path

import pytest
from bqlab import cli, hostdeps
from bqlab.vm import accel


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache with one QEMU artifact of another key, every package installed, no KVM."""
    cache = tmp_path / "cache"
    art = cache / "qemu" / "0123456789abcdef"
    (art / "bin").mkdir(parents=True)
    (art / "bin" / "qemu-system-x86_64").write_bytes(b"\0" * 8192)
    (art / "manifest.json").write_text(json.dumps(
        {"kind": "qemu", "key": art.name, "build_seconds": 240.0,
         "inputs": {"tarball": "qemu_10.0.2+ds.orig.tar.xz", "recipe": 1}}))
    monkeypatch.setenv("BQLAB_CACHE", str(cache))
    monkeypatch.setattr(hostdeps, "is_installed", lambda package: True)
    monkeypatch.setattr(accel, "kvm_device_problem",
                        lambda dev=accel.KVM_DEV: "no /dev/kvm: the kvm module is not loaded")
    return cache


def test_says_why_kvm_is_not_used_and_lists_the_cache(
        machine: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "KVM not used: no /dev/kvm" in out
    assert "0123456789abcdef" in out and "stale" in out  # not the current sources' key
    assert "qemu_10.0.2+ds.orig.tar.xz" in out
    assert "no problems" in out


def test_missing_packages_as_a_user_are_problems_with_their_fix(
        machine: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(hostdeps, "is_installed", lambda package: package != "seabios")
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert cli.main(["doctor"]) == 3
    out = capsys.readouterr().out
    assert "PROBLEM" in out
    assert "sudo apt-get install -y --no-install-recommends seabios" in out


def test_json_has_every_section(machine: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["doctor", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    sections = {c["section"] for c in result["checks"]}
    assert {"host", "kvm", "packages", "cache"} <= sections
    entry = next(e for e in result["cache"] if e["kind"] == "qemu")
    assert entry["size"] >= 8192 and entry["current"] is False
