"""The fuzz target in `make test`: fixed seeds on the normal build, about a minute (`make
fuzz` runs fresh seeds on the ASan+UBSan build for as long as asked). And each detector's
negative control: a fault put there on purpose must be reported as what it is."""

import os
import signal
from pathlib import Path

from .fuzz_bqnic import CANARIES, Target, execute, fuzz

SEEDS = list(range(1, 17))
STEPS = 2000


def test_fixed_seeds_find_nothing(qemu_binary: Path, tmp_path: Path) -> None:
    s = fuzz(qemu_binary, tmp_path, SEEDS, 0, STEPS, sanitize=False)
    assert s.seeds == len(SEEDS) and s.ops > 50_000, s
    assert not s.findings, "\n".join(f"{f} (reproducer {p})" for f, p in s.findings)


def program(*ops: list) -> dict:
    return {"queues": 1, "rx_nobuf": "drop", "ops": [["readl", 0xE000_0000], *ops]}


def test_a_stray_write_is_a_canary_finding(qemu_binary: Path, tmp_path: Path) -> None:
    base, _ = CANARIES[0]
    finding, _ = execute(qemu_binary, tmp_path, program(["write", base + 100, "00"]), False)
    assert finding is not None and finding.kind == "canary", finding
    assert f"0x{base + 100:x}" in finding.detail


def test_a_dead_qemu_is_a_crash(qemu_binary: Path, tmp_path: Path) -> None:
    def kill(target: Target, i: int) -> None:
        os.kill(target.qt.proc.pid, signal.SIGKILL)

    finding, _ = execute(qemu_binary, tmp_path, program(["readl", 0xE000_0000]), False,
                         inject=kill)
    assert finding is not None and finding.kind == "crash", finding


def test_a_qemu_that_stops_answering_is_a_hang(qemu_binary: Path, tmp_path: Path) -> None:
    def freeze(target: Target, i: int) -> None:
        os.kill(target.qt.proc.pid, signal.SIGSTOP)

    finding, _ = execute(qemu_binary, tmp_path, program(["readl", 0xE000_0000]), False,
                         timeout=2.0, inject=freeze)
    assert finding is not None and finding.kind == "hang", finding


def test_a_sanitizer_report_is_a_finding(qemu_binary: Path, tmp_path: Path) -> None:
    def report(target: Target, i: int) -> None:
        with (target.qt.dir / "stderr.log").open("a") as f:
            f.write("hw/net/bqnic_core.c:1:1: runtime error: load of misaligned address\n")

    finding, _ = execute(qemu_binary, tmp_path, program(), False, inject=report)
    assert finding is not None and finding.kind == "sanitizer", finding


def test_reception_that_never_comes_back_is_wedged(qemu_binary: Path, tmp_path: Path) -> None:
    """A real wedge, from QEMU's net layer (not the device): an empty frame while the link
    is down makes the stream netdev stop reading for good (the record after it is what
    makes the stream hand the empty one over)."""
    ops = program(["link", False], ["frame", ""], ["frame", "00" * 60], ["clock", 1000])
    finding, _ = execute(qemu_binary, tmp_path, ops, False)
    assert finding is not None and finding.kind == "wedged", finding
