"""bqnic against its datasheet (qemu-device/SPEC.md), driven over qtest with no guest."""

import ipaddress
import struct

from .bqnic_driver import (
    BQ_LOW_MARK,
    CQ_ARM,
    CQ_CONS,
    CQ_PROD,
    CTRL,
    CTRL_BQ_LOW_IRQ,
    CTRL_HDR_SPLIT,
    CTRL_IRQ_AUTO,
    CTRL_RESET,
    CTRL_RSS_EN,
    CTRL_RX_CSUM,
    DMA_ERR_HI,
    DMA_ERR_LO,
    DMA_ERR_WHERE,
    DROP_CQ_FULL,
    DROP_NO_LBQ,
    DROP_NO_SBQ,
    F_IPV4,
    F_L4_BAD,
    F_L4_OK,
    F_RSS,
    F_SPLIT,
    F_UDP,
    ID,
    ITR,
    LBQ_BUF_SIZE,
    LBQ_PROD,
    MAC_HI,
    MAC_LO,
    MAX_FRAME,
    MAX_RING,
    MISC_CAUSE,
    MISC_DMA_ERR,
    MISC_LINK,
    MISC_MASK,
    NUM_QUEUES,
    Q_CAUSE,
    Q_MASK,
    QCAUSE_BQ_LOW,
    QCAUSE_RX,
    QCAUSE_TX,
    RSS_INDIR,
    RSS_KEY,
    RXQ_CTRL,
    RXQ_STATUS,
    SBQ_CONS,
    SBQ_PROD,
    SBQ_SIZE,
    STATUS,
    STATUS_DMA_ERR,
    STATUS_LINK_UP,
    STATUS_QSTOPPED,
    TX_CONS,
    TX_PROD,
    VERSION,
    Bqnic,
)
from .qtest_client import MMIO_BASE, Frame

RSS_KEY_BYTES = bytes.fromhex(
    "6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa")


def udp4(src: str, dst: str, sport: int, dport: int, payload: bytes,
         good_csum: bool = True) -> bytes:
    """An Ethernet + IPv4 + UDP frame with correct header checksums."""
    udp_len = 8 + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 1, 0, 64, 17, 0,
                     ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
    ip = ip[:10] + struct.pack("!H", inet_csum(ip)) + ip[12:]
    pseudo = ip[12:20] + struct.pack("!BBH", 0, 17, udp_len)
    udp = struct.pack("!HHHH", sport, dport, udp_len, 0) + payload
    csum = inet_csum(pseudo + udp) or 0xFFFF
    if not good_csum:
        csum ^= 0x00FF
    udp = udp[:6] + struct.pack("!H", csum) + udp[8:]
    return Frame().raw(ip + udp, ethertype=0x0800)


def inet_csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def toeplitz(key: bytes, data: bytes) -> int:
    """Microsoft RSS Toeplitz hash (reference implementation)."""
    key_int = int.from_bytes(key, "big")
    key_bits = len(key) * 8
    result = 0
    for i, byte in enumerate(data):
        for b in range(8):
            if byte & (0x80 >> b):
                shift = key_bits - 32 - (i * 8 + b)
                result ^= (key_int >> shift) & 0xFFFFFFFF
    return result


def test_identity_and_reset_values(qt, nic: Bqnic) -> None:
    assert nic.read(ID) == 0x62716E63
    assert nic.read(VERSION) == 0x00010000
    assert nic.read(NUM_QUEUES) == 2
    assert nic.read(MAX_RING) == 4096
    mac = nic.read(MAC_LO).to_bytes(4, "little") + nic.read(MAC_HI).to_bytes(2, "little")
    assert mac == bytes.fromhex("525400123456")
    assert nic.read(MAX_FRAME) == 1518
    assert nic.read(STATUS) & STATUS_LINK_UP
    assert qt.cfg_readl(0x08) >> 8 == 0x020000  # class: Ethernet controller
    assert qt.cfg_readl(0x2C) == 0x1100_1AF4  # subsystem


def test_small_frame_lands_in_one_sbq_buffer(qt, nic: Bqnic) -> None:
    nic.post(0, "sbq", 8)
    nic.post(0, "lbq", 8)
    frame = Frame().raw(b"hello bqnic" * 4)
    qt.send_frame(frame)
    qt.sync()
    [(cqe, data)] = nic.completions(0)
    assert data == frame
    assert (cqe.length, cqe.hdr_len, cqe.nsbq, cqe.nlbq, cqe.phase) == (len(frame), len(frame),
                                                                         1, 0, 1)
    assert qt.msi_fired(0)
    assert not qt.msi_fired(1)
    st = nic.queue_stats(0)
    assert st["rx_frames"] == 1 and st["completions"] == 1 and st["rx_bytes"] == len(frame)
    assert st["sbq_owned"] == 7 and st["lbq_owned"] == 8
    assert st["interrupts"] == 1


def test_no_buffer_drops_silently_until_a_doorbell(qt, nic: Bqnic) -> None:
    nic.post(0, "lbq", 8)  # large buffers only: small frames find no sbq buffer
    qt.send_frame(Frame().raw(b"x" * 50))
    big = Frame().raw(b"y" * 1000)
    qt.sync()
    st = nic.queue_stats(0)
    assert st["rx_drop_no_sbq"] == 1 and st["completions"] == 0 and st["interrupts"] == 0
    assert nic.qread(0, DROP_NO_SBQ) == 1 and nic.qread(0, DROP_NO_LBQ) == 0  # guest view
    assert st["sbq_owned"] == 0
    assert nic.completions(0) == []
    assert not qt.msi_fired(0)
    # a large frame still gets through: the queues are independent
    qt.send_frame(big)
    qt.sync()
    [(cqe, data)] = nic.completions(0)
    assert data == big and cqe.nlbq == 1 and cqe.nsbq == 0
    # once sbq buffers are posted, small frames flow again
    nic.post(0, "sbq", 4)
    qt.send_frame(Frame().raw(b"z" * 50))
    qt.sync()
    assert len(nic.completions(0)) == 1
    assert nic.queue_stats(0)["rx_drop_no_sbq"] == 1


def test_no_lbq_buffer_counted(qt, nic: Bqnic) -> None:
    nic.post(0, "sbq", 4)
    qt.send_frame(Frame().raw(b"y" * 1000))
    qt.sync()
    st = nic.queue_stats(0)
    assert st["rx_drop_no_lbq"] == 1 and st["rx_drop_no_sbq"] == 0 and st["completions"] == 0
    assert nic.qread(0, DROP_NO_LBQ) == 1


def test_rx_nobuf_queue_holds_frames_until_the_doorbell(make_qtest) -> None:
    qt = make_qtest(rx_nobuf="queue")
    nic = Bqnic(qt)
    nic.setup_queue(0)
    nic.setup_queue(1)
    nic.start()
    frames = [Frame().raw(bytes([i]) * 60) for i in range(3)]
    for f in frames:
        qt.send_frame(f)
    qt.sync()
    assert nic.completions(0) == []
    assert nic.queue_stats(0)["rx_drop_no_sbq"] == 0
    nic.post(0, "sbq", 8)  # the doorbell flushes what QEMU held
    qt.sync()
    assert [d for _, d in nic.completions(0)] == frames


def test_jumbo_frame_spans_lbq_buffers(qt, nic: Bqnic) -> None:
    nic.write(MAX_FRAME, 9018)
    nic.post(0, "sbq", 4)
    nic.post(0, "lbq", 8)
    payload = bytes(range(256)) * 35 + b"end"
    frame = Frame().raw(payload)
    assert len(frame) > 2 * 4096
    qt.send_frame(frame)
    qt.sync()
    [(cqe, data)] = nic.completions(0)
    assert cqe.nlbq == 3 and cqe.nsbq == 0 and cqe.length == len(frame)
    assert data == frame
    # over MAX_FRAME (+4 for a VLAN tag): dropped and counted
    qt.send_frame(Frame().raw(b"\0" * 9100))
    qt.sync()
    assert nic.completions(0) == []
    assert qt.stats()["rx_oversize"] == 1


def test_header_split(qt, nic: Bqnic) -> None:
    nic.write(CTRL, nic.read(CTRL) | CTRL_HDR_SPLIT)
    nic.post(0, "sbq", 4)
    nic.post(0, "lbq", 4)
    frame = udp4("10.1.0.1", "10.1.0.2", 1000, 2000, b"p" * 900)
    qt.send_frame(frame)
    qt.sync()
    [(cqe, data)] = nic.completions(0)
    assert cqe.hdr_len == 14 + 20 + 8 and cqe.nsbq == 1 and cqe.nlbq == 1
    assert cqe.flags & F_SPLIT and cqe.flags & F_UDP and cqe.flags & F_IPV4
    assert data == frame


def test_rx_checksum_status(qt, nic: Bqnic) -> None:
    nic.write(CTRL, nic.read(CTRL) | CTRL_RX_CSUM)
    nic.post(0, "sbq", 4)
    qt.send_frame(udp4("10.1.0.1", "10.1.0.2", 1, 2, b"ok"))
    qt.send_frame(udp4("10.1.0.1", "10.1.0.2", 1, 2, b"ko", good_csum=False))
    qt.sync()
    [(good, _), (bad, _)] = nic.completions(0)
    assert good.flags & F_L4_OK and not good.flags & F_L4_BAD
    assert bad.flags & F_L4_BAD and not bad.flags & F_L4_OK


def test_rss_spreads_by_toeplitz_hash(make_qtest) -> None:
    qt = make_qtest(queues=4)
    nic = Bqnic(qt)
    for q in range(4):
        nic.setup_queue(q)
        nic.post(q, "sbq", 32)
    for i in range(0, 40, 4):
        nic.write(RSS_KEY + i, int.from_bytes(RSS_KEY_BYTES[i:i + 4], "little"))
    indir = [i % 4 for i in range(128)]
    for i in range(0, 128, 4):
        nic.write(RSS_INDIR + i, int.from_bytes(bytes(indir[i:i + 4]), "little"))
    nic.start(CTRL_RSS_EN)
    sent = {}
    for port in range(40):
        frame = udp4("192.0.2.1", "192.0.2.2", 5000 + port, 6000, b"rss")
        tup = (ipaddress.IPv4Address("192.0.2.1").packed + ipaddress.IPv4Address(
            "192.0.2.2").packed + struct.pack("!HH", 5000 + port, 6000))
        sent[frame] = toeplitz(RSS_KEY_BYTES, tup)
        qt.send_frame(frame)
    qt.sync()
    seen = 0
    used = set()
    for q in range(4):
        for cqe, data in nic.completions(q):
            assert cqe.flags & F_RSS
            assert cqe.rss_hash == sent[data]
            assert indir[cqe.rss_hash % 128] == q
            used.add(q)
            seen += 1
    assert seen == 40
    assert len(used) >= 3  # 40 flows over 4 queues


def test_tx_multi_fragment_and_checksum(qt, nic: Bqnic) -> None:
    frame = udp4("10.1.0.2", "10.1.0.1", 7, 9, b"transmit me" * 10)
    # CHECKSUM_PARTIAL: the stack leaves the pseudo-header sum in the checksum field
    ip = frame[14:34]
    pseudo_sum = inet_csum(ip[12:20] + struct.pack("!BBH", 0, 17, len(frame) - 34))
    partial = frame[:40] + struct.pack("!H", ~pseudo_sum & 0xFFFF) + frame[42:]
    slots = nic.transmit(0, [partial[:14], partial[14:50], partial[50:]], csum=(34, 6))
    out = qt.recv_frame()
    assert out is not None and len(out) == len(frame)
    assert out == frame
    assert all(nic.tx_done(0, s) for s in slots)
    assert nic.qread(0, TX_CONS) == 3
    assert qt.msi_fired(0)
    assert nic.qread(0, Q_CAUSE) & QCAUSE_TX
    st = nic.queue_stats(0)
    assert st["tx_frames"] == 1 and st["tx_bytes"] == len(frame)


def test_tx_waits_for_eop(qt, nic: Bqnic) -> None:
    q = nic.queues[0]
    nic.transmit(0, [b"a" * 30, b"b" * 30], doorbell=False)
    nic.qwrite(0, TX_PROD, q.tx_prod - 1)  # doorbell covers only the first fragment
    assert qt.recv_frame(timeout=0.3) is None
    assert nic.qread(0, TX_CONS) == 0
    nic.qwrite(0, TX_PROD, q.tx_prod)
    assert qt.recv_frame() == b"a" * 30 + b"b" * 30


def test_link_down_and_up_over_qmp(qt, nic: Bqnic) -> None:
    nic.write(MISC_MASK, 0)
    qt.qmp.cmd("set_link", name="nic0", up=False)
    assert not nic.read(STATUS) & STATUS_LINK_UP
    assert nic.read(MISC_CAUSE) & MISC_LINK
    assert qt.msi_fired(2)  # queues + 1: the misc vector
    assert qt.stats()["link_up"] is False
    nic.post(0, "sbq", 2)
    qt.send_frame(Frame().raw(b"down" * 10))
    qt.sync()
    assert nic.completions(0) == []
    nic.write(MISC_CAUSE, MISC_LINK)
    qt.qmp.cmd("set_link", name="nic0", up=True)
    assert nic.read(STATUS) & STATUS_LINK_UP
    assert qt.msi_fired(2)
    qt.send_frame(Frame().raw(b"up" * 20))
    qt.sync()
    assert len(nic.completions(0)) == 1


def test_interrupt_mask_and_cause(qt, nic: Bqnic) -> None:
    nic.post(0, "sbq", 8)
    nic.qwrite(0, Q_MASK, 0x7)
    qt.send_frame(Frame().raw(b"m" * 50))
    qt.sync()
    assert not qt.msi_fired(0)
    assert nic.qread(0, Q_CAUSE) & QCAUSE_RX
    nic.qwrite(0, Q_MASK, 0)  # unmasking a pending cause fires it
    assert qt.msi_fired(0)
    # while the cause stays set, no new interrupt
    qt.send_frame(Frame().raw(b"n" * 50))
    qt.sync()
    assert not qt.msi_fired(0)
    nic.qwrite(0, Q_CAUSE, QCAUSE_RX)
    qt.send_frame(Frame().raw(b"o" * 50))
    qt.sync()
    assert qt.msi_fired(0)
    # MSI-X per-vector mask holds the message until unmasked
    nic.qwrite(0, Q_CAUSE, QCAUSE_RX)
    qt.msix_mask(0, True)
    qt.send_frame(Frame().raw(b"p" * 50))
    qt.sync()
    assert not qt.msi_fired(0)
    qt.msix_mask(0, False)
    assert qt.msi_fired(0)


def test_irq_auto_masks_on_send_and_cq_arm_unmasks(qt, nic: Bqnic) -> None:
    nic.write(CTRL, nic.read(CTRL) | CTRL_IRQ_AUTO)
    nic.post(0, "sbq", 8)
    qt.send_frame(Frame().raw(b"a" * 50))
    qt.sync()
    assert qt.msi_fired(0)
    # the message masked the queue and took its cause with it
    assert nic.qread(0, Q_MASK) == 0x7
    assert nic.qread(0, Q_CAUSE) == 0
    qt.send_frame(Frame().raw(b"b" * 50))  # arrives while the "driver" polls
    qt.sync()
    assert not qt.msi_fired(0)
    got = nic.completions(0)
    assert len(got) == 2
    nic.qwrite(0, CQ_ARM, nic.qread(0, CQ_CONS))  # re-arm: the pending RX fires at once
    assert qt.msi_fired(0)
    assert nic.completions(0) == []
    nic.qwrite(0, CQ_ARM, nic.qread(0, CQ_CONS))  # nothing pending: no message
    assert not qt.msi_fired(0)
    assert nic.qread(0, Q_MASK) == 0
    qt.send_frame(Frame().raw(b"c" * 50))
    qt.sync()
    assert qt.msi_fired(0)
    # a consumer index past the producer is refused, and the queue stays masked
    nic.qwrite(0, CQ_ARM, nic.qread(0, CQ_PROD) + 5)
    assert nic.qread(0, Q_MASK) == 0x7
    assert "cq consumer index" in qt.guest_errors()


def test_buffer_read_ahead_follows_doorbells_and_ring_wrap(qt, nic: Bqnic) -> None:
    nic.reset()
    nic.setup_queue(0, cq_size=64, sbq_size=8)
    nic.start()
    frames = [Frame().raw(bytes([i]) * (46 + i)) for i in range(20)]
    sent = 0
    got = []
    for batch in (3, 5, 1, 7, 4):  # doorbells of odd sizes around an 8-entry ring
        nic.post(0, "sbq", batch)
        for _ in range(batch):
            qt.send_frame(frames[sent])
            sent += 1
        qt.sync()
        got += [data for _, data in nic.completions(0)]
    assert got == frames
    assert nic.queue_stats(0)["sbq_owned"] == 0


def test_interrupt_moderation_merges(qt, nic: Bqnic) -> None:
    nic.post(0, "sbq", 8)
    nic.write(ITR, 500)  # microseconds
    qt.send_frame(Frame().raw(b"1" * 50))
    qt.sync()
    assert qt.msi_fired(0)
    nic.qwrite(0, Q_CAUSE, QCAUSE_RX)
    qt.send_frame(Frame().raw(b"2" * 50))
    qt.send_frame(Frame().raw(b"3" * 50))
    qt.sync()
    assert not qt.msi_fired(0)  # too soon: delayed
    qt.clock_step(600_000)
    assert qt.msi_fired(0)
    assert len(nic.completions(0)) == 3


def test_cq_phase_flips_after_wrap(qt, nic: Bqnic) -> None:
    nic.reset()
    nic.setup_queue(0, cq_size=8, sbq_size=8)
    nic.start()
    got = []
    for round_ in range(3):
        nic.post(0, "sbq", 6)
        for i in range(6):
            qt.send_frame(Frame().raw(bytes([round_, i]) * 30))
        qt.sync()
        got += nic.completions(0)
    assert len(got) == 18
    assert [c.phase for c, _ in got[:8]] == [1] * 8
    assert [c.phase for c, _ in got[8:16]] == [0] * 8


def test_cq_full_drops(qt, nic: Bqnic) -> None:
    nic.reset()
    nic.setup_queue(0, cq_size=8, sbq_size=16)
    nic.start()
    nic.post(0, "sbq", 16)
    for i in range(10):
        qt.send_frame(Frame().raw(bytes([i]) * 60))
    qt.sync()
    assert nic.queue_stats(0)["rx_drop_cq_full"] == 2
    assert nic.qread(0, DROP_CQ_FULL) == 2
    assert len(nic.completions(0)) == 8


def test_dma_error_stops_the_queue(qt, nic: Bqnic) -> None:
    nic.write(MISC_MASK, 0)
    q = nic.queues[0]
    bad = 0xDEAD_0000_0000
    qt.writeq(q.sbq, bad)  # a buffer address nothing answers at
    q.sbq_bufs[0] = bad
    q.sbq_prod = 1
    nic.qwrite(0, SBQ_PROD, 1)
    qt.send_frame(Frame().raw(b"d" * 40))
    qt.sync()
    stats = qt.stats()
    assert stats["dma_errors"] == 1 and stats["dma_error_iova"] == bad
    assert stats["dma_faults_injected"] == 0  # a real one
    assert nic.read(DMA_ERR_LO) | nic.read(DMA_ERR_HI) << 32 == bad
    assert nic.read(DMA_ERR_WHERE) == (5 << 8) | 0  # rx buffer, queue 0
    assert nic.read(STATUS) & (STATUS_DMA_ERR | STATUS_QSTOPPED) == \
        STATUS_DMA_ERR | STATUS_QSTOPPED
    assert nic.qread(0, RXQ_STATUS) & 1
    assert qt.msi_fired(2) and nic.read(MISC_CAUSE) & MISC_DMA_ERR
    nic.post(0, "sbq", 4)
    qt.send_frame(Frame().raw(b"e" * 40))
    qt.sync()
    assert nic.queue_stats(0)["rx_drop_stopped"] == 1
    # queue 1 is unaffected; a reset brings queue 0 back
    nic.write(CTRL, CTRL_RESET)
    assert not nic.read(STATUS) & (STATUS_DMA_ERR | STATUS_QSTOPPED)


def test_an_injected_dma_fault_is_a_dma_error_until_reset(qt, nic: Bqnic) -> None:
    """fail-dma (SPEC 7.1): a valid transfer fails as an IOMMU fault would, with all a
    real DMA error does; a reset does not cancel what is left, 0 does."""
    nic.write(MISC_MASK, 0)
    nic.post(0, "sbq", 4)
    assert qt.fail_dma(1) == 1
    qt.send_frame(Frame().raw(b"f" * 40))
    qt.sync()
    stats = qt.stats()
    assert stats["dma_errors"] == stats["dma_faults_injected"] == 1 and qt.fail_dma() == 0
    assert nic.read(STATUS) & (STATUS_DMA_ERR | STATUS_QSTOPPED) == \
        STATUS_DMA_ERR | STATUS_QSTOPPED
    assert nic.read(DMA_ERR_WHERE) & 0xFF == 0 and nic.qread(0, RXQ_STATUS) & 1
    assert qt.msi_fired(2) and nic.read(MISC_CAUSE) & MISC_DMA_ERR
    assert nic.completions(0) == []
    qt.send_frame(Frame().raw(b"g" * 40))
    qt.sync()
    assert nic.queue_stats(0)["rx_drop_stopped"] == 1
    # armed across a reset: the first transfer after it fails
    qt.fail_dma(1)
    nic.write(CTRL, CTRL_RESET)
    assert not nic.read(STATUS) & STATUS_DMA_ERR
    nic.setup_queue(0)
    nic.start()
    nic.post(0, "sbq", 4)
    qt.send_frame(Frame().raw(b"h" * 40))
    qt.sync()
    assert qt.stats()["dma_errors"] == 2 and nic.completions(0) == []
    # cancelled: the device works again after the next reset
    qt.fail_dma(5)
    assert qt.fail_dma(0) == 0
    nic.write(CTRL, CTRL_RESET)
    nic.setup_queue(0)
    nic.start()
    nic.post(0, "sbq", 4)
    qt.send_frame(Frame().raw(b"i" * 40))
    qt.sync()
    assert qt.stats()["dma_errors"] == 2 and len(nic.completions(0)) == 1


def test_register_reads_are_counted(qt, nic: Bqnic) -> None:
    """mmio_reads (SPEC 10): every register read, none for writes, DMA or frames."""
    before = qt.stats()["mmio_reads"]
    nic.post(0, "sbq", 4)
    qt.send_frame(Frame().raw(b"r" * 40))
    qt.sync()
    assert qt.stats()["mmio_reads"] == before
    for _ in range(3):
        nic.read(STATUS)
    nic.qread(0, RXQ_STATUS)
    nic.read(0x3FC)  # an unlisted offset reads 0, and is a read all the same
    assert qt.stats()["mmio_reads"] == before + 5
    qt.reset_stats()
    assert qt.stats()["mmio_reads"] == 0


def test_bus_master_off_means_no_dma(qt, nic: Bqnic) -> None:
    nic.post(0, "sbq", 4)
    qt.set_bus_master(False)
    qt.send_frame(Frame().raw(b"b" * 40))
    qt.sync()
    assert nic.queue_stats(0)["rx_drop_disabled"] == 1
    assert qt.stats()["dma_errors"] == 0
    qt.set_bus_master(True)
    qt.send_frame(Frame().raw(b"c" * 40))
    qt.sync()
    assert len(nic.completions(0)) == 1


def test_reset_mid_traffic_returns_to_reset_state(qt, nic: Bqnic) -> None:
    nic.post(0, "sbq", 16)
    nic.post(0, "lbq", 16)
    for i in range(5):
        qt.send_frame(Frame().raw(bytes([i]) * 60))
    nic.write(CTRL, CTRL_RESET)
    qt.sync()
    assert nic.read(CTRL) == 0
    assert nic.qread(0, RXQ_CTRL) == 0 and nic.qread(0, SBQ_PROD) == 0
    assert nic.qread(0, SBQ_CONS) == 0 and nic.qread(0, Q_MASK) == 7
    assert nic.read(MISC_MASK) == 3 and nic.read(LBQ_BUF_SIZE) == 4096
    st = nic.queue_stats(0)
    assert st["sbq_owned"] == 0 and st["lbq_owned"] == 0
    assert st["rx_frames"] + st["rx_drop_disabled"] == 5  # counters survive reset
    # and it works again after reprogramming
    nic.setup_queue(0)
    nic.start()
    nic.post(0, "sbq", 4)
    qt.send_frame(Frame().raw(b"again" * 10))
    qt.sync()
    assert len(nic.completions(0)) == 1


def test_stats_reset_over_qmp(qt, nic: Bqnic) -> None:
    qt.send_frame(Frame().raw(b"x" * 50))
    qt.sync()
    assert nic.queue_stats(0)["rx_drop_no_sbq"] == 1
    qt.reset_stats()
    assert nic.queue_stats(0)["rx_drop_no_sbq"] == 0


def test_bad_programming_is_refused_and_logged(qt, nic: Bqnic) -> None:
    nic.reset()
    for size in (0, 3, 7, 8192, 0xFFFFFFFF):
        nic.qwrite(0, SBQ_SIZE, size)
        nic.qwrite(0, RXQ_CTRL, 1)
        assert nic.qread(0, RXQ_CTRL) == 0, size
    nic.setup_queue(0)
    nic.start()
    nic.qwrite(0, SBQ_PROD, 1000)  # far beyond the ring
    assert nic.qread(0, SBQ_PROD) == 0
    nic.qwrite(0, SBQ_SIZE, 8)  # while enabled
    assert nic.qread(0, SBQ_SIZE) == 64
    nic.write(0x100, 100)  # sbq buffer size not a multiple of 64
    assert nic.read(0x100) == 256
    qt.writew(MMIO_BASE + 2, 0xFFFF)  # a 16-bit access
    nic.write(0x9F00, 1)  # queue 142 of 2
    log = qt.guest_errors()
    assert "out of range" in log and "while the ring is enabled" in log
    assert "invalid; queue not enabled" in log and "invalid size (min:4 max:8)" in log
    assert qt.alive()
    assert qt.qmp.cmd("query-status")["status"] == "running"


def test_tx_garbage_does_not_hurt(qt, nic: Bqnic) -> None:
    q = nic.queues[0]
    for slot in range(8):  # zero-length and huge fragments, no EOP anywhere
        qt.write(q.tx + 16 * slot, struct.pack("<QHHHH", 0x1000, 0 if slot % 2 else 65535,
                                               0, 60000, 60000))
    nic.qwrite(0, TX_PROD, 8)
    nic.qwrite(0, TX_PROD, 64)  # a full ring without EOP is dropped, not waited on forever
    assert qt.alive()
    assert nic.queue_stats(0)["tx_frames"] == 0
    assert qt.qmp.cmd("query-status")["status"] == "running"


def test_bq_low_interrupt_only_when_enabled(qt, nic: Bqnic) -> None:
    nic.post(0, "sbq", 6)
    nic.write(BQ_LOW_MARK, 4)
    for i in range(3):
        qt.send_frame(Frame().raw(bytes([i]) * 50))
    qt.sync()
    nic.completions(0)
    assert not nic.qread(0, Q_CAUSE) & QCAUSE_BQ_LOW  # off by default: stalls stay silent
    nic.write(CTRL, nic.read(CTRL) | CTRL_BQ_LOW_IRQ)
    nic.qwrite(0, Q_CAUSE, 0x7)
    qt.msi_fired(0)
    qt.send_frame(Frame().raw(b"low" * 20))
    qt.sync()
    assert nic.qread(0, Q_CAUSE) & QCAUSE_BQ_LOW  # 2 sbq buffers left < mark 4
    assert qt.msi_fired(0)


def test_addresses_that_wrap_or_miss_memory(qt, nic: Bqnic) -> None:
    nic.write(MISC_MASK, 0)
    q = nic.queues[1]
    qt.writeq(q.lbq, 0xFFFF_FFFF_FFFF_F000)  # a 4 KiB buffer that wraps past 2^64
    q.lbq_bufs[0] = 0xFFFF_FFFF_FFFF_F000
    nic.qwrite(1, LBQ_PROD, 1)
    # steer to queue 1: RSS with an all-ones indirection table
    for i in range(0, 128, 4):
        nic.write(RSS_INDIR + i, 0x01010101)
    nic.write(CTRL, nic.read(CTRL) | CTRL_RSS_EN)
    qt.send_frame(udp4("10.0.0.1", "10.0.0.2", 1, 2, b"w" * 1200))
    qt.sync()
    assert qt.stats()["dma_errors"] == 1
    assert nic.qread(1, RXQ_STATUS) & 1 and not nic.qread(0, RXQ_STATUS) & 1
    assert qt.alive()
