"""A structure-aware fuzzer for the bqnic model, over qtest.

Random register writes find little: this builds what a hostile driver would. Rings and
descriptors whose addresses point at fresh buffers, the device's own BARs and MSI-X table,
its own PCI config space and the host bridge's through MMCONFIG (a function-level reset
or bus mastering turned off by its own DMA), ranges that wrap past 2^64 or run off the end
of RAM; buffer queues posted and rung;
multi-fragment tx frames with wild lengths and checksum offsets; MSI-X messages aimed at
the device itself; resets, FLRs, bus mastering and link flips, ITR changes, clock steps;
and, all along, frames from the wire (0 to 9300 bytes, runts, valid and broken IPv4/IPv6
TCP/UDP) through a `-netdev stream` socket. One seed in four runs on `-netdev user`
instead, whose slirp answers some frames (ARP for its gateway) inside the device's own
transmit: no wire then, and the programs send such requests.

A finding is: QEMU died; an ASan or UBSan report on its stderr; a hang (a qtest command
that does not come back: a spin or a deadlock); a write into memory never handed to the
device (canary pages); or what the guest reads breaking SPEC.md (indices further apart
than the ring, `*_owned` counters that disagree with them, ID not answering).

Each seed is a program of low-level operations generated up front, so a finding replays
exactly and shrinks (delta debugging) to a short reproducer written as JSON.

    python -m tests.device.fuzz_bqnic --seconds 1800 --sanitize --out DIR
    python -m tests.device.fuzz_bqnic --replay DIR/finding-*.json
"""

import argparse
import json
import random
import shutil
import socket
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bqlab.build import qemu

from .bqnic_driver import (
    CTRL,
    CTRL_RESET,
    ID,
    LBQ_BUF_SIZE,
    MAX_FRAME,
    NUM_QUEUES,
    Q_BASE,
    Q_STRIDE,
    RSS_INDIR,
    RSS_KEY,
    SBQ_BUF_SIZE,
)
from .qtest_client import MMIO_BASE, MSIX_BASE, RAM_MB, Qtest

ID_VALUE = 0x62716E63
# MMCONFIG (q35's PCIEXBAR, enabled as firmware does) and the device pinned at 00:03.0, so
# that programs can aim DMA and messages at its config space and the host bridge's.
MMCONFIG = 0xB000_0000
DEVFN = 0x18
OWN_CONFIG = MMCONFIG + (DEVFN << 12)
PCIE_DEVCTL = 0xE0 + 8  # the PCI Express capability's Device Control (bit 15: FLR)
RAM_END = RAM_MB << 20
MAILBOX = 0x0080_0000  # where aimed-right MSI-X messages land (handed to the device)
HANDED = (0x0100_0000, 0x0400_0000)  # rings and buffers live here
# Never handed to the device: it must never write them. Not low memory: ring bases reset
# to 0, and a ring nobody filled hands buffers at 0 (its zeroed entries), so the device
# may rightly write anywhere in [0, 128 KiB); a range that wraps past 2^64 is caught by
# test_hostile.py instead.
CANARIES = [(0x0004_0000, 0x2000), (HANDED[1], 0x2000), (MAILBOX - 0x2000, 0x2000)]
CANARY_BYTE = 0xA5
BUF_STRIDE = 16 << 10  # room for the largest frame part a buffer can get (9220 bytes)
GLOBAL_REGS = [0x008, 0x018, 0x01C, 0x020, 0x024, 0x028, 0x02C, 0x100, 0x104, 0x108]
QREG = {"rxq": 0x00, "cq_lo": 0x08, "cq_hi": 0x0C, "cq_size": 0x10, "cq_prod": 0x14,
        "cq_cons": 0x18, "cq_arm": 0x1C, "sbq_lo": 0x20, "sbq_hi": 0x24, "sbq_size": 0x28,
        "sbq_prod": 0x2C, "sbq_cons": 0x30, "lbq_lo": 0x40, "lbq_hi": 0x44, "lbq_size": 0x48,
        "lbq_prod": 0x4C, "lbq_cons": 0x50, "txq": 0x60, "tx_lo": 0x68, "tx_hi": 0x6C,
        "tx_size": 0x70, "tx_prod": 0x74, "tx_cons": 0x78, "cause": 0x80, "mask": 0x84}
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:", "Assertion", "Bail out!",
                   "SUMMARY: UndefinedBehaviorSanitizer")

Op = list  # ["writel", addr, val] ...: JSON-able, replayable


@dataclass
class Finding:
    kind: str  # crash, sanitizer, hang, canary, spec
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


def qreg(q: int, name: str) -> int:
    return MMIO_BASE + Q_BASE + q * Q_STRIDE + QREG[name]


@dataclass
class RingModel:
    """What the generator believes a ring is: enough to build entries where they go."""
    base: int = 0
    size: int = 0
    prod: int = 0


@dataclass
class Generator:
    rng: random.Random
    queues: int
    ops: list[Op] = field(default_factory=list)
    next_buf: int = HANDED[0] + (1 << 20)  # rings below, buffers above
    next_ring: int = HANDED[0]
    bufs: list[int] = field(default_factory=list)
    rings: dict[tuple[int, str], RingModel] = field(default_factory=dict)
    link_up: bool = True
    synchronous: bool = False  # -netdev user: no wire; slirp answers some of what is sent

    # --- addresses ---
    def buffer(self) -> int:
        if len(self.bufs) < 512 and self.next_buf + BUF_STRIDE <= HANDED[1]:
            self.bufs.append(self.next_buf)
            self.next_buf += BUF_STRIDE
            return self.bufs[-1]
        return self.rng.choice(self.bufs)

    def ring_area(self, size: int) -> int:
        if self.next_ring + size > HANDED[0] + (1 << 20):
            self.next_ring = HANDED[0]  # reuse: old rings are still handed memory
        addr = self.next_ring
        self.next_ring += (size + 63) & ~63
        return addr

    def pointer(self, fresh: int) -> int:
        """Mostly where it should point; sometimes where a hostile guest would."""
        r = self.rng.random()
        if r < 0.85:
            return fresh
        return self.rng.choice([
            MMIO_BASE + self.rng.randrange(0, 0x2000, 4),  # the device's own registers
            MSIX_BASE + self.rng.randrange(0, 0x100, 4),  # its MSI-X table
            OWN_CONFIG + self.rng.choice([4, PCIE_DEVCTL - 2, PCIE_DEVCTL,
                                          self.rng.randrange(0, 0x100, 4)]),  # its config
            MMCONFIG + self.rng.randrange(0, 0x100, 4),  # the host bridge's config space
            (1 << 64) - self.rng.choice([8, 16, 256, 4096]),  # wraps to guest RAM at 0
            RAM_END - self.rng.choice([8, 256, 2048]),  # runs off the end of RAM
            0x0000_FFFF_0000_0000 + self.rng.randrange(1 << 20),  # nothing there
            self.rng.getrandbits(64) & ~7,
        ])

    def value(self) -> int:
        r = self.rng.random()
        if r < 0.4:
            return self.rng.choice([0, 1, 2, 3, 7, 8, 16, 64, 256, 1024, 4096, 4097, 65536,
                                    0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFF8])
        if r < 0.6:
            return self.rng.randrange(0, 512)
        return self.rng.getrandbits(32)

    # --- the program ---
    def emit(self, *op: object) -> None:
        self.ops.append(list(op))

    @staticmethod
    def handed(addr: int, size: int = 8) -> bool:
        """Ring contents are written only where the guest has memory for them."""
        return HANDED[0] <= addr and addr + size <= HANDED[1]

    def setup_queue(self, q: int) -> None:
        self.emit("writel", qreg(q, "rxq"), 0)
        self.emit("writel", qreg(q, "txq"), 0)
        for name, entry in (("cq", 32), ("sbq", 8), ("lbq", 8), ("tx", 16)):
            size = self.rng.choice([8, 16, 32, 64, 256]) if self.rng.random() < 0.95 \
                else self.value()
            base = self.pointer(self.ring_area(entry * min(size, 4096)))
            self.emit("writel", qreg(q, f"{name}_lo"), base & 0xFFFFFFFF)
            self.emit("writel", qreg(q, f"{name}_hi"), base >> 32)
            self.emit("writel", qreg(q, f"{name}_size"), size)
            if name == "cq" and self.handed(base, entry * min(size, 4096)):
                self.emit("memset", base, entry * min(size, 4096), 0)
            self.rings[(q, name)] = RingModel(base, size if size & (size - 1) == 0 else 0)
        self.emit("writel", qreg(q, "rxq"), 1)
        self.emit("writel", qreg(q, "txq"), 1)
        self.emit("writel", qreg(q, "mask"), 0)

    def post(self, q: int, which: str) -> None:
        ring = self.rings.get((q, which))
        if not ring or not ring.size:
            return
        for _ in range(self.rng.randrange(1, min(ring.size, 32) + 1)):
            at = ring.base + 8 * (ring.prod % ring.size)
            if self.handed(at):
                self.emit("writeq", at, self.pointer(self.buffer()))
            ring.prod = (ring.prod + 1) & 0xFFFFFFFF
        prod = ring.prod if self.rng.random() < 0.95 else self.value()
        self.emit("writel", qreg(q, f"{which}_prod"), prod)

    def transmit(self, q: int) -> None:
        ring = self.rings.get((q, "tx"))
        if not ring or not ring.size:
            return
        nfrags = self.rng.choice([1, 1, 1, 2, 3, 17])
        arp = self.synchronous and self.rng.random() < 0.5
        if arp:
            nfrags = 1
        for i in range(nfrags):
            buf = self.pointer(self.buffer())
            length = self.rng.choice([self.rng.randrange(1, 1600), 0, 9300, 65535])
            flags = 1 if i == nfrags - 1 or self.rng.random() < 0.05 else 0
            if self.rng.random() < 0.3:
                flags |= 2  # CSUM
            flags |= self.rng.getrandbits(16) & 0x7FFC if self.rng.random() < 0.05 else 0
            desc = struct.pack("<QHHHH", buf, length, flags, self.rng.randrange(0, 2000),
                               self.rng.randrange(0, 2000))
            if arp and HANDED[0] <= buf < HANDED[1]:
                length, flags = len(ARP_FOR_GATEWAY), 1
                desc = struct.pack("<QHHHH", buf, length, flags, 0, 0)
                self.emit("write", buf, ARP_FOR_GATEWAY.hex())
            elif HANDED[0] <= buf < HANDED[1]:
                self.emit("fill", buf, min(length, 1600), self.rng.getrandbits(32))
            at = ring.base + 16 * (ring.prod % ring.size)
            if self.handed(at, 16):
                self.emit("write", at, desc.hex())
            ring.prod = (ring.prod + 1) & 0xFFFFFFFF
        self.emit("writel", qreg(q, "tx_prod"), ring.prod)

    def frame(self) -> None:
        if self.synchronous:
            return  # no wire: what comes in is slirp's answers
        r = self.rng.random()
        if r < 0.05:
            # runts, zero-length ones too; but not while the link is down: QEMU's net
            # layer then answers "0 bytes taken" for it itself, which the stream netdev
            # takes as "hold on", and it never reads the socket again (not the device's).
            # The stream hands an empty record over only when the next bytes arrive: send
            # them at once, while the link is still up.
            data = bytes(self.rng.randrange(0 if self.link_up else 1, 14))
            if not data:
                self.emit("frame", "")
                data = bytes(60)
        elif r < 0.6:
            data = ip_frame(self.rng)
        else:
            n = self.rng.choice([self.rng.randrange(14, 300), self.rng.randrange(300, 1600),
                                 self.rng.randrange(1600, 9300)])
            data = self.rng.randbytes(n)
        self.emit("frame", data.hex())

    def step(self) -> None:
        q = self.rng.randrange(self.queues + 1)  # one past the last: out of range
        r = self.rng.random()
        if r < 0.25:
            self.frame()
        elif r < 0.40:
            self.post(q, self.rng.choice(["sbq", "lbq"]))
        elif r < 0.50:
            self.transmit(q)
        elif r < 0.58:
            self.emit("cqsync", q, self.rng.random() < 0.5)
        elif r < 0.66:
            self.emit("writel", MMIO_BASE + self.rng.choice(GLOBAL_REGS), self.ctrl_or_value())
        elif r < 0.72:
            self.emit("writel", qreg(q, self.rng.choice(list(QREG))), self.value())
        elif r < 0.76:
            self.emit("clock", self.rng.choice([1000, 50_000, 1_000_000, 5_000_000]))
        elif r < 0.80:
            self.setup_queue(q)
        elif r < 0.83:
            self.emit("readl", MMIO_BASE + self.rng.randrange(0, 0x10000, 4))
        elif r < 0.86:
            self.aim_vector()
        elif r < 0.88:
            self.emit("writel", MMIO_BASE + CTRL, CTRL_RESET)
        elif r < 0.89:
            self.emit("flr")
        elif r < 0.91:
            self.emit("busmaster", self.rng.random() < 0.6)
        elif r < 0.93:
            self.link_up = self.rng.random() < 0.7
            self.emit("link", self.link_up)
        elif r < 0.95:
            self.emit("writel", MMIO_BASE + RSS_INDIR + 4 * self.rng.randrange(32),
                      self.rng.getrandbits(32))
            self.emit("writel", MMIO_BASE + RSS_KEY + 4 * self.rng.randrange(10),
                      self.rng.getrandbits(32))
        elif r < 0.97:
            self.emit(self.rng.choice(["writeq", "writew", "writeb"]),
                      MMIO_BASE + self.rng.randrange(0, 0x1200), self.rng.getrandbits(32))
        else:
            self.emit("stats")

    def ctrl_or_value(self) -> int:
        if self.rng.random() < 0.5:
            return self.rng.getrandbits(8) & 0xFE  # CTRL feature bits, no reset
        return self.value()

    def aim_vector(self) -> None:
        vector = self.rng.randrange(self.queues + 1)
        target = self.rng.choice([MAILBOX + 4 * vector, MAILBOX + 4 * vector,
                                  MMIO_BASE + CTRL, qreg(0, "rxq"),
                                  MSIX_BASE + 16 * self.rng.randrange(self.queues + 1),
                                  OWN_CONFIG + 4, OWN_CONFIG + PCIE_DEVCTL,
                                  MMCONFIG + self.rng.randrange(0, 0x100, 4)])
        data = self.rng.choice([0xB000 + vector, CTRL_RESET, 1 << 15, 0, self.value()])
        entry = MSIX_BASE + 16 * vector
        self.emit("writel", entry, target & 0xFFFFFFFF)
        self.emit("writel", entry + 4, target >> 32)
        self.emit("writel", entry + 8, data)

    def start(self) -> None:
        self.emit("writel", MMIO_BASE + CTRL, CTRL_RESET)
        self.emit("writel", MMIO_BASE + SBQ_BUF_SIZE, self.rng.choice([64, 256, 4096]))
        self.emit("writel", MMIO_BASE + LBQ_BUF_SIZE, self.rng.choice([1024, 2048, 4096]))
        self.emit("writel", MMIO_BASE + MAX_FRAME, self.rng.choice([1518, 9018, 9216]))
        for q in range(self.queues):
            self.setup_queue(q)
            self.post(q, "sbq")
            self.post(q, "lbq")
        self.emit("writel", MMIO_BASE + CTRL, 0xDE if self.rng.random() < 0.5 else 0x06)


def ip_frame(rng: random.Random) -> bytes:
    """Ethernet + IPv4/IPv6 + TCP/UDP, lengths and checksums right or wrong."""
    v6 = rng.random() < 0.3
    proto = rng.choice([6, 17, 17, 1])
    payload = rng.randbytes(rng.choice([0, 8, rng.randrange(0, 1500), rng.randrange(0, 9000)]))
    l4 = struct.pack("!HHIIBBHHH", rng.getrandbits(16), rng.getrandbits(16), 0, 0, 0x50, 0x18,
                     4096, 0, 0) if proto == 6 else struct.pack(
        "!HHHH", rng.getrandbits(16), rng.getrandbits(16), 8 + len(payload),
        rng.choice([0, rng.getrandbits(16)]))
    body = l4 + payload
    if v6:
        ip = struct.pack("!IHBB16s16s", 0x60000000, len(body), proto, 64,
                         rng.randbytes(16), rng.randbytes(16))
        ethertype = 0x86DD
    else:
        frag = rng.choice([0, 0, 0, 0x2000, 0x0010])
        ip = struct.pack("!BBHHHBBH4s4s", rng.choice([0x45, 0x45, 0x46, 0x4F]), 0,
                         rng.choice([20 + len(body), rng.getrandbits(16)]), 1, frag, 64,
                         proto, 0, rng.randbytes(4), rng.randbytes(4))
        ethertype = 0x0800
    if rng.random() < 0.1:
        cut = rng.randrange(0, len(ip) + len(body))
        return (b"\x52\x54\x00\x12\x34\x56" + rng.randbytes(6) + struct.pack("!H", ethertype) +
                (ip + body)[:cut])
    return b"\x52\x54\x00\x12\x34\x56" + rng.randbytes(6) + struct.pack("!H", ethertype) + ip + body


# An ARP request from the device for slirp's gateway: answered at once, inside the send
ARP_FOR_GATEWAY = (b"\xff" * 6 + bytes.fromhex("525400123456") + b"\x08\x06" +
                   struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + bytes.fromhex("525400123456") +
                   bytes([10, 0, 2, 15]) + bytes(6) + bytes([10, 0, 2, 2]))


def generate(seed: int, steps: int, queues: int, netdev: str = "stream") -> list[Op]:
    gen = Generator(random.Random(seed), queues, synchronous=netdev == "user")
    gen.start()
    for _ in range(steps):
        gen.step()
    return gen.ops


class Wire:
    """The other end of `-netdev stream`: never blocks the fuzzer (a full socket drops)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.setblocking(False)
        self.out = b""

    def send(self, frame: bytes) -> None:
        if len(self.out) < (1 << 20):
            self.out += struct.pack("!I", len(frame)) + frame
        self.pump()

    def pump(self) -> None:
        try:
            while self.out:
                self.out = self.out[self.sock.send(self.out):]
        except (BlockingIOError, InterruptedError):
            pass
        try:
            while self.sock.recv(65536):
                pass
        except (BlockingIOError, InterruptedError):
            pass


class Target:
    """One QEMU with a bqnic under qtest, set up as a driver would before the program."""

    def __init__(self, binary: Path, workdir: Path, queues: int, rx_nobuf: str,
                 sanitize: bool, timeout: float = 30.0, netdev: str = "stream") -> None:
        self.qt = Qtest(binary, workdir, queues=queues, rx_nobuf=rx_nobuf, netdev=netdev,
                        env=qemu.SANITIZER_ENV if sanitize else None, timeout=timeout,
                        extra=f",addr=0x{DEVFN >> 3:x}")
        self.wire = Wire(self.qt.net) if netdev == "stream" else None
        qt = self.qt
        qt.devfn = 0  # the host bridge: MMCONFIG on
        qt.cfg_writel(0x64, 0)
        qt.cfg_writel(0x60, MMCONFIG | 1)
        qt.find_device()
        assert qt.devfn == DEVFN
        qt.map_bars()
        qt.enable_msix(queues + 1)
        for base, size in CANARIES:
            qt.memset(base, size, CANARY_BYTE)
        self.queues = queues
        # What the guest programmed, to know which memory it handed to the device: a ring
        # enabled at base 0 (the reset value) rightly gets written at 0.
        self.shadow: dict[tuple[int, int], int] = {}
        self.handed: list[tuple[int, int]] = []

    def note_register(self, addr: int, val: int) -> None:
        off = addr - MMIO_BASE
        if off == CTRL and val & CTRL_RESET:
            self.shadow.clear()
        if not (Q_BASE <= off < Q_BASE + 16 * Q_STRIDE):
            return
        q, reg = (off - Q_BASE) // Q_STRIDE, (off - Q_BASE) % Q_STRIDE
        self.shadow[(q, reg)] = val
        rings = {QREG["rxq"]: (("cq", 32), ("sbq", 8), ("lbq", 8)),
                 QREG["txq"]: (("tx", 16),)}.get(reg, ()) if val & 1 else ()
        for name, entry in rings:
            base = self.shadow.get((q, QREG[f"{name}_lo"]), 0) | \
                self.shadow.get((q, QREG[f"{name}_hi"]), 0) << 32
            size = self.shadow.get((q, QREG[f"{name}_size"]), 0)
            if 8 <= size <= 4096:
                self.handed.append((base, base + entry * size))

    def run(self, op: Op) -> None:
        qt, kind = self.qt, op[0]
        if kind == "writel":
            self.note_register(op[1], op[2])
            qt.writel(op[1], op[2])
        elif kind == "readl":
            qt.readl(op[1])
        elif kind == "writeq":
            qt.writeq(op[1], op[2] & ((1 << 64) - 1))
        elif kind == "writew":
            qt.writew(op[1], op[2])
        elif kind == "writeb":
            qt.writeb(op[1], op[2])
        elif kind == "write":
            qt.write(op[1], bytes.fromhex(op[2]))
        elif kind == "memset":
            qt.memset(op[1], op[2], op[3])
        elif kind == "fill":
            qt.write(op[1], random.Random(op[3]).randbytes(op[2]))
        elif kind == "frame":
            if self.wire is not None:
                self.wire.send(bytes.fromhex(op[1]))
        elif kind == "cqsync":
            q, arm = op[1], op[2]
            qt.writel(qreg(q, "cq_arm" if arm else "cq_cons"), qt.readl(qreg(q, "cq_prod")))
        elif kind == "clock":
            qt.clock_step(op[1])
        elif kind == "flr":
            self.shadow.clear()
            cap = qt.capability(0x10)
            qt.cfg_writel(cap + 8, (qt.cfg_readl(cap + 8) & 0xFFFF) | (1 << 15))
            qt.map_bars()  # an FLR resets the config space: BARs, MSI-X enable
            qt.enable_msix(self.queues + 1)
        elif kind == "busmaster":
            qt.set_bus_master(op[1])
        elif kind == "link":
            qt.qmp.cmd("set_link", name="n0", up=op[1])
        elif kind == "stats":
            self.check_stats()
        else:
            raise ValueError(f"unknown op {op!r}")
        if self.wire is not None:
            self.wire.pump()

    # --- what must hold ---
    def check(self) -> None:
        qt = self.qt
        if qt.readl(MMIO_BASE + ID) != ID_VALUE:
            raise FindingError(Finding("spec", "ID does not read 'bqnc'"))
        if qt.readl(MMIO_BASE + NUM_QUEUES) != self.queues:
            raise FindingError(Finding("spec", "NUM_QUEUES changed"))
        for q in range(self.queues):
            regs = {n: qt.readl(qreg(q, n)) for n in QREG if not n.endswith(("_lo", "_hi"))}
            for ring, prod, cons, size, on in (
                    ("cq", "cq_prod", "cq_cons", "cq_size", "rxq"),
                    ("sbq", "sbq_prod", "sbq_cons", "sbq_size", "rxq"),
                    ("lbq", "lbq_prod", "lbq_cons", "lbq_size", "rxq"),
                    ("tx", "tx_prod", "tx_cons", "tx_size", "txq")):
                if regs[on] & 1 and (regs[prod] - regs[cons]) & 0xFFFFFFFF > regs[size]:
                    raise FindingError(Finding(
                        "spec", f"queue {q} {ring}: producer {regs[prod]} consumer "
                                f"{regs[cons]} further apart than the ring ({regs[size]})"))
        stats = self.check_stats()
        for q in range(self.queues):
            for bq in ("sbq", "lbq"):
                owned = (qt.readl(qreg(q, f"{bq}_prod")) - qt.readl(qreg(q, f"{bq}_cons")))
                if stats[q][f"{bq}_owned"] != owned & 0xFFFFFFFF:
                    raise FindingError(Finding(
                        "spec", f"queue {q}: {bq}_owned {stats[q][f'{bq}_owned']} but "
                                f"producer - consumer = {owned & 0xFFFFFFFF}"))
        for base, size in CANARIES:
            data = qt.read(base, size)
            stray = [base + i for i, b in enumerate(data) if b != CANARY_BYTE and
                     not any(lo <= base + i < hi for lo, hi in self.handed)]
            if stray:
                raise FindingError(Finding(
                    "canary", f"0x{stray[0]:x} written, never handed to the device"))

    def revive(self) -> None:
        """Whatever happened, a reset and a plain driver must get frames from the wire
        again: the marker frame sent last must come out of the cq (the frames queued
        before it, rx-nobuf=queue or not, are consumed and their buffers reposted)."""
        qt = self.qt
        qt.writel(MMIO_BASE + CTRL, CTRL_RESET)
        qt.set_bus_master(True)
        qt.qmp.cmd("set_link", name="n0", up=True)
        cq, sbq, lbq, tx = MAILBOX + 0x1000, MAILBOX + 0x2000, MAILBOX + 0x2400, MAILBOX + 0x2800
        sbq_bufs, lbq_bufs = MAILBOX + 0x4000, MAILBOX + 0x10000
        qt.memset(cq, 64 * 32, 0)
        for name, base in (("cq", cq), ("sbq", sbq), ("lbq", lbq), ("tx", tx)):
            qt.writel(qreg(0, f"{name}_lo"), base)
            qt.writel(qreg(0, f"{name}_hi"), 0)
            qt.writel(qreg(0, f"{name}_size"), 64)
        qt.write(sbq, b"".join(struct.pack("<Q", sbq_bufs + 256 * i) for i in range(64)))
        qt.write(lbq, b"".join(struct.pack("<Q", lbq_bufs + 4096 * i) for i in range(64)))
        qt.writel(MMIO_BASE + MAX_FRAME, 9216)
        qt.writel(qreg(0, "rxq"), 1)
        qt.writel(qreg(0, "sbq_prod"), 64)
        qt.writel(qreg(0, "lbq_prod"), 64)
        marker = b"\x52\x54\x00\x12\x34\x56" + bytes(6) + b"\x88\xb5" + b"revive!!" * 8
        if self.wire is None:
            # slirp answers an ARP request from the device: that answer is the marker
            marker = self.revive_by_asking(tx)
        qt.writel(MMIO_BASE + CTRL, 0x02 if self.wire else 0x06)  # RX_EN (and TX_EN)
        cons, deadline = 0, time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if self.wire is not None and len(self.wire.out) < 4096:
                self.wire.send(marker)  # again: with drops, one may meet no buffer
            for reg in ("sbq", "lbq"):  # everything taken is posted again
                qt.writel(qreg(0, f"{reg}_prod"), qt.readl(qreg(0, f"{reg}_cons")) + 64)
            prod = qt.readl(qreg(0, "cq_prod"))
            while cons != prod:
                entry = qt.read(cq + 32 * (cons % 64), 32)
                length, hdr_len, nsbq = struct.unpack_from("<IHB", entry)
                sbq_index = struct.unpack_from("<H", entry, 16)[0]
                if nsbq and length == len(marker) and qt.read(
                        sbq_bufs + 256 * sbq_index, length) == marker:
                    return
                cons = (cons + 1) & 0xFFFFFFFF
            qt.writel(qreg(0, "cq_cons"), cons)
            if self.wire is not None:
                self.wire.pump()
            time.sleep(0.005)
            qt.clock_step(1000)
        unread = f"{len(self.wire.out)} bytes still unread by QEMU" if self.wire else \
            "slirp's answer to an ARP request never came in"
        raise FindingError(Finding(
            "wedged", f"after a reset, a plain driver never received the frame sent last "
                      f"({unread})"))

    def revive_by_asking(self, tx: int) -> bytes:
        """Queue an ARP request for the gateway on tx ring 0 (sent once TX_EN is set), and
        return the answer slirp gives: the frame revive() must see come in."""
        qt = self.qt
        buf = MAILBOX + 0x3000
        qt.write(buf, ARP_FOR_GATEWAY)
        qt.write(tx, struct.pack("<QHHHH", buf, len(ARP_FOR_GATEWAY), 1, 0, 0))
        qt.writel(qreg(0, "txq"), 1)
        qt.writel(qreg(0, "tx_prod"), 1)
        gateway_mac = bytes.fromhex("52550a000202")  # slirp: 52:55 and the IP address
        answer = (bytes.fromhex("525400123456") + gateway_mac + b"\x08\x06" +
                  struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) + gateway_mac +
                  bytes([10, 0, 2, 2]) + bytes.fromhex("525400123456") +
                  bytes([10, 0, 2, 15]))
        return answer + bytes(64 - len(answer))  # slirp sends it padded to 64 bytes

    def check_stats(self) -> list[dict]:
        """The per-queue stats, once they are checked."""
        queues = self.qt.stats()["queues"]
        for q, st in enumerate(queues):
            if st["sbq_owned"] > 4096 or st["lbq_owned"] > 4096:
                raise FindingError(Finding("spec", f"queue {q} owns more than a ring: {st}"))
        return queues

    def sanitizer_report(self) -> str | None:
        text = self.qt.stderr_text()
        return next((m for m in SANITIZER_MARKS if m in text), None)

    def close(self) -> None:
        self.qt.close()


class FindingError(Exception):
    def __init__(self, finding: Finding) -> None:
        super().__init__(str(finding))
        self.finding = finding


def execute(binary: Path, workdir: Path, program: dict, sanitize: bool,
            check_every: int = 500, timeout: float = 30.0,
            inject: Callable[[Target, int], None] | None = None) -> tuple[Finding | None, int]:
    """Run a program on a fresh QEMU; returns its finding (or None) and the ops run.
    inject(target, i) runs after op i: the detectors' negative controls break things
    there."""
    done = 0
    target = None
    try:
        target = Target(binary, workdir, program["queues"], program["rx_nobuf"], sanitize,
                        timeout, program.get("netdev", "stream"))
        for i, op in enumerate(program["ops"]):
            target.run(op)
            done += 1
            if inject is not None:
                inject(target, i)
            if (i + 1) % check_every == 0:
                target.check()
        target.check()
        target.revive()
        return _after(target, None), done
    except FindingError as e:
        return _after(target, e.finding), done
    except Exception as e:  # noqa: BLE001 - whatever the dead QEMU made the client raise
        if target is None:
            raise
        if isinstance(e, TimeoutError) or "timed out" in str(e):
            return Finding("hang", f"a qtest command did not return after op {done}"), done
        return _after(target, Finding("crash", f"QEMU went away at op {done}: "
                                      f"{target.qt.stderr_text()[-600:]}")), done
    finally:
        if target is not None:
            target.close()


def _after(target: Target | None, finding: Finding | None) -> Finding | None:
    """A sanitizer report outranks whatever else was seen: it names the cause."""
    if target is not None:
        time.sleep(0.05)
        mark = target.sanitizer_report()
        if mark:
            return Finding("sanitizer", target.qt.stderr_text()[-1500:])
    return finding


def program_for(seed: int, steps: int) -> dict:
    rng = random.Random(seed ^ 0x5EED)
    queues = rng.choice([1, 2, 4])
    netdev = "user" if seed % 4 == 3 else "stream"
    return {"seed": seed, "queues": queues, "rx_nobuf": rng.choice(["drop", "drop", "queue"]),
            "netdev": netdev, "ops": generate(seed, steps, queues, netdev)}


def shrink(binary: Path, workdir: Path, program: dict, finding: Finding, sanitize: bool,
           budget_s: float) -> dict:
    """Delta debugging over the ops: keep removing chunks while the same kind of finding
    still shows, within the time budget."""
    deadline = time.monotonic() + budget_s
    ops = program["ops"]
    chunk = max(1, len(ops) // 2)
    while chunk >= 1 and time.monotonic() < deadline:
        i, changed = 0, False
        while i < len(ops) and time.monotonic() < deadline:
            trial = dict(program, ops=ops[:i] + ops[i + chunk:])
            got, _ = execute(binary, workdir / "shrink", trial, sanitize)
            if got is not None and got.kind == finding.kind:
                ops, changed = trial["ops"], True
            else:
                i += chunk
        if not changed:
            chunk //= 2
    return dict(program, ops=ops)


@dataclass
class Summary:
    seeds: int = 0
    ops: int = 0
    seconds: float = 0.0
    findings: list[tuple[Finding, Path]] = field(default_factory=list)


def fuzz(binary: Path, workdir: Path, seeds: list[int] | None, seconds: float, steps: int,
         sanitize: bool, shrink_s: float = 0.0, log=print) -> Summary:
    """Fixed seeds (each run once), or fresh ones until `seconds` are up."""
    summary = Summary()
    start = time.monotonic()
    pending = list(seeds) if seeds is not None else None
    next_seed = random.SystemRandom().getrandbits(31)
    while True:
        if pending is not None:
            if not pending:
                break
            seed = pending.pop(0)
        else:
            if time.monotonic() - start >= seconds:
                break
            seed, next_seed = next_seed, next_seed + 1
        program = program_for(seed, steps)
        finding, done = execute(binary, workdir / f"seed-{seed}", program, sanitize)
        summary.seeds += 1
        summary.ops += done
        if finding is None:
            shutil.rmtree(workdir / f"seed-{seed}", ignore_errors=True)  # logs of a clean run
        else:
            log(f"seed {seed}: {finding}")
            if shrink_s:
                program = shrink(binary, workdir, program, finding, sanitize, shrink_s)
            path = workdir / f"finding-{seed}.json"
            path.write_text(json.dumps({"finding": str(finding), **program}) + "\n")
            summary.findings.append((finding, path))
    summary.seconds = time.monotonic() - start
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.device.fuzz_bqnic",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="fresh seeds until then")
    p.add_argument("--seed", type=int, action="append", help="run these seeds only")
    p.add_argument("--steps", type=int, default=2000, help="generator steps per seed")
    p.add_argument("--sanitize", action="store_true", help="the ASan+UBSan QEMU build")
    p.add_argument("--shrink", type=float, default=300.0,
                   help="seconds to shrink each finding into a reproducer")
    p.add_argument("--out", type=Path, default=Path("fuzz-out"))
    p.add_argument("--replay", type=Path, help="run one reproducer and say what it finds")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    binary = qemu.binary(qemu.build(sanitize=args.sanitize))
    if args.replay:
        program = json.loads(args.replay.read_text())
        finding, done = execute(binary, args.out / "replay", program, args.sanitize)
        print(f"{args.replay}: {done} ops: {finding or 'no finding'}")
        return 1 if finding else 0
    s = fuzz(binary, args.out, args.seed, args.seconds, args.steps, args.sanitize,
             shrink_s=args.shrink)
    build = "ASan+UBSan" if args.sanitize else "normal"
    print(f"fuzzed bqnic ({build} build): {s.seeds} seeds, {s.ops} ops in {s.seconds:.0f} s; "
          f"{len(s.findings)} finding(s)")
    for finding, path in s.findings:
        print(f"  {finding.kind}: reproducer {path}")
    return 1 if s.findings else 0


if __name__ == "__main__":
    sys.exit(main())
