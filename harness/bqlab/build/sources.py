"""Fetching Debian sources into the download cache."""

import hashlib
import re
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import InfraError
from ..hostdeps import apt_update, ensure_backports_sources
from ..paths import downloads_dir
from ..progress import run_logged, say

QEMU_SOURCE = "qemu/bookworm-backports"
QEMU_TARBALL = "qemu_10.0.2+ds.orig.tar.xz"
QEMU_TOPDIR = "qemu-10.0.2"
LINUX_SOURCE_PACKAGE = "linux-source-6.12"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# A current ethtool for the guest: bookworm's 6.1 has no --json for -g/-c/-x, which the
# kernel's drivers/net selftests parse, and no backport exists. trixie's binary runs on
# bookworm (it needs libc6 >= 2.34 and libmnl0, both there). Pinned by SHA-256.
ETHTOOL_DEB = ("pool/main/e/ethtool/ethtool_6.14.2-1_amd64.deb",
               "5c592ac6e65c3863c5ba9c9b8380f913a35f39803aa89ccc59c11c5c953a46ef")


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


def cached_linux_source_deb() -> Path | None:
    found = sorted(downloads_dir().glob(f"{LINUX_SOURCE_PACKAGE}_*_all.deb"))
    return found[-1] if found else None


def linux_source_deb() -> Path:
    """Debian's linux-source-6.12 .deb (newest in the archive at first fetch)."""
    cached = cached_linux_source_deb()
    if cached is not None:
        return cached
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


def candidate_version(package: str = LINUX_SOURCE_PACKAGE) -> str:
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


def linux_source_key_version(fetch: bool = True) -> str:
    """The linux-source version that enters the kernel key: the downloaded .deb's; with
    none yet, fetch it, or (fetch=False, for `bqlab build --keys` and doctor) apt's
    candidate, the version a fetch would bring."""
    cached = cached_linux_source_deb()
    if cached is not None:
        return linux_source_version(cached)
    if fetch:
        return linux_source_version(linux_source_deb())
    return candidate_version()


def pinned_deb(pool_path: str, sha256: str) -> Path:
    """A Debian binary package fetched from the mirror's pool once, checked by its SHA-256.

    Pinned, not resolved: the image's key is the package's hash. When the suite moves on
    and the mirror drops that version, the error says so and where to update the pin."""
    dest = downloads_dir() / f"{sha256[:16]}-{pool_path.rsplit('/', 1)[-1]}"
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    url = f"{DEBIAN_MIRROR}/{pool_path}"
    say(f"fetching {url}")
    try:
        with urllib.request.urlopen(url, timeout=120) as resp:
            data = resp.read()
    except urllib.error.HTTPError as e:
        raise InfraError(f"{url}: HTTP {e.code}. If the suite has a newer version now, "
                         "update the pin (path and SHA-256 from the suite's Packages "
                         "index) in harness/bqlab/build/sources.py") from e
    except OSError as e:
        raise InfraError(f"{url}: {e} (is {DEBIAN_MIRROR} reachable?)") from e
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise InfraError(f"{url}: SHA-256 {got}, expected {sha256}")
    tmp = dest.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(dest)
    return dest
