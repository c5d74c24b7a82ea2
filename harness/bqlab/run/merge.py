"""`bqlab report merge DIR...`: the runs of several jobs (CI shards, NIC or kernel variants)
as one result: junit.xml, a report.json index, results.ktap, the summary table, and the
exit code the worst run deserves.

A DIR is a run's artifact directory or any directory above some (a CI job's whole
`artifacts/`): every report.json under it is a run. Symlinks are not followed and
directories named `latest` are skipped, so `artifacts/latest` is not counted twice. A
scenario found more than once (two shards given the same scenario, or the same artifacts
downloaded twice) is kept and reported as a duplicate. The `shard.json` that `bqlab run
--shard` leaves makes the merge check that every shard of a split reported every run it
owed: a shard whose job died before uploading is an infrastructure failure (exit 3), not
a smaller green table.
"""

import json
import os
import sys
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BadInput, ExitCode
from . import ktap, shard
from .report import SCHEMA as RUN_SCHEMA
from .report import table
from .rundir import new_run_dir, write_json

SCHEMA = "bqlab.merged/1"
REPORT = "report.json"
JUNIT = "junit.xml"
LATEST = "latest"


@dataclass
class Run:
    report: dict[str, Any]
    path: Path  # the run's artifact directory, resolved
    found_in: Path  # the DIR argument it was found under

    @property
    def scenario(self) -> str:
        return str(self.report.get("scenario", self.path.name))


@dataclass
class Merged:
    runs: list[Run]
    manifests: list[dict[str, Any]]
    skipped: list[str]  # report.json files that are not run reports (a previous merge)

    def duplicates(self) -> dict[str, list[Path]]:
        by_name: dict[str, list[Path]] = defaultdict(list)
        for r in self.runs:
            by_name[r.scenario].append(r.path)
        return {name: paths for name, paths in by_name.items() if len(paths) > 1}

    def missing(self) -> list[str]:
        """Runs a shard owed and nobody reported, one line each."""
        found = {r.scenario for r in self.runs}
        splits: dict[tuple, dict[int, dict[str, Any]]] = defaultdict(dict)
        for m in self.manifests:
            splits[(m["of"], tuple(m["selected"]), m.get("label"))][m["shard"]] = m
        problems = []
        for (of, _selected, label), seen in sorted(splits.items(), key=str):
            any_manifest = next(iter(seen.values()))
            split = f" (label {label})" if label else ""
            for k in range(1, of + 1):
                owed = shard.expected_runs(any_manifest, k)
                lost = [name for name in owed if name not in found]
                if k not in seen and owed:
                    problems.append(f"shard {k}/{of}{split} never reported: "
                                    f"{', '.join(owed)} not run")
                elif lost:
                    problems.append(f"shard {k}/{of}{split} ran but left no report for: "
                                    f"{', '.join(lost)}")
        return problems

    def exit_code(self) -> int:
        worst = max((int(r.report.get("exit_code", ExitCode.INFRA_FAILURE))
                     for r in self.runs), default=int(ExitCode.PASS))
        if self.missing():
            worst = max(worst, int(ExitCode.INFRA_FAILURE))
        return worst


def _walk(top: Path) -> tuple[list[Path], list[Path]]:
    reports, manifests = [], []
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        # `latest` names the newest run again; an artifact upload may have made the link a
        # copy, which would count that run twice.
        dirnames[:] = [d for d in dirnames if d != LATEST]
        if REPORT in filenames:
            reports.append(Path(dirpath) / REPORT)
        if shard.MANIFEST in filenames:
            manifests.append(Path(dirpath) / shard.MANIFEST)
    return reports, manifests


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise BadInput(f"{path}: not readable as JSON ({e})") from e
    if not isinstance(data, dict):
        raise BadInput(f"{path}: expected a JSON object")
    return data


def collect(dirs: list[Path]) -> Merged:
    """Every run and shard manifest under dirs; bad input when there are none."""
    runs: list[Run] = []
    manifests: list[dict[str, Any]] = []
    skipped: list[str] = []
    seen: set[Path] = set()  # the same file named through two DIRs is one run
    for d in dirs:
        if not d.is_dir():
            raise BadInput(f"{d}: no such directory")
        top = d.resolve()  # DIR may itself be a symlink, e.g. artifacts/latest
        reports, shard_files = _walk(top)
        for path in sorted(reports):
            if path in seen:
                continue
            seen.add(path)
            data = _read_json(path)
            if data.get("schema") != RUN_SCHEMA:
                skipped.append(f"{path} (schema {data.get('schema')!r})")
                continue
            runs.append(Run(data, path.parent, top))
        for path in sorted(shard_files):
            if path not in seen:
                seen.add(path)
                data = _read_json(path)
                if data.get("schema") == shard.SCHEMA:
                    manifests.append(data)
    if not runs and not manifests:
        raise BadInput(f"no {REPORT} under {', '.join(str(d) for d in dirs)}: "
                       "give run artifact directories or directories above them")
    runs.sort(key=lambda r: (r.scenario, str(r.path)))
    return Merged(runs, manifests, skipped)


def _suite_of(run: Run) -> list[ET.Element]:
    path = run.path / JUNIT
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        suite = ET.Element("testsuite", name=f"bqlab.{run.scenario}", tests="1",
                           failures="0", errors="1", time="0")
        case = ET.SubElement(suite, "testcase", classname=f"bqlab.{run.scenario}",
                             name="junit")
        ET.SubElement(case, "error", message=f"{JUNIT} unreadable in {run.path}").text = str(e)
        return [suite]
    return list(root) if root.tag == "testsuites" else [root]


def write_junit(runs: list[Run], path: Path) -> None:
    """One <testsuites> wrapping each run's <testsuite>."""
    top = ET.Element("testsuites", name="bqlab")
    totals = dict.fromkeys(("tests", "failures", "errors"), 0)
    seconds = 0.0
    for run in runs:
        for suite in _suite_of(run):
            suite.set("file", str(run.path / JUNIT))
            top.append(suite)
            for k in totals:
                totals[k] += int(suite.get(k, "0"))
            seconds += float(suite.get("time", "0") or 0)
    for k, v in totals.items():
        top.set(k, str(v))
    top.set("time", f"{seconds:.2f}")
    ET.ElementTree(top).write(path, encoding="unicode", xml_declaration=True)


def index(merged: Merged, out: Path, dirs: list[Path]) -> dict[str, Any]:
    """The merged report.json (schema bqlab.merged/1)."""
    runs = [{
        "scenario": r.scenario, "verdict": r.report.get("verdict", "ERROR"),
        "exit_code": int(r.report.get("exit_code", ExitCode.INFRA_FAILURE)),
        "diagnosis": r.report.get("diagnosis", ""),
        "duration_s": float(r.report.get("duration_s") or 0),
        "path": str(r.path), "relative": os.path.relpath(r.path, out),
        "found_in": str(r.found_in),
    } for r in merged.runs]
    counts: dict[str, int] = defaultdict(int)
    for run in runs:
        counts[run["verdict"]] += 1
    return {
        "schema": SCHEMA, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "inputs": [str(d.resolve()) for d in dirs], "exit_code": merged.exit_code(),
        "counts": dict(counts), "runs": runs,
        "duplicates": [{"scenario": s, "paths": [str(p) for p in ps]}
                       for s, ps in merged.duplicates().items()],
        "missing": merged.missing(),
        "shards": [{k: m.get(k) for k in ("shard", "of", "label", "runs", "empty")}
                   for m in merged.manifests],
        "skipped": merged.skipped,
    }


def merge(dirs: list[Path], out: Path | None = None) -> tuple[Path, int, str]:
    """Write junit.xml, report.json and results.ktap into out (default: a new run dir
    `<time>-merged`). Returns (out, exit code, the text to print)."""
    merged = collect(dirs)
    out = out or new_run_dir("merged")
    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()
    write_junit(merged.runs, out / JUNIT)
    data = index(merged, out, dirs)
    write_json(out / REPORT, data)
    ktap.write(out / "results.ktap", [r.report for r in merged.runs])
    _write_index_quietly(out, [r.path for r in merged.runs])
    lines = [table(data["runs"])]
    for d in data["duplicates"]:
        lines.append(f"duplicate: {d['scenario']} ran {len(d['paths'])} times: "
                     + ", ".join(d["paths"]))
    lines += [f"missing: {m}" for m in data["missing"]]
    lines += [f"skipped (not a run report): {s}" for s in data["skipped"]]
    empty = [m for m in merged.manifests if m.get("empty")]
    lines += [f"empty shard: {m['shard']}/{m['of']} had no scenario" for m in empty]
    lines.append(f"merged {len(merged.runs)} run(s): {out}")
    return out, data["exit_code"], "\n".join(lines)


def _write_index_quietly(out: Path, run_dirs: list[Path]) -> None:
    """index.html over the merged runs; a page that cannot be drawn never fails a merge."""
    try:
        from .htmlreport import write_index

        write_index(out, run_dirs)
    except Exception as e:  # the page is a convenience; junit/report.json are the contract
        print(f"index.html not written: {type(e).__name__}: {e}", file=sys.stderr)


def merged_runs(out: Path) -> list[dict[str, Any]]:
    """The runs of a merge written into out, each with `path` (absolute) to its artifact
    directory: what an index page over a merge draws from."""
    data = _read_json(out / REPORT)
    if data.get("schema") != SCHEMA:
        raise BadInput(f"{out / REPORT}: not a merged report (schema {data.get('schema')!r})")
    runs = data["runs"]
    for r in runs:
        # Where the tree was moved as a whole (uploaded, downloaded), the relative path
        # still holds and the absolute one does not.
        moved = (out / r["relative"]).resolve()
        if moved.is_dir():
            r["path"] = str(moved)
    return runs
