"""VM tests: every test here is marked `vm` and needs QEMU, the kernel and the image.

`make test` builds them first; run directly, the `built` fixture builds what is missing.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bqlab import hostdeps
from bqlab.build.artifacts import BuiltArtifacts, resolve
from bqlab.build.kernel import KernelSpec

BQLAB = [sys.executable, "-m", "bqlab.cli"]
DATA_DIR = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def built() -> BuiltArtifacts:
    hostdeps.require("run")
    return resolve(KernelSpec.from_env(), build_missing=True)


def qemu_pids_under(path: Path) -> list[int]:
    """QEMU processes whose command line mentions path (each test has its own)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        if "qemu-system" in cmdline and str(path) in cmdline and \
                stat.rsplit(")", 1)[1].split()[0] != "Z":
            pids.append(int(proc.name))
    return pids


def wait_no_qemu(path: Path, seconds: float = 15.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while (pids := qemu_pids_under(path)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return pids


def run_bqlab(args: list[str], env: dict[str, str], timeout: float = 900,
              ) -> subprocess.CompletedProcess:
    return subprocess.run([*BQLAB, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def _sigint_as_in_a_terminal() -> None:
    # A test suite started in the background of a non-interactive shell (nohup, `&` in a
    # CI script) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt:
    # give the harness the disposition a terminal job has.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_bqlab(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    # Own process group, like a shell job: SIGINT to the group is what Ctrl-C does.
    return subprocess.Popen([*BQLAB, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=_sigint_as_in_a_terminal)


def interrupt(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGINT)


def only_report(artifacts: Path) -> dict:
    [report] = [p for p in artifacts.glob("*/report.json") if p.parent.name != "latest"]
    return json.loads(report.read_text())
