"""Fetching Debian sources into the download cache."""

import hashlib
import re
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInput, InfraError
from ..hostdeps import apt_update, ensure_backports_sources
from ..paths import cache_root, downloads_dir
from ..progress import run_logged, say

QEMU_SOURCE = "qemu/bookworm-backports"
QEMU_TARBALL = "qemu_10.0.2+ds.orig.tar.xz"
QEMU_TOPDIR = "qemu-10.0.2"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
ARCHIVE_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
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


@dataclass(frozen=True)
class DebianKernel:
    """One of Debian's linux-source-X.Y packages. suite None: the host's own apt sources
    (bookworm and bookworm-security); otherwise a suite fetched through bqlab's private
    apt configuration under the cache, which never touches the host's."""

    name: str
    suite: str | None
    no_bqnic: str = ""  # why the bqnic driver cannot be built for it, if it cannot

    @property
    def package(self) -> str:
        return f"linux-source-{self.name}"

    @property
    def topdir(self) -> str:  # the directory its tarball unpacks to
        return f"linux-source-{self.name}"

    @property
    def spelling(self) -> str:
        return f"debian:{self.name}"


DEBIAN_KERNELS = {k.name: k for k in (
    DebianKernel("6.12", None),            # bookworm-security: the default
    DebianKernel("6.1", None,              # bookworm
                 no_bqnic="bqnic is written against 6.8+ APIs (linux/unaligned.h, "
                          "netdev_queues.h stats, netif_queue_set_napi, "
                          "page_pool/helpers.h); no compat layer for 6.1 yet"),
    DebianKernel("7.2", "sid"),
    DebianKernel("7.3", "experimental"),   # release candidates
)}
DEFAULT_KERNEL = "6.12"
LINUX_SOURCE_PACKAGE = DEBIAN_KERNELS[DEFAULT_KERNEL].package


def debian_kernel(spelling: str) -> DebianKernel:
    """'debian:7.2' (or '7.2') -> the package; anything else is bad input."""
    name = spelling.strip().removeprefix("debian:")
    if name not in DEBIAN_KERNELS:
        known = ", ".join(k.spelling for k in DEBIAN_KERNELS.values())
        raise BadInput(f"unknown kernel {spelling!r}: expected one of {known} "
                       "(or --kernel-tree DIR / --kernel-build DIR for your own)")
    return DEBIAN_KERNELS[name]


PRIVATE_APT_SUITES = sorted({k.suite for k in DEBIAN_KERNELS.values() if k.suite})
_private_apt_updated = False


def private_apt_dir() -> Path:
    return cache_root() / "apt"


def private_apt_options() -> list[str]:
    """apt options that read bqlab's own sources.list and lists, not the host's."""
    d = private_apt_dir()
    return ["-o", f"Dir::Etc::SourceList={d / 'sources.list'}",
            "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={d / 'lists'}",
            "-o", f"Dir::Cache={d / 'cache'}",
            "-o", "Dir::State::status=/dev/null"]


def private_apt_update(force: bool = False) -> None:
    """Lists of the suites the host does not have (sid, experimental), under the cache."""
    global _private_apt_updated
    d = private_apt_dir()
    have_lists = any((d / "lists").glob("*_Packages*"))
    if (_private_apt_updated or have_lists) and not force:
        return
    for sub in ("lists/partial", "cache/archives/partial"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    (d / "sources.list").write_text("".join(
        f"deb [signed-by={ARCHIVE_KEYRING}] {DEBIAN_MIRROR} {suite} main\n"
        for suite in PRIVATE_APT_SUITES))
    run_logged(f"apt-get update of bqlab's own lists ({', '.join(PRIVATE_APT_SUITES)})",
               ["apt-get", *private_apt_options(), "update"], d / "update.log")
    _private_apt_updated = True


def _apt_options(kernel: DebianKernel) -> list[str]:
    return private_apt_options() if kernel.suite else []


def cached_linux_source_deb(kernel: DebianKernel | None = None) -> Path | None:
    package = (kernel or DEBIAN_KERNELS[DEFAULT_KERNEL]).package
    found = sorted(downloads_dir().glob(f"{package}_*_all.deb"))
    return found[-1] if found else None


def linux_source_deb(kernel: DebianKernel | None = None) -> Path:
    """Debian's linux-source-X.Y .deb (newest in the archive at first fetch)."""
    kernel = kernel or DEBIAN_KERNELS[DEFAULT_KERNEL]
    cached = cached_linux_source_deb(kernel)
    if cached is not None:
        return cached
    downloads_dir().mkdir(parents=True, exist_ok=True)
    if kernel.suite:
        private_apt_update()
        try:
            _download_candidate(kernel)
        except InfraError:  # lists older than the archive (sid moves on): refresh, retry
            private_apt_update(force=True)
            _download_candidate(kernel)
    else:
        apt_update()
        run_logged(f"fetching {kernel.package}", ["apt-get", "download", kernel.package],
                   downloads_dir() / "fetch.log", cwd=downloads_dir())
    found = cached_linux_source_deb(kernel)
    if found is None:
        raise InfraError(f"apt-get download {kernel.package} produced no .deb")
    return found


def _download_candidate(kernel: DebianKernel) -> None:
    # experimental's pin priority is 1: name the version, or apt picks none
    run_logged(f"fetching {kernel.package}",
               ["apt-get", *private_apt_options(), "download",
                f"{kernel.package}={candidate_version(kernel)}"],
               downloads_dir() / "fetch.log", cwd=downloads_dir())


def linux_source_version(deb: Path) -> str:
    res = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"],
                         capture_output=True, text=True, check=True)
    return res.stdout.strip()


def candidate_version(kernel: DebianKernel | None = None) -> str:
    """The version `apt-get download` would fetch."""
    kernel = kernel or DEBIAN_KERNELS[DEFAULT_KERNEL]
    if kernel.suite:
        private_apt_update()
    try:
        res = subprocess.run(["apt-cache", *_apt_options(kernel), "policy", kernel.package],
                             capture_output=True, text=True, check=False)
    except FileNotFoundError as e:
        raise InfraError("apt-cache not found: the kernel key needs Debian's "
                         f"{kernel.package} version") from e
    m = re.search(r"^\s*Candidate:\s*(\S+)", res.stdout, re.MULTILINE)
    if res.returncode != 0 or not m or m.group(1) == "(none)":
        where = ("bqlab's own lists (" + str(private_apt_dir()) + ")" if kernel.suite
                 else "the host's lists: run `apt-get update` first")
        raise InfraError(f"apt knows no candidate version of {kernel.package} in {where}, "
                         "so its kernel key cannot be computed without the .deb")
    return m.group(1)


def linux_source_key_version(fetch: bool = True, kernel: DebianKernel | None = None) -> str:
    """The linux-source version that enters the kernel key: the downloaded .deb's; with
    none yet, fetch it, or (fetch=False, for `bqlab build --keys` and doctor) apt's
    candidate, the version a fetch would bring."""
    cached = cached_linux_source_deb(kernel)
    if cached is not None:
        return linux_source_version(cached)
    if fetch:
        return linux_source_version(linux_source_deb(kernel))
    return candidate_version(kernel)


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
