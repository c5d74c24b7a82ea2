"""--shard K/N: a deterministic partition of the scenarios; bad K/N is exit 2 before any
build; an empty shard exits 0 and leaves a shard.json for the merge."""

import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from bqlab.errors import BadInput, ExitCode
from bqlab.run import shard

BQLAB = [sys.executable, "-m", "bqlab.cli"]
NAMES = ["xdp-cycles", "smoke", "rx-stall", "teardown", "rx-stall-memhog", "teardown-leak",
         "rx-stall-buggy"]


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([*BQLAB, *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.mark.parametrize("n", range(1, 10))
def test_shards_partition_the_scenarios(n: int) -> None:
    parts = [shard.Shard(k, n).select(NAMES) for k in range(1, n + 1)]
    assert Counter(name for p in parts for name in p) == Counter(NAMES)  # all, each once
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1  # round robin keeps them even
    if n > len(NAMES):
        assert sizes.count(0) == n - len(NAMES)


def test_split_does_not_depend_on_the_command_line_order() -> None:
    shuffled = NAMES[:]
    random.Random(7).shuffle(shuffled)
    assert shuffled != NAMES
    for k in (1, 2, 3):
        assert shard.Shard(k, 3).select(shuffled) == shard.Shard(k, 3).select(NAMES)


def test_the_documented_rule_sorted_index_mod_n() -> None:
    # Sorted: rx-stall, rx-stall-buggy, rx-stall-memhog, smoke, teardown, teardown-leak,
    # xdp-cycles; shard 2/3 takes sorted indexes 1 and 4.
    assert shard.Shard(2, 3).select(NAMES) == ["rx-stall-buggy", "teardown"]


def test_repeated_names_are_kept() -> None:
    picked = [shard.Shard(k, 2).select(["smoke", "smoke", "a"]) for k in (1, 2)]
    assert sorted(picked[0] + picked[1]) == ["a", "smoke", "smoke"]


@pytest.mark.parametrize("text,k,n", [("1/1", 1, 1), ("3/4", 3, 4), (" 2 / 5 ", 2, 5)])
def test_parse(text: str, k: int, n: int) -> None:
    assert shard.parse(text) == shard.Shard(k, n)
    assert str(shard.Shard(k, n)) == f"{k}/{n}"


@pytest.mark.parametrize("text,why", [
    ("0/2", "K must be between 1 and N"), ("3/2", "K must be between 1 and N"),
    ("1/0", "N must be at least 1"), ("x", "expected K/N"), ("", "expected K/N"),
    ("1/2/3", "expected K/N"), ("-1/2", "expected K/N"), ("1.5/2", "expected K/N"),
])
def test_parse_rejects(text: str, why: str) -> None:
    with pytest.raises(BadInput, match=why) as e:
        shard.parse(text)
    assert e.value.exit_code == ExitCode.BAD_INPUT


@pytest.mark.parametrize("value", ["0/2", "3/2", "x"])
def test_bad_shard_exits_2_before_anything_is_built(value: str, tmp_path: Path,
                                                    bqlab_env: dict[str, str]) -> None:
    bqlab_env["BQLAB_CACHE"] = str(tmp_path / "cache")
    res = run(["run", "smoke", "rx-stall", "--shard", value], bqlab_env)
    assert res.returncode == 2, res.stderr
    assert f"--shard {value}:" in res.stderr
    assert not (tmp_path / "cache").exists()
    assert not (tmp_path / "artifacts").exists()


def test_bad_label_exits_2(bqlab_env: dict[str, str]) -> None:
    res = run(["run", "smoke", "--label", "a b"], bqlab_env)
    assert res.returncode == 2
    assert "--label 'a b'" in res.stderr


def test_empty_shard_exits_0_and_leaves_a_manifest(tmp_path: Path,
                                                   bqlab_env: dict[str, str]) -> None:
    bqlab_env["BQLAB_CACHE"] = str(tmp_path / "cache")
    res = run(["run", "smoke", "--shard", "2/3", "--label", "e1000e"], bqlab_env)
    assert res.returncode == 0, res.stderr
    assert "shard 2/3: empty" in res.stdout
    assert not (tmp_path / "cache").exists()  # nothing built for nothing to run
    manifests = [p for p in (tmp_path / "artifacts").glob("*/shard.json")
                 if not p.parent.is_symlink()]  # not artifacts/latest
    assert len(manifests) == 1
    m = json.loads(manifests[0].read_text())
    assert m["schema"] == shard.SCHEMA
    assert (m["shard"], m["of"], m["label"], m["empty"]) == (2, 3, "e1000e", True)
    assert m["selected"] == ["smoke"] and m["runs"] == []


def test_empty_shard_in_ktap_format_prints_an_empty_plan(bqlab_env: dict[str, str]) -> None:
    res = run(["run", "smoke", "--shard", "2/2", "--format", "ktap"], bqlab_env)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "KTAP version 1\n1..0\n"
    assert "shard 2/2: empty" in res.stderr


def test_manifest_owes_the_labelled_runs_of_its_shard(tmp_path: Path) -> None:
    where = shard.write_manifest(shard.Shard(1, 2), NAMES, "bqnic-default", root=tmp_path)
    m = json.loads((where / shard.MANIFEST).read_text())
    assert m["scenarios"] == shard.Shard(1, 2).select(NAMES)
    assert m["runs"] == [f"{n}@bqnic-default" for n in m["scenarios"]]
    # The merge works out what a shard that never reported owed, from any other shard.
    assert shard.expected_runs(m, 1) == m["runs"]
    assert set(shard.expected_runs(m, 2)) == \
        {f"{n}@bqnic-default" for n in NAMES} - set(m["runs"])
