"""Run-time packages are asked for before anything is built or booted.

A cache restored in CI (or built on another machine) brings no Debian packages with it:
each booting command must ask for firmware and QEMU's libraries itself, first.
"""

import subprocess

import pytest
from bqlab import cli, hostdeps
from bqlab.build import artifacts

BOOTING_COMMANDS = [
    ["run", "smoke"],
    ["up"],
    ["bench", "boot"],
    ["bench", "profile"],
]


@pytest.fixture
def empty_package_db(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """No Debian package is installed; records what would have been built or booted."""
    touched: list[str] = []
    monkeypatch.setattr(hostdeps, "is_installed", lambda package: False)

    def no_build(*_args, **_kwargs):
        touched.append("resolve")
        raise AssertionError("built or booted before the run-time packages were asked for")

    monkeypatch.setattr(artifacts, "resolve", no_build)
    return touched


@pytest.mark.parametrize("argv", BOOTING_COMMANDS, ids=" ".join)
def test_booting_commands_name_missing_runtime_packages_first(
        argv: list[str], empty_package_db: list[str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(hostdeps, "_is_root", lambda: False)
    assert cli.main(argv) == 3
    err = capsys.readouterr().err
    for package in hostdeps.VM_RUNTIME:
        assert package in err, f"`bqlab {' '.join(argv)}` did not ask for {package}"
    assert "apt-get install" in err
    if argv == ["bench", "profile"]:
        assert "linux-perf" in err
    assert empty_package_db == []


@pytest.mark.parametrize("argv", BOOTING_COMMANDS, ids=" ".join)
def test_as_root_booting_commands_install_runtime_packages_before_building(
        argv: list[str], empty_package_db: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostdeps, "_is_root", lambda: True)
    monkeypatch.setattr(hostdeps, "_apt_updated", True)
    installs: list[list[str]] = []

    def fake_run(cmd, **_kwargs):
        installs.append(list(cmd))
        empty_package_db.append("apt-get")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(hostdeps.subprocess, "run", fake_run)
    cli.main(argv)  # the fake build refuses: exit 3, an internal error
    assert "resolve" in empty_package_db, "the command never got to the build"
    assert empty_package_db[0] == "apt-get", "built before installing run-time packages"
    installed = {p for cmd in installs for p in cmd[4:]}
    assert set(hostdeps.VM_RUNTIME) <= installed


def test_deps_check_lists_missing_and_fails(empty_package_db: list[str],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["deps", "test", "--check"]) == 3
    out = capsys.readouterr().out
    for package in hostdeps.TEST_RUNTIME:
        assert package in out


def test_deps_check_passes_when_all_installed(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(hostdeps, "is_installed", lambda package: True)
    assert cli.main(["deps", "all", "--check"]) == 0


def test_every_purpose_includes_the_firmware() -> None:
    for purpose in ("run", "bench", "test"):
        assert {"seabios", "qemu-system-data", "ipxe-qemu"} <= set(
            hostdeps.PURPOSES[purpose][1])
