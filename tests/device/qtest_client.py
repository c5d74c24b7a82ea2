"""Drive the bqnic model with no guest kernel: QEMU's qtest protocol plays the CPU.

The test is the "driver": it finds the device through PCI config ports, maps its BARs,
builds rings in guest RAM, and exchanges frames with the device over a unix datagram
socket that is the other end of the device's netdev (`-netdev dgram`, or `stream`, whose
length-prefixed records can carry a frame of any length, 0 included). MSI-X messages are
pointed at guest RAM, so an interrupt is a 32-bit write the test can read back.
"""

import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from bqlab.vm import procs
from bqlab.vm.machine import firmware_args
from bqlab.vm.qmp import Qmp

RAM_MB = 256
MMIO_BASE = 0xE000_0000
MSIX_BASE = 0xE010_0000
MSI_MAILBOX = 0x00F0_0000  # where MSI-X messages land in RAM
ALLOC_BASE = 0x0010_0000


class QtestError(Exception):
    pass


class Qtest:
    """One QEMU under -accel qtest with a bqnic and a datagram link to this process."""

    def __init__(self, qemu: Path, workdir: Path, queues: int = 2, extra: str = "",
                 rx_nobuf: str = "drop", netdev: str = "dgram",
                 qemu_args: tuple[str, ...] = (), env: dict[str, str] | None = None,
                 timeout: float | None = None, accel: str = "qtest",
                 devices_before: tuple[str, ...] = ()):
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        qtest_path = self.dir / "qtest.sock"
        self.net_qemu = self.dir / "net-qemu.sock"
        self.net_test = self.dir / "net-test.sock"
        for leftover in (qtest_path, self.net_qemu, self.net_test, self.dir / "qmp.sock"):
            leftover.unlink(missing_ok=True)  # a reused directory (fuzz replays)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(qtest_path))
        listener.listen(1)
        self.stream = netdev == "stream"
        if netdev == "user":
            # slirp, which answers some frames (ARP for its gateway) inside the
            # device's own send: no socket of ours on the other end
            netdev_arg = "user,id=n0,restrict=on"
        elif self.stream:
            net_listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            net_listener.bind(str(self.net_test))
            net_listener.listen(1)
            netdev_arg = (f"stream,id=n0,server=off,addr.type=unix,"
                          f"addr.path={self.net_test}")
        else:
            self.net = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.net.bind(str(self.net_test))
            self.net.settimeout(2.0)
            netdev_arg = (f"dgram,id=n0,local.type=unix,local.path={self.net_qemu},"
                          f"remote.type=unix,remote.path={self.net_test}")
        argv = [
            str(qemu), *firmware_args(), "-machine", "q35", "-accel", accel, "-display", "none",
            "-nodefaults", "-no-user-config", "-m", str(RAM_MB),
            "-qtest", f"unix:{qtest_path}", "-qtest-log", str(self.dir / "qtest.log"),
            "-chardev", f"socket,id=qmp,path={self.dir / 'qmp.sock'},server=on,wait=off",
            "-mon", "chardev=qmp,mode=control",
            "-netdev", netdev_arg, *devices_before,
            "-device", f"bqnic,netdev=n0,id=nic0,queues={queues},rx-nobuf={rx_nobuf},"
                       f"mac=52:54:00:12:34:56{extra}",
            "-d", "guest_errors,invalid_mem", "-D", str(self.dir / "qemu.log"), *qemu_args,
        ]
        self.stderr = (self.dir / "stderr.log").open("w")
        self.proc = procs.spawn(argv, stdout=self.stderr, stderr=self.stderr, env=env)
        self.sock = self._accept(listener, "QEMU")
        if self.stream:
            self.net = self._accept(net_listener, "QEMU's netdev")
        self.sock.settimeout(timeout)  # a command that never returns: the device hangs
        self.file = self.sock.makefile("rwb", buffering=0)
        self.qmp = Qmp("qtest", self.dir / "qmp.sock", self.dir / "qmp-events.jsonl")
        self.qmp.connect()
        self.next_alloc = ALLOC_BASE
        self.bus = 0
        self.devfn = -1

    def _accept(self, listener: socket.socket, who: str) -> socket.socket:
        """The connection QEMU makes to a socket of ours; closes the listener."""
        listener.settimeout(15)
        try:
            return listener.accept()[0]
        except TimeoutError as e:
            self.close()
            raise QtestError(f"{who} did not connect: {self.stderr_text()}") from e
        finally:
            listener.close()

    # --- the protocol ---
    def cmd(self, line: str) -> str:
        self.file.write(line.encode() + b"\n")
        while True:
            reply = self.file.readline().decode().strip()
            if not reply:
                raise QtestError(f"QEMU closed the qtest socket after {line!r}: "
                                 f"{self.stderr_text()}")
            if reply.startswith("IRQ"):
                continue
            if not reply.startswith("OK"):
                raise QtestError(f"{line!r} -> {reply!r}")
            return reply[3:]

    def batch(self, lines: list[str]) -> None:
        """Send many commands, then read their replies: fast for bulk writes."""
        self.file.write(("\n".join(lines) + "\n").encode())
        for line in lines:
            reply = self.file.readline().decode().strip()
            while reply.startswith("IRQ"):
                reply = self.file.readline().decode().strip()
            if not reply.startswith("OK"):
                raise QtestError(f"{line!r} -> {reply!r}: {self.stderr_text()}")

    def readl(self, addr: int) -> int:
        return int(self.cmd(f"readl 0x{addr:x}"), 16)

    def writel(self, addr: int, val: int) -> None:
        self.cmd(f"writel 0x{addr:x} 0x{val & 0xffffffff:x}")

    def readw(self, addr: int) -> int:
        return int(self.cmd(f"readw 0x{addr:x}"), 16)

    def writew(self, addr: int, val: int) -> None:
        self.cmd(f"writew 0x{addr:x} 0x{val & 0xffff:x}")

    def writeb(self, addr: int, val: int) -> None:
        self.cmd(f"writeb 0x{addr:x} 0x{val & 0xff:x}")

    def writeq(self, addr: int, val: int) -> None:
        self.cmd(f"writeq 0x{addr:x} 0x{val:x}")

    def read(self, addr: int, size: int) -> bytes:
        if not size:
            return b""  # qtest asserts on a zero-length read
        return bytes.fromhex(self.cmd(f"read 0x{addr:x} 0x{size:x}")[2:])

    def write(self, addr: int, data: bytes) -> None:
        if data:
            self.cmd(f"write 0x{addr:x} 0x{len(data):x} 0x{data.hex()}")

    def memset(self, addr: int, size: int, value: int = 0) -> None:
        self.cmd(f"memset 0x{addr:x} 0x{size:x} 0x{value:02x}")

    def clock_step(self, ns: int) -> None:
        self.cmd(f"clock_step {ns}")

    def outl(self, port: int, val: int) -> None:
        self.cmd(f"outl 0x{port:x} 0x{val:x}")

    def inl(self, port: int) -> int:
        return int(self.cmd(f"inl 0x{port:x}"), 16)

    # --- PCI ---
    def _cfg_addr(self, reg: int) -> int:
        return 0x8000_0000 | (self.bus << 16) | (self.devfn << 8) | (reg & 0xFC)

    def cfg_readl(self, reg: int) -> int:
        self.outl(0xCF8, self._cfg_addr(reg))
        return self.inl(0xCFC)

    def cfg_writel(self, reg: int, val: int) -> None:
        self.outl(0xCF8, self._cfg_addr(reg))
        self.outl(0xCFC, val)

    def find_device(self, vendor: int = 0x1AF4, device: int = 0x10F0) -> None:
        for devfn in range(0, 256, 8):
            self.devfn = devfn
            if self.cfg_readl(0) == (device << 16) | vendor:
                return
        raise QtestError(f"bqnic not found on bus {self.bus}")

    def set_bus_master(self, on: bool) -> None:
        cmd = self.cfg_readl(4) & 0xFFFF
        cmd = (cmd | 0x6) if on else ((cmd | 0x2) & ~0x4)
        self.cfg_writel(4, cmd)

    def map_bars(self) -> None:
        self.cfg_writel(0x10, MMIO_BASE)
        self.cfg_writel(0x18, MSIX_BASE)
        self.set_bus_master(True)

    def capability(self, cap_id: int) -> int:
        ptr = self.cfg_readl(0x34) & 0xFF
        while ptr:
            header = self.cfg_readl(ptr)
            if header & 0xFF == cap_id:
                return ptr
            ptr = (header >> 8) & 0xFF
        raise QtestError(f"capability 0x{cap_id:x} not found")

    def enable_msix(self, vectors: int) -> None:
        cap = self.capability(0x11)
        table = self.cfg_readl(cap + 4)
        assert table & 7 == 2, "MSI-X table is in BAR2"
        base = MSIX_BASE + (table & ~7)
        for v in range(vectors):
            entry = base + 16 * v
            self.writel(entry, MSI_MAILBOX + 4 * v)
            self.writel(entry + 4, 0)
            self.writel(entry + 8, 0xB000 + v)
            self.writel(entry + 12, 0)  # unmasked
        ctrl = self.cfg_readl(cap)
        self.cfg_writel(cap, (ctrl | (1 << 31)) & ~(1 << 30))
        self.memset(MSI_MAILBOX, 4 * vectors)

    def msix_mask(self, vector: int, masked: bool) -> None:
        cap = self.capability(0x11)
        base = MSIX_BASE + (self.cfg_readl(cap + 4) & ~7)
        self.writel(base + 16 * vector + 12, 1 if masked else 0)

    def msi_fired(self, vector: int) -> bool:
        """True if vector's message arrived since the last call (clears it)."""
        addr = MSI_MAILBOX + 4 * vector
        if self.readl(addr) == 0xB000 + vector:
            self.writel(addr, 0)
            return True
        return False

    # --- guest memory ---
    def alloc(self, size: int, align: int = 64) -> int:
        addr = (self.next_alloc + align - 1) & ~(align - 1)
        self.next_alloc = addr + size
        if self.next_alloc > MSI_MAILBOX:
            raise QtestError("guest memory exhausted")
        self.memset(addr, size)
        return addr

    # --- the link ---
    def send_frame(self, frame: bytes) -> None:
        if self.stream:
            self.net.sendall(struct.pack("!I", len(frame)) + frame)
        else:
            self.net.sendto(frame, str(self.net_qemu))

    def recv_frame(self, timeout: float = 2.0) -> bytes | None:
        self.net.settimeout(timeout)
        try:
            if not self.stream:
                return self.net.recv(65536)
            (length,) = struct.unpack("!I", self._recv_exactly(4))
            return self._recv_exactly(length)
        except TimeoutError:
            return None

    def _recv_exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.net.recv(n - len(data))
            if not chunk:
                raise TimeoutError("the netdev closed the stream")
            data += chunk
        return data

    def sync(self) -> None:
        """Let QEMU's main loop deliver frames we sent: a qtest round trip after a pause."""
        time.sleep(0.05)
        self.cmd("clock_step 1")

    # --- QMP ---
    def stats(self) -> dict:
        return self.qmp.cmd("qom-get", path="/machine/peripheral/nic0", property="stats")

    def reset_stats(self) -> None:
        self.qmp.cmd("qom-set", path="/machine/peripheral/nic0", property="reset-stats",
                     value=True)

    def fail_dma(self, count: int | None = None) -> int:
        """Set how many of the next DMA transfers fail (SPEC 7.1); returns what is left."""
        if count is not None:
            self.qmp.cmd("qom-set", path="/machine/peripheral/nic0", property="fail-dma",
                         value=count)
        return self.qmp.cmd("qom-get", path="/machine/peripheral/nic0", property="fail-dma")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stderr_text(self) -> str:
        try:
            return (self.dir / "stderr.log").read_text()[-2000:]
        except OSError:
            return ""

    def guest_errors(self) -> str:
        try:
            return (self.dir / "qemu.log").read_text()
        except OSError:
            return ""

    def close(self) -> None:
        try:
            if hasattr(self, "qmp"):
                self.qmp.close()
        finally:
            procs.kill(self.proc)
            self.stderr.close()
            if hasattr(self, "net"):
                self.net.close()


@dataclass
class Frame:
    dst: bytes = bytes.fromhex("525400123456")
    src: bytes = bytes.fromhex("525400abcdef")

    def raw(self, payload: bytes, ethertype: int = 0x88B5) -> bytes:
        """A frame of a local experimental ethertype: no IP, so RSS sends it to queue 0."""
        return self.dst + self.src + ethertype.to_bytes(2, "big") + payload

