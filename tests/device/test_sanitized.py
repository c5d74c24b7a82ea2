"""bqnic under QEMU's ASan+UBSan build (`bqlab build qemu --sanitize`): what runs clean on
the normal build must not make a sanitizer speak either."""

import contextlib
import random
import re
import time
from pathlib import Path

import pytest
from bqlab import hostdeps
from bqlab.build import qemu

from .bqnic_driver import CQ_ARM, CTRL, CTRL_RSS_EN, RSS_KEY, SBQ_PROD, TX_PROD, Bqnic
from .fuzz_bqnic import fuzz
from .qtest_client import Frame, Qtest
from .test_bqnic import RSS_KEY_BYTES, udp4
from .test_migration import wait_migration


@pytest.fixture(scope="session")
def sanitized_qemu() -> Path:
    hostdeps.require("run")
    return qemu.binary(qemu.build(sanitize=True))


def sanitizer_reports(qt: Qtest) -> list[str]:
    text = (qt.dir / "stderr.log").read_text()
    return [line for line in text.splitlines()
            if "runtime error:" in line or "AddressSanitizer" in line]


def test_rss_hash_reads_its_key_aligned(sanitized_qemu: Path, tmp_path: Path) -> None:
    """net_toeplitz_key_init() loads the key's first 32 bits as a uint32_t: the key sat at
    an odd offset in the device state, a misaligned load (UBSan) on every hashed frame."""
    qt = Qtest(sanitized_qemu, tmp_path, queues=4, env=qemu.SANITIZER_ENV)
    try:
        nic = Bqnic(qt)
        for q in range(4):
            nic.setup_queue(q)
            nic.post(q, "sbq", 8)
        nic.start()
        for i in range(0, 40, 4):
            nic.write(RSS_KEY + i, int.from_bytes(RSS_KEY_BYTES[i:i + 4], "little"))
        nic.write(CTRL, nic.read(CTRL) | CTRL_RSS_EN)
        for port in range(8):
            qt.send_frame(udp4("10.0.0.1", "10.0.0.2", 1000 + port, 2000, b"rss"))
        deadline = time.monotonic() + 20  # a sanitized QEMU is slow
        while sum(nic.queue_stats(q)["rx_frames"] for q in range(4)) < 8:
            assert time.monotonic() < deadline, "frames not received"
            qt.sync()
    finally:
        qt.close()
    assert sanitizer_reports(qt) == []


def test_fixed_seeds_find_nothing_under_sanitizers(sanitized_qemu: Path, tmp_path: Path) -> None:
    s = fuzz(sanitized_qemu, tmp_path, [1, 2, 3, 4], 0, 1500, sanitize=True)
    assert not s.findings, "\n".join(f"{f} (reproducer {p})" for f, p in s.findings)


# bqnic/core in a migration stream, 2 queues (qemu-device/hw/net/bqnic_core.c): device
# registers, RSS, buffer sizes; per queue its controls, four rings, two read-ahead caches,
# cause/mask, the moderation timer and last interrupt, counters; the host counters (5).
QUEUE_STATE_BYTES = 496
CORE_STATE_BYTES = 222 + 2 * QUEUE_STATE_BYTES + 40
Q0, Q1 = 222, 222 + QUEUE_STATE_BYTES
# (what, offset in bqnic/core, bytes written big-endian): values no register write can
# leave, each of which post_load must refuse
REFUSED = [
    ("ctrl reserved bits", 0, b"\xff\xff\xff\xff"),
    ("max frame 0", 12, bytes(4)),
    ("max frame 4 GiB", 12, b"\xff\xff\xff\xff"),
    ("sbq buffer size 0", 210, bytes(4)),
    ("lbq buffer size 0", 214, bytes(4)),
    ("lbq buffer size 1", 214, (1).to_bytes(4, "big")),
    ("buffer low mark above a ring", 218, b"\x00\x01\x00\x01"),
    ("rx control reserved bits", Q0 + 0, b"\xff\xff\xff\xff"),
    ("completion ring of 3 entries", Q0 + 24, (3).to_bytes(4, "big")),
    ("sbq with more posted than it holds", Q0 + 48, (1000).to_bytes(4, "big")),
    ("lbq of size 0", Q0 + 64, bytes(4)),
    ("tx ring base misaligned", Q1 + 83, b"\x08"),
    ("sbq read-ahead of 4 billion", Q0 + 228, b"\xff\xff\xff\xff"),
    ("lbq read-ahead of 17", Q1 + 364, (17).to_bytes(4, "big")),
]


def test_a_hostile_migration_stream_is_refused_or_harmless(sanitized_qemu: Path,
                                                          tmp_path: Path) -> None:
    """Values no register write could leave (a ring of 3 entries, more posted than the
    ring holds, an lbq buffer size of 0, a read-ahead of 4 billion entries) are refused
    at load; random damage elsewhere is refused or harmless. The stream is as untrusted
    as the guest whose state it carries."""
    src = Qtest(sanitized_qemu, tmp_path / "src", env=qemu.SANITIZER_ENV)
    try:
        nic = Bqnic(src)
        for q in range(2):
            nic.setup_queue(q)
            nic.post(q, "sbq", 8)
            nic.post(q, "lbq", 8)
        nic.start()
        src.qmp.cmd("migrate", uri=f"file:{tmp_path / 'good.state'}")
        assert wait_migration(src)["status"] == "completed"
    finally:
        src.close()
    good = (tmp_path / "good.state").read_bytes()
    # QEMU_VM_SECTION_FULL, section id, idstr ("0000:00:01.0/bqnic"), ... footer
    section = re.search(rb"\x04(.{4})\x12[0-9a-f:.]{12}/bqnic", good, re.S)
    assert section
    core = good.index(b"\x7e" + section.group(1), section.end()) - CORE_STATE_BYTES
    assert good[core + 214:core + 218] == (4096).to_bytes(4, "big")  # lbq buffer size
    rng = random.Random(12)
    trials = [(what, [(core + at, data)]) for what, at, data in REFUSED]
    for n in range(8):
        trials.append((f"random damage {n}", [
            (core + rng.randrange(0, CORE_STATE_BYTES - 4),
             rng.choice([0, 1, 3, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]).to_bytes(4, "big"))
            for _ in range(3)]))
    for trial, (what, edits) in enumerate(trials):
        stream = bytearray(good)
        for at, data in edits:
            stream[at:at + len(data)] = data
        state = tmp_path / f"bad{trial}.state"
        state.write_bytes(stream)
        dst = Qtest(sanitized_qemu, tmp_path / f"dst{trial}", env=qemu.SANITIZER_ENV,
                    qemu_args=("-incoming", "defer"))
        try:
            with contextlib.suppress(Exception):
                dst.qmp.cmd("migrate-incoming", uri=f"file:{state}")
            loaded = _wait_loaded(dst)
            if loaded:
                dst.qmp.cmd("cont")
                _exercise(dst)
        finally:
            dst.close()
        assert sanitizer_reports(dst) == [], what
        if trial < len(REFUSED):
            assert not loaded, f"{what}: loaded"
            assert "bqnic: migrated" in dst.stderr_text(), what
        else:
            assert dst.proc.returncode in (0, 1, -9), f"{what}: {dst.stderr_text()}"


def _wait_loaded(qt: Qtest) -> bool:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not qt.alive():
            return False
        with contextlib.suppress(Exception):
            status = qt.qmp.cmd("query-migrate").get("status")
            if status in ("completed", "failed"):
                return status == "completed"
        time.sleep(0.1)
    raise AssertionError("the incoming migration neither loaded nor failed")


def _exercise(qt: Qtest) -> None:
    """Everything that uses what was loaded: frames in, doorbells, timers, reads."""
    nic = Bqnic.__new__(Bqnic)
    nic.qt = qt
    for q in range(2):
        for reg in range(0, 0x94, 4):
            nic.qread(q, reg)
        nic.qwrite(q, TX_PROD, 5)
        nic.qwrite(q, SBQ_PROD, 9)
        nic.qwrite(q, CQ_ARM, 0)
    for i in range(4):
        qt.send_frame(Frame().raw(bytes([i]) * (60 + 600 * i)))
    qt.sync()
    qt.clock_step(100_000_000)
    qt.stats()
