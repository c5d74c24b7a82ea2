"""Fetching Debian sources into the download cache."""

import subprocess
from pathlib import Path

from ..errors import InfraError
from ..hostdeps import apt_update, ensure_backports_sources
from ..paths import downloads_dir
from ..progress import run_logged

QEMU_SOURCE = "qemu/bookworm-backports"
QEMU_TARBALL = "qemu_10.0.2+ds.orig.tar.xz"
QEMU_TOPDIR = "qemu-10.0.2"
LINUX_SOURCE_PACKAGE = "linux-source-6.12"


def qemu_tarball() -> Path:
    """Debian's QEMU 10.0.2 upstream tarball (apt-get source, tarball only)."""
    dest = downloads_dir() / QEMU_TARBALL
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    ensure_backports_sources()
    apt_update()
    run_logged(f"fetching {QEMU_SOURCE} source",
               ["apt-get", "source", "--download-only", "--tar-only", QEMU_SOURCE],
               dest.parent / "fetch.log", cwd=dest.parent)
    if not dest.is_file():
        raise InfraError(f"apt-get source did not produce {dest}; see {dest.parent}/fetch.log")
    return dest


def linux_source_deb() -> Path:
    """Debian's linux-source-6.12 .deb (newest in the archive at first fetch)."""
    found = sorted(downloads_dir().glob(f"{LINUX_SOURCE_PACKAGE}_*_all.deb"))
    if found:
        return found[-1]
    downloads_dir().mkdir(parents=True, exist_ok=True)
    apt_update()
    run_logged(f"fetching {LINUX_SOURCE_PACKAGE}",
               ["apt-get", "download", LINUX_SOURCE_PACKAGE],
               downloads_dir() / "fetch.log", cwd=downloads_dir())
    found = sorted(downloads_dir().glob(f"{LINUX_SOURCE_PACKAGE}_*_all.deb"))
    if not found:
        raise InfraError(f"apt-get download {LINUX_SOURCE_PACKAGE} produced no .deb")
    return found[-1]


def linux_source_version(deb: Path) -> str:
    res = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"],
                         capture_output=True, text=True, check=True)
    return res.stdout.strip()
