"""index.html over several runs: the summary table, each row linking to its report."""

import json
import os
from html import escape
from pathlib import Path
from typing import Any

from .page import badge, page


def _row(out_dir: Path, run_dir: Path) -> tuple[str, str]:
    """A table row and the run's verdict (ERROR when its report.json is unreadable)."""
    try:
        r: dict[str, Any] = json.loads((run_dir / "report.json").read_text())
    except (OSError, ValueError) as e:
        r = {"scenario": run_dir.name, "verdict": "ERROR",
             "diagnosis": f"report.json unreadable: {e}"}
    target = run_dir / "report.html"
    if not target.is_file():
        target = run_dir / "report.json"
    href = escape(Path(os.path.relpath(target, out_dir)).as_posix())
    verdict = str(r.get("verdict", "?"))
    name = escape(str(r.get("scenario", run_dir.name)))
    row = (f'<tr><td class="name"><a href="{href}">{name}</a></td>'
           f"<td>{badge(verdict)}</td>"
           f'<td class="num">{float(r.get("duration_s") or 0):.0f}s</td>'
           f"<td>{escape(str(r.get('diagnosis', '')))}</td></tr>")
    return row, verdict


def write_index(out_dir: Path, run_dirs: list[Path]) -> Path:
    """Write out_dir/index.html summarising run_dirs (links are relative: the tree can be
    moved or uploaded as a whole)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, verdicts = zip(*(_row(out_dir, d) for d in run_dirs), strict=True) if run_dirs \
        else ((), ())
    counts = {v: verdicts.count(v) for v in dict.fromkeys(verdicts)}
    summary = ", ".join(f"{n} {v}" for v, n in counts.items()) or "no runs"
    body = (f"<h1>bqlab: {len(run_dirs)} run(s)</h1><p class=\"diag\">{escape(summary)}</p>"
            f"<table><tr><th>scenario</th><th>verdict</th><th>time</th><th>detail</th></tr>"
            f"{''.join(rows)}</table>")
    path = out_dir / "index.html"
    path.write_text(page(f"bqlab: {summary}", body))
    return path
