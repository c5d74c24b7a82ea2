"""Shared fixtures. VM tests are marked `vm` (select with -m vm, skip with -m 'not vm')."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
# Tests under these directories get the marker of the same name (-m vm, -m device,
# -m browser, -m compile).
MARKED_DIRS = ("vm", "device", "browser", "compile")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        top = Path(item.fspath).resolve().relative_to(TESTS).parts[0]
        if top in MARKED_DIRS:
            item.add_marker(getattr(pytest.mark, top))


@pytest.fixture
def bqlab_env(tmp_path: Path) -> dict[str, str]:
    """Environment for running the CLI with artifacts in a private directory."""
    env = dict(os.environ)
    env["BQLAB_ARTIFACTS"] = str(tmp_path / "artifacts")
    return env
