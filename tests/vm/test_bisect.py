"""bqlab bisect on a synthetic history of the bqnic driver: five commits, the third of
which turns the refill fallback off (the qlge bug back); rx-stall must name it."""

import json
import shutil
import subprocess
from pathlib import Path

from .conftest import run_bqlab

DRIVER = Path(__file__).parents[2] / "guest-kernel" / "bqnic"


def _commit(repo: Path, message: str) -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), "-c", "user.name=bqlab", "-c",
                               "user.email=bqlab@localhost", *args], check=True,
                              capture_output=True, text=True).stdout.strip()

    git("add", "-A")
    git("commit", "-q", "-m", message)
    return git("rev-parse", "HEAD")


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_bisect_names_the_commit_that_brought_the_stall_back(built, bqlab_env: dict[str, str],
                                                             tmp_path: Path) -> None:
    repo = tmp_path / "driver-history"
    shutil.copytree(DRIVER, repo / "bqnic")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    main = repo / "bqnic" / "bqnic_main.c"
    commits = [_commit(repo, "bqnic: import")]
    _edit(main, "Rx buffers are whole pages", "Rx buffers are full pages")
    commits.append(_commit(repo, "bqnic: reword the header"))
    _edit(main, "static bool refill_fallback = true;", "static bool refill_fallback;")
    commits.append(_commit(repo, "bqnic: refill from NAPI only"))
    _edit(main, "Post buffers until the queue is full", "Post buffers until it is full")
    commits.append(_commit(repo, "bqnic: reword a comment"))
    _edit(main, "Like qlge, refill where", "As in qlge, refill where")
    commits.append(_commit(repo, "bqnic: reword another comment"))

    res = run_bqlab(["bisect", commits[0], commits[-1], "rx-stall", "--driver-tree",
                     str(repo), "--driver-path", "bqnic", "--repeat", "1"], bqlab_env,
                    timeout=1800)
    [path] = (tmp_path / "artifacts").glob("*-bisect/report.json")
    report = json.loads(path.read_text())
    assert (res.returncode, report["first_bad"]) == (0, commits[2]), res.stdout + res.stderr
    assert f"first bad commit: {commits[2][:12]} bqnic: refill from NAPI only" in res.stdout
    assert {s["mark"] for s in report["steps"]} <= {"good", "bad"}
    # the user's checkout is where it was, with no bisect and no worktree left
    assert subprocess.run(["git", "-C", str(repo), "worktree", "list"], check=True,
                          capture_output=True, text=True).stdout.count("\n") == 1
