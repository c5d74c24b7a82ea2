"""KTAP version 1 results (the kernel's Documentation/dev-tools/ktap.rst), for kernel CI
systems (NIPA, KernelCI) that read KTAP rather than JUnit.

Built from report.json dicts, so one run's `results.ktap` and a merge over many come from
the same code. One test per run, with subtests like junit.xml's test cases: each step,
each verdict, the console, and the harness when the run could not finish. A run is `ok`
only when its verdict is PASS: INCONCLUSIVE is `not ok`, and an infrastructure failure
(exit 3) is `not ok` with a diagnostic line saying so. Names carry no spaces or `#`.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ExitCode

VERSION = "KTAP version 1"
INDENT = "  "  # one nesting level, as the spec has it
MAX_DIAGNOSTIC_LINES = 20  # a kernel report excerpt stays in junit.xml and console.log


@dataclass
class Case:
    name: str
    ok: bool
    directive: str = ""  # e.g. "SKIP the VMs never booted"
    diagnostics: list[str] = field(default_factory=list)  # "# " lines before the result
    subtests: list["Case"] = field(default_factory=list)


def ktap_name(text: str) -> str:
    """A KTAP test name: no whitespace, no `#` (which starts a directive)."""
    return re.sub(r"[\s#]+", "_", text.strip()) or "unnamed"


def _diagnostic(text: str) -> list[str]:
    lines = [ln.rstrip() for ln in str(text).splitlines() if ln.strip()]
    return lines[:MAX_DIAGNOSTIC_LINES]


def run_case(report: dict[str, Any]) -> Case:
    """One run (a report.json dict) as a test with subtests."""
    subtests = []
    for s in report.get("steps", []):
        subtests.append(Case(ktap_name(f"step-{s['index']:02d}-{s['kind']}"), bool(s["ok"]),
                             diagnostics=[] if s["ok"] else _diagnostic(s["summary"])))
    for v in report.get("verdicts", []):
        ok = v["verdict"] == "PASS"
        subtests.append(Case(ktap_name(f"verdict-{v['name']}"), ok,
                             diagnostics=[] if ok else
                             _diagnostic(f"{v['verdict']}: {v['reason']}")))
    findings = [(vm, f) for vm, fs in (report.get("console_findings") or {}).items()
                for f in fs]
    console = Case("console", not findings,
                   diagnostics=[f"{vm}: {f['kind']}: {f['text']}" for vm, f in findings])
    if not findings and not report.get("boot_seconds"):
        console.directive = "SKIP the VMs never booted"  # a clean console proves nothing
    subtests.append(console)
    exit_code = report.get("exit_code", ExitCode.INFRA_FAILURE)
    error = report.get("error")
    if error:
        what = "infrastructure error" if exit_code == ExitCode.INFRA_FAILURE else "run aborted"
        subtests.append(Case("harness", False, diagnostics=_diagnostic(f"{what}: {error}")))
    verdict = report.get("verdict", "ERROR")
    diagnostics = []
    if exit_code == ExitCode.INFRA_FAILURE:
        diagnostics.append(f"infrastructure error (exit 3): {report.get('diagnosis', '')}")
    elif verdict != "PASS":
        diagnostics.append(f"{verdict}: {report.get('diagnosis', '')}")
    if report.get("artifacts"):
        diagnostics.append(f"artifacts: {report['artifacts']}")
    return Case(ktap_name(report.get("scenario", "unnamed")), verdict == "PASS",
                diagnostics=diagnostics, subtests=subtests)


def _plan(cases: list[Case], depth: int, subtest: str | None = None) -> list[str]:
    pad = INDENT * depth
    lines = [pad + VERSION]
    if subtest is not None:
        lines.append(f"{pad}# Subtest: {subtest}")  # a diagnostic line in KTAP v1
    lines.append(f"{pad}1..{len(cases)}")
    for number, case in enumerate(cases, 1):
        if case.subtests:
            lines += _plan(case.subtests, depth + 1, case.name)
        lines += [f"{pad}# {d}" for d in case.diagnostics]
        directive = f" # {case.directive}" if case.directive else ""
        lines.append(f"{pad}{'ok' if case.ok else 'not ok'} {number} {case.name}{directive}")
    return lines


def render(reports: list[dict[str, Any]]) -> str:
    """A KTAP document with one test per run."""
    return "\n".join(_plan([run_case(r) for r in reports], 0)) + "\n"


def write(path: Path, reports: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(render(reports))
    tmp.replace(path)
