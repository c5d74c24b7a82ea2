"""The device sources are clean for the QEMU tree's own scripts/checkpatch.pl."""

import subprocess
from pathlib import Path

import pytest
from bqlab.build import qemu

SOURCES = sorted((Path(__file__).resolve().parents[2] / "qemu-device/hw/net").glob("*.[ch]"))


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_checkpatch_clean(qemu_binary: Path, source: Path) -> None:
    tree = qemu.source_tree()
    res = subprocess.run(["perl", "scripts/checkpatch.pl", "--no-tree", "-f", str(source)],
                         cwd=tree, capture_output=True, text=True, check=False)
    assert "total: 0 errors, 0 warnings" in res.stdout, res.stdout
