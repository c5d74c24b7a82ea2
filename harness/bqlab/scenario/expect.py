"""Does a run show what its scenario expects? (`expect:` in the scenario file.)

A positive scenario expects nothing: every verdict must PASS. A negative control names
the verdicts it exists to produce (`expect: {rx-stall: STALL}`); those must come out so,
and the run must have got as far as judging (an ERROR proves nothing either way).
`bqlab selfcheck` runs every built-in and checks this: the way to see that bqlab still
sees bugs on your kernel before trusting its PASS.
"""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Expectation:
    met: bool
    expected: str  # "PASS" or "rx-stall=STALL, ..."
    got: str
    detail: str


def check(expect: dict[str, str], report: dict[str, Any]) -> Expectation:
    verdict = report["verdict"]
    got_by_name = {v["name"]: v["verdict"] for v in report.get("verdicts", [])}
    if not expect:
        got = verdict if verdict != "PASS" else "PASS"
        return Expectation(verdict == "PASS", "PASS", got,
                           "" if verdict == "PASS" else report.get("diagnosis", ""))
    expected = ", ".join(f"{k}={v}" for k, v in sorted(expect.items()))
    got_parts = []
    wrong = []
    for name, want in sorted(expect.items()):
        have = verdict if name == "run" else got_by_name.get(name, "not judged")
        got_parts.append(f"{name}={have}")
        if have != want:
            wrong.append(f"{name}: expected {want}, got {have}")
    if verdict in ("ERROR", "BAD-INPUT"):
        wrong.append(f"the run ended in {verdict}: {report.get('diagnosis', '')}")
    return Expectation(not wrong, expected, ", ".join(got_parts), "; ".join(wrong))
