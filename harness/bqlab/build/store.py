"""The artifact cache: one directory per (kind, key), published atomically.

An artifact is built into `<key>.partial` and renamed to `<key>` only when complete, so a
crashed build never looks finished. A lock file serialises concurrent builders.
"""

import fcntl
import json
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..paths import cache_root
from ..progress import fmt_duration, say

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Artifact:
    kind: str
    key: str

    @property
    def path(self) -> Path:
        return cache_root() / self.kind / self.key

    @property
    def partial(self) -> Path:
        return cache_root() / self.kind / f"{self.key}.partial"

    def exists(self) -> bool:
        return (self.path / MANIFEST).is_file()

    def manifest(self) -> dict[str, Any]:
        return json.loads((self.path / MANIFEST).read_text())


@contextmanager
def _locked(art: Artifact) -> Iterator[None]:
    lock_path = cache_root() / art.kind / f".{art.key}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure(
    art: Artifact,
    describe: str,
    inputs: Mapping[str, Any],
    build: Callable[[Path], None],
    force: bool = False,
) -> Path:
    """Return art.path, building it with build(partial_dir) first if needed."""
    with _locked(art):
        if art.exists() and not force:
            say(f"{describe}: cached ({art.path})")
            return art.path
        if art.partial.exists():
            shutil.rmtree(art.partial)
        art.partial.mkdir(parents=True)
        start = time.monotonic()
        say(f"{describe}: building (key {art.key})")
        build(art.partial)
        elapsed = time.monotonic() - start
        manifest = {"kind": art.kind, "key": art.key, "inputs": inputs,
                    "built_at": time.time(), "build_seconds": round(elapsed, 1)}
        (art.partial / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
        if art.path.exists():
            shutil.rmtree(art.path)
        art.partial.rename(art.path)
        say(f"{describe}: built in {fmt_duration(elapsed)} ({art.path})")
        return art.path
