"""Host packages bqlab needs, by purpose: check, and install from Debian when we are root.

Build packages are asked for only when something is built; run-time packages are asked for
before anything boots, even when every artifact comes from the cache (a CI cache restore
or a cache built on another machine brings no packages with it).
"""

import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from .errors import MissingTool
from .progress import say

# What each build step needs from Debian, by package name.
QEMU_BUILD = ["ninja-build", "libglib2.0-dev", "libpixman-1-dev", "libslirp-dev", "flex",
              "bison", "pkg-config", "python3-venv", "bzip2", "xz-utils", "dpkg-dev", "gcc",
              "libfdt-dev",
              "make"]
KERNEL_BUILD = ["bc", "libelf-dev", "libssl-dev", "flex", "bison", "gcc", "make", "xz-utils",
                "cpio", "kmod", "perl", "patch", "lz4"]
IMAGE_BUILD = ["debootstrap", "e2fsprogs", "openssh-client", "clang", "libbpf-dev", "gcc"]
# Booting a VM: firmware (SeaBIOS, the option ROMs and linuxboot from qemu-system-data,
# iPXE for e1000e/igb/virtio ROM bars) and the libraries the built QEMU is linked against
# (tests/device/test_runtime_libs.py checks the libraries against the binary.)
# qemu-utils: qemu-img puts each VM's disk writes in an overlay of its own, which a
# snapshot (bqlab run --snapshot-on-fail) saves.
VM_RUNTIME = ["seabios", "qemu-system-data", "ipxe-qemu", "libglib2.0-0", "libslirp0",
              "libfdt1", "qemu-utils"]
# The test suite: VMs, checkpatch.pl (perl), and a real browser for report.html.
TEST_RUNTIME = [*VM_RUNTIME, "perl", "chromium"]
# `bqlab bench profile` records the DUT's QEMU with perf.
BENCH_RUNTIME = [*VM_RUNTIME, "linux-perf"]
PURPOSES: dict[str, tuple[str, list[str]]] = {
    "build": ("building QEMU, the kernel and the image",
              sorted({*QEMU_BUILD, *KERNEL_BUILD, *IMAGE_BUILD})),
    "run": ("booting VMs (bqlab run, up)", VM_RUNTIME),
    "bench": ("bqlab bench", BENCH_RUNTIME),
    "test": ("the test suite (make test)", TEST_RUNTIME),
}

SRC_LIST = Path("/etc/apt/sources.list.d/bqlab-deb-src.sources")
SRC_ENTRY = """\
# Added by bqlab: Debian source packages (QEMU is built from bookworm-backports' source).
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

_apt_updated = False


def is_installed(package: str) -> bool:
    res = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package],
                         capture_output=True, text=True, check=False)
    return res.returncode == 0 and "install ok installed" in res.stdout


def _is_root() -> bool:
    return os.geteuid() == 0


def apt_update() -> None:
    global _apt_updated
    if _apt_updated:
        return
    say("apt-get update")
    subprocess.run(["apt-get", "update", "-q"], check=True, stdout=subprocess.DEVNULL)
    _apt_updated = True


def require_packages(packages: Iterable[str], purpose: str) -> None:
    """Install missing Debian packages (as root) or explain how to get them."""
    absent = sorted({p for p in packages if not is_installed(p)})
    if not absent:
        return
    cmd = "apt-get install -y --no-install-recommends " + " ".join(absent)
    if not _is_root() or shutil.which("apt-get") is None:
        raise MissingTool(", ".join(absent), f"needed for {purpose}; install with: sudo {cmd}")
    say(f"installing Debian packages for {purpose}: {' '.join(absent)}")
    apt_update()
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    res = subprocess.run(cmd.split(), env=env, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise MissingTool(", ".join(absent),
                          f"`{cmd}` failed:\n{res.stdout[-2000:]}{res.stderr[-2000:]}")


def _has_backports_src() -> bool:
    roots = [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]
    for f in roots:
        try:
            text = f.read_text()
        except OSError:
            continue
        if "deb-src" in text and "bookworm-backports" in text:
            return True
    return False


def ensure_backports_sources() -> None:
    """`apt-get source qemu/bookworm-backports` needs a deb-src line for backports."""
    if _has_backports_src():
        return
    if not _is_root():
        raise MissingTool("deb-src for bookworm-backports",
                          f"add this as {SRC_LIST} (as root):\n{SRC_ENTRY}")
    SRC_LIST.write_text(SRC_ENTRY)
    say(f"added Debian source entries for bookworm(-backports) in {SRC_LIST}")
    global _apt_updated
    _apt_updated = False
    apt_update()


def require(purpose: str) -> None:
    """Ask for every package one purpose needs (see PURPOSES), before it starts."""
    what, packages = PURPOSES[purpose]
    require_packages(packages, what)


def missing(purpose: str) -> list[str]:
    return sorted({p for p in PURPOSES[purpose][1] if not is_installed(p)})
