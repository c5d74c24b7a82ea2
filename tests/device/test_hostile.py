"""What a hostile guest or a hostile wire can make bqnic do (issue 13's defect classes).

Each test failed on the model before its fix: a zero-length frame that wedged reception,
DMA ranges written in part before the error, device work outside the re-entrancy guard,
held frames that survived a reset, drops that raised no BQ_LOW, a stale moderation timer,
a UDP/IPv4 zero checksum reported as neither OK nor BAD, 64-bit accesses that depended on
their alignment, and no function-level reset.
"""

from .bqnic_driver import (
    BQ_LOW_MARK,
    CTRL,
    CTRL_BQ_LOW_IRQ,
    CTRL_RESET,
    CTRL_RX_CSUM,
    CTRL_RX_EN,
    CTRL_TX_EN,
    ITR,
    LBQ_PROD,
    MAC_HI,
    MAC_LO,
    MAX_FRAME,
    Q_CAUSE,
    QCAUSE_BQ_LOW,
    QCAUSE_RX,
    RXQ_CTRL,
    SBQ_PROD,
    Bqnic,
)
from .qtest_client import MMIO_BASE, MSIX_BASE, RAM_MB, Frame, Qtest
from .test_bqnic import udp4

F_L4_OK, F_L4_BAD = 8, 16
PCI_CAP_ID_EXP = 0x10


def started(qt: Qtest, queues: int = 2) -> Bqnic:
    nic = Bqnic(qt)
    for q in range(queues):
        nic.setup_queue(q)
    nic.start()
    return nic


def aim_vector_at(qt: Qtest, vector: int, addr: int, data: int) -> None:
    """Point an MSI-X message at any address: here, the device's own registers."""
    cap = qt.capability(0x11)
    entry = MSIX_BASE + (qt.cfg_readl(cap + 4) & ~7) + 16 * vector
    qt.writel(entry, addr & 0xFFFFFFFF)
    qt.writel(entry + 4, addr >> 32)
    qt.writel(entry + 8, data)


# --- the wire ---

def test_zero_length_frame_does_not_wedge_reception(make_qtest) -> None:
    """A 0 return from the receive callback means "hold it" to QEMU's net layer, which then
    delivers nothing more until the device flushes: one empty frame stopped rx for good."""
    qt = make_qtest(netdev="stream")
    nic = started(qt)
    nic.post(0, "sbq", 8)
    qt.send_frame(b"")
    qt.send_frame(b"\x01" * 5)  # shorter than an Ethernet header
    frame = Frame().raw(b"after the runts" * 3)
    qt.send_frame(frame)
    qt.sync()
    assert [d for _, d in nic.completions(0)] == [frame]
    assert qt.stats()["rx_runt"] == 2
    assert qt.alive()


# --- DMA ranges ---

def test_dma_range_that_wraps_past_2_64_writes_nothing(qt, nic: Bqnic) -> None:
    """pci_dma_write() of a range that wraps went on at address 0: guest RAM got frame
    bytes before the error was reported. The whole range is checked first now."""
    pattern = bytes(range(256)) * 8
    qt.write(0, pattern)
    q = nic.queues[0]
    nic.post(0, "sbq", 2)
    wrap = 0xFFFF_FFFF_FFFF_FF00
    qt.writeq(q.lbq, wrap)
    nic.qwrite(0, LBQ_PROD, 1)  # one buffer, 256 bytes below 2^64
    qt.send_frame(Frame().raw(b"w" * 1200))
    qt.sync()
    assert qt.stats()["dma_errors"] == 1 and qt.stats()["dma_error_iova"] == wrap
    assert qt.read(0, len(pattern)) == pattern


def test_dma_range_off_the_end_of_ram_writes_nothing(qt, nic: Bqnic) -> None:
    """A buffer whose first bytes are RAM and the rest is not: no byte is written."""
    ram_end = RAM_MB << 20
    tail = ram_end - 256
    qt.write(tail, b"\xAA" * 256)
    q = nic.queues[0]
    nic.post(0, "sbq", 2)
    qt.writeq(q.lbq, tail)
    nic.qwrite(0, LBQ_PROD, 1)
    qt.send_frame(Frame().raw(b"w" * 1200))
    qt.sync()
    assert qt.stats()["dma_errors"] == 1
    assert qt.read(tail, 256) == b"\xAA" * 256


# --- re-entrancy ---

def test_work_started_by_bus_mastering_cannot_reset_the_device(qt) -> None:
    """Turning bus mastering on runs pending tx from a PCI config write, outside the guard
    the device's MMIO engages: an MSI-X message aimed at its own CTRL register reset it
    in the middle of that work. Now the message is refused; the device carries on."""
    nic = started(qt, queues=1)
    aim_vector_at(qt, 0, MMIO_BASE + CTRL, CTRL_RESET)
    qt.set_bus_master(False)
    nic.transmit(0, [Frame().raw(b"t" * 60)])
    qt.set_bus_master(True)
    assert qt.recv_frame() is not None  # the pending frame went out
    assert nic.read(CTRL) == CTRL_RX_EN | CTRL_TX_EN
    assert nic.qread(0, RXQ_CTRL) == 1
    assert qt.alive()


def test_moderation_timer_cannot_reset_the_device(qt) -> None:
    """Likewise for an interrupt an ITR timer sends late."""
    nic = started(qt, queues=1)
    nic.write(ITR, 100)
    nic.post(0, "sbq", 8)
    aim_vector_at(qt, 0, MMIO_BASE + CTRL, CTRL_RESET)
    qt.send_frame(Frame().raw(b"1" * 60))  # fires at once, from the net layer
    qt.sync()
    nic.qwrite(0, Q_CAUSE, QCAUSE_RX)
    qt.send_frame(Frame().raw(b"2" * 60))  # within 100 us: the timer sends it
    qt.sync()
    qt.clock_step(200_000)
    assert nic.read(CTRL) == CTRL_RX_EN | CTRL_TX_EN
    assert len(nic.completions(0)) == 2


# --- reset and held frames ---

def test_reset_drops_frames_held_for_buffers(make_qtest) -> None:
    """SPEC 9: frames held with rx-nobuf=queue are dropped by a reset. The purge emptied the
    other direction (frames the device had sent), so they came back after it."""
    qt = make_qtest(rx_nobuf="queue")
    nic = started(qt)
    for i in range(3):
        qt.send_frame(Frame().raw(bytes([i]) * 60))
    qt.sync()
    nic.reset()
    nic.setup_queue(0)
    nic.setup_queue(1)
    nic.start()
    nic.post(0, "sbq", 8)
    qt.sync()
    assert nic.completions(0) == []
    fresh = Frame().raw(b"fresh" * 12)
    qt.send_frame(fresh)
    qt.sync()
    assert [d for _, d in nic.completions(0)] == [fresh]


def test_held_frame_is_not_parsed_again_for_other_queues(make_qtest) -> None:
    """rx-nobuf=queue: while a frame waits for queue 0, the device tells the net layer it
    cannot receive; doorbells of another queue do not make it parse the frame again."""
    qt = make_qtest(rx_nobuf="queue", qemu_args=("-trace", "bqnic_rx_held"))
    nic = started(qt)
    frames = [Frame().raw(bytes([i]) * 60) for i in range(3)]
    for f in frames:
        qt.send_frame(f)
    qt.sync()
    for _ in range(5):
        nic.post(1, "lbq", 1)
    qt.sync()
    assert qt.guest_errors().count("bqnic_rx_held") == 1
    nic.post(0, "sbq", 8)
    qt.sync()
    assert [d for _, d in nic.completions(0)] == frames


# --- interrupts ---

def test_drop_for_lack_of_buffers_raises_bq_low(qt, nic: Bqnic) -> None:
    """SPEC 6.1: BQ_LOW also when a frame is dropped for lack of buffers, even when the
    queue holds more than BQ_LOW_MARK (a 9000-byte frame needs three lbq buffers)."""
    nic.write(MAX_FRAME, 9018)
    nic.write(BQ_LOW_MARK, 1)
    nic.write(CTRL, nic.read(CTRL) | CTRL_BQ_LOW_IRQ)
    nic.post(0, "sbq", 2)
    nic.post(0, "lbq", 2)
    qt.msi_fired(0)
    qt.send_frame(Frame().raw(b"j" * 9000))
    qt.sync()
    assert nic.queue_stats(0)["rx_drop_no_lbq"] == 1
    assert nic.qread(0, Q_CAUSE) & QCAUSE_BQ_LOW
    assert qt.msi_fired(0)


def test_itr_set_to_zero_releases_a_delayed_interrupt(qt, nic: Bqnic) -> None:
    """A moderation timer armed under the old ITR held the interrupt after ITR=0."""
    nic.write(ITR, 10_000)
    nic.post(0, "sbq", 8)
    qt.send_frame(Frame().raw(b"1" * 60))
    qt.sync()
    assert qt.msi_fired(0)
    nic.qwrite(0, Q_CAUSE, QCAUSE_RX)
    qt.send_frame(Frame().raw(b"2" * 60))
    qt.sync()
    assert not qt.msi_fired(0)  # delayed by ITR
    nic.write(ITR, 0)
    assert qt.msi_fired(0)


# --- what the guest sees ---

def test_udp4_without_checksum_is_reported_ok(qt, nic: Bqnic) -> None:
    """SPEC 5.4: a UDP checksum of 0 over IPv4 means "none sent" (RFC 768), which is OK."""
    nic.write(CTRL, nic.read(CTRL) | CTRL_RX_CSUM)
    nic.post(0, "sbq", 4)
    frame = bytearray(udp4("10.1.0.1", "10.1.0.2", 1, 2, b"no checksum"))
    frame[14 + 20 + 6:14 + 20 + 8] = b"\0\0"
    qt.send_frame(bytes(frame))
    qt.sync()
    [(cqe, _)] = nic.completions(0)
    assert cqe.flags & F_L4_OK and not cqe.flags & F_L4_BAD


def test_64bit_access_is_two_32bit_ones_at_any_alignment(qt, nic: Bqnic) -> None:
    """An 8-byte write at a 4-mod-8 offset was split into two legal writes, one at
    0-mod-8 refused: the alignment decided. Both are two 32-bit writes now (SPEC 3)."""
    qt.writeq(MMIO_BASE + MAC_LO, 0x0000_5544_3322_1100)  # 0 mod 8: MAC_LO, MAC_HI
    assert (nic.read(MAC_LO), nic.read(MAC_HI)) == (0x3322_1100, 0x5544)
    qt.writeq(MMIO_BASE + MAC_HI, (2000 << 32) | 0x7766)  # 4 mod 8: MAC_HI, MAX_FRAME
    assert (nic.read(MAC_HI), nic.read(MAX_FRAME)) == (0x7766, 2000)
    # 16-bit and unaligned accesses stay refused
    qt.writew(MMIO_BASE + MAC_HI, 0x1234)
    qt.writel(MMIO_BASE + MAC_LO + 1, 0xFFFFFFFF)
    assert (nic.read(MAC_LO), nic.read(MAC_HI)) == (0x3322_1100, 0x7766)
    assert "invalid size" in qt.guest_errors()


# --- function-level reset ---

def test_function_level_reset(qt, nic: Bqnic) -> None:
    """SPEC 9: the PCIe capability offers FLR, and it brings the device to its reset state
    (the host-side counters stay)."""
    cap = qt.capability(PCI_CAP_ID_EXP)
    assert qt.cfg_readl(cap + 4) & (1 << 28), "Device Capabilities: FLR"
    mac = nic.read(MAC_LO)
    nic.write(MAC_LO, 0x12345678)
    nic.post(0, "sbq", 4)
    qt.send_frame(Frame().raw(b"before" * 10))
    qt.sync()
    assert nic.queue_stats(0)["rx_frames"] == 1
    devctl = qt.cfg_readl(cap + 8) & 0xFFFF
    qt.cfg_writel(cap + 8, devctl | (1 << 15))
    assert not qt.cfg_readl(cap + 8) & (1 << 15), "Initiate FLR reads 0"
    qt.map_bars()  # an FLR resets the function's config space too
    assert nic.read(CTRL) == 0 and nic.qread(0, RXQ_CTRL) == 0
    assert nic.read(MAC_LO) == mac and nic.qread(0, SBQ_PROD) == 0
    st = nic.queue_stats(0)
    assert st["sbq_owned"] == 0 and st["rx_frames"] == 1
