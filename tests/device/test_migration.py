"""bqnic migrates (SPEC 12): one QEMU saves a device mid-traffic to a file, a second
loads it, and the driver (this test) carries on where it was. Completions it had not
read yet are there, once; buffers it posted before are used after; the counters go on;
a moderated interrupt that was pending still fires; tx works on the new side."""

import contextlib
import time
from pathlib import Path

from .bqnic_driver import ITR, Q_CAUSE, QCAUSE_RX, Bqnic
from .qtest_client import Frame, Qtest


def wait_migration(qt: Qtest, seconds: float = 30.0) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        info = qt.qmp.cmd("query-migrate")
        if info.get("status") in ("completed", "failed"):
            return info
        time.sleep(0.05)
    raise AssertionError(f"migration did not finish: {info}")


def migrate(src: Qtest, make_qtest, state: Path, **dst_kwargs) -> Qtest:
    src.qmp.cmd("migrate", uri=f"file:{state}")
    assert wait_migration(src)["status"] == "completed"
    dst = make_qtest(qemu_args=("-incoming", "defer"), **dst_kwargs)
    dst.qmp.cmd("migrate-incoming", uri=f"file:{state}")
    assert wait_migration(dst)["status"] == "completed", dst.stderr_text()
    dst.qmp.cmd("cont")
    dst.next_alloc, dst.devfn = src.next_alloc, src.devfn  # the driver's memory map
    return dst


RARP = b"\x80\x35"


def frames(n: int, tag: str) -> list[bytes]:
    return [Frame().raw(f"{tag} frame {i} ".encode() * 8) for i in range(n)]


def test_a_device_mid_traffic_carries_on_after_migration(qt, nic: Bqnic, make_qtest,
                                                         tmp_path: Path) -> None:
    nic.post(0, "sbq", 16)
    nic.post(0, "lbq", 16)
    nic.write(ITR, 1000)  # microseconds between two interrupts of a queue
    before, unread = frames(3, "before"), frames(2, "in flight")
    for f in before:
        qt.send_frame(f)
    qt.sync()
    assert qt.msi_fired(0)
    assert [d for _, d in nic.completions(0)] == before
    nic.qwrite(0, Q_CAUSE, QCAUSE_RX)
    for f in unread:
        qt.send_frame(f)
    qt.sync()
    assert not qt.msi_fired(0)  # too soon after the last: its timer is pending

    dst = migrate(qt, make_qtest, tmp_path / "bqnic.state")
    nic.qt = dst
    dst.cmd("clock_step 2000000")  # past the moderation gap: the pending interrupt fires
    assert dst.msi_fired(0)
    assert [d for _, d in nic.completions(0)] == unread  # once, in order
    after = frames(3, "after")
    for f in after:
        dst.send_frame(f)
    dst.sync()
    assert [d for _, d in nic.completions(0)] == after  # into buffers posted before
    st = nic.queue_stats(0)
    assert (st["rx_frames"], st["completions"]) == (8, 8)
    assert st["sbq_owned"] == 16 - 8
    out = Frame().raw(b"sent after migration" * 4)
    nic.transmit(0, [out])
    got = dst.recv_frame()
    while got is not None and got[12:14] == RARP:  # QEMU announces the moved NIC
        got = dst.recv_frame()
    assert got == out
    assert dst.guest_errors() == ""


def test_a_stream_for_another_queue_count_is_refused(qt, nic: Bqnic, make_qtest,
                                                     tmp_path: Path) -> None:
    state = tmp_path / "bqnic.state"
    qt.qmp.cmd("migrate", uri=f"file:{state}")
    assert wait_migration(qt)["status"] == "completed"
    dst = make_qtest(queues=1, qemu_args=("-incoming", "defer"))
    with contextlib.suppress(Exception):  # it may be gone before it answers
        dst.qmp.cmd("migrate-incoming", uri=f"file:{state}")
    deadline = time.monotonic() + 10
    while dst.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    # QEMU refuses the stream and exits, naming the device: no half-loaded NIC
    assert not dst.alive()
    assert "bqnic" in dst.stderr_text()
