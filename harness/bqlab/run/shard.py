"""`bqlab run --shard K/N`: a deterministic split of the selected scenarios over N jobs.

The split: sort the selected scenario names (stable, so repeated names keep the command
line's order) and give shard K every name at sorted index i with i % N == K - 1. It
depends on the names only, never on the machine, paths or time, so N CI jobs given the
same command line agree on it, and round robin keeps the shards within one scenario of
each other in size.

Every sharded run leaves a `shard.json` (schema `bqlab.shard/1`) in an artifact directory
of its own, written before anything is built: `bqlab report merge` uses it to tell an
empty shard (nothing to run, exit 0) from a shard whose job died before it reported.
"""

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..errors import BadInput
from .rundir import new_run_dir, write_json

SCHEMA = "bqlab.shard/1"
MANIFEST = "shard.json"
T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    index: int  # K, from 1
    count: int  # N

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def select(self, items: Sequence[T], name: Callable[[T], str] = str) -> list[T]:
        """This shard's items, in sorted-name order."""
        ordered = sorted(items, key=name)
        return [it for i, it in enumerate(ordered) if i % self.count == self.index - 1]


def parse(text: str) -> Shard:
    """`K/N` with 1 <= K <= N; anything else is bad input (exit 2)."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m:
        raise BadInput(f"--shard {text}: expected K/N, e.g. 1/4 (shard K of N, from 1)")
    k, n = int(m.group(1)), int(m.group(2))
    if n < 1:
        raise BadInput(f"--shard {text}: N must be at least 1")
    if not 1 <= k <= n:
        raise BadInput(f"--shard {text}: K must be between 1 and N ({n}); shards count from 1")
    return Shard(k, n)


def check_label(label: str | None) -> str | None:
    """A label becomes part of directory, JUnit and KTAP test names: one plain word."""
    if label is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", label):
        raise BadInput(f"--label {label!r}: expected letters, digits, '.', '_', '+', '-' "
                       "(it becomes part of directory and test names)")
    return label


def labelled(name: str, label: str | None) -> str:
    """The name a run reports under: `--label` keeps variants (NIC, kernel) of one
    scenario apart in a merge."""
    return f"{name}@{label}" if label else name


def write_manifest(shard: Shard, selected: Sequence[str], label: str | None,
                   root: Path | None = None) -> Path:
    """Record what this shard was given and what it takes; returns the directory."""
    run_dir = new_run_dir(labelled(f"shard-{shard.index}of{shard.count}", label), root)
    chosen = shard.select(selected)
    write_json(run_dir / MANIFEST, {
        "schema": SCHEMA, "shard": shard.index, "of": shard.count, "label": label,
        "selected": list(selected), "scenarios": chosen,
        "runs": [labelled(n, label) for n in chosen], "empty": not chosen,
    })
    return run_dir


def expected_runs(manifest: dict[str, Any], index: int) -> list[str]:
    """The run names shard `index` of the manifest's split takes (for a shard that never
    reported, worked out from any other shard of the same split)."""
    chosen = Shard(index, manifest["of"]).select(manifest["selected"])
    return [labelled(n, manifest.get("label")) for n in chosen]
