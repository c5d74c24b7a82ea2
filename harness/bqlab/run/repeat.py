"""`bqlab run --repeat N [--until-fail]`: the same scenarios N times, and a tally.

Stalls are timing-bound: one PASS proves little, and a bug that shows once in twenty runs
is still a bug. The tally counts each scenario's outcomes (the run's verdict, and for a
non-PASS the verdicts that made it so: "FAIL (rx-stall STALL)"), names the artifact
directory of every run that did not pass, and gives a flake rate: the share of runs
whose outcome is not the scenario's most common one (0 when every run agreed).
"""

from collections import Counter
from pathlib import Path
from typing import Any

from .rundir import write_json

SCHEMA = "bqlab.repeat/1"


def outcome(report: dict[str, Any]) -> str:
    if report["verdict"] == "PASS":
        return "PASS"
    bad = [f"{v['name']} {v['verdict']}" for v in report.get("verdicts", [])
           if v["verdict"] != "PASS"]
    return report["verdict"] + (f" ({', '.join(bad)})" if bad else "")


def tally(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per scenario (in first-run order): runs, outcome counts, flake rate, non-PASS runs."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for r in reports:
        by_name.setdefault(r["scenario"], []).append(r)
    out = []
    for name, runs in by_name.items():
        counts = Counter(outcome(r) for r in runs)
        most = counts.most_common(1)[0][1]
        out.append({
            "scenario": name, "runs": len(runs),
            "outcomes": dict(counts.most_common()),
            "flake_rate": round(1 - most / len(runs), 3),
            "exit_code": max(int(r["exit_code"]) for r in runs),
            "not_passed": [{"outcome": outcome(r), "artifacts": r["artifacts"]}
                           for r in runs if r["verdict"] != "PASS"],
        })
    return out


def render(tallies: list[dict[str, Any]]) -> str:
    lines = []
    for t in tallies:
        counts = ", ".join(f"{o} {n}/{t['runs']}" for o, n in t["outcomes"].items())
        lines.append(f"{t['scenario']}: {counts}; flake rate {t['flake_rate']:.0%}")
        lines += [f"  {f['outcome']}: {f['artifacts']}" for f in t["not_passed"]]
    return "\n".join(lines)


def write(out_dir: Path, tallies: list[dict[str, Any]]) -> Path:
    path = out_dir / "report.json"
    write_json(path, {"schema": SCHEMA, "scenarios": tallies,
                      "exit_code": max((t["exit_code"] for t in tallies), default=0)})
    return path
