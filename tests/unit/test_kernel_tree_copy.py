"""--kernel-tree copies what git would commit, by git's own rules: the kernel's .gitignore
ignores *.bc and re-includes kernel/time/timeconst.bc, which tar's --exclude-vcs-ignores
dropped (every upstream tree failed to build: no rule to make timeconst.bc)."""

import subprocess
from pathlib import Path

import pytest
from bqlab.build import kernel

KERNEL_GITIGNORE = """\
*.o
*.bc
.config
/vmlinux
# bc language scripts (not LLVM bitcode)
!kernel/time/timeconst.bc
"""


def git(tree: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(tree), *args], check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
                        "HOME": str(tree), "PATH": "/usr/bin:/bin"})


def make_tree(root: Path) -> Path:
    tree = root / "linux"
    files = {".gitignore": KERNEL_GITIGNORE, "Makefile": "all:\n",
             "kernel/time/timeconst.bc": "scale=0\n", "kernel/time/time.c": "int t;\n",
             "kernel/time/time.o": "built", "lib/x.bc": "bitcode", ".config": "CONFIG_X=y\n",
             "vmlinux": "built", "arch/x86/kernel/vmlinux.lds.S": "SECTIONS {}\n"}
    for rel, text in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(text)
    git(tree, "init", "-q")
    git(tree, "add", "-A")
    git(tree, "commit", "-q", "-m", "tree")
    return tree


def copied(src: Path, dest: Path) -> set[str]:
    dest.mkdir()
    kernel.copy_user_tree(src, dest, dest.parent / "copy.log")
    return {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()}


def test_git_tree_keeps_what_a_negation_reincludes(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    (tree / "new_untracked.c").write_text("int n;\n")  # not ignored: goes in
    (tree / "scratch.o").write_text("built")  # ignored: stays out
    got = copied(tree, tmp_path / "copy")
    assert got == {".gitignore", "Makefile", "kernel/time/timeconst.bc",
                   "kernel/time/time.c", "arch/x86/kernel/vmlinux.lds.S", "new_untracked.c"}


def test_tracked_file_deleted_in_the_work_tree_is_not_copied(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    (tree / "kernel/time/time.c").unlink()
    assert "kernel/time/time.c" not in copied(tree, tmp_path / "copy")


def test_the_old_tar_rule_dropped_timeconst(tmp_path: Path) -> None:
    """The regression this replaces: GNU tar does not honour `!` in .gitignore."""
    tree = make_tree(tmp_path)
    out = tmp_path / "tar"
    out.mkdir()
    subprocess.run(["sh", "-c", f"tar -C '{tree}' --exclude-vcs --exclude-vcs-ignores -cf - . "
                    f"| tar -C '{out}' -xf -"], check=True)
    assert not (out / "kernel/time/timeconst.bc").exists()


def test_tree_without_git_loses_its_build_products(tmp_path: Path) -> None:
    tree = tmp_path / "plain"
    for rel, text in {"Makefile": "mrproper:\n\trm -f .config vmlinux\n",
                      "kernel/time/timeconst.bc": "scale=0\n", "drivers/a.o": "built",
                      "drivers/.a.o.cmd": "cmd", "drivers/a.c": "int a;\n",
                      "arch/x86/kernel/vmlinux.lds.S": "x", ".config": "C=y\n",
                      "vmlinux": "built"}.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(text)
    got = copied(tree, tmp_path / "copy")
    assert got == {"Makefile", "kernel/time/timeconst.bc", "drivers/a.c",
                   "arch/x86/kernel/vmlinux.lds.S"}


@pytest.mark.parametrize("name", ["x.bc", "kernel/time/timeconst.bc"])
def test_git_files_is_gits_answer(tmp_path: Path, name: str) -> None:
    tree = make_tree(tmp_path)
    res = subprocess.run(["git", "-C", str(tree), "check-ignore", "-q", name], check=False)
    assert (name in (kernel.git_files(tree) or [])) == (res.returncode == 1 and
                                                        (tree / name).exists())
