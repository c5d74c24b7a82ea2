"""report.html and index.html, drawn from a recorded rx-stall-buggy run (no browser here:
tests/browser opens them in Chromium)."""

import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest
from bqlab import cli
from bqlab.errors import ExitCode
from bqlab.judge.verdicts import TeardownEvent
from bqlab.run.htmlreport import write_html, write_html_quietly, write_index
from bqlab.run.report import RunReport
from bqlab.run.runstate import RunState

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "run-rx-stall-buggy"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A writable copy of the recorded run's artifact directory."""
    return Path(shutil.copytree(FIXTURE, tmp_path / "run"))


def edit_report(run_dir: Path, change) -> None:
    path = run_dir / "report.json"
    report = json.loads(path.read_text())
    change(report)
    path.write_text(json.dumps(report))


def verdict(report: dict, name: str) -> dict:
    return next(v for v in report["verdicts"] if v["name"] == name)


def svg_ids(html: str) -> set[str]:
    return set(re.findall(r' id="([^"]+)"', html))


def path_vertices(html: str, gid: str) -> int:
    """Vertices of the line drawn for one series (its <g id=...> holds one <path d=...>)."""
    m = re.search(rf'<g id="{re.escape(gid)}">\s*<path d="([^"]*)"', html)
    assert m, f"no path for {gid}"
    return len(re.findall(r"[ML]", m.group(1)))


def test_the_recorded_run_fixture_is_a_real_stall() -> None:
    report = json.loads((FIXTURE / "report.json").read_text())
    assert report["scenario"] == "rx-stall-buggy" and report["verdict"] == "FAIL"
    assert verdict(report, "rx-stall")["verdict"] == "STALL"
    assert report["timeline"]["pressure"] and report["timeline"]["events"]


def test_the_timeline_draws_every_series_of_every_queue(run_dir: Path) -> None:
    html = write_html(run_dir).read_text()
    ids = svg_ids(html)
    report = json.loads((run_dir / "report.json").read_text())
    queues = sorted({int(q) for line in (run_dir / "watch.jsonl").read_text().splitlines()
                     if '"guest"' in line for q in json.loads(line)["rx_queues"]})
    assert queues
    for q in queues:
        for series in ("rx", "drop-sbq", "sbq-owned", "lbq-owned", "alloc-fail"):
            assert f"series-{series}-q{q}" in ids
    guest_samples = (run_dir / "watch.jsonl").read_text().count('"source": "guest"')
    # A rate per sample (bunched samples merged): most of them make it into the line.
    assert path_vertices(html, f"series-rx-q{queues[0]}") >= guest_samples * 0.6
    for title in ("guest rx packets/s", "device drops/s", "buffers owned by the device",
                  "rx-alloc-fail", "page_pool inflight", "seconds since the watchdog started"):
        assert f"<!-- {title}" in html, title  # text drawn as paths keeps a comment
    assert {"panel-phases", "panel-rx", "panel-drops", "panel-owned", "panel-alloc_fail",
            "panel-pools"} <= ids
    assert report["verdict"] in html and report["diagnosis"] in html


def test_pressure_events_and_stall_evidence_are_marked(run_dir: Path) -> None:
    html = write_html(run_dir).read_text()
    ids = svg_ids(html)
    timeline = json.loads((run_dir / "report.json").read_text())["timeline"]
    assert {f"pressure-{i}" for i in range(len(timeline["pressure"]))} <= ids
    assert {f"event-{i}" for i in range(len(timeline["events"]))} <= ids
    assert {"stall-evidence", "stall-counted"} <= ids
    assert "<!-- STALL: queue" in html
    for ev in timeline["events"]:
        assert f"<!--   {ev['what']} -->" in html  # labelled in the top strip


def test_without_stall_evidence_nothing_is_highlighted(run_dir: Path) -> None:
    edit_report(run_dir, lambda r: verdict(r, "rx-stall").update(evidence=[]))
    html = write_html(run_dir).read_text()
    assert not {"stall-evidence", "stall-counted"} & svg_ids(html)
    assert "pressure-0" in svg_ids(html)


def test_leaked_pools_are_named_and_drawn_in_red(run_dir: Path) -> None:
    events = json.loads((run_dir / "report.json").read_text())["timeline"]["events"]
    pool = events[0]["pools"][0]["id"]

    def leak(r: dict) -> None:
        verdict(r, "teardown").update(verdict="LEAK", reason=f"pool {pool} leaked", leaked=[
            {"id": pool, "event": events[0]["what"], "event_time": events[0]["end"],
             "inflight": 7, "detach-time": 1, "destroyed": True, "drained_after": None,
             "history": []}])
    edit_report(run_dir, leak)
    html = write_html(run_dir).read_text()
    assert f"pool-{pool}" in svg_ids(html)
    assert f"<!-- pool {pool} LEAK ({events[0]['what']}) -->" in html
    assert re.search(rf'<tr class="bad"><td class="num">{pool}</td>', html)  # leak table


def test_a_nic_without_device_counters_gets_guest_series_and_a_note(run_dir: Path) -> None:
    watch = run_dir / "watch.jsonl"
    watch.write_text("".join(line + "\n" for line in watch.read_text().splitlines()
                             if '"source": "device"' not in line))
    edit_report(run_dir, lambda r: r["timeline"].update(dut_nic="e1000e", device_samples=False))
    html = write_html(run_dir).read_text()
    ids = svg_ids(html)
    assert "series-rx-q0" in ids and "series-alloc-fail-q0" in ids
    assert not any(i.startswith(("series-drop", "series-sbq")) for i in ids)
    assert "not available for the e1000e NIC model" in html


def test_an_error_run_without_samples_still_renders(tmp_path: Path) -> None:
    rep = RunReport("rx-stall", "rx-stall.yaml", tmp_path, exit_code=ExitCode.INFRA_FAILURE,
                    error="dut: boot failed: no SSH in 120 s\nconsole tail ...")
    rep.write()  # report.json, junit.xml, then report.html
    html = (tmp_path / "report.html").read_text()
    assert "ERROR" in html and "dut: boot failed: no SSH in 120 s" in html
    assert "no watchdog samples" in html and "<svg" not in html
    assert 'href="junit.xml"' in html and 'href="report.json"' in html


def test_a_report_that_cannot_render_is_a_line_not_an_exception(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "report.json").write_text("{not json")
    assert write_html_quietly(tmp_path) is None
    assert "report.html not written" in capsys.readouterr().err


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.refs += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href")]


def test_the_page_is_self_contained(run_dir: Path) -> None:
    html = write_html(run_dir).read_text()
    parser = _Refs()
    parser.feed(html)
    assert "script" not in parser.tags and "img" not in parser.tags
    assert not {"link", "iframe", "object"} & parser.tags
    for ref in parser.refs:
        assert ref.startswith("#") or (run_dir / ref).is_file(), ref
    assert "url(http" not in html and "@import" not in html and "@font-face" not in html


def test_the_same_run_renders_to_the_same_bytes(run_dir: Path) -> None:
    first = write_html(run_dir).read_bytes()
    assert write_html(run_dir).read_bytes() == first


def test_the_index_links_each_report_relatively(tmp_path: Path) -> None:
    runs = [Path(shutil.copytree(FIXTURE, tmp_path / "a" / name)) for name in ("r1", "r2")]
    write_html(runs[0])
    (runs[1] / "report.json").write_text("garbage")
    index = write_index(tmp_path / "a" / "index", runs)
    html = index.read_text()
    assert 'href="../r1/report.html"' in html  # relative: the tree can move
    assert 'href="../r2/report.json"' in html  # no report.html: its report.json
    assert "rx-stall-buggy" in html and "FAIL" in html and "ERROR" in html


def test_cli_report_html_redraws_an_artifact_directory(run_dir: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["report", "html", str(run_dir)]) == ExitCode.PASS
    assert capsys.readouterr().out.strip() == str(run_dir / "report.html")
    assert cli.main(["report", "html", str(tmp_path / "nowhere")]) == ExitCode.BAD_INPUT


def test_the_run_state_timeline_is_what_the_report_needs() -> None:
    dog = SimpleNamespace(interval=0.25, device_enabled=True, now=lambda: 9.0,
                          vm=SimpleNamespace(config=SimpleNamespace(nic="bqnic")))
    state = RunState(topo=None, watchdog=dog)  # type: ignore[arg-type]
    state.pressure_windows = [[2.0, 6.0], [7.0, -1.0]]
    state.events.append((TeardownEvent("ifdown/ifup", 10.0, 10.5, {4: {"inflight": 12}},
                                       must_destroy=True), True))
    state.sinks_closed_at = 12.0
    state.step_done(0, "sleep", 1.0)
    tl = json.loads(json.dumps(state.timeline()))
    assert tl["pressure"] == [[2.0, 6.0], [7.0, -1.0]]
    assert tl["events"] == [{"what": "ifdown/ifup", "start": 10.0, "end": 10.5,
                             "pools": [{"id": 4, "inflight": 12}], "must_destroy": True,
                             "sinks_held": True}]
    assert tl["sinks_closed_at"] == 12.0 and tl["dut_nic"] == "bqnic"
    assert tl["steps"] == [{"index": 0, "kind": "sleep", "start": 1.0, "end": 9.0}]


def test_matplotlib_is_imported_only_to_draw() -> None:
    code = ("import sys, bqlab.cli, bqlab.run.report, bqlab.run.runner, bqlab.scenario, "
            "bqlab.run.htmlreport;"
            "bqlab.scenario.load('rx-stall', []);"
            "sys.exit('matplotlib' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_run_with_several_scenarios_writes_an_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from bqlab.run import runner

    from .runs import make_run

    monkeypatch.setenv("BQLAB_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setattr(cli, "_built", lambda args: None)
    monkeypatch.setattr(cli, "say_accelerator", lambda built: None)
    monkeypatch.setattr(runner, "run_scenario",
                        lambda sc, built, *_: make_run(tmp_path / "artifacts", sc.name, "PASS"))
    assert cli.main(["run", "smoke", "rx-stall"]) == ExitCode.PASS
    [line] = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("index: ")]
    index = Path(line.removeprefix("index: "))
    assert index.parent.name.endswith("-index") and index.parent.parent == tmp_path / "artifacts"
    html = index.read_text()
    assert html.count("/report.html\"") == 2 and "smoke" in html and "rx-stall" in html
