"""`bqlab doctor`: what this machine has and lacks for bqlab, and how to fix each problem.

Checks the host (cores, memory, disk), KVM (and why it is not used), the Debian packages
of every purpose, and the artifact cache (each artifact with its key, inputs, size, and
whether it is the one the current sources ask for). Problems come with their fix; notes
are facts that cost time but need no fix (e.g. TCG instead of KVM).
"""

import contextlib
import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import hostdeps
from .build.store import MANIFEST, Artifact
from .errors import BqlabError
from .paths import cache_root
from .vm import accel

OK, NOTE, PROBLEM = "ok", "note", "problem"
# A cold cache is about 3.5 GiB (kernel tree and objects 1.9, QEMU tree 0.7, rootfs 0.2,
# an image 0.26 per kernel and driver variant, downloads 0.2); room for a few variants.
MIN_FREE_GIB = 6
MIN_MEMORY_GIB = 4  # DUT 1 GiB + peer 512 MiB + two QEMUs + the kernel build
MIN_CORES = 2
ARTIFACT_KINDS = ("qemu", "qemu-sanitize", "kernel", "rootfs", "image")
TREE_KINDS = ("qemu-tree", "kernel-tree", "downloads")


@dataclass
class Check:
    section: str
    name: str
    status: str  # OK, NOTE or PROBLEM
    detail: str
    fix: str = ""


def _meminfo_gib(field: str) -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / (1 << 20)
    return 0.0


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def du_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # a file removed while we walk
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def _gib(n: float) -> str:
    return f"{n / (1 << 30):.1f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.0f} MiB"


def host_checks() -> list[Check]:
    cores = os.cpu_count() or 1
    mem = _meminfo_gib("MemTotal")
    avail = _meminfo_gib("MemAvailable")
    where = _existing_parent(cache_root())
    free = shutil.disk_usage(where).free
    return [
        Check("host", "cores", OK if cores >= MIN_CORES else PROBLEM, f"{cores}",
              "" if cores >= MIN_CORES else f"two VMs need at least {MIN_CORES} cores"),
        Check("host", "memory", OK if mem >= MIN_MEMORY_GIB else PROBLEM,
              f"{mem:.1f} GiB, {avail:.1f} GiB available",
              "" if mem >= MIN_MEMORY_GIB else f"bqlab needs at least {MIN_MEMORY_GIB} GiB"),
        Check("host", "disk", OK if free >= MIN_FREE_GIB << 30 else PROBLEM,
              f"{_gib(free)} free at {where} (cache: {cache_root()})",
              "" if free >= MIN_FREE_GIB << 30 else
              f"free at least {MIN_FREE_GIB} GiB there, or point BQLAB_CACHE elsewhere"),
    ]


def kvm_checks(qemu: Path | None, bzimage: Path | None, probe: bool) -> list[Check]:
    problem = accel.kvm_device_problem()
    forced = os.environ.get("BQLAB_ACCEL")
    checks = []
    if forced in ("tcg", "kvm"):
        checks.append(Check("kvm", "forced", NOTE, f"BQLAB_ACCEL={forced} overrides the probe"))
    if problem is not None:
        return [*checks, Check("kvm", "accelerator", NOTE,
                               f"TCG (slower): KVM not used: {problem}")]
    if qemu is None or bzimage is None:
        return [*checks, Check("kvm", "accelerator", NOTE,
                               f"{accel.KVM_DEV} opens; whether guests boot under it is "
                               "probed once QEMU and the kernel are built (`bqlab build`)")]
    result = None if probe else accel.cached_probe(qemu, bzimage)
    if result is None:  # asked to, or no remembered answer: boot a guest under KVM now
        result = accel.probe_kvm(qemu, bzimage, _firmware(), cache_root() / "probe")
        accel.store_probe(qemu, bzimage, result)
    if result.outcome == "boots":
        return [*checks, Check("kvm", "accelerator", OK, f"KVM: {result.detail}")]
    if result.outcome == "hangs":
        return [*checks, Check("kvm", "accelerator", NOTE,
                               f"TCG (slower): KVM not used: {result.detail}")]
    # QEMU could not start under KVM: runs still work under TCG, so it is a note; the
    # reason (QEMU's own error) says whether there is anything to fix on this host.
    return [*checks, Check("kvm", "accelerator", NOTE,
                           f"TCG (slower): KVM not used: {result.detail} (probe log: "
                           f"{cache_root() / 'probe'})")]


def _firmware() -> list[str]:
    from .vm.machine import firmware_args

    return firmware_args()


def package_checks() -> list[Check]:
    """Per purpose, the packages it adds to those already listed (bench and test add a
    few to run's). As root bqlab installs what is missing on first use: a note; as
    anyone else, a problem with the command that fixes it."""
    root = os.geteuid() == 0
    checks = []
    seen: set[str] = set()
    for purpose, (what, packages) in hostdeps.PURPOSES.items():
        own = [p for p in packages if p not in seen]
        seen.update(packages)
        absent = sorted(p for p in own if not hostdeps.is_installed(p))
        label = f"for {what}" + ("" if own == packages else " (besides the above)")
        if not absent:
            checks.append(Check("packages", purpose, OK, f"{label}: all installed"))
            continue
        cmd = f"apt-get install -y --no-install-recommends {' '.join(absent)}"
        if root:
            checks.append(Check("packages", purpose, NOTE,
                                f"{label}: missing {' '.join(absent)} (installed on first "
                                f"use, or now with `bqlab deps {purpose}`)"))
        else:
            checks.append(Check("packages", purpose, PROBLEM,
                                f"{label}: missing {' '.join(absent)}", f"sudo {cmd}"))
    return checks


def current_keys() -> dict[str, str]:
    """The keys the current sources ask for, where they can be known without fetching."""
    from .build import image, kernel, qemu

    keys = {"qemu": qemu.artifact().key, "qemu-sanitize": qemu.artifact(sanitize=True).key,
            "rootfs": image.rootfs_artifact().key}
    try:
        kart = kernel.artifact(kernel.KernelSpec.from_env(), fetch=False)
        keys["kernel"] = kart.key
        keys["image"] = image.image_artifact(kart.path).key
    except BqlabError:  # a bad BQLAB_KERNEL_*, or apt knows no linux-source yet
        pass
    return keys


def cache_entries() -> list[dict[str, Any]]:
    root = cache_root()
    current = current_keys()
    entries: list[dict[str, Any]] = []
    for kind in ARTIFACT_KINDS:
        for d in sorted((root / kind).glob("*")):
            if not (d / MANIFEST).is_file():
                continue
            m = json.loads((d / MANIFEST).read_text())
            entries.append({
                "kind": kind, "key": d.name, "size": du_bytes(d),
                "current": current.get(kind) == d.name if kind in current else None,
                "build_seconds": m.get("build_seconds"), "inputs": _input_summary(m["inputs"]),
                "path": str(d)})
    for kind in TREE_KINDS:
        for d in sorted((root / kind).glob("*")) if kind != "downloads" else [root / kind]:
            if d.is_dir():
                entries.append({"kind": kind, "key": d.name, "size": du_bytes(d),
                                "current": None, "inputs": "", "path": str(d)})
    return entries


def _input_summary(inputs: dict[str, Any]) -> str:
    """The inputs a person recognises (source versions, patches), not every file digest."""
    parts = []
    for k, v in inputs.items():
        if isinstance(v, list) and v and all(isinstance(x, list) and len(x) == 2 for x in v):
            v = [x[0] for x in v]  # (file name, digest) pairs: the names say enough
        if isinstance(v, dict) and len(v) > 3:
            parts.append(f"{k}: {len(v)} files")
        elif isinstance(v, list) and len(v) > 3:
            parts.append(f"{k}: {len(v)} items")
        else:
            parts.append(f"{k}: {json.dumps(v, default=str)}")
    return "; ".join(parts)


def versions() -> dict[str, str]:
    """Versions of what is built for the current sources."""
    from .build import kernel, qemu

    out = {}
    q = qemu.artifact()
    if q.exists():
        res = subprocess.run([str(qemu.binary(q.path)), "--version"], capture_output=True,
                             text=True, check=False)
        out["qemu"] = (res.stdout.splitlines() or [f"does not run: {res.stderr.strip()}"])[0]
    key = current_keys().get("kernel")
    if key is not None and Artifact("kernel", key).exists():
        out["kernel"] = kernel.release(Artifact("kernel", key).path)
    return out


def _built_paths() -> tuple[Path | None, Path | None]:
    from .build import qemu

    q = qemu.artifact()
    key = current_keys().get("kernel")
    if not q.exists() or key is None or not Artifact("kernel", key).exists():
        return None, None
    return qemu.binary(q.path), Artifact("kernel", key).path / "bzImage"


def kernel_sources() -> list[dict[str, str]]:
    """Debian's kernels bqlab can build (--kernel), with the version each would build; no
    download and no apt update (bqlab's own lists for sid and experimental are fetched at
    first use)."""
    from .build import sources

    out = []
    for k in sources.DEBIAN_KERNELS.values():
        deb = sources.cached_linux_source_deb(k)
        if deb is not None:
            version, state = sources.linux_source_version(deb), "downloaded"
        elif k.suite and not any((sources.private_apt_dir() / "lists").glob("*_Packages*")):
            version, state = "?", f"{k.suite}: bqlab's apt lists not fetched yet"
        else:
            try:
                version, state = sources.candidate_version(k), "in the archive"
            except BqlabError as e:
                version, state = "?", str(e)
        note = " (default)" if k.name == sources.DEFAULT_KERNEL else ""
        if k.no_bqnic:
            note += f"; {k.no_bqnic}"
        out.append({"kernel": k.spelling, "package": k.package,
                    "suite": k.suite or "bookworm (host's apt)", "version": version,
                    "state": state + note})
    return out


def diagnose(probe: bool = False) -> dict[str, Any]:
    qemu_bin, bzimage = _built_paths()
    checks = [*host_checks(), *kvm_checks(qemu_bin, bzimage, probe), *package_checks()]
    cache = cache_entries()
    built_kinds = {e["kind"] for e in cache if e.get("current")}
    for kind in ("qemu", "kernel", "image"):
        if kind not in built_kinds:
            checks.append(Check("cache", kind, NOTE,
                                "not built for the current sources: the next `bqlab run` "
                                "or `bqlab build` builds it"))
    return {"checks": [asdict(c) for c in checks], "cache": cache, "versions": versions(),
            "kernels": kernel_sources(), "cache_root": str(cache_root())}


def render(result: dict[str, Any]) -> str:
    marks = {OK: "ok     ", NOTE: "note   ", PROBLEM: "PROBLEM"}
    lines = []
    section = None
    for c in result["checks"]:
        if c["section"] != section:
            section = c["section"]
            lines.append(f"{section}:")
        lines.append(f"  {marks[c['status']]} {c['name']:12} {c['detail']}")
    lines.append(f"cache: {result['cache_root']}")
    if not result["cache"]:
        lines.append("  empty")
    for e in result["cache"]:
        cur = {True: "current", False: "stale", None: ""}[e["current"]]
        lines.append(f"  {e['kind']:12} {e['key']:18} {_gib(e['size']):>9}  {cur}")
        if e["inputs"]:
            lines.append(f"      {e['inputs'][:200]}")
    if result.get("kernels"):
        lines.append("Debian kernels (--kernel NAME):")
        lines += [f"  {k['kernel']:12} {k['package']:18} {k['version']:22} {k['state']}"
                  for k in result["kernels"]]
    if result["versions"]:
        lines.append("built versions:")
        lines += [f"  {k:12} {v}" for k, v in result["versions"].items()]
    problems = [c for c in result["checks"] if c["status"] == PROBLEM]
    if problems:
        lines.append(f"{len(problems)} problem(s), each with its fix:")
        lines += [f"  - {c['section']}/{c['name']}: {c['fix']}" for c in problems]
    else:
        lines.append("no problems")
    return "\n".join(lines)


def has_problems(result: dict[str, Any]) -> bool:
    return any(c["status"] == PROBLEM for c in result["checks"])
