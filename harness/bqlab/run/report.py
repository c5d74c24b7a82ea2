"""Run reports: report.json (schema in docs/report-schema.md), JUnit XML, a summary table."""

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ExitCode
from . import ktap
from .rundir import write_json

SCHEMA = "bqlab.report/1"
VERDICT_OF = {ExitCode.PASS: "PASS", ExitCode.VERDICT_FAILED: "FAIL",
              ExitCode.BAD_INPUT: "BAD-INPUT", ExitCode.INFRA_FAILURE: "ERROR"}


@dataclass
class RunReport:
    scenario: str
    source: str
    artifacts: Path
    exit_code: ExitCode = ExitCode.PASS
    error: str | None = None
    accelerator: str = ""
    accelerator_reason: str = ""
    kernel_release: str = ""
    # What this kernel cannot show (build/kernel_features.lost_witnesses): each verdict
    # that needs one says so; a kernel that has everything leaves it empty.
    kernel_lost: list[str] = field(default_factory=list)
    boot_seconds: dict[str, float] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    findings: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    verdicts: list[dict[str, Any]] = field(default_factory=list)  # rx-stall, teardown, dma
    duration: float = 0.0
    death: Any = None  # liveness.Death when the DUT stopped answering
    expect: dict[str, str] = field(default_factory=dict)  # the scenario's `expect:`
    timeline: dict[str, Any] | None = None  # RunState.timeline() when the watchdog ran
    # Verdicts the scenario asks for that do not apply to this DUT: {name, why}
    not_applicable: list[dict[str, str]] = field(default_factory=list)
    snapshot: str | None = None  # the DUT and peer saved for `bqlab up --from`
    snapshot_error: str | None = None  # why --snapshot-on-fail has none

    @property
    def verdict(self) -> str:
        """PASS, FAIL, INCONCLUSIVE (nothing failed, but the run proved nothing: exit 1
        too), BAD-INPUT or ERROR."""
        if self.exit_code == ExitCode.VERDICT_FAILED and not self.findings and \
                all(s["ok"] for s in self.steps) and \
                all(v["verdict"] in ("PASS", "INCONCLUSIVE") for v in self.verdicts):
            return "INCONCLUSIVE"
        return VERDICT_OF[self.exit_code]

    def diagnosis(self) -> str:
        """One line: why the run did not pass (or what passed)."""
        # A run that broke because the DUT died is named by what the DUT showed, not by
        # the harness error that followed.
        if self.error and self.exit_code != ExitCode.VERDICT_FAILED:
            return self.error.splitlines()[0]
        failed = [f"{v['name']} {v['verdict']}: {v['reason']}" for v in self.verdicts
                  if v["verdict"] != "PASS"]
        died = [f for f in failed if f.startswith("dut-alive ")]
        bad = died + [s["summary"] for s in self.steps if not s["ok"]]
        bad += [f for f in failed if f not in died]
        bad += [f"{vm}: {f['text']}" for vm, fs in self.findings.items() for f in fs]
        if bad:
            return bad[0]
        if self.error:
            return self.error.splitlines()[0]
        judged = ", ".join(v["name"] for v in self.verdicts)
        return f"{len(self.steps)} steps ok" + (f"; {judged} PASS" if judged else "")

    def _expectation(self) -> dict[str, Any]:
        from ..scenario.expect import check

        basis = {"verdict": self.verdict, "diagnosis": self.diagnosis(),
                 "verdicts": self.verdicts}
        return check(self.expect, basis).__dict__

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA, "scenario": self.scenario, "source": self.source,
            "verdict": self.verdict, "exit_code": int(self.exit_code), "error": self.error,
            "accelerator": self.accelerator, "accelerator_reason": self.accelerator_reason,
            "kernel_release": self.kernel_release, "kernel_lost": self.kernel_lost,
            "duration_s": round(self.duration, 2), "boot_seconds": self.boot_seconds,
            "artifacts": str(self.artifacts), "diagnosis": self.diagnosis(),
            "verdicts": self.verdicts, "steps": self.steps,
            "console_findings": self.findings, "timeline": self.timeline,
            "expect": self.expect, "expectation": self._expectation(),
            "not_applicable": self.not_applicable, "snapshot": self.snapshot,
            "snapshot_error": self.snapshot_error,
        }

    def write(self) -> None:
        write_json(self.artifacts / "report.json", self.as_dict())
        write_junit(self, self.artifacts / "junit.xml")
        ktap.write(self.artifacts / "results.ktap", [self.as_dict()])
        # Last, from the files just written; never fails the run.
        from .htmlreport import write_html_quietly

        write_html_quietly(self.artifacts)


def write_junit(rep: RunReport, path: Path) -> None:
    suite = ET.Element("testsuite", name=f"bqlab.{rep.scenario}",
                       time=f"{rep.duration:.2f}")
    failures = errors = 0
    for s in rep.steps:
        case = ET.SubElement(suite, "testcase", classname=f"bqlab.{rep.scenario}",
                             name=f"{s['index']:02d}-{s['kind']}", time=f"{s['seconds']:.2f}")
        if not s["ok"]:
            failures += 1
            ET.SubElement(case, "failure", message=s["summary"]).text = s["summary"]
    for v in rep.verdicts:
        case = ET.SubElement(suite, "testcase", classname=f"bqlab.{rep.scenario}",
                             name=f"verdict-{v['name']}")
        if v["verdict"] != "PASS":
            failures += 1
            ET.SubElement(case, "failure", message=f"{v['verdict']}: {v['reason']}").text = \
                f"{v['verdict']}: {v['reason']}"
    console = ET.SubElement(suite, "testcase", classname=f"bqlab.{rep.scenario}",
                            name="console")
    found = [f for fs in rep.findings.values() for f in fs]
    if found:
        failures += 1
        ET.SubElement(console, "failure", message=f"{len(found)} kernel report(s)").text = \
            "\n\n".join(f["excerpt"] for f in found)
    if rep.error:
        errors += 1
        case = ET.SubElement(suite, "testcase", classname=f"bqlab.{rep.scenario}",
                             name="harness")
        ET.SubElement(case, "error", message=rep.error.splitlines()[0]).text = rep.error
    suite.set("tests", str(len(suite)))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    ET.ElementTree(suite).write(path, encoding="unicode", xml_declaration=True)


def summary_table(reports: list[RunReport]) -> str:
    return table([r.as_dict() for r in reports])


def table(runs: list[dict[str, Any]]) -> str:
    """The summary table over report.json dicts (one run's, or a merge's)."""
    rows = [("scenario", "verdict", "time", "detail")]
    for r in runs:
        detail = r["diagnosis"]
        rows.append((r["scenario"], r["verdict"], f"{r['duration_s']:.0f}s",
                     detail if len(detail) <= 110 else detail[:107] + "..."))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}  {d}" for a, b, c, d in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)
