"""`bqlab bisect GOOD BAD SCENARIO`: which commit made the scenario fail?

Drives `git bisect` in a scratch worktree of the user's repository (in the cache: the
user's checkout, index and bisect state are never touched). The repository is a Linux
tree (--kernel-tree) or one holding the bqnic driver's sources (--driver-tree, with
--driver-path inside it). Each step builds through the cache, so a driver-only step
rebuilds one module; and is judged with --repeat runs, because a stall that shows once
in five runs needs repeats before a commit can be called good:
  good  every run passed
  bad   a run failed its verdicts (a DUT that died included)
  skip  the commit does not build
A run that could not finish on the host side stops the bisect (exit 3): it says nothing
about the commit.
"""

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BadInput, InfraError

SCHEMA = "bqlab.bisect/1"
FIRST_BAD = re.compile(r"^([0-9a-f]{40}) is the first bad commit", re.M)
ONLY_SKIPPED = "only 'skip'ped commits left"


def git(repo: Path, *args: str, check: bool = True) -> str:
    res = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                         check=False)
    if check and res.returncode != 0:
        raise InfraError(f"git {' '.join(args)} in {repo}: {res.stderr.strip()[-300:]}")
    return res.stdout + res.stderr


def resolve_commit(repo: Path, rev: str) -> str:
    res = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet",
                          f"{rev}^{{commit}}"], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise BadInput(f"{repo}: {rev!r} names no commit")
    return res.stdout.strip()


def has_file(repo: Path, commit: str, path: str) -> bool:
    return subprocess.run(["git", "-C", str(repo), "cat-file", "-e", f"{commit}:{path}"],
                          capture_output=True, check=False).returncode == 0


def check_repo(repo: Path) -> Path:
    repo = repo.expanduser().resolve()
    res = subprocess.run(["git", "-C", str(repo), "rev-parse", "--show-toplevel"],
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise BadInput(f"{repo}: not a git repository (bqlab bisect drives git bisect)")
    return Path(res.stdout.strip())


def judge(reports: list[dict[str, Any]]) -> str:
    """good, bad, or error (a host-side failure: nothing to say about the commit)."""
    codes = [int(r["exit_code"]) for r in reports]
    if any(c >= 2 for c in codes):
        return "error"
    return "bad" if any(c == 1 for c in codes) else "good"


@dataclass
class Step:
    commit: str
    subject: str
    mark: str  # good, bad, skip
    outcomes: dict[str, int] = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)
    why: str = ""


class Worktree:
    """A detached worktree of repo in the cache, removed (with its bisect) on exit."""

    def __init__(self, repo: Path, where: Path) -> None:
        self.repo, self.path = repo, where

    def __enter__(self) -> "Worktree":
        if self.path.exists():  # left by a bisect that was killed
            git(self.repo, "worktree", "remove", "--force", str(self.path), check=False)
            shutil.rmtree(self.path, ignore_errors=True)
        git(self.repo, "worktree", "prune")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        git(self.repo, "worktree", "add", "--detach", str(self.path), "HEAD")
        return self

    def __exit__(self, *exc: object) -> None:
        git(self.path, "bisect", "reset", check=False)
        git(self.repo, "worktree", "remove", "--force", str(self.path), check=False)
        shutil.rmtree(self.path, ignore_errors=True)
        git(self.repo, "worktree", "prune", check=False)

    def head(self) -> tuple[str, str]:
        return (git(self.path, "rev-parse", "HEAD").strip(),
                git(self.path, "log", "-1", "--format=%s").strip())


def outcome_of(step_output: str) -> str | None:
    """The first bad commit once git bisect has found it, "skipped" if only commits that
    could not be judged are left, else None."""
    found = FIRST_BAD.search(step_output)
    if found:
        return found.group(1)
    if ONLY_SKIPPED in step_output:
        return "skipped"
    return None


def render(steps: list[Step], result: str, subject: str) -> str:
    lines = [f"{'commit':12}  {'mark':4}  outcomes", "-" * 60]
    for s in steps:
        counts = ", ".join(f"{o} {n}" for o, n in s.outcomes.items()) or s.why
        lines.append(f"{s.commit[:12]}  {s.mark:4}  {counts}  {s.subject[:50]}")
    if result == "skipped":
        lines.append("no single first bad commit: the candidates left could not be built")
    else:
        lines.append(f"first bad commit: {result[:12]} {subject}")
    return "\n".join(lines)
