"""`bqlab validate`: does a kernel patch change what bqlab sees?

The same scenarios run on a base kernel ("before") and on the base plus the patches under
test ("after"), N times each and interleaved (before, after, before, ...) so that host
noise falls on both alike. Stalls are timing-bound, so one run of each proves little: the
comparison is of counts, per scenario and per verdict, with the run itself as one more
row ("run": PASS, FAIL or ERROR, so a DUT that died counts too).

The conclusion is one line per scenario:
  fix confirmed   something failed before, nothing fails after
  not fixed       fewer failures after, but not none
  no effect       the same verdicts fail before and after
  regression      a verdict that never failed before fails after
  inconclusive    a run could not finish (a host-side error): nothing can be said
With expect=fix the change must be "fix confirmed"; with expect=same (a refactor, a
cleanup) nothing may get worse. A one-sided Fisher exact test on the run failures says
how likely the difference is by chance: with 3 runs each, 3/3 -> 0/3 is p = 0.05.
"""

from collections import Counter
from dataclasses import dataclass, field
from math import comb
from pathlib import Path
from typing import Any

from ..errors import ExitCode
from .rundir import write_json

SCHEMA = "bqlab.validate/1"
RUN = "run"  # the row of the runs' own outcome
EXPECTATIONS = ("fix", "same")


@dataclass
class Row:
    """One verdict of one scenario: how often each outcome came, before and after."""

    name: str
    before: Counter = field(default_factory=Counter)
    after: Counter = field(default_factory=Counter)

    @staticmethod
    def failures(counts: Counter) -> int:
        return sum(n for v, n in counts.items() if v != "PASS")

    @property
    def change(self) -> str:
        fb, fa = self.failures(self.before), self.failures(self.after)
        if fb and not fa:
            return "fixed"
        if not fb and fa:
            return "regressed"
        if fb and fa:
            return "fewer failures" if fa * _total(self.before) < fb * _total(self.after) \
                else "still failing"
        return "same"


def _total(counts: Counter) -> int:
    return sum(counts.values())


def counts_text(counts: Counter) -> str:
    total = _total(counts)
    return ", ".join(f"{v} {n}/{total}" for v, n in counts.most_common()) or "no run"


def fisher_one_sided(fail_before: int, n_before: int, fail_after: int, n_after: int) -> float:
    """P(at least fail_before of the failures land in "before") if the patch changed
    nothing: the hypergeometric tail of Fisher's exact test."""
    failures, total = fail_before + fail_after, n_before + n_after
    if failures == 0:
        return 1.0
    tail = sum(comb(failures, k) * comb(total - failures, n_before - k)
               for k in range(fail_before, min(failures, n_before) + 1))
    return tail / comb(total, n_before)


def rows(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[Row]:
    """The run row first, then each verdict in the order the reports name them."""
    table: dict[str, Row] = {RUN: Row(RUN)}
    for side, reports in (("before", before), ("after", after)):
        for rep in reports:
            getattr(table[RUN], side)[rep["verdict"]] += 1
            for v in rep.get("verdicts", []):
                getattr(table.setdefault(v["name"], Row(v["name"])), side)[v["verdict"]] += 1
    return list(table.values())


@dataclass
class Conclusion:
    scenario: str
    kind: str  # fix confirmed, not fixed, no effect, regression, inconclusive, no change
    text: str
    met: bool
    exit_code: int
    p_value: float | None


def _said(row: Row) -> str:
    label = "the runs (a step failed or the DUT died): " if row.name == RUN \
        else f"{row.name} "
    return f"{label}{counts_text(row.before)} before, {counts_text(row.after)} after"


def conclude(scenario: str, before: list[dict[str, Any]], after: list[dict[str, Any]],
             expect: str = "fix") -> Conclusion:
    table = rows(before, after)
    run = table[0]
    errors = [r for r in before + after if r["exit_code"] in (ExitCode.BAD_INPUT,
                                                            ExitCode.INFRA_FAILURE)]
    if errors or not before or not after:
        return Conclusion(scenario, "inconclusive",
                          f"inconclusive: {len(errors)} of {len(before) + len(after)} runs "
                          "could not finish (host side); see their artifacts", False,
                          ExitCode.INFRA_FAILURE, None)
    p = round(fisher_one_sided(Row.failures(run.before), _total(run.before),
                               Row.failures(run.after), _total(run.after)), 4)
    verdicts = table[1:]
    regressed = [r for r in verdicts if r.change == "regressed"]
    if run.change == "regressed" and not regressed:
        regressed = [run]  # the DUT died, or a step failed: no verdict says which
    if regressed:
        return Conclusion(scenario, "regression",
                          "regression in " + "; ".join(_said(r) for r in regressed),
                          False, ExitCode.VERDICT_FAILED, p)
    changed = [r for r in verdicts if r.change in ("fixed", "fewer failures")] or \
        ([run] if run.change in ("fixed", "fewer failures") else [])
    shown = "; ".join(_said(r) for r in changed) if changed else _said(run)
    if run.change == "fixed":
        return Conclusion(scenario, "fix confirmed",
                          f"fix confirmed: {shown} (one-sided Fisher p={p:g})",
                          True, ExitCode.PASS, p)
    if run.change == "fewer failures":
        return Conclusion(scenario, "not fixed", f"not fixed: {shown} (p={p:g})",
                          expect == "same", ExitCode.PASS if expect == "same"
                          else ExitCode.VERDICT_FAILED, p)
    if run.change == "still failing":
        failing = [r for r in verdicts if r.change == "still failing"] or [run]
        return Conclusion(scenario, "no effect",
                          "no effect: " + "; ".join(_said(r) for r in failing),
                          expect == "same", ExitCode.PASS if expect == "same"
                          else ExitCode.VERDICT_FAILED, p)
    # Nothing failed on either side.
    passed = f"PASS {_total(run.before)}/{_total(run.before)} before, " \
             f"{_total(run.after)}/{_total(run.after)} after"
    if expect == "same":
        return Conclusion(scenario, "no change", f"no change: {passed}", True,
                          ExitCode.PASS, p)
    return Conclusion(scenario, "no effect",
                      f"no effect: {passed} (nothing failed before: the scenario does not "
                      "show the bug on the base kernel)", False, ExitCode.VERDICT_FAILED, p)


def render(scenario: str, table: list[Row]) -> str:
    head = ("scenario", "verdict", "before", "after", "change")
    body = [(scenario, r.name, counts_text(r.before), counts_text(r.after), r.change)
            for r in table]
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in [head, *body]]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)


def write(out_dir: Path, before_label: str, after_label: str,
          results: list[tuple[Conclusion, list[dict], list[dict]]]) -> Path:
    path = out_dir / "report.json"
    write_json(path, {
        "schema": SCHEMA, "before": before_label, "after": after_label,
        "exit_code": max((c.exit_code for c, _, _ in results), default=0),
        "scenarios": [{
            "scenario": c.scenario, "conclusion": c.kind, "text": c.text, "met": c.met,
            "exit_code": c.exit_code, "p_value": c.p_value,
            "verdicts": [{"name": r.name, "before": dict(r.before), "after": dict(r.after),
                          "change": r.change} for r in rows(b, a)],
            "runs": {"before": [r["artifacts"] for r in b],
                     "after": [r["artifacts"] for r in a]},
        } for c, b, a in results]})
    return path
