"""bqlab bisect without VMs: how a step is judged, what git bisect's answer means, and
the scratch worktree that keeps the user's checkout untouched."""

import subprocess
from pathlib import Path

import pytest
from bqlab.errors import BadInput
from bqlab.run import bisect


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c",
                           "user.email=t@t", *args], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "repo"
    r.mkdir()
    git(r, "init", "-q")
    for i in range(5):
        (r / "f").write_text(f"{i}\n")
        git(r, "add", "f")
        git(r, "commit", "-q", "-m", f"commit {i}")
    return r


def test_a_step_is_bad_on_any_failed_run_and_stops_on_a_host_error() -> None:
    assert bisect.judge([{"exit_code": 0}] * 3) == "good"
    assert bisect.judge([{"exit_code": 0}, {"exit_code": 1}]) == "bad"
    assert bisect.judge([{"exit_code": 0}, {"exit_code": 3}]) == "error"


def test_git_bisect_answers() -> None:
    sha = "a" * 40
    assert bisect.outcome_of(f"{sha} is the first bad commit\ncommit {sha}\n") == sha
    assert bisect.outcome_of("There are only 'skip'ped commits left to test.\n"
                             "The first bad commit could be any of:") == "skipped"
    assert bisect.outcome_of("Bisecting: 1 revision left to test after this") is None


def test_bad_input_names_what_is_wrong(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="names no commit"):
        bisect.resolve_commit(repo, "no-such-rev")
    with pytest.raises(BadInput, match="not a git repository"):
        bisect.check_repo(tmp_path)


def test_the_worktree_leaves_the_users_checkout_alone(repo: Path, tmp_path: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    first = git(repo, "rev-list", "--max-parents=0", "HEAD")
    (repo / "f").write_text("uncommitted\n")
    with bisect.Worktree(repo, tmp_path / "wt") as wt:
        out = bisect.git(wt.path, "bisect", "start", head, first, "--")
        assert bisect.outcome_of(out) is None
        assert wt.head()[1] == "commit 2"
        bisect.git(wt.path, "bisect", "bad")
    assert not (tmp_path / "wt").exists()
    assert git(repo, "rev-parse", "HEAD") == head
    assert (repo / "f").read_text() == "uncommitted\n"
    assert git(repo, "worktree", "list").count("\n") == 0  # only the user's own
    assert "bisect" not in git(repo, "status")


def test_bisect_bad_input_exits_2_before_building_anything(repo: Path, capsys) -> None:
    from bqlab import cli

    head = git(repo, "rev-parse", "HEAD")
    # neither history, or both
    assert cli.main(["bisect", head, head, "rx-stall"]) == 2
    assert "--kernel-tree DIR" in capsys.readouterr().err
    # a driver path with no driver there
    assert cli.main(["bisect", "HEAD~2", "HEAD", "rx-stall", "--driver-tree", str(repo)]) == 2
    assert "no bqnic_main.c there" in capsys.readouterr().err
    assert cli.main(["bisect", "nope", "HEAD", "rx-stall", "--driver-tree", str(repo)]) == 2
    assert "names no commit" in capsys.readouterr().err
    assert git(repo, "worktree", "list").count("\n") == 0
