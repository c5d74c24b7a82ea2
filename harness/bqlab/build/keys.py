"""`bqlab build --keys`: the artifacts' cache keys, computed without building or downloading.

A CI system keys its own cache on these (restore `~/.cache/bqlab` when they match). They
are the keys the builds use (qemu.artifact(), kernel.artifact(spec), image.image_artifact)
with one exception handled here: Debian's linux-source .deb enters the kernel key by its
version, and sources.linux_source_deb() downloads the .deb (~150 MB) when it is not in the
download cache yet, which is the case in a CI job before its cache is restored. Then the
version is apt's candidate, the one `apt-get download` would fetch, so the key is the one
the build will compute after fetching it.
"""

import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import InfraError
from ..paths import downloads_dir
from . import image, kernel, qemu, sources

NAMES = ("qemu", "kernel", "image")


def _cached_deb() -> Path | None:
    found = sorted(downloads_dir().glob(f"{sources.LINUX_SOURCE_PACKAGE}_*_all.deb"))
    return found[-1] if found else None


def candidate_version(package: str = sources.LINUX_SOURCE_PACKAGE) -> str:
    """The version `apt-get download package` would fetch."""
    try:
        res = subprocess.run(["apt-cache", "policy", package], capture_output=True,
                             text=True, check=False)
    except FileNotFoundError as e:
        raise InfraError("apt-cache not found: the kernel key needs Debian's "
                         f"{package} version") from e
    m = re.search(r"^\s*Candidate:\s*(\S+)", res.stdout, re.MULTILINE)
    if res.returncode != 0 or not m or m.group(1) == "(none)":
        raise InfraError(f"apt knows no candidate version of {package}, so its kernel key "
                         "cannot be computed without the .deb: run `apt-get update` first")
    return m.group(1)


@contextmanager
def _linux_source_without_download(spec: kernel.KernelSpec) -> Iterator[None]:
    """Within: kernel.tree_inputs() sees the cached .deb's version, or apt's candidate
    version, and never downloads. (Scoped to this command; the builds are untouched.)"""
    if spec.tree is not None or _cached_deb() is not None:
        yield  # a user tree needs no .deb; a cached one is found without a download
        return
    version = candidate_version()
    saved = sources.linux_source_deb, sources.linux_source_version
    sources.linux_source_deb = lambda: downloads_dir() / (
        f"{sources.LINUX_SOURCE_PACKAGE}_{version}_all.deb")
    sources.linux_source_version = lambda deb: version
    try:
        yield
    finally:
        sources.linux_source_deb, sources.linux_source_version = saved


def artifact_keys(spec: kernel.KernelSpec, what: str = "all") -> dict[str, str]:
    """{artifact name: input key} for `what` (all, qemu, kernel, image)."""
    names = NAMES if what == "all" else (what,)
    keys: dict[str, str] = {}
    if "qemu" in names:
        keys["qemu"] = qemu.artifact().key
    if "kernel" in names or "image" in names:
        with _linux_source_without_download(spec):
            k = kernel.artifact(spec)
        if "kernel" in names:
            keys["kernel"] = k.key
        if "image" in names:
            # The image key takes the kernel artifact's key (its directory's name), not its
            # contents: computable before the kernel is built.
            keys["image"] = image.image_artifact(k.path).key
    return keys
