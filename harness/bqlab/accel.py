"""Pick the accelerator by booting, not by looking at /dev/kvm.

On some hosts /dev/kvm opens and answers ioctls yet guests hang at boot (no nested
virtualisation). So boot the real kernel under KVM to a deliberate early panic and see
whether it prints anything; otherwise use multi-threaded TCG. The answer is cached per
host boot and QEMU binary.
"""

import json
import os
import subprocess
import time
from pathlib import Path

from . import procs
from .cachekey import make_key
from .paths import cache_root
from .progress import say

PROBE_SECONDS = 8.0
TCG = "tcg,thread=multi"
KVM = "kvm"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def _kvm_usable() -> bool:
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
    except OSError:
        return False
    os.close(fd)
    return True


def _probe_kvm(qemu: Path, bzimage: Path, firmware_args: list[str], workdir: Path) -> bool:
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "kvm-probe.log"
    log.unlink(missing_ok=True)
    argv = [str(qemu), *firmware_args, "-machine", "q35", "-accel", KVM, "-cpu", "max",
            "-m", "256", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-serial", f"file:{log}", "-kernel", str(bzimage),
            "-append", "console=ttyS0 loglevel=7 panic=-1 root=/dev/bqlab-probe-none"]
    proc = procs.spawn(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + PROBE_SECONDS
    try:
        while time.monotonic() < deadline:
            if log.exists() and "Linux version" in log.read_text(errors="replace"):
                return True
            if proc.poll() is not None:
                return False
            time.sleep(0.1)
        return False
    finally:
        procs.kill(proc)


def choose(qemu: Path, bzimage: Path, firmware_args: list[str]) -> str:
    """Return the -accel argument to use; BQLAB_ACCEL=tcg|kvm forces one."""
    forced = os.environ.get("BQLAB_ACCEL")
    if forced in ("tcg", "kvm"):
        return TCG if forced == "tcg" else KVM
    if not _kvm_usable():
        return TCG
    cache = cache_root() / "accel.json"
    key = make_key({"boot": _boot_id(), "qemu": str(qemu), "mtime": qemu.stat().st_mtime_ns})
    try:
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            return cached["accel"]
    except (OSError, ValueError):
        pass
    say("probing KVM by booting the guest kernel under it ...")
    accel = KVM if _probe_kvm(qemu, bzimage, firmware_args, cache_root() / "probe") else TCG
    say(f"accelerator: {accel}" + ("" if accel == KVM else " (KVM guests do not boot here)"))
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "accel": accel}))
    return accel
