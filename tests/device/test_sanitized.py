"""bqnic under QEMU's ASan+UBSan build (`bqlab build qemu --sanitize`): what runs clean on
the normal build must not make a sanitizer speak either."""

import time
from pathlib import Path

import pytest
from bqlab import hostdeps
from bqlab.build import qemu

from .bqnic_driver import CTRL, CTRL_RSS_EN, RSS_KEY, Bqnic
from .fuzz_bqnic import fuzz
from .qtest_client import Qtest
from .test_bqnic import RSS_KEY_BYTES, udp4


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
