"""bqlab report merge: fabricated run directories (written by RunReport, no VM) merged into
one junit.xml, report.json index, results.ktap, table and worst exit code."""

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from bqlab.errors import BadInput
from bqlab.run import merge, shard
from bqlab.run.report import summary_table

from .runs import make_run
from .test_ktap import parse

BQLAB = [sys.executable, "-m", "bqlab.cli"]


def cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([*BQLAB, *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.fixture
def three(tmp_path: Path) -> Path:
    """artifacts/ with a PASS, a FAIL and an ERROR run (and bqlab's `latest` link)."""
    root = tmp_path / "artifacts"
    make_run(root, "rx-stall", "PASS")
    make_run(root, "teardown-leak", "FAIL")
    make_run(root, "smoke", "ERROR")
    assert (root / "latest").is_symlink()
    return root


def test_pass_fail_error_merge_to_exit_3(three: Path, tmp_path: Path) -> None:
    out, code, text = merge.merge([three], tmp_path / "merged")
    assert code == 3  # the worst: an infrastructure failure
    suites = ET.parse(out / "junit.xml").getroot()
    assert suites.tag == "testsuites"
    assert [s.get("name") for s in suites] == \
        ["bqlab.rx-stall", "bqlab.smoke", "bqlab.teardown-leak"]  # latest not counted
    assert (suites.get("failures"), suites.get("errors")) == ("1", "1")
    assert int(suites.get("tests")) == sum(int(s.get("tests")) for s in suites)
    index = json.loads((out / "report.json").read_text())
    assert index["schema"] == merge.SCHEMA and index["exit_code"] == 3
    assert index["counts"] == {"PASS": 1, "ERROR": 1, "FAIL": 1}
    assert [(r["scenario"], r["verdict"], r["exit_code"]) for r in index["runs"]] == [
        ("rx-stall", "PASS", 0), ("smoke", "ERROR", 3), ("teardown-leak", "FAIL", 1)]
    for r in index["runs"]:
        assert (out / r["relative"] / "report.json").is_file()
        assert Path(r["path"]).is_absolute()
    tests = parse((out / "results.ktap").read_text())
    assert [(t.name, t.ok) for t in tests] == \
        [("rx-stall", True), ("smoke", False), ("teardown-leak", False)]
    assert "rx-stall       PASS" in text and "smoke          ERROR" in text
    # an index page links every merged run's directory
    page = (out / "index.html").read_text()
    for r in index["runs"]:
        assert f'href="{r["relative"]}/' in page, r["relative"]


@pytest.mark.parametrize("outcomes,code", [
    (("PASS", "PASS"), 0), (("PASS", "INCONCLUSIVE"), 1), (("FAIL", "PASS"), 1),
    (("ERROR", "FAIL"), 3),
])
def test_exit_code_is_the_worst(outcomes: tuple[str, str], code: int, tmp_path: Path) -> None:
    for i, outcome in enumerate(outcomes):
        make_run(tmp_path / "in", f"s{i}", outcome)
    assert merge.merge([tmp_path / "in"], tmp_path / "out")[1] == code


def test_two_shards_merge_to_the_table_of_one_unsharded_run(tmp_path: Path) -> None:
    names = ["xdp-cycles", "rx-stall", "teardown", "smoke", "rx-stall-buggy"]
    outcome = {"rx-stall-buggy": "FAIL"}
    together = [make_run(tmp_path / "one", n, outcome.get(n, "PASS"), seconds=10 + i)
                for i, n in enumerate(names)]
    # The same runs, split the way --shard 1/2 and 2/2 split them, in two job directories.
    for k in (1, 2):
        job = tmp_path / f"job{k}" / "artifacts"
        job.mkdir(parents=True)
        for name in shard.Shard(k, 2).select(names):
            run = next(r for r in together if r.scenario == name)
            shutil.copytree(run.artifacts, job / run.artifacts.name)
        shard.write_manifest(shard.Shard(k, 2), names, None, root=job)
    _, code, text = merge.merge([tmp_path / "job1", tmp_path / "job2"], tmp_path / "m")
    assert code == 1
    by_name = sorted(together, key=lambda r: r.scenario)
    assert text.splitlines()[:len(names) + 2] == summary_table(by_name).splitlines()
    _, code_one, text_one = merge.merge([tmp_path / "one"], tmp_path / "m1")
    assert code_one == code
    assert text_one.splitlines()[:len(names) + 2] == text.splitlines()[:len(names) + 2]


def test_a_scenario_in_two_shards_is_reported_not_dropped(tmp_path: Path) -> None:
    make_run(tmp_path / "job1", "smoke", "PASS")
    make_run(tmp_path / "job2", "smoke", "FAIL")
    out, code, text = merge.merge([tmp_path / "job1", tmp_path / "job2"], tmp_path / "m")
    assert code == 1  # the FAIL copy counts
    index = json.loads((out / "report.json").read_text())
    assert [r["verdict"] for r in index["runs"]] == ["PASS", "FAIL"] or \
        [r["verdict"] for r in index["runs"]] == ["FAIL", "PASS"]
    assert index["duplicates"][0]["scenario"] == "smoke"
    assert len(index["duplicates"][0]["paths"]) == 2
    assert "duplicate: smoke ran 2 times" in text
    assert len(ET.parse(out / "junit.xml").getroot()) == 2


def test_the_same_directory_given_twice_is_one_run(three: Path, tmp_path: Path) -> None:
    out, _, _ = merge.merge([three, three / "latest", three], tmp_path / "m")
    index = json.loads((out / "report.json").read_text())
    assert len(index["runs"]) == 3 and index["duplicates"] == []


def test_a_latest_link_turned_into_a_copy_is_not_counted(three: Path, tmp_path: Path) -> None:
    # What an artifact upload does to the symlink.
    target = (three / "latest").resolve()
    (three / "latest").unlink()
    shutil.copytree(target, three / "latest")
    index = json.loads((merge.merge([three], tmp_path / "m")[0] / "report.json").read_text())
    assert len(index["runs"]) == 3 and index["duplicates"] == []


def test_a_shard_that_never_reported_is_an_infrastructure_failure(tmp_path: Path) -> None:
    names = ["a", "b", "c"]
    job1 = tmp_path / "job1"
    shard.write_manifest(shard.Shard(1, 2), names, "bqnic", root=job1)
    for name in shard.Shard(1, 2).select(names):
        make_run(job1, shard.labelled(name, "bqnic"), "PASS")
    out, code, text = merge.merge([job1], tmp_path / "m")
    assert code == 3
    assert "missing: shard 2/2 (label bqnic) never reported: b@bqnic not run" in text
    assert json.loads((out / "report.json").read_text())["missing"]


def test_a_shard_that_died_mid_run_is_an_infrastructure_failure(tmp_path: Path) -> None:
    shard.write_manifest(shard.Shard(1, 1), ["a", "b"], None, root=tmp_path / "job")
    make_run(tmp_path / "job", "a", "PASS")
    _, code, text = merge.merge([tmp_path / "job"], tmp_path / "m")
    assert code == 3
    assert "shard 1/1 ran but left no report for: b" in text


def test_an_empty_shard_is_complete(tmp_path: Path) -> None:
    shard.write_manifest(shard.Shard(1, 2), ["a"], None, root=tmp_path / "job1")
    make_run(tmp_path / "job1", "a", "PASS")
    shard.write_manifest(shard.Shard(2, 2), ["a"], None, root=tmp_path / "job2")
    _, code, text = merge.merge([tmp_path / "job1", tmp_path / "job2"], tmp_path / "m")
    assert code == 0, text
    assert "empty shard: 2/2 had no scenario" in text
    assert "missing" not in text


def test_no_report_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(BadInput, match="no report.json under"):
        merge.merge([tmp_path / "empty"], tmp_path / "m")
    assert not (tmp_path / "m").exists()
    with pytest.raises(BadInput, match="no such directory"):
        merge.merge([tmp_path / "nope"], tmp_path / "m")


def test_a_previous_merge_is_skipped_not_merged(three: Path, tmp_path: Path) -> None:
    merge.merge([three], three / "merged")  # inside the tree merged next
    out, _, text = merge.merge([three], tmp_path / "again")
    assert len(json.loads((out / "report.json").read_text())["runs"]) == 3
    assert "skipped (not a run report)" in text


def test_merged_runs_finds_each_run_directory_after_a_move(three: Path, tmp_path: Path) -> None:
    out, _, _ = merge.merge([three], three / "merged")
    moved = tmp_path / "moved"
    shutil.move(three, moved)
    runs = merge.merged_runs(moved / "merged")
    assert [r["scenario"] for r in runs] == ["rx-stall", "smoke", "teardown-leak"]
    for r in runs:
        assert Path(r["path"]).is_relative_to(moved)
        assert (Path(r["path"]) / "report.json").is_file()


def test_cli_merge(three: Path, tmp_path: Path, bqlab_env: dict[str, str]) -> None:
    res = cli(["report", "merge", str(three), "--out", str(tmp_path / "m")], bqlab_env)
    assert res.returncode == 3, res.stderr
    assert res.stdout.startswith("scenario ")
    assert (tmp_path / "m" / "results.ktap").is_file()
    res = cli(["report", "merge", str(tmp_path / "m" / "nothing-here")], bqlab_env)
    assert res.returncode == 2
    assert "no such directory" in res.stderr


def test_cli_merge_default_out_is_a_new_artifact_dir(three: Path,
                                                     bqlab_env: dict[str, str]) -> None:
    res = cli(["report", "merge", str(three)], bqlab_env)
    assert res.returncode == 3, res.stderr
    made = sorted(Path(bqlab_env["BQLAB_ARTIFACTS"]).glob("*-merged"))
    assert len(made) == 1 and (made[0] / "junit.xml").is_file()
