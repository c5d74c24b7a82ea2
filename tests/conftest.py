"""Shared fixtures. VM tests are marked `vm` (select with -m vm, skip with -m 'not vm')."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def bqlab_env(tmp_path: Path) -> dict[str, str]:
    """Environment for running the CLI with artifacts in a private directory."""
    env = dict(os.environ)
    env["BQLAB_ARTIFACTS"] = str(tmp_path / "artifacts")
    return env
