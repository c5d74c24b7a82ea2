"""report.html in a real browser: headless Chromium (Debian's `chromium`) opens the report
of a recorded rx-stall-buggy run, takes a screenshot, and the page must show the series
(the queues' line colours, the pressure and stall bars) with nothing on the console.

Marked `browser` (by directory). Chromium missing is a failure, not a skip: `make test`
installs it (`bqlab deps test`).
"""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from bqlab.run.htmlreport import write_html
from bqlab.run.htmlreport.plots import PRESSURE, QUEUE_COLORS, STALL
from PIL import Image

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "run-rx-stall-buggy"
WINDOW = (1280, 2400)
# Root in a container: no sandbox. Nothing from the network, no first-run work.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--host-resolver-rules=MAP * ~NOTFOUND",
         "--enable-logging=stderr", "--v=0", f"--window-size={WINDOW[0]},{WINDOW[1]}"]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed: `bqlab deps test` installs it (or, as root, "
                    "apt-get install -y --no-install-recommends chromium)")
    return path


def run_chromium(tmp_path: Path, page: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    profile.mkdir()
    return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args,
                           page.resolve().as_uri()],
                          capture_output=True, text=True, timeout=120, check=False)


def console_messages(stderr: str) -> list[str]:
    """What the page logged: errors, uncaught exceptions (the report has no script at all,
    so anything here is wrong)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def screenshot(tmp_path: Path, page: Path) -> tuple[np.ndarray, list[str]]:
    png = tmp_path / f"{page.parent.name}.png"
    res = run_chromium(tmp_path, page, f"--screenshot={png}")
    assert png.is_file(), f"chromium wrote no screenshot (exit {res.returncode}):\n" \
                          f"{res.stderr[-3000:]}"
    return np.asarray(Image.open(png).convert("RGB")).astype(int), console_messages(res.stderr)


def rgb(color: str, alpha: float = 1.0) -> np.ndarray:
    """A matplotlib colour as drawn over white with this alpha."""
    c = np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)])
    return np.rint(alpha * c + (1 - alpha) * 255).astype(int)


def pixels_like(img: np.ndarray, color: np.ndarray, tol: int = 10) -> int:
    return int((np.abs(img - color).max(axis=2) <= tol).sum())


def missing_series(img: np.ndarray) -> list[str]:
    """What a reader would not see: empty list when the page shows the series."""
    problems = []
    non_white = float((img.min(axis=2) < 240).mean())
    if non_white < 0.03:
        problems.append(f"nearly blank: {non_white:.1%} non-white pixels")
    # Each queue's lines (rx rate, drops, buffers owned, alloc-fail) in its colour.
    for q in (0, 1):
        if pixels_like(img, rgb(QUEUE_COLORS[q])) < 400:
            problems.append(f"queue {q}'s lines ({QUEUE_COLORS[q]}) not drawn")
    if pixels_like(img, rgb(PRESSURE, 0.6), tol=6) < 1500:
        problems.append("no pressure bar")
    if pixels_like(img, rgb(STALL), tol=6) < 1500:
        problems.append("no stall bar")
    return problems


@pytest.fixture
def report(tmp_path: Path) -> Path:
    run = Path(shutil.copytree(FIXTURE, tmp_path / "rx-stall-buggy"))
    return write_html(run)


def test_chromium_shows_the_stall_series_without_console_errors(tmp_path: Path,
                                                                report: Path) -> None:
    img, console = screenshot(tmp_path, report)
    assert img.shape[:2] == (WINDOW[1], WINDOW[0])
    assert missing_series(img) == []
    assert console == []


def test_chromium_parsed_the_inline_svg(tmp_path: Path, report: Path) -> None:
    res = run_chromium(tmp_path, report, "--dump-dom")
    dom = res.stdout
    assert '<figure id="timeline"><svg' in dom
    for gid in ("series-rx-q0", "series-drop-sbq-q0", "series-sbq-owned-q0", "pressure-0",
                "stall-evidence", "event-0"):
        assert f'id="{gid}"' in dom, gid
    assert console_messages(res.stderr) == []


def test_the_check_sees_a_report_without_its_series(tmp_path: Path) -> None:
    """The screenshot check can fail: the same run without watch.jsonl draws no timeline."""
    run = Path(shutil.copytree(FIXTURE, tmp_path / "no-samples"))
    (run / "watch.jsonl").unlink()
    img, _ = screenshot(tmp_path, write_html(run))
    problems = missing_series(img)
    assert any("queue 0" in p for p in problems) and "no stall bar" in problems


def test_the_check_sees_console_errors(tmp_path: Path) -> None:
    page = tmp_path / "broken" / "report.html"
    page.parent.mkdir()
    page.write_text("<!DOCTYPE html><p>x</p><script>throw new Error('boom')</script>")
    res = run_chromium(tmp_path, page, "--dump-dom")
    assert any("Uncaught Error: boom" in line for line in console_messages(res.stderr))
