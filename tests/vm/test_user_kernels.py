"""The kernels users bring: a real kernel git tree with the kernel's own .gitignore (Debian's
linux-source-7.2 committed to git, as a user's tree would be), and a kernel they already
built (--kernel-build). The tree failed to build before its copy followed git's rules
(`No rule to make target 'kernel/time/timeconst.bc'`), and 7.x ran no scenario before
bqlab found ynl where 6.14+ keeps it (bqlab-watch: No module named 'lib').

The tree is made once per source version under the cache, with fixed commit dates, so
its HEAD and with it the kernel's key are the same every time: only the first run
builds it (~6 min here)."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from bqlab.build import sources
from bqlab.paths import cache_root

from .conftest import only_report, run_bqlab

KERNEL = sources.debian_kernel("debian:7.2")
GIT_ENV = {"GIT_AUTHOR_NAME": "bqlab", "GIT_AUTHOR_EMAIL": "bqlab@localhost",
           "GIT_COMMITTER_NAME": "bqlab", "GIT_COMMITTER_EMAIL": "bqlab@localhost",
           "GIT_AUTHOR_DATE": "2026-12-01T00:00:00Z",
           "GIT_COMMITTER_DATE": "2026-12-01T00:00:00Z"}


def upstream_gitignore(text: str) -> str:
    """Debian's linux-source .gitignore ends with its packaging block (`/*`, `!/debian/`),
    which an upstream tree does not have; the rest, `*.bc` and its
    `!kernel/time/timeconst.bc` included, is the kernel's own."""
    cut = text.find("#\n# Debian packaging")
    return text if cut < 0 else text[:cut].rstrip("\n") + "\n"


def git(tree: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(tree), *args], check=True, capture_output=True,
                          text=True, env={**os.environ, **GIT_ENV}).stdout.strip()


@pytest.fixture(scope="module")
def kernel_git_tree() -> Path:
    deb = sources.linux_source_deb(KERNEL)
    version = sources.linux_source_version(deb)
    tree = cache_root() / "test-trees" / f"{KERNEL.package}-{version}-git"
    if (tree / ".git" / "bqlab-done").exists():
        return tree
    shutil.rmtree(tree, ignore_errors=True)
    tree.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["sh", "-c", f"dpkg-deb --fsys-tarfile '{deb}' | tar -xO "
                    f"./usr/src/{KERNEL.topdir}.tar.xz | tar -xJ -C '{tree.parent}'"],
                   check=True)
    (tree.parent / KERNEL.topdir).rename(tree)
    gitignore = tree / ".gitignore"
    gitignore.write_text(upstream_gitignore(gitignore.read_text()))
    git(tree, "init", "-q", "-b", "master")
    git(tree, "add", "-A")
    git(tree, "commit", "-q", "-m", f"Linux {version} (Debian's {KERNEL.package})")
    (tree / ".git" / "bqlab-done").write_text(git(tree, "rev-parse", "HEAD") + "\n")
    return tree


def test_the_tree_has_the_kernels_own_gitignore_rules(kernel_git_tree: Path) -> None:
    # the case tar's --exclude-vcs-ignores got wrong: ignored by *.bc, re-included by !
    assert git(kernel_git_tree, "ls-files", "kernel/time/timeconst.bc") == \
        "kernel/time/timeconst.bc"
    assert "/*" not in (kernel_git_tree / ".gitignore").read_text().splitlines()


def test_a_real_git_tree_builds_and_runs(kernel_git_tree: Path, built,
                                         bqlab_env: dict[str, str]) -> None:
    res = run_bqlab(["run", "rx-stall", "teardown", "--kernel-tree", str(kernel_git_tree)],
                    bqlab_env, timeout=1800)
    artifacts = Path(bqlab_env["BQLAB_ARTIFACTS"])
    reports = [json.loads(p.read_text()) for p in artifacts.glob("*/report.json")
               if p.parent.name != "latest" and not p.parent.name.endswith("-index")]
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert sorted(r["scenario"] for r in reports) == ["rx-stall", "teardown"]
    for r in reports:
        assert r["kernel_release"].startswith("7.2"), r["kernel_release"]
        assert r["kernel_lost"] == []  # every witness there: ynl found, both families
        assert {v["name"]: v["verdict"] for v in r["verdicts"]}.get(
            "rx-stall" if r["scenario"] == "rx-stall" else "teardown") == "PASS"
    # the user's tree was only read
    assert git(kernel_git_tree, "status", "--porcelain") == ""


def test_a_kernel_the_user_built_runs_without_a_rebuild(kernel_git_tree: Path, built,
                                                        bqlab_env: dict[str, str],
                                                        tmp_path: Path) -> None:
    """The tree bqlab built above is a kernel built in place by make, as a user's is."""
    paths = run_bqlab(["paths", "--json", "--kernel-tree", str(kernel_git_tree)], bqlab_env)
    assert paths.returncode == 0, paths.stderr
    build_dir = Path(json.loads(paths.stdout)["kernel_tree"])
    assert (build_dir / "arch/x86/boot/bzImage").is_file()
    stamp = {p: p.stat().st_mtime_ns for p in (build_dir / "arch/x86/boot/bzImage",
                                               build_dir / ".config", build_dir / "vmlinux")}
    env = dict(bqlab_env, BQLAB_ARTIFACTS=str(tmp_path / "artifacts-build"))
    res = run_bqlab(["run", "smoke", "--kernel-build", str(build_dir)], env, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    report = only_report(tmp_path / "artifacts-build")
    assert report["kernel_release"].startswith("7.2")
    out = res.stdout + res.stderr
    assert "building the kernel" not in out and "make olddefconfig" not in out
    assert "bqnic built against it, nothing else" in out or "guest kernel: cached" in out
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp  # never written


def test_a_build_directory_that_is_not_built_is_bad_input(bqlab_env: dict[str, str],
                                                          tmp_path: Path) -> None:
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / ".config").write_text("CONFIG_64BIT=y\n")
    res = run_bqlab(["run", "smoke", "--kernel-build", str(tmp_path / "half")], bqlab_env)
    assert res.returncode == 2, res.stderr
    assert "missing arch/x86/boot/bzImage (make bzImage)" in res.stderr
