"""The driver × scenario matrix on one kernel (`bqlab matrix`, `make test-kernels`): each
built-in verdict on each NIC model, one run a cell, as README's table records it.

A cell is the run's verdict and, unless it passed, its diagnosis; for `selftests` the
kernel's own tests by outcome. A scenario the model cannot run (no XDP, a driver built
in) is N/A with the reason the scenario loader gives, never a silent gap.
"""

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import BadInput
from .report import RunReport

SCENARIOS = ("smoke", "rx-stall", "teardown", "xdp-cycles", "selftests")
NICS = ("bqnic", "vmxnet3", "virtio-net-pci", "igb", "e1000e")


@dataclass(frozen=True)
class Cell:
    scenario: str
    nic: str
    verdict: str  # PASS, FAIL, INCONCLUSIVE, ERROR, N/A
    detail: str
    artifacts: str = ""


def selftest_detail(rep: RunReport) -> str:
    """ping pass, stats pass, rss_ctx 4 pass 9 skip... from the selftest steps."""
    parts = []
    for step in rep.steps:
        results = (step.get("details") or {}).get("results")
        if results is None:
            continue
        name = step.get("summary", "?").split(":", 1)[0].removeprefix("hw/").removesuffix(".py")
        counts = " ".join(f"{len(v)} {k}" for k, v in results.items() if v) or "no results"
        parts.append(f"{name}: {counts}")
    return "; ".join(parts)


def cell_of(scenario_name: str, nic: str, rep: RunReport) -> Cell:
    if scenario_name == "selftests":
        detail = selftest_detail(rep) or rep.diagnosis()
    else:
        detail = "" if rep.verdict == "PASS" else rep.diagnosis()
        na = [f"{n['name']} N/A: {n['why']}" for n in rep.not_applicable]
        if na:
            detail = "; ".join(filter(None, [detail, *na]))
    return Cell(scenario_name, nic, rep.verdict, detail, str(rep.artifacts))


def run(load: Callable[[str, list[str]], object], run_one: Callable[[object], RunReport],
        scenarios: tuple[str, ...] = SCENARIOS, nics: tuple[str, ...] = NICS) -> list[Cell]:
    cells = []
    for name in scenarios:
        for nic in nics:
            try:
                sc = load(name, [f"vms.dut.nic={nic}"])
            except BadInput as e:
                why = str(e).strip().splitlines()[-1].strip()
                cells.append(Cell(name, nic, "N/A", why))
                continue
            cells.append(cell_of(name, nic, run_one(sc)))
    return cells


def cell_text(cell: Cell) -> str:
    """A table cell: the verdict and, unless it passed, why ('|' would end the cell)."""
    return (cell.verdict + (f" ({cell.detail})" if cell.detail else "")).replace("|", "/")


def markdown(cells: list[Cell], kernel: str, when: str | None = None) -> str:
    nics = list(dict.fromkeys(c.nic for c in cells))
    scenarios = list(dict.fromkeys(c.scenario for c in cells))
    by = {(c.scenario, c.nic): c for c in cells}
    when = when or time.strftime("%Y-%m-%d")
    lines = [f"Kernel {kernel}, {when}:", "",
             "| scenario | " + " | ".join(nics) + " |",
             "| --- |" + " --- |" * len(nics)]
    for s in scenarios:
        row = []
        for n in nics:
            c = by.get((s, n))
            if c is None:
                row.append("")
                continue
            row.append(cell_text(c))
        lines.append(f"| `{s}` | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def write(out: Path, cells: list[Cell], kernel: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "matrix.json").write_text(json.dumps(
        {"schema": "bqlab.matrix/1", "kernel": kernel, "cells": [asdict(c) for c in cells]},
        indent=1) + "\n")
    (out / "matrix.md").write_text(markdown(cells, kernel))


def load(path: Path) -> tuple[str, list[Cell]]:
    """A saved matrix (its directory or matrix.json): the kernel and its cells."""
    path = path / "matrix.json" if path.is_dir() else path
    try:
        data = json.loads(path.read_text())
        if data.get("schema") != "bqlab.matrix/1":
            raise ValueError(f"schema {data.get('schema')!r}, expected 'bqlab.matrix/1'")
        return data["kernel"], [Cell(**c) for c in data["cells"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BadInput(f"{path}: not a saved bqlab matrix ({e})") from e


def short(cell: Cell, width: int = 60) -> str:
    text = cell_text(cell).replace("\n", " ")
    return text if len(text) <= width else text[:width - 1] + "…"


def by_kernel(matrices: list[tuple[str, list[Cell]]]) -> str:
    """README's table with a column per kernel: a row per (scenario, NIC model)."""
    kernels = [k for k, _ in matrices]
    rows: dict[tuple[str, str], dict[str, Cell]] = {}
    for kernel, cells in matrices:
        for c in cells:
            rows.setdefault((c.scenario, c.nic), {})[kernel] = c
    lines = ["| scenario | NIC | " + " | ".join(kernels) + " |",
             "| --- | --- |" + " --- |" * len(kernels)]
    for (scenario, nic), by in rows.items():
        lines.append(f"| `{scenario}` | {nic} | " +
                     " | ".join(short(by[k]) if k in by else "" for k in kernels) + " |")
    return "\n".join(lines) + "\n"


def exit_code(cells: list[Cell]) -> int:
    """0 when every cell that could run passed, 1 when a verdict did not, 3 when a run
    could not finish. The kernel's own selftests failing is information, not bqlab's
    verdict: they do not count."""
    worst = 0
    for c in cells:
        if c.scenario == "selftests" or c.verdict in ("PASS", "N/A"):
            continue
        worst = max(worst, 3 if c.verdict == "ERROR" else 1)
    return worst
