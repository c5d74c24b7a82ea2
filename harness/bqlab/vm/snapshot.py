"""Snapshots of a running DUT and peer: `bqlab run --snapshot-on-fail` keeps the machines
of a run that failed, `bqlab up --from ARTIFACT_DIR` brings them back.

A VM's snapshot is two files: its RAM and device state (a migration to a file: bqnic
migrates, SPEC section 12) and its disk overlay, a qcow2 holding only what the guest wrote
on top of the cached image (machine.py). Both VMs are paused first, so the pair is taken
at one moment and nothing crosses the link meanwhile; they run on afterwards.

The snapshot is taken once the pressure of the scenario has ended and before the next
step that reconfigures the DUT (or before the end): when a stall is there to be seen and
nothing has repaired it yet. A run that passes deletes it.
"""

import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..build.artifacts import BuiltArtifacts
from ..errors import BadInput, InfraError
from .machine import Vm, VmConfig

SCHEMA = "bqlab.snapshot/1"
MANIFEST = "manifest.json"
# Steps that change the DUT's queues: a stall they would repair is snapshot before them.
RECONFIGURING = {"ifdown_ifup", "rings", "channels", "mtu", "xdp_cycles", "reload"}


def _wait(vm: Vm, what: str, done, seconds: float = 120.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = done()
        if got:
            return got
        if not vm.alive():
            raise InfraError(f"{vm.name}: QEMU exited while {what}")
        time.sleep(0.05)
    raise InfraError(f"{vm.name}: {what} did not finish in {seconds:.0f} s")


def save_vm(vm: Vm, dest: Path) -> dict[str, str]:
    """RAM and devices, then the disk overlay, of a paused VM; it can run on afterwards."""
    assert vm.qmp is not None
    disk, state = dest / f"{vm.name}.qcow2", dest / f"{vm.name}.state"
    vm.qmp.cmd("migrate", uri=f"file:{state}")

    def migrated() -> dict | None:
        info = vm.qmp.cmd("query-migrate")
        if info.get("status") == "failed":
            raise InfraError(f"{vm.name}: saving its state failed: {info.get('error-desc')}")
        return info if info.get("status") == "completed" else None

    _wait(vm, "saving its state", migrated)
    # A completed migration has flushed the disk and let go of it until `cont`.
    shutil.copyfile(vm.disk, disk)
    return {"disk": disk.name, "state": state.name}


def save(vms: dict[str, Vm], built: BuiltArtifacts, accel: str, dest: Path,
         why: str) -> Path:
    """Pause every VM, save each, resume them. Returns the manifest's path."""
    dest.mkdir(parents=True, exist_ok=True)
    for vm in vms.values():
        assert vm.qmp is not None
        vm.qmp.cmd("stop")
    try:
        saved = {name: save_vm(vm, dest) for name, vm in vms.items()}
    finally:
        for vm in vms.values():
            if vm.alive() and vm.qmp is not None:
                vm.qmp.cmd("cont")
    manifest = dest / MANIFEST
    manifest.write_text(json.dumps({
        "schema": SCHEMA, "why": why, "accel": accel, "taken_at": time.time(),
        "built": built.as_dict(),
        "vms": [{**saved[name], "config": _config_dict(vm.config)}
                for name, vm in vms.items()],
    }, indent=2) + "\n")
    return manifest


def _config_dict(config: VmConfig) -> dict[str, Any]:
    d = asdict(config)
    d.pop("link")
    return d


def load(artifact_dir: Path) -> dict[str, Any]:
    """The manifest of a run's snapshot, checked: its files and the cached artifacts the
    VMs were booted from must all be there."""
    snap = artifact_dir / "snapshot"
    manifest = snap / MANIFEST
    if not manifest.is_file():
        raise BadInput(f"{artifact_dir}: no snapshot ({manifest} missing; runs keep one "
                       "with `bqlab run --snapshot-on-fail` when they fail)")
    data = json.loads(manifest.read_text())
    if data.get("schema") != SCHEMA:
        raise BadInput(f"{manifest}: schema {data.get('schema')!r}, expected {SCHEMA}")
    for vm in data["vms"]:
        for key in ("disk", "state"):
            if not (snap / vm[key]).is_file():
                raise BadInput(f"{snap / vm[key]}: missing from the snapshot")
    gone = [p for k, p in data["built"].items()
            if k in ("qemu", "bzimage", "image") and not Path(p).exists()]
    if gone:
        raise BadInput(f"the snapshot's VMs were booted from {', '.join(gone)}, which the "
                       "cache no longer has: rebuild the same sources (bqlab build) first")
    data["dir"] = snap
    return data


def restore_into(run_dir: Path, data: dict[str, Any]) -> dict[str, tuple[Path, Path]]:
    """Per VM, the (disk, state) to resume from: a copy of the snapshot's disk (the guest
    writes to it; the snapshot stays as it was) and the saved state."""
    out = {}
    for vm in data["vms"]:
        name = vm["config"]["name"]
        disk = run_dir / f"{name}.qcow2"
        shutil.copyfile(data["dir"] / vm["disk"], disk)
        out[name] = (disk, data["dir"] / vm["state"])
    return out


def configs(data: dict[str, Any]) -> list[VmConfig]:
    return [VmConfig(**vm["config"]) for vm in data["vms"]]
