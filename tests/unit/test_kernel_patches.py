"""User patches that touch the bqnic driver: they must reach the built driver.

The build re-copies guest-kernel/bqnic into the tree before each make (so driver edits are
incremental); that copy used to undo a --kernel-patch's driver hunks, so a patched driver
was judged while the unpatched one ran."""

import difflib
from pathlib import Path

from bqlab.build import kernel

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
        kernel._install_driver(src, [patch], tmp_path / "build.log")
        assert MARK in (src / DRIVER).read_text()
    kernel._install_driver(src, [], tmp_path / "build.log")
    assert MARK not in (src / DRIVER).read_text()
