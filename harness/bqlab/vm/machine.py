"""One QEMU VM: command line, QMP, serial console, SSH, and a stop that always happens."""

import contextlib
import shlex
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..build.artifacts import BuiltArtifacts
from ..errors import InfraError
from ..judge import devicewatch
from . import nics, procs
from .console import Finding, scan_file
from .qmp import Qmp
from .ssh import CommandResult, Ssh

FIRMWARE_DIRS = ["/usr/share/seabios", "/usr/share/qemu", "/usr/lib/ipxe/qemu"]
STOP_GRACE_SECONDS = 5.0
READY_MARKER = "bqlab-init: starting sshd"
# The guest's own detectors, made to speak within a scenario's time: an NMI from the host
# (liveness.py) panics with every CPU's backtrace; a task blocked 60 s is reported.
DETECTOR_ARGS = ["unknown_nmi_panic", "panic_print=0x40",
                 "sysctl.kernel.hung_task_timeout_secs=60"]


def firmware_args() -> list[str]:
    args: list[str] = []
    for d in FIRMWARE_DIRS:
        if Path(d).is_dir():
            args += ["-L", d]
    return args


def free_tcp_port() -> int:
    """A free port on 127.0.0.1 (QEMU binds it a moment later; start() retries on a clash)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Link:
    """The test link: a QEMU stream netdev over a unix socket, DUT side listening."""

    socket_path: Path
    listen: bool

    def netdev(self, netdev_id: str) -> str:
        server = "on" if self.listen else "off"
        extra = "" if self.listen else ",reconnect-ms=100"
        return (f"stream,id={netdev_id},server={server},addr.type=unix,"
                f"addr.path={self.socket_path}{extra}")


@dataclass
class VmConfig:
    name: str
    cpus: int = 1
    memory_mb: int = 512
    nic: str = "virtio-net-pci"
    queues: int = 2  # queue pairs, for a model that takes them from QEMU (vm/nics.py)
    driver_params: dict[str, object] = field(default_factory=dict)  # module parameters
    balloon: bool = False  # a virtio-balloon the harness inflates over QMP
    silent: bool = False  # sends nothing unasked on the test link (see Topology)
    kcsan: bool = False  # its NIC driver is the KCSAN twin (build/kernel.py)
    index: int = 0  # distinguishes MACs between VMs
    link: Link | None = None
    extra_args: list[str] = field(default_factory=list)
    kernel_args: list[str] = field(default_factory=list)

    @property
    def mgmt_mac(self) -> str:
        return f"52:54:00:ff:00:{self.index + 1:02x}"

    @property
    def test_mac(self) -> str:
        return f"52:54:00:b0:00:{self.index + 1:02x}"


class Vm:
    def __init__(self, config: VmConfig, built: BuiltArtifacts, accel: str, workdir: Path,
                 tag: str, socket_dir: Path):
        self.config = config
        self.built = built
        self.accel = accel
        self.dir = workdir / config.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tag = tag
        self.console_log = self.dir / "console.log"
        # Unix socket paths are limited to 108 bytes: they live in a short private directory,
        # not under the (possibly long) artifact path.
        self.qmp_socket = socket_dir / f"{config.name}.qmp"
        # A QMP socket takes one client, and the harness is one: a second for people and
        # their tools (bqlab up prints it).
        self.user_qmp_socket = socket_dir / f"{config.name}-user.qmp"
        self.proc: subprocess.Popen | None = None
        self.qmp: Qmp | None = None
        self.ssh: Ssh | None = None
        self.port = 0
        self.started_at = 0.0
        self.ssh_ready_at = 0.0
        # (disk, state) of a snapshot to resume from (snapshot.py) instead of booting
        self.restore: tuple[Path, Path] | None = None
        # What the guest writes goes to an overlay of the cached image: the image stays as
        # built, and a snapshot saves the overlay.
        self.disk = socket_dir / f"{config.name}.qcow2"

    @property
    def name(self) -> str:
        return self.config.name

    def argv(self) -> list[str]:
        c = self.config
        append = " ".join([
            "console=ttyS0", "root=/dev/vda", "rw", "init=/sbin/bqlab-init",
            "loglevel=5", "panic=-1", "tsc=reliable", "no_timer_check",
            *DETECTOR_ARGS, f"bqlab.mgmt={c.mgmt_mac}", f"bqlab.host={c.name}",
            *c.kernel_args,
        ])
        argv = [
            str(self.built.qemu), *firmware_args(),
            "-name", f"{c.name},process={self.tag}-{c.name}",
            "-machine", "q35,i8042=off,vmport=off", "-accel", self.accel, "-cpu", "max",
            "-smp", str(c.cpus), "-m", str(c.memory_mb),
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-chardev", f"file,id=con,path={self.console_log}", "-serial", "chardev:con",
            "-chardev", f"socket,id=qmp,path={self.qmp_socket},server=on,wait=off",
            "-mon", "chardev=qmp,mode=control",
            "-chardev", f"socket,id=qmp-user,path={self.user_qmp_socket},server=on,wait=off",
            "-mon", "chardev=qmp-user,mode=control",
            "-kernel", str(self.built.bzimage), "-append", append,
            "-drive", f"file={self.disk},if=none,id=root,format=qcow2",
            "-device", "virtio-blk-pci,drive=root",
            # restrict=on: the guest reaches nothing through slirp but its own hostfwd.
            "-netdev", f"user,id=mgmt,restrict=on,"
                       f"hostfwd=tcp:127.0.0.1:{self.port}-:22",
            "-device", f"virtio-net-pci,netdev=mgmt,mac={c.mgmt_mac},romfile=",
        ]
        if c.link is not None:
            model = nics.model(c.nic)
            argv += ["-netdev", c.link.netdev("link"),
                     "-device", model.device_arg(c.test_mac, c.queues),
                     *devicewatch.qemu_args(model, self.dir)]
        if c.balloon:
            argv += ["-device", "virtio-balloon-pci,id=balloon0,deflate-on-oom=on"]
        if self.restore:
            argv += ["-incoming", "defer"]
        return argv + c.extra_args

    def start(self) -> None:
        """Launch QEMU (main thread only: see procs.spawn) and connect QMP."""
        if self.restore:
            self.disk = self.restore[0]
        else:
            res = subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw",
                                  "-b", str(self.built.image), str(self.disk)],
                                 capture_output=True, text=True, check=False)
            if res.returncode != 0:
                raise InfraError(f"{self.name}: qemu-img create: {res.stderr.strip()}")
        self.port = free_tcp_port()
        argv = self.argv()
        (self.dir / "qemu-cmdline.txt").write_text(shlex.join(argv) + "\n")
        stderr = (self.dir / "qemu-stderr.log").open("w")
        self.started_at = time.monotonic()
        self.proc = procs.spawn(argv, stdout=stderr, stderr=stderr)
        stderr.close()
        self.qmp = Qmp(self.name, self.qmp_socket, self.dir / "qmp-events.jsonl")
        try:
            self.qmp.connect(timeout=15)
        except InfraError as e:
            raise InfraError(f"{e}\nQEMU stderr: {self.qemu_stderr()[-1500:]}") from e
        if self.restore:
            self.qmp.cmd("migrate-incoming", uri=f"file:{self.restore[1]}")

    def wait_restored(self, timeout: float) -> None:
        """Until the snapshot's state is loaded (the VM stays paused: cont is the
        caller's, once every VM of the pair is loaded)."""
        assert self.qmp is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise InfraError(f"{self.name}: QEMU refused the snapshot: "
                                 f"{self.qemu_stderr()[-1500:]}")
            with contextlib.suppress(InfraError):
                if self.qmp.cmd("query-migrate").get("status") == "completed":
                    return
            time.sleep(0.05)
        raise InfraError(f"{self.name}: loading the snapshot took over {timeout:.0f} s")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def qemu_stderr(self) -> str:
        try:
            return (self.dir / "qemu-stderr.log").read_text(errors="replace")
        except OSError:
            return ""

    def wait_ssh(self, timeout: float) -> float:
        """Block until SSH works; returns seconds from QEMU start to SSH ready."""
        deadline = time.monotonic() + timeout
        # Connecting before the guest's mgmt link is up costs seconds: slirp accepts on the
        # host side and its SYN to the guest goes unanswered until TCP retransmits. The
        # init says on the console when sshd starts; only then is a connect cheap. A VM
        # resumed from a snapshot runs its sshd already.
        while not self.restore and READY_MARKER not in self.console_text() and \
                time.monotonic() < deadline:
            if not self.alive():
                raise InfraError(f"{self.name}: VM exited during boot.\n{self.death_note()}")
            time.sleep(0.02)
        self.ssh = Ssh(self.name, self.port, self.built.ssh_key, self.built.host_key)
        try:
            self.ssh.connect(deadline, alive=self.alive)
        except InfraError as e:
            raise InfraError(f"{e}\n{self.death_note()}") from e
        self.ssh_ready_at = time.monotonic()
        return self.ssh_ready_at - self.started_at

    def death_note(self) -> str:
        status = "running" if self.alive() else f"exited with {self.proc.returncode}"
        tail = "\n".join(self.console_text().splitlines()[-25:])
        return f"QEMU {status}; last console lines ({self.console_log}):\n{tail}"

    def run(self, command: str, timeout: float = 60.0, check: bool = False) -> CommandResult:
        if self.ssh is None:
            raise InfraError(f"{self.name}: SSH not connected")
        if not self.alive():
            raise InfraError(f"{self.name}: VM is gone.\n{self.death_note()}")
        return self.ssh.run(command, timeout=timeout, check=check)

    def console_text(self) -> str:
        try:
            return self.console_log.read_text(errors="replace")
        except OSError:
            return ""

    def console_findings(self) -> list[Finding]:
        return scan_file(self.console_log)

    def save_dmesg(self) -> None:
        if self.ssh is None or not self.alive():
            return
        try:
            res = self.ssh.run("dmesg", timeout=20)
            (self.dir / "dmesg.txt").write_text(res.stdout)
        except Exception as e:  # a wedged guest must not stop the teardown
            (self.dir / "dmesg.txt").write_text(f"(dmesg unavailable: {e})\n")

    def stop(self) -> None:
        """QMP quit, then SIGKILL after a grace period. Safe to call more than once."""
        if self.ssh is not None:
            self.ssh.close()
        if self.proc is None:
            return
        if self.proc.poll() is None and self.qmp is not None:
            with contextlib.suppress(Exception):  # SIGKILL below covers a failed quit
                self.qmp.cmd("quit", timeout=2)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(STOP_GRACE_SECONDS)
        procs.kill(self.proc)
        if self.qmp is not None:
            self.qmp.close()
            self.qmp = None
