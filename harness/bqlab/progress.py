"""Long-running build steps: say what runs, how long it took, and where its log is."""

import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from .errors import InfraError

HEARTBEAT_SECONDS = 60
TAIL_LINES = 40


def say(msg: str) -> None:
    print(f"[bqlab] {msg}", file=sys.stderr, flush=True)


def fmt_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s"


def log_tail(log: Path, lines: int = TAIL_LINES) -> str:
    try:
        text = log.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def run_logged(
    what: str,
    argv: Sequence[str],
    log: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> float:
    """Run argv with output appended to log; print progress; raise InfraError on failure.

    Returns the elapsed seconds.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    say(f"{what} ... (log: {log})")
    start = time.monotonic()
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(HEARTBEAT_SECONDS):
            say(f"  {what}: still running, {fmt_duration(time.monotonic() - start)}")

    ticker = threading.Thread(target=heartbeat, daemon=True)
    ticker.start()
    try:
        with log.open("a") as out:
            out.write(f"\n$ {shlex.join(argv)}\n")
            out.flush()
            proc = subprocess.run(
                list(argv), cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, check=False,
            )
    except FileNotFoundError as e:
        raise InfraError(f"{what}: cannot run {argv[0]}: {e}") from e
    finally:
        done.set()
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        raise InfraError(
            f"{what} failed (exit {proc.returncode}) after {fmt_duration(elapsed)}.\n"
            f"--- last lines of {log} ---\n{log_tail(log)}\n--- full log: {log}"
        )
    say(f"  {what}: done in {fmt_duration(elapsed)}")
    return elapsed
