"""Nothing the device emits may reset, reconfigure or disable it (SPEC 7), and a reset that
does come in the middle of its work ends that work (SPEC 9): issue 22's classes.

Each test failed on the model before its fix, as its docstring says: the device's own DMA
or MSI-X message aimed through MMCONFIG at its own config space (a function-level reset in
the middle of a frame: SIGFPE, a write to guest physical address 0; bus mastering turned
off), a frame the netdev answered inside the device's own transmit, an interrupt sent again
for a cause already reported, a producer moved back, and migration streams with state no
register write could make.
"""

import contextlib
import struct
import time
from pathlib import Path

from .bqnic_driver import (
    CQ_ARM,
    CTRL,
    CTRL_BQ_LOW_IRQ,
    CTRL_RX_EN,
    CTRL_TX_EN,
    MAC_LO,
    MAX_FRAME,
    MISC_CAUSE,
    MISC_LINK,
    MISC_MASK,
    Q_CAUSE,
    Q_MASK,
    QCAUSE_RX,
    SBQ_PROD,
    TX_CONS,
    Bqnic,
)
from .qtest_client import Frame, Qtest
from .test_hostile import aim_vector_at
from .test_migration import wait_migration

PCI_CAP_ID_EXP = 0x10
FLR = 1 << 15  # Device Control: Initiate Function Level Reset
MMCONFIG = 0xB000_0000  # q35's default PCIEXBAR
REFUSED = "by the device's own DMA or message (refused)"


def started(qt: Qtest, queues: int = 1, lbq_buf: int = 4096, ctrl: int = 0) -> Bqnic:
    nic = Bqnic(qt, lbq_buf=lbq_buf)
    for q in range(queues):
        nic.setup_queue(q)
    nic.start(ctrl)
    return nic


def own_config_space(qt: Qtest) -> int:
    """Turn MMCONFIG on (q35's PCIEXBAR, host bridge register 0x60), as firmware does, and
    return where the device's own config space is in it: memory any DMA can reach."""
    devfn, qt.devfn = qt.devfn, 0
    qt.cfg_writel(0x64, 0)
    qt.cfg_writel(0x60, MMCONFIG | 1)
    qt.devfn = devfn
    base = MMCONFIG + (devfn << 12)
    assert qt.readl(base) == qt.cfg_readl(0)
    return base


def test_rx_dma_into_own_device_control_cannot_reset_the_device(qt) -> None:
    """A receive buffer posted at the device's own Device Control (through MMCONFIG): the
    frame's first bytes set Initiate FLR. Before: the device reset in the middle of the
    frame, wrote its second chunk to guest physical address 0 (memory nobody handed it) and
    died dividing by the reset completion queue's size (SIGFPE)."""
    nic = started(qt, lbq_buf=1024)
    devctl = own_config_space(qt) + qt.capability(PCI_CAP_ID_EXP) + 8
    qt.write(0, b"\x5a" * 1024)
    nic.queues[0].lbq_bufs[0] = devctl
    nic.post(0, "lbq", 2)
    frame = Frame(dst=bytes([0, FLR >> 8, 0, 0, 0, 0])).raw(b"f" * 1400)
    qt.send_frame(frame)
    qt.sync()
    assert qt.alive(), qt.stderr_text()
    assert qt.read(0, 1024) == b"\x5a" * 1024
    assert nic.read(CTRL) == CTRL_RX_EN | CTRL_TX_EN  # not reset
    assert qt.cfg_readl(4) & 0x6 == 0x6  # memory space and bus mastering still on
    assert REFUSED in qt.guest_errors()
    [(cqe, _)] = nic.completions(0)
    assert (cqe.length, cqe.nlbq) == (len(frame), 2)


def test_message_into_own_config_space_cannot_turn_bus_mastering_off(qt) -> None:
    """An MSI-X message aimed at the device's own Command register, with data 0. Before:
    the rx interrupt turned memory space and bus mastering off."""
    nic = started(qt)
    aim_vector_at(qt, 0, own_config_space(qt) + 4, 0)
    nic.post(0, "sbq", 4)
    qt.send_frame(Frame().raw(b"x" * 60))
    qt.sync()
    assert qt.cfg_readl(4) & 0x6 == 0x6
    assert REFUSED in qt.guest_errors()
    qt.send_frame(Frame().raw(b"y" * 60))
    qt.sync()
    assert len(nic.completions(0)) == 2


def test_held_frame_and_own_flr_do_not_leave_reception_deaf(make_qtest) -> None:
    """rx-nobuf=queue holds a frame for buffers and raises BQ_LOW, whose message is aimed
    at the device's own Device Control with Initiate FLR. Before: the reset ran inside the
    receive, then the frame was held anyway and nothing delivered again: reception stayed
    deaf after the driver set the device up again."""
    qt = make_qtest(rx_nobuf="queue")
    nic = started(qt, ctrl=CTRL_BQ_LOW_IRQ)
    devctl = own_config_space(qt) + qt.capability(PCI_CAP_ID_EXP) + 8
    aim_vector_at(qt, 0, devctl, FLR)
    qt.send_frame(Frame().raw(b"held" * 15))
    qt.sync()
    nic.post(0, "sbq", 4)  # the device was not reset: the held frame goes in now
    qt.sync()
    aim_vector_at(qt, 0, 0x00F0_0000, 0xB000)
    qt.send_frame(Frame().raw(b"next" * 15))
    qt.sync()
    assert [d[14:18] for _, d in nic.completions(0)] == [b"held", b"next"]


def test_answer_to_a_sent_frame_waits_for_the_send_to_end(make_qtest) -> None:
    """-netdev user answers an ARP request for its gateway inside the device's transmit.
    The answer's rx DMA fails (its buffer is outside RAM) and stops the queue pair. Before:
    that ran inside the transmit, which then wrote DONE into the stopped queue's tx ring
    and never advanced TX_CONS past it. Now the answer waits until the frame is completed."""
    qt = make_qtest(netdev="user")
    nic = started(qt)
    nic.queues[0].sbq_bufs[0] = 0x4000_0000  # past the end of RAM
    nic.post(0, "sbq", 1)
    arp = (b"\xff" * 6 + bytes.fromhex("525400123456") + b"\x08\x06" +
           struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + bytes.fromhex("525400123456") +
           bytes([10, 0, 2, 15]) + b"\0" * 6 + bytes([10, 0, 2, 2]))
    [slot] = nic.transmit(0, [arp])
    qt.sync()
    assert qt.stats()["dma_errors"] == 1  # the answer came, and hit the bad buffer
    assert nic.tx_done(0, slot) and nic.qread(0, TX_CONS) == 1


def test_answer_inside_transmit_is_delivered(make_qtest) -> None:
    """The waiting answer is delivered once the transmit ends, not lost."""
    qt = make_qtest(netdev="user")
    nic = started(qt)
    nic.post(0, "sbq", 4)
    arp = (b"\xff" * 6 + bytes.fromhex("525400123456") + b"\x08\x06" +
           struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + bytes.fromhex("525400123456") +
           bytes([10, 0, 2, 15]) + b"\0" * 6 + bytes([10, 0, 2, 2]))
    nic.transmit(0, [arp])
    qt.sync()
    [(_, reply)] = nic.completions(0)
    assert reply[12:14] == b"\x08\x06" and reply[20:22] == b"\x00\x02"  # an ARP reply


def test_a_cause_already_reported_fires_no_second_message(qt) -> None:
    """SPEC 6: while a cause stays set, no new interrupt fires for it. Before: an unchanged
    Q_MASK write, a CQ_ARM and an unchanged MISC_MASK write each sent it again."""
    nic = started(qt)
    nic.post(0, "sbq", 8)
    qt.send_frame(Frame().raw(b"1" * 60))
    qt.sync()
    assert qt.msi_fired(0)
    nic.qwrite(0, Q_MASK, 0)
    assert not qt.msi_fired(0)
    nic.qwrite(0, CQ_ARM, 0)
    assert not qt.msi_fired(0)
    nic.qwrite(0, Q_CAUSE, QCAUSE_RX)  # cleared: the next one fires
    qt.send_frame(Frame().raw(b"2" * 60))
    qt.sync()
    assert qt.msi_fired(0)
    nic.qwrite(0, Q_CAUSE, QCAUSE_RX)
    nic.qwrite(0, Q_MASK, QCAUSE_RX)  # set while masked: reported on unmask
    qt.send_frame(Frame().raw(b"3" * 60))
    qt.sync()
    assert not qt.msi_fired(0)
    nic.qwrite(0, Q_MASK, 0)
    assert qt.msi_fired(0)

    misc = nic.num_queues
    nic.write(MISC_MASK, 0)
    qt.qmp.cmd("set_link", name="nic0", up=False)
    assert nic.read(MISC_CAUSE) & MISC_LINK and qt.msi_fired(misc)
    nic.write(MISC_MASK, 0)
    assert not qt.msi_fired(misc)


def test_producer_cannot_take_back_posted_buffers(qt) -> None:
    """SPEC 4.1: posted buffers are the device's until completed. Before: a producer moved
    back was taken, while the device kept the entries it had read ahead and later filled
    buffers the ring no longer held."""
    nic = started(qt)
    nic.post(0, "sbq", 8)
    qt.send_frame(Frame().raw(b"a" * 60))  # reads ahead all 8
    qt.sync()
    nic.qwrite(0, SBQ_PROD, 4)
    assert nic.qread(0, SBQ_PROD) == 8
    assert "producer moved back" in qt.guest_errors()


# --- migration streams no register write could make ---

def saved_stream(qt: Qtest, nic: Bqnic, path: Path) -> tuple[bytearray, int]:
    """The device saved to a file, and where its core state starts in it: found by a MAC_LO
    and MAX_FRAME the test wrote (the fields are big-endian, in vmstate order)."""
    nic.write(MAC_LO, 0xA1B2_C3D4)
    nic.write(MAX_FRAME, 1500)
    qt.qmp.cmd("migrate", uri=f"file:{path}")
    assert wait_migration(qt)["status"] == "completed"
    data = bytearray(path.read_bytes())
    marker = struct.pack(">I", 0xA1B2_C3D4)
    assert data.count(marker) == 1
    at = data.index(marker)
    assert data[at + 8:at + 12] == struct.pack(">I", 1500)
    return data, at - 4  # CTRL comes first


# offsets from CTRL in bqnic/core, and in each bqnic/queue
CORE_MISC_CAUSE = 16
QUEUE0 = 4 + 218
Q_OFF_SBQ_PROD, Q_OFF_SBQ_CONS, Q_OFF_SBQ_CACHE = 36 + 12, 36 + 16, 96
Q_OFF_CAUSE = 96 + 2 * 136


def load_fails(make_qtest, path: Path, data: bytearray) -> bool:
    path.write_bytes(bytes(data))
    dst = make_qtest(qemu_args=("-incoming", "defer"))
    with contextlib.suppress(Exception):
        dst.qmp.cmd("migrate-incoming", uri=f"file:{path}")
    deadline = time.monotonic() + 10
    while dst.alive() and time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if wait_migration(dst, 0.2)["status"] == "completed":
                return False
    return not dst.alive() and "bqnic" in dst.stderr_text()


def test_stream_with_reserved_cause_bits_is_refused(qt, make_qtest, tmp_path: Path) -> None:
    """Before: a cause bit no register write can set loaded as set (and raised interrupts
    for a cause that does not exist)."""
    nic = started(qt)
    data, core = saved_stream(qt, nic, tmp_path / "good.state")
    queue_cause = core + QUEUE0 + Q_OFF_CAUSE
    assert data[queue_cause:queue_cause + 4] == b"\0\0\0\0"
    data[queue_cause + 3] = 0x08
    assert load_fails(make_qtest, tmp_path / "bad-cause.state", data)
    data[queue_cause + 3] = 0
    data[core + CORE_MISC_CAUSE + 3] = 0x10
    assert load_fails(make_qtest, tmp_path / "bad-misc.state", data)


def test_stream_with_read_ahead_beyond_the_producer_is_refused(qt, make_qtest,
                                                                tmp_path: Path) -> None:
    """Before: a read-ahead count was checked against 16 only: a stream saying the device
    had read 4 entries of an sbq with nothing posted loaded, and the device then filled the
    buffer addresses of that stream."""
    nic = started(qt)
    data, core = saved_stream(qt, nic, tmp_path / "good.state")
    sbq = core + QUEUE0
    assert data[sbq + Q_OFF_SBQ_PROD:sbq + Q_OFF_SBQ_PROD + 8] == b"\0" * 8
    count = sbq + Q_OFF_SBQ_CACHE + 16 * 8 + 4
    data[count:count + 4] = struct.pack(">I", 4)
    assert load_fails(make_qtest, tmp_path / "bad-read-ahead.state", data)


def test_bus_reset_set_off_by_own_dma_ends_the_interrupted_work(make_qtest) -> None:
    """The line SPEC 7 draws: DMA aimed at another device does what it does there. Here
    the device sits behind a root port, and the first chunk of a frame lands on the port's
    config space with Secondary Bus Reset set: the device is reset in the middle of the
    frame. Before: the frame went on into the reset device, its second chunk to guest
    physical address 0, then SIGFPE. Now the work stops at the reset and leaves nothing."""
    qt = make_qtest(extra=",bus=rp",
                    devices_before=("-device", "pcie-root-port,id=rp,chassis=1,addr=0x1"))
    qt.devfn = 0x08  # the root port, 00:01.0
    assert qt.cfg_readl(0) == 0x000C_1B36
    qt.cfg_writel(0x18, 0x0001_0100)  # primary bus 0, secondary and subordinate 1
    qt.cfg_writel(0x20, 0xE010_E000)  # memory window 0xE000_0000..0xE01F_FFFF
    qt.cfg_writel(4, 0x6)
    port_config = b"".join(struct.pack("<I", qt.cfg_readl(r)) for r in range(0, 0x40, 4))
    own_config_space(qt)
    qt.bus = 1
    nic = started(qt, lbq_buf=1024)
    qt.write(0, b"\x5a" * 1024)
    # the first chunk ends on the port's config header, as it is but for Secondary Bus
    # Reset (Bridge Control bit 6); what comes before it falls on 00:00.7, which is empty
    header = bytearray(port_config)
    header[0x3E] |= 0x40
    nic.queues[0].lbq_bufs[0] = MMCONFIG + (0x08 << 12) + 0x40 - 1024
    nic.post(0, "lbq", 2)
    frame = Frame().raw(b"p" * (1024 - 64 - 14) + bytes(header) + b"q" * 376)
    assert frame[960:1024] == header
    qt.send_frame(frame)
    qt.sync()
    assert qt.alive(), qt.stderr_text()
    assert qt.read(0, 1024) == b"\x5a" * 1024
    qt.map_bars()  # the reset cleared the device's config space too
    assert nic.read(CTRL) == 0 and nic.qread(0, Q_CAUSE) == 0
    assert nic.queue_stats(0)["completions"] == 0
