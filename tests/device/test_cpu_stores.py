"""Register accesses as a CPU makes them (SPEC 3), not as qtest's byte streams: a vCPU
under TCG runs a tiny firmware (guest/store64.S) that stores what the test asks for with
one 8-byte instruction, the way a driver's writeq does.

Before: an 8-byte store at 0 mod 8 was refused as a whole under TCG, while the same store
at 4 mod 8 (which TCG's softmmu cuts into two aligned 4-byte stores) and any 8-byte store
under KVM (an MMIO exit is a byte stream) were taken as two register writes: what a
driver's writeq did depended on the accelerator and the address. Now an 8-byte access
aligned to 4 is the two 32-bit accesses it covers, whoever makes it.
"""

import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest

from .bqnic_driver import MAC_HI, MAC_LO, MAX_FRAME, Bqnic
from .qtest_client import MMIO_BASE, Qtest

GUEST = Path(__file__).parent / "guest" / "store64.S"
REQUEST, ADDRESS, VALUE = 0x1000, 0x1004, 0x1008


def build_firmware(out: Path) -> Path:
    if not (shutil.which("as") and shutil.which("ld")):
        pytest.skip("binutils (as, ld) not installed: apt-get install binutils")
    obj, image = out / "store64.o", out / "store64.bin"
    subprocess.run(["as", "--32", "-o", str(obj), str(GUEST)], check=True)
    subprocess.run(["ld", "-m", "elf_i386", "-Ttext=0", "--oformat", "binary", "-o",
                    str(image), str(obj)], check=True)
    assert image.stat().st_size == 0x10000
    return image


def cpu_store64(qt: Qtest, addr: int, value: int) -> None:
    qt.writel(ADDRESS, addr)
    qt.write(VALUE, struct.pack("<Q", value))
    qt.writel(REQUEST, 1)
    deadline = time.monotonic() + 20
    while qt.readl(REQUEST) != 2:
        assert time.monotonic() < deadline, "the vCPU did not make the store"
        time.sleep(0.01)


def test_an_8_byte_cpu_store_is_two_register_writes_at_any_4_aligned_offset(
        make_qtest, tmp_path: Path) -> None:
    firmware = build_firmware(tmp_path)
    qt = make_qtest(accel="tcg", qemu_args=("-bios", str(firmware)))
    nic = Bqnic(qt)
    cpu_store64(qt, MMIO_BASE + MAC_LO, 0x0000_5544_3322_1100)  # 0 mod 8
    assert (nic.read(MAC_LO), nic.read(MAC_HI)) == (0x3322_1100, 0x5544)
    cpu_store64(qt, MMIO_BASE + MAC_HI, (2000 << 32) | 0x7766)  # 4 mod 8
    assert (nic.read(MAC_HI), nic.read(MAX_FRAME)) == (0x7766, 2000)
    cpu_store64(qt, MMIO_BASE + MAC_LO + 2, 0xFFFF_FFFF_FFFF_FFFF)  # not 4-aligned
    assert (nic.read(MAC_LO), nic.read(MAC_HI)) == (0x3322_1100, 0x7766)
