"""A minimal bqnic "driver" in Python, written from qemu-device/SPEC.md, for qtest tests."""

import struct
from dataclasses import dataclass, field

from .qtest_client import MMIO_BASE, Qtest

# Registers (SPEC.md section 3)
ID, VERSION, CTRL, STATUS, NUM_QUEUES, MAX_RING = 0x000, 0x004, 0x008, 0x00C, 0x010, 0x014
MAC_LO, MAC_HI, MAX_FRAME, MISC_CAUSE, MISC_MASK, ITR = 0x018, 0x01C, 0x020, 0x024, 0x028, 0x02C
DMA_ERR_LO, DMA_ERR_HI, DMA_ERR_WHERE = 0x030, 0x034, 0x038
RSS_KEY, RSS_INDIR = 0x040, 0x080
SBQ_BUF_SIZE, LBQ_BUF_SIZE, BQ_LOW_MARK = 0x100, 0x104, 0x108

CTRL_RESET, CTRL_RX_EN, CTRL_TX_EN, CTRL_HDR_SPLIT = 1, 2, 4, 8
CTRL_RSS_EN, CTRL_BQ_LOW_IRQ, CTRL_RX_CSUM, CTRL_IRQ_AUTO = 16, 32, 64, 128
STATUS_LINK_UP, STATUS_DMA_ERR, STATUS_QSTOPPED = 1, 2, 4
MISC_LINK, MISC_DMA_ERR = 1, 2

Q_BASE, Q_STRIDE = 0x1000, 0x100
RXQ_CTRL, RXQ_STATUS = 0x00, 0x04
CQ_BASE_LO, CQ_BASE_HI, CQ_SIZE, CQ_PROD, CQ_CONS, CQ_ARM = 0x08, 0x0C, 0x10, 0x14, 0x18, 0x1C
SBQ_BASE_LO, SBQ_BASE_HI, SBQ_SIZE, SBQ_PROD, SBQ_CONS = 0x20, 0x24, 0x28, 0x2C, 0x30
LBQ_BASE_LO, LBQ_BASE_HI, LBQ_SIZE, LBQ_PROD, LBQ_CONS = 0x40, 0x44, 0x48, 0x4C, 0x50
TXQ_CTRL, TXQ_STATUS = 0x60, 0x64
TX_BASE_LO, TX_BASE_HI, TX_SIZE, TX_PROD, TX_CONS = 0x68, 0x6C, 0x70, 0x74, 0x78
Q_CAUSE, Q_MASK = 0x80, 0x84
DROP_NO_SBQ, DROP_NO_LBQ, DROP_CQ_FULL = 0x88, 0x8C, 0x90
QCAUSE_RX, QCAUSE_TX, QCAUSE_BQ_LOW = 1, 2, 4

F_RSS, F_L4_OK, F_L4_BAD, F_IPV4, F_IPV6, F_TCP, F_UDP, F_SPLIT = \
    1, 8, 16, 32, 64, 128, 256, 512
TXD_EOP, TXD_CSUM, TXD_DONE = 1, 2, 0x8000


@dataclass
class Cqe:
    length: int
    hdr_len: int
    nsbq: int
    nlbq: int
    rss_hash: int
    flags: int
    phase: int
    sbq_index: int
    lbq_index: int

    @classmethod
    def parse(cls, raw: bytes) -> "Cqe":
        length, hdr_len, nsbq, nlbq, rss_hash, flags, _res, phase, sbq_i, lbq_i = \
            struct.unpack_from("<IHBBIHBBHH", raw)
        return cls(length, hdr_len, nsbq, nlbq, rss_hash, flags, phase & 1, sbq_i, lbq_i)


@dataclass
class Queue:
    index: int
    cq: int = 0
    cq_size: int = 0
    sbq: int = 0
    sbq_size: int = 0
    lbq: int = 0
    lbq_size: int = 0
    tx: int = 0
    tx_size: int = 0
    cq_cons: int = 0
    sbq_prod: int = 0
    sbq_cons: int = 0
    lbq_prod: int = 0
    lbq_cons: int = 0
    tx_prod: int = 0
    sbq_bufs: dict[int, int] = field(default_factory=dict)  # slot -> buffer address
    lbq_bufs: dict[int, int] = field(default_factory=dict)


class Bqnic:
    def __init__(self, qt: Qtest, sbq_buf: int = 256, lbq_buf: int = 4096):
        self.qt = qt
        qt.find_device()
        qt.map_bars()
        self.num_queues = self.read(NUM_QUEUES)
        qt.enable_msix(self.num_queues + 1)
        self.sbq_buf = sbq_buf
        self.lbq_buf = lbq_buf
        self.queues = [Queue(i) for i in range(self.num_queues)]

    # registers
    def read(self, reg: int) -> int:
        return self.qt.readl(MMIO_BASE + reg)

    def write(self, reg: int, val: int) -> None:
        self.qt.writel(MMIO_BASE + reg, val)

    def qreg(self, q: int, reg: int) -> int:
        return Q_BASE + q * Q_STRIDE + reg

    def qread(self, q: int, reg: int) -> int:
        return self.read(self.qreg(q, reg))

    def qwrite(self, q: int, reg: int, val: int) -> None:
        self.write(self.qreg(q, reg), val)

    def reset(self) -> None:
        self.write(CTRL, CTRL_RESET)
        self.queues = [Queue(i) for i in range(self.num_queues)]

    def setup_queue(self, qi: int, cq_size: int = 64, sbq_size: int = 64,
                    lbq_size: int = 64, tx_size: int = 64) -> Queue:
        q = self.queues[qi] = Queue(qi)
        qt = self.qt
        q.cq, q.cq_size = qt.alloc(32 * cq_size), cq_size
        q.sbq, q.sbq_size = qt.alloc(8 * sbq_size), sbq_size
        q.lbq, q.lbq_size = qt.alloc(8 * lbq_size), lbq_size
        q.tx, q.tx_size = qt.alloc(16 * tx_size), tx_size
        for base, lo, hi, size_reg, size in (
                (q.cq, CQ_BASE_LO, CQ_BASE_HI, CQ_SIZE, cq_size),
                (q.sbq, SBQ_BASE_LO, SBQ_BASE_HI, SBQ_SIZE, sbq_size),
                (q.lbq, LBQ_BASE_LO, LBQ_BASE_HI, LBQ_SIZE, lbq_size),
                (q.tx, TX_BASE_LO, TX_BASE_HI, TX_SIZE, tx_size)):
            self.qwrite(qi, lo, base & 0xFFFFFFFF)
            self.qwrite(qi, hi, base >> 32)
            self.qwrite(qi, size_reg, size)
        self.qwrite(qi, RXQ_CTRL, 1)
        self.qwrite(qi, TXQ_CTRL, 1)
        self.qwrite(qi, Q_MASK, 0)
        return q

    def start(self, extra_ctrl: int = 0) -> None:
        self.write(SBQ_BUF_SIZE, self.sbq_buf)
        self.write(LBQ_BUF_SIZE, self.lbq_buf)
        self.write(CTRL, CTRL_RX_EN | CTRL_TX_EN | extra_ctrl)

    # buffers
    def post(self, qi: int, which: str, count: int) -> None:
        q = self.queues[qi]
        size = q.sbq_size if which == "sbq" else q.lbq_size
        ring = q.sbq if which == "sbq" else q.lbq
        buf_size = self.sbq_buf if which == "sbq" else self.lbq_buf
        bufs = q.sbq_bufs if which == "sbq" else q.lbq_bufs
        prod = q.sbq_prod if which == "sbq" else q.lbq_prod
        for _ in range(count):
            slot = prod % size
            addr = bufs.get(slot) or self.qt.alloc(buf_size)
            bufs[slot] = addr
            self.qt.writeq(ring + 8 * slot, addr)
            prod = (prod + 1) & 0xFFFFFFFF
        if which == "sbq":
            q.sbq_prod = prod
            self.qwrite(qi, SBQ_PROD, prod)
        else:
            q.lbq_prod = prod
            self.qwrite(qi, LBQ_PROD, prod)

    def completions(self, qi: int) -> list[tuple[Cqe, bytes]]:
        """Completions the device handed over, with the frame reassembled from buffers."""
        q = self.queues[qi]
        out = []
        while True:
            slot = q.cq_cons % q.cq_size
            expected_phase = 0 if (q.cq_cons // q.cq_size) & 1 else 1
            cqe = Cqe.parse(self.qt.read(q.cq + 32 * slot, 32))
            if cqe.phase != expected_phase:
                break
            data = b""
            if cqe.nsbq:
                assert cqe.sbq_index == q.sbq_cons % q.sbq_size
                data += self.qt.read(q.sbq_bufs[cqe.sbq_index], cqe.hdr_len)
                q.sbq_cons += 1
            remaining = cqe.length - cqe.hdr_len
            for i in range(cqe.nlbq):
                slot_l = q.lbq_cons % q.lbq_size
                if i == 0:
                    assert cqe.lbq_index == slot_l
                chunk = min(self.lbq_buf, remaining)
                data += self.qt.read(q.lbq_bufs[slot_l], chunk)
                remaining -= chunk
                q.lbq_cons += 1
            out.append((cqe, data))
            q.cq_cons += 1
        if out:
            self.qwrite(qi, CQ_CONS, q.cq_cons & 0xFFFFFFFF)
        return out

    # transmit
    def transmit(self, qi: int, fragments: list[bytes], csum: tuple[int, int] | None = None,
                 doorbell: bool = True) -> list[int]:
        """Queue one frame; returns the descriptor slots used."""
        q = self.queues[qi]
        slots = []
        for i, frag in enumerate(fragments):
            slot = q.tx_prod % q.tx_size
            buf = self.qt.alloc(max(len(frag), 1))
            self.qt.write(buf, frag)
            flags = TXD_EOP if i == len(fragments) - 1 else 0
            start, offset = csum if csum and i == 0 else (0, 0)
            if csum and i == 0:
                flags |= TXD_CSUM
            self.qt.write(q.tx + 16 * slot,
                          struct.pack("<QHHHH", buf, len(frag), flags, start, offset))
            slots.append(slot)
            q.tx_prod += 1
        if doorbell:
            self.qwrite(qi, TX_PROD, q.tx_prod & 0xFFFFFFFF)
        return slots

    def tx_done(self, qi: int, slot: int) -> bool:
        q = self.queues[qi]
        flags = struct.unpack("<H", self.qt.read(q.tx + 16 * slot + 10, 2))[0]
        return bool(flags & TXD_DONE)

    def queue_stats(self, qi: int) -> dict:
        return self.qt.stats()["queues"][qi]
