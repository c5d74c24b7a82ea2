"""The driver is clean for the kernel tree's own scripts/checkpatch.pl --strict."""

import subprocess
from pathlib import Path

import pytest

SOURCES = sorted((Path(__file__).resolve().parents[2] / "guest-kernel/bqnic").glob("*.[ch]"))


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_checkpatch_strict_clean(built, source: Path) -> None:
    res = subprocess.run(["perl", "scripts/checkpatch.pl", "--strict", "--no-tree", "-f",
                          str(source)], cwd=built.kernel_tree, capture_output=True, text=True,
                         check=False)
    assert "total: 0 errors, 0 warnings, 0 checks" in res.stdout, res.stdout
