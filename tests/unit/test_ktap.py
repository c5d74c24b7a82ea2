"""results.ktap: KTAP version 1 (Documentation/dev-tools/ktap.rst), checked by a strict
parser: version and plan lines, numbering, two-space nesting, names without spaces,
`# ` diagnostics, and a parent that fails when a subtest does."""

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from bqlab.run import ktap

from .runs import make_run

RESULT = re.compile(r"(ok|not ok) ([1-9]\d*) ([^\s#]+)(?: # (.*))?")


@dataclass
class Result:
    ok: bool
    number: int
    name: str
    directive: str
    diagnostics: list[str] = field(default_factory=list)
    subtests: list["Result"] = field(default_factory=list)


class KtapError(AssertionError):
    pass


def _block(lines: list[str], i: int, depth: int) -> tuple[list[Result], int]:
    pad = "  " * depth

    def line(j: int) -> str:
        if j >= len(lines):
            raise KtapError(f"ends early at depth {depth}")
        return lines[j]

    if line(i) != pad + ktap.VERSION:
        raise KtapError(f"line {i + 1}: expected {pad + ktap.VERSION!r}, got {line(i)!r}")
    i += 1
    while line(i).startswith(pad + "# "):  # e.g. "# Subtest: name"
        i += 1
    m = re.fullmatch(re.escape(pad) + r"1\.\.(\d+)", line(i))
    if not m:
        raise KtapError(f"line {i + 1}: expected a plan, got {line(i)!r}")
    planned, i = int(m.group(1)), i + 1
    tests: list[Result] = []
    diagnostics: list[str] = []
    subtests: list[Result] = []
    while len(tests) < planned:
        text = line(i)
        if text == pad + "  " + ktap.VERSION:
            subtests, i = _block(lines, i, depth + 1)
            continue
        if text.startswith(pad + "# "):
            diagnostics.append(text[len(pad) + 2:])
            i += 1
            continue
        m = RESULT.fullmatch(text[len(pad):]) if text.startswith(pad) else None
        if not m or text[len(pad)].isspace():
            raise KtapError(f"line {i + 1}: not a KTAP line at depth {depth}: {text!r}")
        t = Result(m.group(1) == "ok", int(m.group(2)), m.group(3), m.group(4) or "",
                 diagnostics, subtests)
        if t.number != len(tests) + 1:
            raise KtapError(f"line {i + 1}: test {t.number}, expected {len(tests) + 1}")
        if t.ok and not all(s.ok for s in t.subtests):
            raise KtapError(f"line {i + 1}: {t.name} is ok with a failed subtest")
        tests.append(t)
        diagnostics, subtests, i = [], [], i + 1
    return tests, i


def parse(text: str) -> list[Result]:
    lines = text.splitlines()
    tests, end = _block(lines, 0, 0)
    if end != len(lines):
        raise KtapError(f"line {end + 1}: text after the last test: {lines[end]!r}")
    return tests


def one(path: Path) -> Result:
    tests = parse(path.read_text())
    assert len(tests) == 1
    return tests[0]


def by_name(t: Result) -> dict[str, Result]:
    return {s.name: s for s in t.subtests}


def test_every_run_writes_results_ktap_beside_junit(tmp_path: Path) -> None:
    rep = make_run(tmp_path, "rx-stall", "PASS")
    assert (rep.artifacts / "junit.xml").is_file()
    t = one(rep.artifacts / "results.ktap")
    assert (t.ok, t.number, t.name) == (True, 1, "rx-stall")
    assert [(s.name, s.ok) for s in t.subtests] == [
        ("step-00-ping", True), ("verdict-rx-stall", True), ("verdict-dma", True),
        ("console", True)]
    assert f"artifacts: {rep.artifacts}" in t.diagnostics


def test_a_failed_verdict_is_not_ok_with_its_reason(tmp_path: Path) -> None:
    t = one(make_run(tmp_path, "rx-stall-buggy", "FAIL").artifacts / "results.ktap")
    assert not t.ok
    assert t.diagnostics[0].startswith("FAIL: rx-stall STALL: queue 0")
    stall = by_name(t)["verdict-rx-stall"]
    assert not stall.ok and stall.diagnostics == ["STALL: queue 0 (sbq) stalled for 4.2s"]
    assert by_name(t)["verdict-dma"].ok


def test_inconclusive_is_not_ok(tmp_path: Path) -> None:
    t = one(make_run(tmp_path, "rx-stall", "INCONCLUSIVE").artifacts / "results.ktap")
    assert not t.ok
    assert t.diagnostics[0].startswith("INCONCLUSIVE: ")
    assert not by_name(t)["verdict-rx-stall"].ok


def test_an_infrastructure_error_says_so(tmp_path: Path) -> None:
    t = one(make_run(tmp_path, "smoke", "ERROR").artifacts / "results.ktap")
    assert not t.ok
    assert t.diagnostics[0] == "infrastructure error (exit 3): dut: no SSH after 120s"
    harness = by_name(t)["harness"]
    assert not harness.ok
    assert harness.diagnostics == ["infrastructure error: dut: no SSH after 120s",
                                   "(console.log ends in the firmware)"]
    # Nothing booted: a clean console proves nothing, and says so with SKIP.
    console = by_name(t)["console"]
    assert console.ok and console.directive == "SKIP the VMs never booted"


def test_kernel_reports_fail_the_console_subtest() -> None:
    report = {"scenario": "smoke", "verdict": "FAIL", "exit_code": 1, "diagnosis": "dut: x",
              "boot_seconds": {"dut": 3.0}, "steps": [], "verdicts": [],
              "console_findings": {"dut": [{"kind": "warn", "text": "WARNING: at x.c:1"}]}}
    t = parse(ktap.render([report]))[0]
    console = by_name(t)["console"]
    assert not console.ok and console.diagnostics == ["dut: warn: WARNING: at x.c:1"]


def test_names_carry_no_spaces_or_hashes() -> None:
    report = {"scenario": "my scenario #2", "verdict": "PASS", "exit_code": 0,
              "diagnosis": "ok", "boot_seconds": {"dut": 1}, "steps": [
                  {"index": 3, "kind": "odd kind", "ok": True, "summary": ""}],
              "verdicts": [], "console_findings": {}}
    t = parse(ktap.render([report]))[0]
    assert t.name == "my_scenario_2"
    assert t.subtests[0].name == "step-03-odd_kind"


def test_many_runs_number_from_one_and_nest_by_two_spaces(tmp_path: Path) -> None:
    reports = [make_run(tmp_path, n, o).as_dict()
               for n, o in (("a", "PASS"), ("b", "FAIL"), ("c", "ERROR"))]
    text = ktap.render(reports)
    assert text.startswith("KTAP version 1\n1..3\n  KTAP version 1\n  # Subtest: a\n  1..")
    assert [(t.number, t.name, t.ok) for t in parse(text)] == [
        (1, "a", True), (2, "b", False), (3, "c", False)]


def test_no_runs_is_an_empty_plan() -> None:
    assert ktap.render([]) == "KTAP version 1\n1..0\n"
    assert parse(ktap.render([])) == []


@pytest.mark.parametrize("broken", [
    "KTAP version 1\n1..2\nok 1 a\n",                      # fewer tests than planned
    "KTAP version 1\n1..1\nok 2 a\n",                      # numbering
    "KTAP version 1\n1..1\nok 1 a b\n",                    # a name with a space
    "KTAP version 1\n1..1\nok 1 a\nstray\n",               # text after the last test
    "KTAP version 1\n1..1\n  KTAP version 1\n  1..1\n  not ok 1 x\nok 1 a\n",  # parent ok
    "1..1\nok 1 a\n",                                      # no version line
])
def test_the_checker_rejects_broken_ktap(broken: str) -> None:
    with pytest.raises(KtapError):
        parse(broken)
