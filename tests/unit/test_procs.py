"""Children spawned through bqlab.procs die with the harness, however it dies."""

import os
import signal
import subprocess
import sys
import time

CHILD_SCRIPT = """
import sys, time
from bqlab.vm import procs
p = procs.spawn(["sleep", "300"])
print(p.pid, flush=True)
time.sleep(300)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


def _wait_dead(pid: int, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def _start_harness() -> tuple[subprocess.Popen, int]:
    harness = subprocess.Popen([sys.executable, "-c", CHILD_SCRIPT], stdout=subprocess.PIPE,
                               text=True)
    child = int(harness.stdout.readline())
    assert _alive(child)
    return harness, child


def test_child_dies_when_harness_is_sigkilled() -> None:
    harness, child = _start_harness()
    harness.kill()
    harness.wait()
    assert _wait_dead(child)


def test_child_dies_on_sigterm() -> None:
    harness, child = _start_harness()
    harness.send_signal(signal.SIGTERM)
    harness.wait(10)
    assert _wait_dead(child)
