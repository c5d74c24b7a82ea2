"""The artifact directory every run leaves behind."""

import json
import os
import time
from pathlib import Path
from typing import Any

from ..paths import artifacts_root


def new_run_dir(label: str, root: Path | None = None) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    base = (root or artifacts_root()) / f"{stamp}-{label}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}.{n}")
    path.mkdir(parents=True)
    latest = path.parent / "latest"
    try:
        if latest.is_symlink() or latest.exists():
            latest.unlink()
        os.symlink(path.name, latest)
    except OSError:
        pass  # "latest" is a convenience only
    return path


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)
