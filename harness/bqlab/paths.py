"""Where bqlab keeps its sources, caches and artifacts."""

import os
from pathlib import Path


def repo_root() -> Path:
    """The bqlab checkout (the package is installed editable from harness/)."""
    env = os.environ.get("BQLAB_ROOT")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parents[2]


def cache_root() -> Path:
    """~/.cache/bqlab, honouring XDG_CACHE_HOME and BQLAB_CACHE."""
    env = os.environ.get("BQLAB_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "bqlab"


def downloads_dir() -> Path:
    return cache_root() / "downloads"


def artifacts_root() -> Path:
    """Run artifacts go under ./artifacts unless BQLAB_ARTIFACTS says otherwise."""
    env = os.environ.get("BQLAB_ARTIFACTS")
    return Path(env) if env else Path.cwd() / "artifacts"
