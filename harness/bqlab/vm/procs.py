"""Child processes that can never outlive the harness.

Three layers, because each covers a case the others miss:
- PR_SET_PDEATHSIG=SIGKILL in the child: the kernel kills it if the harness dies, even by
  SIGKILL or a crash where no Python code runs.
- atexit and SIGTERM/SIGHUP handlers: orderly shutdown on normal exit and kill(1).
- callers stop VMs in `finally` blocks; KeyboardInterrupt (Ctrl-C) unwinds through them.
Children get their own session so a terminal Ctrl-C reaches only the harness, which then
stops them in order (QMP quit, then SIGKILL) and keeps their logs intact.
"""

import atexit
import contextlib
import ctypes
import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

PR_SET_PDEATHSIG = 1

_live: set[subprocess.Popen] = set()
_lock = threading.Lock()
_handlers_installed = False


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    # The parent may have died between fork and prctl.
    if os.getppid() == 1:
        os._exit(1)


def spawn(argv: Sequence[str], stdout: IO | int | None = None, stderr: IO | int | None = None,
          cwd: Path | None = None, env: Mapping[str, str] | None = None) -> subprocess.Popen:
    """Start a child that dies with the harness (env: added to ours). Call from the main
    thread: PDEATHSIG fires when the forking *thread* exits."""
    install_signal_handlers()
    proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                            cwd=cwd, preexec_fn=_die_with_parent, start_new_session=True,
                            env={**os.environ, **env} if env else None)
    with _lock:
        _live.add(proc)
    return proc


def forget(proc: subprocess.Popen) -> None:
    with _lock:
        _live.discard(proc)


def kill(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    if proc.poll() is None:
        proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    forget(proc)


def kill_all() -> None:
    with _lock:
        procs = list(_live)
    for p in procs:
        kill(p)


def live_count() -> int:
    with _lock:
        return sum(1 for p in _live if p.poll() is None)


def _on_signal(signum: int, _frame) -> None:
    # Unwind like Ctrl-C so every `finally` runs and VMs stop in order.
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def install_signal_handlers() -> None:
    global _handlers_installed
    if _handlers_installed or threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    atexit.register(kill_all)
    _handlers_installed = True
