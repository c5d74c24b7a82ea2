"""Pick the accelerator by booting, not by looking at /dev/kvm, and say why.

On some hosts /dev/kvm opens and answers ioctls yet guests hang at boot (no nested
virtualisation). So boot the real kernel under KVM to a deliberate early panic and see
whether it prints anything; otherwise use multi-threaded TCG.

A probe has three outcomes, and only two of them say anything about KVM:
- the guest printed its banner: KVM works (cached);
- QEMU ran but the guest printed nothing within PROBE_SECONDS: guests hang (cached);
- QEMU exited before the guest printed anything: QEMU could not start (missing firmware, a
  bad option, a KVM ioctl that failed). That is not a fact about KVM, so it is never
  cached: the next run probes again, and the reason shows QEMU's own stderr.
The cache is per host boot, QEMU binary and kernel.
"""

import errno
import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..build.cachekey import make_key
from ..paths import cache_root
from ..progress import say
from . import procs

PROBE_SECONDS = 8.0
TCG = "tcg,thread=multi"
KVM = "kvm"
KVM_DEV = "/dev/kvm"
CACHE_NAME = "accel.json"


@dataclass(frozen=True)
class AccelChoice:
    accel: str  # the -accel argument
    reason: str  # one line: why this one

    @property
    def name(self) -> str:
        return "kvm" if self.accel == KVM else "tcg"

    def __str__(self) -> str:
        return f"{self.name} ({self.reason})"


@dataclass(frozen=True)
class ProbeResult:
    outcome: str  # "boots", "hangs" or "qemu-failed"
    detail: str

    @property
    def cacheable(self) -> bool:
        return self.outcome != "qemu-failed"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def kvm_device_problem(dev: str = KVM_DEV) -> str | None:
    """Why /dev/kvm cannot be used at all, or None if it opens read-write."""
    try:
        fd = os.open(dev, os.O_RDWR)
    except FileNotFoundError:
        return (f"no {dev}: the kvm module is not loaded, the CPU has no VT-x/AMD-V, or this "
                "is a VM without nested virtualisation")
    except PermissionError:
        return (f"no permission to open {dev}: add your user to its group "
                f"(`sudo usermod -aG kvm $USER`, then log in again)")
    except OSError as e:
        return f"cannot open {dev}: {errno.errorcode.get(e.errno, e.errno)} {e.strerror}"
    os.close(fd)
    return None


def probe_kvm(qemu: Path, bzimage: Path, firmware_args: list[str],
              workdir: Path) -> ProbeResult:
    """Boot bzimage under KVM to an early panic; see whether the guest prints its banner."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "kvm-probe.log"
    err = workdir / "kvm-probe.stderr"
    log.unlink(missing_ok=True)
    argv = [str(qemu), *firmware_args, "-machine", "q35", "-accel", KVM, "-cpu", "max",
            "-m", "256", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-serial", f"file:{log}", "-kernel", str(bzimage),
            "-append", "console=ttyS0 loglevel=7 panic=-1 root=/dev/bqlab-probe-none"]
    with err.open("wb") as err_file:
        proc = procs.spawn(argv, stdout=subprocess.DEVNULL, stderr=err_file)
    deadline = time.monotonic() + PROBE_SECONDS
    try:
        while True:
            if log.exists() and "Linux version" in log.read_text(errors="replace"):
                return ProbeResult("boots", "a guest booted under KVM")
            if proc.poll() is not None:
                stderr = err.read_text(errors="replace").strip()
                tail = " | ".join(stderr.splitlines()[-3:]) or "no output on stderr"
                return ProbeResult("qemu-failed",
                                   f"QEMU could not start under KVM (exit {proc.returncode}): "
                                   f"{tail}")
            if time.monotonic() >= deadline:
                return ProbeResult("hangs",
                                   f"/dev/kvm opens but a guest under KVM printed nothing in "
                                   f"{PROBE_SECONDS:.0f} s (no nested virtualisation?)")
            time.sleep(0.1)
    finally:
        procs.kill(proc)


def _cache_key(qemu: Path, bzimage: Path) -> str:
    return make_key({"boot": _boot_id(), "qemu": str(qemu), "mtime": qemu.stat().st_mtime_ns,
                     "kernel": str(bzimage)})


# Probes whose QEMU failed, remembered for this process only (one probe per run, not per
# topology), never on disk.
_failed_here: dict[str, ProbeResult] = {}


def cached_probe(qemu: Path, bzimage: Path) -> ProbeResult | None:
    failed = _failed_here.get(_cache_key(qemu, bzimage))
    if failed is not None:
        return failed
    try:
        cached = json.loads((cache_root() / CACHE_NAME).read_text())
    except (OSError, ValueError):
        return None
    if cached.get("key") != _cache_key(qemu, bzimage) or "outcome" not in cached:
        return None
    return ProbeResult(cached["outcome"], cached["detail"])


def store_probe(qemu: Path, bzimage: Path, result: ProbeResult) -> None:
    cache = cache_root() / CACHE_NAME
    if not result.cacheable:
        cache.unlink(missing_ok=True)  # an old answer must not outlive a failed probe either
        _failed_here[_cache_key(qemu, bzimage)] = result
        return
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": _cache_key(qemu, bzimage), "outcome": result.outcome,
                                 "detail": result.detail}))


def choose(qemu: Path, bzimage: Path, firmware_args: list[str]) -> AccelChoice:
    """The accelerator to use and why; BQLAB_ACCEL=tcg|kvm forces one."""
    forced = os.environ.get("BQLAB_ACCEL")
    if forced in ("tcg", "kvm"):
        return AccelChoice(TCG if forced == "tcg" else KVM, f"BQLAB_ACCEL={forced}")
    problem = kvm_device_problem()
    if problem is not None:
        return AccelChoice(TCG, f"KVM not used: {problem}")
    result = cached_probe(qemu, bzimage)
    if result is None:
        say("probing KVM by booting the guest kernel under it ...")
        result = probe_kvm(qemu, bzimage, firmware_args, cache_root() / "probe")
        store_probe(qemu, bzimage, result)
    if result.outcome == "boots":
        return AccelChoice(KVM, result.detail)
    return AccelChoice(TCG, f"KVM not used: {result.detail}")
