"""report.html for a run's artifact directory, index.html over several runs.

Everything is drawn from the files a run leaves (report.json and watch.jsonl), so an old
artifact directory can be drawn again: `bqlab report html DIR`.
"""

from pathlib import Path

from .index import write_index

__all__ = ["write_html", "write_html_quietly", "write_index"]


def write_html(run_dir: Path) -> Path:
    """Render run_dir/report.html from run_dir/report.json and watch.jsonl."""
    from .data import load_run
    from .page import render
    from .plots import strip_size, timeline_svg

    d = load_run(run_dir)
    svg = strip_size(timeline_svg(d)) if d.samples else None
    path = run_dir / "report.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(render(d, svg))
    tmp.replace(path)
    return path


def write_html_quietly(run_dir: Path) -> Path | None:
    """write_html for the end of a run: a report that fails to render is one line on
    stderr, never a failed run."""
    from ...progress import say

    try:
        return write_html(run_dir)
    except Exception as e:  # whatever broke, the run's verdict stands
        say(f"report.html not written: {type(e).__name__}: {e}")
        return None
