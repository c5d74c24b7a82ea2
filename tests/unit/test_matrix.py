"""bqlab matrix: one cell per (scenario, NIC model); what cannot run is N/A with the
loader's reason; the kernel's own selftests are listed by outcome and do not fail it."""

from pathlib import Path

from bqlab.errors import BadInput, ExitCode
from bqlab.run import matrix
from bqlab.run.report import RunReport


def report(exit_code: ExitCode, steps: list[dict] | None = None) -> RunReport:
    return RunReport("x", "x.yaml", Path("/tmp/x"), exit_code=exit_code, steps=steps or [],
                     verdicts=[{"name": "rx-stall", "verdict": "STALL",
                                "reason": "queue 0 stalled"}]
                     if exit_code == ExitCode.VERDICT_FAILED else [])


def fake_load(name: str, overrides: list[str]) -> tuple[str, str]:
    nic = overrides[0].split("=", 1)[1]
    if (name, nic) == ("xdp-cycles", "e1000e"):
        raise BadInput("invalid scenario:\n  x.yaml:17: steps[2].xdp_cycles: e1000e "
                       "(e1000e) has no XDP")
    return name, nic


SELFTEST_STEPS = [{"summary": "ping.py: exit 0, 4 pass", "ok": True,
                   "details": {"results": {"pass": ["a", "b"], "fail": [], "skip": ["c"]}}},
                  {"summary": "hw/rss_ctx.py: exit 1, 1 fail", "ok": False,
                   "details": {"results": {"pass": [], "fail": ["d"], "skip": []}}}]


def fake_run(sc: tuple[str, str]) -> RunReport:
    name, nic = sc
    if name == "selftests":
        return report(ExitCode.VERDICT_FAILED, SELFTEST_STEPS)
    if (name, nic) == ("rx-stall", "igb"):
        return report(ExitCode.VERDICT_FAILED)
    return report(ExitCode.PASS)


def test_cells_na_and_exit_code() -> None:
    cells = matrix.run(fake_load, fake_run, ("rx-stall", "xdp-cycles", "selftests"),
                       ("bqnic", "igb", "e1000e"))
    by = {(c.scenario, c.nic): c for c in cells}
    assert len(cells) == 9
    assert by["xdp-cycles", "e1000e"].verdict == "N/A"
    assert by["xdp-cycles", "e1000e"].detail.endswith("e1000e (e1000e) has no XDP")
    assert by["rx-stall", "igb"].verdict == "FAIL"
    assert "rx-stall STALL: queue 0 stalled" in by["rx-stall", "igb"].detail
    assert by["selftests", "bqnic"].detail == "ping: 2 pass 1 skip; rss_ctx: 1 fail"
    assert matrix.exit_code(cells) == 1  # the igb stall; not the selftests
    assert matrix.exit_code([c for c in cells if c.nic != "igb"]) == 0
    md = matrix.markdown(cells, "7.2.13", when="2026-12-06")
    assert md.splitlines()[0] == "Kernel 7.2.13, 2026-12-06:"
    assert "| `xdp-cycles` | PASS | PASS | N/A (" in md


def test_saved_matrices_make_one_table_with_a_column_per_kernel(tmp_path: Path) -> None:
    a = matrix.run(fake_load, fake_run, ("smoke", "rx-stall"), ("bqnic", "igb"))
    b = [c if c.nic != "igb" else matrix.Cell(c.scenario, c.nic, "PASS", "") for c in a]
    matrix.write(tmp_path / "a", a, "6.12.118")
    matrix.write(tmp_path / "b", b, "7.2.13")
    table = matrix.by_kernel([matrix.load(tmp_path / "a"), matrix.load(tmp_path / "b")])
    lines = table.splitlines()
    assert lines[0] == "| scenario | NIC | 6.12.118 | 7.2.13 |"
    [igb] = [ln for ln in lines if ln.startswith("| `rx-stall` | igb |")]
    assert igb.split(" | ")[2].startswith("FAIL") and igb.endswith("| PASS |")
    (tmp_path / "junk.json").write_text('{"schema": "other"}')
    try:
        matrix.load(tmp_path / "junk.json")
    except BadInput as e:
        assert "not a saved bqlab matrix" in str(e)
    else:
        raise AssertionError("a file of another schema was taken")
