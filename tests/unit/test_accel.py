"""The KVM probe tells 'QEMU could not start' from 'the guest printed nothing', and caches
only answers about KVM itself. A fake QEMU (a shell script) plays each part."""

import os
from pathlib import Path

import pytest
from bqlab.vm import accel

# The fake QEMU finds the serial log in its `-serial file:PATH` argument.
FIND_SERIAL = 'for a in "$@"; do case "$a" in file:*) log="${a#file:}";; esac; done\n'


def fake_qemu(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "qemu-system-x86_64"
    script.write_text("#!/bin/sh\n" + FIND_SERIAL + body)
    script.chmod(0o755)
    return script


@pytest.fixture
def kvm_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BQLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("BQLAB_ACCEL", raising=False)
    monkeypatch.setattr(accel, "kvm_device_problem", lambda dev=accel.KVM_DEV: None)
    monkeypatch.setattr(accel, "PROBE_SECONDS", 1.0)
    monkeypatch.setattr(accel, "_failed_here", {})
    bz = tmp_path / "bzImage"
    bz.write_bytes(b"")
    return bz


def test_guest_that_prints_means_kvm(tmp_path: Path, kvm_env: Path) -> None:
    qemu = fake_qemu(tmp_path, 'echo "Linux version 6.12" > "$log"; sleep 5\n')
    choice = accel.choose(qemu, kvm_env, [])
    assert choice.accel == accel.KVM
    assert accel.cached_probe(qemu, kvm_env).outcome == "boots"


def test_guest_that_prints_nothing_means_hang_and_is_cached(tmp_path: Path,
                                                            kvm_env: Path) -> None:
    qemu = fake_qemu(tmp_path, "sleep 5\n")
    choice = accel.choose(qemu, kvm_env, [])
    assert choice.accel == accel.TCG
    assert "printed nothing" in choice.reason
    assert accel.cached_probe(qemu, kvm_env).outcome == "hangs"


def test_qemu_that_cannot_start_is_named_with_its_stderr_and_never_cached(
        tmp_path: Path, kvm_env: Path) -> None:
    qemu = fake_qemu(tmp_path, "echo \"qemu: could not load PC BIOS 'bios-256k.bin'\" >&2\n"
                               "exit 1\n")
    choice = accel.choose(qemu, kvm_env, [])
    assert choice.accel == accel.TCG
    assert "QEMU could not start" in choice.reason
    assert "bios-256k.bin" in choice.reason
    assert not (accel.cache_root() / accel.CACHE_NAME).exists()  # never on disk
    # The same process asks once (one probe per run, not one per topology) ...
    again = accel.choose(qemu, kvm_env, [])
    assert again == choice
    # ... and once the firmware is there the next run probes again and finds KVM working.
    accel._failed_here.clear()  # a new process
    fake_qemu(tmp_path, 'echo "Linux version 6.12" > "$log"; sleep 5\n')
    os.utime(qemu, ns=(1, 1))  # a same-second rewrite must not matter: nothing was cached
    assert accel.choose(qemu, kvm_env, []).accel == accel.KVM


def test_failed_probe_drops_an_older_cached_answer(tmp_path: Path, kvm_env: Path) -> None:
    qemu = fake_qemu(tmp_path, "sleep 5\n")
    accel.choose(qemu, kvm_env, [])
    assert accel.cached_probe(qemu, kvm_env) is not None
    result = accel.ProbeResult("qemu-failed", "QEMU could not start")
    accel.store_probe(qemu, kvm_env, result)
    assert not (accel.cache_root() / accel.CACHE_NAME).exists()


def test_missing_device_says_why(tmp_path: Path) -> None:
    problem = accel.kvm_device_problem(str(tmp_path / "kvm"))
    assert problem is not None and "no " in problem


def test_unopenable_device_says_permission(monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(path, flags):  # root opens any file, so deny it the way a user is denied
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(accel.os, "open", denied)
    problem = accel.kvm_device_problem()
    assert problem is not None and "permission" in problem and "kvm" in problem


def test_forced_accelerator_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BQLAB_ACCEL", "tcg")
    choice = accel.choose(tmp_path / "none", tmp_path / "none", [])
    assert choice.accel == accel.TCG and "BQLAB_ACCEL" in choice.reason
