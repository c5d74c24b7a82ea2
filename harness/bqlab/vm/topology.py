"""The DUT and peer VMs joined by a test link, from boot to a guaranteed stop."""

import contextlib
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..build.artifacts import BuiltArtifacts
from ..build.image import GUEST_KCSAN_DIR
from ..build.kernel import KCSAN_DIR
from ..errors import BadInput, InfraError
from ..progress import say
from . import accel, nics
from .console import Finding
from .machine import Link, Vm, VmConfig, firmware_args

BOOT_TIMEOUT = 120.0
NET4 = "10.99.0"  # link-local to the two VMs: the link is a unix socket inside this host
NET6 = "fd00:b9::"


@dataclass(frozen=True)
class Addresses:
    ipv4: str
    ipv6: str


def addresses(index: int) -> Addresses:
    return Addresses(f"{NET4}.{index + 1}", f"{NET6}{index + 1}")


def new_socket_dir() -> Path:
    """A short private directory for unix sockets (paths are limited to 108 bytes).

    Each holds the owner's pid, so directories of harnesses that died without cleaning up
    (SIGKILL) are removed by the next one.
    """
    parent = Path(tempfile.gettempdir()) / f"bqlab-{os.getuid()}"
    parent.mkdir(mode=0o700, exist_ok=True)
    for old in parent.iterdir():
        try:
            os.kill(int((old / "pid").read_text()), 0)
            continue  # its harness is alive
        except ProcessLookupError:
            pass
        except (OSError, ValueError):
            # No pid yet: perhaps a harness starting right now; only old ones are stale.
            with contextlib.suppress(OSError):
                if time.time() - old.stat().st_mtime < 60:
                    continue
        shutil.rmtree(old, ignore_errors=True)
    path = Path(tempfile.mkdtemp(dir=parent))
    (path / "pid").write_text(str(os.getpid()))
    return path


def _param(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


class Topology:
    """Context manager: `with Topology(...) as topo:` boots; leaving it always stops."""

    def __init__(self, configs: list[VmConfig], built: BuiltArtifacts, run_dir: Path,
                 restore: dict[str, tuple[Path, Path]] | None = None,
                 restore_accel: str | None = None):
        self.built = built
        # From a snapshot (snapshot.py): (disk, state) per VM, and the accelerator it ran on
        self.restore = restore
        self.restore_accel = restore_accel
        self.run_dir = run_dir
        self.tag = f"bqlab-{run_dir.name}"
        self.accel = ""  # the -accel argument
        self.accel_reason = ""
        self.socket_dir = new_socket_dir()
        link = self.socket_dir / "link"
        for i, c in enumerate(configs):
            c.index = i
            c.link = Link(link, listen=(i == 0))
        self.configs = configs
        self.vms: dict[str, Vm] = {}
        self.boot_seconds: dict[str, float] = {}

    def __enter__(self) -> "Topology":
        try:
            self.boot()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __getitem__(self, name: str) -> Vm:
        return self.vms[name]

    def boot(self) -> None:
        for c in self.configs:
            twin = self.built.bzimage.parent / KCSAN_DIR / f"{nics.model(c.nic).driver}.ko"
            if c.kcsan and not twin.is_file():
                raise BadInput(f"vms.{c.name}.kcsan: this kernel has no KCSAN twin of "
                               f"{twin.stem} (CONFIG_KCSAN is off: does a config fragment "
                               "of yours enable KASAN?)")
        if self.restore_accel:
            # A CPU's state moves only between QEMUs on the same accelerator.
            self.accel, self.accel_reason = self.restore_accel, "the snapshot's"
            say(f"resuming {', '.join(c.name for c in self.configs)} from a snapshot "
                f"({self.accel}); artifacts: {self.run_dir}")
        else:
            choice = accel.choose(self.built.qemu, self.built.bzimage, firmware_args())
            self.accel, self.accel_reason = choice.accel, choice.reason
            say(f"booting {', '.join(c.name for c in self.configs)} ({choice}); "
                f"artifacts: {self.run_dir}")
        # Spawn from the main thread (PDEATHSIG is per-thread); the listener first.
        for c in self.configs:
            vm = Vm(c, self.built, self.accel, self.run_dir, self.tag, self.socket_dir)
            if self.restore:
                vm.restore = self.restore[c.name]
            self.vms[c.name] = vm
            vm.start()
        if self.restore:
            for vm in self.vms.values():
                vm.wait_restored(BOOT_TIMEOUT)
            for vm in self.vms.values():  # both at once: the link carries on between them
                assert vm.qmp is not None
                vm.qmp.cmd("cont")
        with ThreadPoolExecutor(len(self.vms)) as pool:
            futures = {n: pool.submit(vm.wait_ssh, BOOT_TIMEOUT) for n, vm in self.vms.items()}
            for name, fut in futures.items():
                self.boot_seconds[name] = fut.result()
        say("up: " + ", ".join(f"{n} SSH in {s:.1f}s" for n, s in self.boot_seconds.items()))
        if self.restore:
            return  # configured when the snapshot was taken
        for vm in self.vms.values():
            self.configure_test_link(vm)

    def configure_test_link(self, vm: Vm) -> None:
        """Load the test NIC's driver if it is a module; name the NIC test0, address it,
        bring it up.

        A silent VM sends nothing on its own: no IPv6 (router and neighbour solicitations)
        and static ARP entries for the other VMs. Its own transmissions would complete on
        the tx ring and run NAPI, which hides an rx stall."""
        mac = vm.config.test_mac
        addr = self.address(vm.name)
        # No udev in the guest: a driver built as a module is loaded by hand, with its
        # parameters.
        modprobe = ""
        model = nics.model(vm.config.nic)
        if model.module:
            params = " ".join(f"{k}={_param(v)}" for k, v in vm.config.driver_params.items())
            modprobe = f"modprobe {model.driver} {params}; "
            if vm.config.kcsan:  # the twin, outside modprobe's tree; it needs no module
                modprobe = f"insmod {GUEST_KCSAN_DIR}/{model.driver}.ko {params}; "
        script = (
            f"set -e; {modprobe}dev=$(for d in /sys/class/net/*; do "
            f"if [ \"$(cat $d/address)\" = {mac} ]; then echo ${{d##*/}}; fi; done); "
            f"[ -n \"$dev\" ] || {{ echo 'no NIC with MAC {mac}' >&2; exit 1; }}; "
            f"ip link set \"$dev\" name test0; "
            f"ip addr add {addr.ipv4}/24 dev test0; "
        )
        if vm.config.silent:
            script += "sysctl -qw net.ipv6.conf.test0.disable_ipv6=1; "
            for other in self.vms.values():
                if other is not vm:
                    script += (f"ip neigh replace {self.address(other.name).ipv4} lladdr "
                               f"{other.config.test_mac} dev test0 nud permanent; ")
        else:
            script += ("sysctl -qw net.ipv6.conf.test0.accept_dad=0; "
                       f"ip -6 addr add {addr.ipv6}/64 dev test0 nodad; ")
        script += "ip link set test0 up"
        res = vm.run(script, timeout=30)
        if not res.ok:
            raise InfraError(f"{vm.name}: cannot configure test link: {res.stderr.strip()}")

    def snapshot(self, dest: Path, why: str) -> Path:
        from . import snapshot

        say(f"  snapshot of {', '.join(self.vms)} ({why}) -> {dest}")
        return snapshot.save(self.vms, self.built, self.accel, dest, why)

    def address(self, name: str) -> Addresses:
        return addresses(list(self.vms).index(name))

    def findings(self) -> dict[str, list[Finding]]:
        return {n: vm.console_findings() for n, vm in self.vms.items()}

    def stop(self) -> None:
        for vm in self.vms.values():
            try:
                vm.save_dmesg()
                if vm.ssh is not None:
                    with (vm.dir / "commands.jsonl").open("w") as f:
                        for r in vm.ssh.history:
                            f.write(json.dumps({"command": r.command, "exit": r.exit_status,
                                                "seconds": round(r.seconds, 3)}) + "\n")
            finally:
                vm.stop()
        shutil.rmtree(self.socket_dir, ignore_errors=True)

    def wait_all_alive(self) -> None:
        for vm in self.vms.values():
            if not vm.alive():
                raise InfraError(f"{vm.name} died.\n{vm.death_note()}")
