"""Content keys for build artifacts.

A key is a hash over everything that shapes an artifact: recipe version, parameters, and
the bytes of every input file. Paths enter the key relative to their declared root, so a
fresh clone elsewhere on disk produces the same keys.
"""

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

KEY_LENGTH = 16


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tree_digests(root: Path, patterns: Iterable[str] = ("**/*",)) -> dict[str, str]:
    """Digest of each regular file under root matching patterns, keyed by relative path."""
    out: dict[str, str] = {}
    if not root.exists():
        return out
    for pattern in patterns:
        for p in sorted(root.glob(pattern)):
            if p.is_file() and "__pycache__" not in p.parts:
                out[p.relative_to(root).as_posix()] = file_digest(p)
    return out


def make_key(params: Mapping[str, Any]) -> str:
    """Stable short hash of a JSON-serialisable description of the inputs."""
    blob = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:KEY_LENGTH]


def write_if_changed(path: Path, data: bytes) -> None:
    """Leave mtimes alone when nothing changed, so make/ninja rebuild only what did."""
    if not path.exists() or path.read_bytes() != data:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
