"""Which patches reach the kernel: a user patch's bqnic driver hunks, and the series' fixes.

The build re-copies guest-kernel/bqnic into the tree before each make (so driver edits are
incremental); that copy used to undo a --kernel-patch's driver hunks, so a patched driver
was judged while the unpatched one ran."""

import difflib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from bqlab.build import kernel
from bqlab.errors import BadInput

DRIVER = kernel.DRIVER_IN_TREE + "/bqnic_main.c"
MARK = "/* bqlab test: this line comes from a user patch */\n"


def driver_patch() -> str:
    old = (kernel.driver_dir() / "bqnic_main.c").read_text().splitlines(keepends=True)
    new = old[:10] + [MARK] + old[10:]
    return "".join(difflib.unified_diff(old, new, f"a/{DRIVER}", f"b/{DRIVER}"))


def other_patch() -> str:
    return ("diff --git a/net/core/dev.c b/net/core/dev.c\nindex 1..2 100644\n"
            "--- a/net/core/dev.c\n+++ b/net/core/dev.c\n@@ -1,1 +1,2 @@\n x\n+y\n")


def test_a_patch_splits_into_its_driver_and_other_parts() -> None:
    text = "From: someone\nSubject: fix\n\n" + other_patch() + driver_patch()
    driver = kernel.patch_sections(text, driver=True)
    rest = kernel.patch_sections(text, driver=False)
    assert MARK.strip() in driver and "net/core/dev.c" not in driver
    assert rest.startswith("diff --git a/net/core/dev.c") and DRIVER not in rest


def test_driver_patch_survives_every_reinstall(tmp_path: Path) -> None:
    patch = tmp_path / "fix.patch"
    patch.write_text(other_patch() + driver_patch())
    src = tmp_path / "linux"
    for _ in range(2):  # configure, then the build's own re-install
        kernel.install_driver(src, [patch], tmp_path / "build.log", kernel.driver_dir())
        assert MARK in (src / DRIVER).read_text()
    kernel.install_driver(src, [], tmp_path / "build.log", kernel.driver_dir())
    assert MARK not in (src / DRIVER).read_text()


def test_debian_only_fixes_skip_a_users_tree(tmp_path: Path) -> None:
    """Fixes for Debian's source are not forced on a tree the user brings: its bugs are
    what bqlab is there to report."""
    (tmp_path / "Makefile").write_text("")
    ours = [p.name for p, _ in kernel.series_entries()]
    debian = kernel.KernelSpec()
    users = kernel.KernelSpec(tree=tmp_path)
    fixes = [p.name for p, only in kernel.series_entries() if only]
    assert fixes, "the series has a debian-source-only fix"
    assert [p.name for p in debian.all_patches()] == ours
    assert [p.name for p in users.all_patches()] == [n for n in ours if n not in fixes]


def test_series_errors_name_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "a.patch").write_text("")
    series = tmp_path / "series"
    series.write_text("# comment\na.patch\na.patch debian-only\n")
    with pytest.raises(BadInput, match=r"series:3: unknown qualifier 'debian-only'"):
        kernel.series_entries(series)
    series.write_text("b.patch\n")
    with pytest.raises(BadInput, match=r"series:1: no file b.patch"):
        kernel.series_entries(series)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                           *args], check=True, capture_output=True, text=True).stdout.strip()


def test_a_commit_builds_on_the_build_of_another(tmp_path: Path, monkeypatch) -> None:
    """bisect steps: the tree of a new commit starts as a copy of a built one with the
    commits' diff applied, so make rebuilds what changed (unchanged files keep their
    mtime, build products stay)."""
    monkeypatch.setenv("BQLAB_CACHE", str(tmp_path / "cache"))
    user = tmp_path / "linux"
    (user / "net").mkdir(parents=True)
    (user / "Makefile").write_text("all:\n")
    (user / "net" / "a.c").write_text("int a;\n")
    (user / "net" / "b.c").write_text("int b;\n")
    _git(user, "init", "-q")
    _git(user, "add", "-A")
    _git(user, "commit", "-q", "-m", "one")
    first = _git(user, "rev-parse", "HEAD")
    spec = kernel.KernelSpec(user)
    # the build of the first commit, as _configured_tree leaves it
    built = tmp_path / "cache" / "kernel-tree" / "first"
    src = built / "linux"
    shutil.copytree(user, src, ignore=shutil.ignore_patterns(".git"))
    (src / "arch/x86/boot").mkdir(parents=True)
    (src / "arch/x86/boot/bzImage").write_text("kernel")
    (src / "net" / "a.o").write_text("object")
    (built / "src").symlink_to("linux")
    (built / ".configured").write_text("first")
    kernel._note_source(spec, built)
    os.utime(src / "net" / "b.c", (1_000_000, 1_000_000))

    (user / "net" / "a.c").write_text("int a = 2;\n")
    (user / "net" / "c.c").write_text("int c;\n")
    _git(user, "add", "-A")
    _git(user, "commit", "-q", "-m", "two")
    new = tmp_path / "cache" / "kernel-tree" / "second"
    new.mkdir()
    seeded = kernel._seed_from_commit(spec, new, new / "build.log")
    assert seeded is not None, (new / "build.log").read_text()
    assert (seeded / "net" / "a.c").read_text() == "int a = 2;\n"
    assert (seeded / "net" / "c.c").read_text() == "int c;\n"
    assert (seeded / "net" / "a.o").read_text() == "object"
    assert (seeded / "net" / "b.c").stat().st_mtime == 1_000_000
    assert first != _git(user, "rev-parse", "HEAD")
    # uncommitted changes: no shortcut (the copy would not be that commit)
    (user / "net" / "b.c").write_text("int b = 3;\n")
    other = tmp_path / "cache" / "kernel-tree" / "third"
    other.mkdir()
    assert kernel._seed_from_commit(spec, other, other / "build.log") is None



def test_a_worktree_of_the_same_repository_builds_on_its_build(tmp_path: Path,
                                                                monkeypatch) -> None:
    """bisect's scratch worktree: its first step starts from the user's own build of
    another commit of the repository, not from scratch (another repository: never)."""
    monkeypatch.setenv("BQLAB_CACHE", str(tmp_path / "cache"))
    user = tmp_path / "linux"
    (user / "net").mkdir(parents=True)
    (user / "Makefile").write_text("all:\n")
    (user / "net" / "a.c").write_text("int a;\n")
    _git(user, "init", "-q")
    _git(user, "add", "-A")
    _git(user, "commit", "-q", "-m", "one")
    built = tmp_path / "cache" / "kernel-tree" / "first"
    shutil.copytree(user, built / "linux", ignore=shutil.ignore_patterns(".git"))
    (built / "linux" / "arch/x86/boot").mkdir(parents=True)
    (built / "linux" / "arch/x86/boot/bzImage").write_text("kernel")
    (built / "src").symlink_to("linux")
    (built / ".configured").write_text("first")
    kernel._note_source(kernel.KernelSpec(user), built)
    (user / "net" / "a.c").write_text("int a = 2;\n")
    _git(user, "commit", "-q", "-am", "two")
    worktree = tmp_path / "scratch"
    _git(user, "worktree", "add", "-q", "--detach", str(worktree), "HEAD")
    new = tmp_path / "cache" / "kernel-tree" / "second"
    new.mkdir()
    seeded = kernel._seed_from_commit(kernel.KernelSpec(worktree), new, new / "build.log")
    assert seeded is not None and (seeded / "net" / "a.c").read_text() == "int a = 2;\n"
    # a clone is another repository: its builds are not this one's
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(user), str(clone))
    third = tmp_path / "cache" / "kernel-tree" / "third"
    third.mkdir()
    assert kernel._seed_from_commit(kernel.KernelSpec(clone), third,
                                    third / "build.log") is None

def test_only_patches_to_the_driver_build_the_module_alone(tmp_path: Path) -> None:
    """The module is built against the kernel without the patches: right only when the
    patches change nothing else, not even the driver's Kconfig or Makefile."""
    def spec_with(text: str, **kw) -> kernel.KernelSpec:
        patch = tmp_path / f"p{len(list(tmp_path.iterdir()))}.patch"
        patch.write_text(text)
        return kernel.KernelSpec(patches=(patch,), **kw)

    assert kernel.driver_only(spec_with(driver_patch()))
    assert not kernel.driver_only(spec_with(driver_patch() + other_patch()))
    makefile = (f"--- a/{kernel.DRIVER_IN_TREE}/Makefile\n+++ b/{kernel.DRIVER_IN_TREE}"
                "/Makefile\n@@ -1,1 +1,2 @@\n x\n+y\n")
    assert not kernel.driver_only(spec_with(makefile))
    assert not kernel.driver_only(kernel.KernelSpec())  # the base kernel itself
    assert not kernel.driver_only(spec_with(driver_patch(), tree=tmp_path))  # your tree
    # bisect --driver-tree: another driver on the same kernel
    assert kernel.driver_only(kernel.KernelSpec(driver=tmp_path))
    assert kernel.source_tree(spec_with(driver_patch())) == \
        kernel.tree_dir(kernel.KernelSpec()) / "src"
