"""Guest-side helper of test_driver_errors.py, copied into both VMs as /tmp/bqnic_guest.py.

  burst DST FLOWS ROUNDS       UDP to DST, one socket per flow (its own source port and tx
                               hash, so flows spread over rx and tx queues), distinct ports
  flood DST SECONDS            the same at a few thousand frames/s, for background load
  regs OFFSET...               read bqnic registers (BAR0 of test0), one hex value a line
  dma-error                    make each queue of a stopped bqnic fail a DMA (a tx ring at an
                               address nothing answers at) and print STATUS
  busmaster on|off             set or clear bus mastering of test0's PCI function

Registers are accessed 32 bits at a time, as the device requires (SPEC.md section 3).
"""

import mmap
import os
import socket
import sys
import time

DEV = "/sys/class/net/test0/device"
CTRL, STATUS, NUM_QUEUES = 0x008, 0x00C, 0x010
CTRL_TX_EN = 1 << 2
TXQ_CTRL, TX_BASE_LO, TX_BASE_HI, TX_SIZE, TX_PROD = 0x60, 0x68, 0x6C, 0x70, 0x74
BAD_IOVA_HI = 0xDEAD  # 0xdead_0000_0000: far above guest memory


def qreg(q: int, reg: int) -> int:
    return 0x1000 + q * 0x100 + reg


class Bar:
    def __init__(self) -> None:
        fd = os.open(f"{DEV}/resource0", os.O_RDWR | os.O_SYNC)
        self.map = mmap.mmap(fd, 0x10000, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        os.close(fd)
        self.words = memoryview(self.map).cast("I")  # one 32-bit load or store each

    def read(self, off: int) -> int:
        return self.words[off // 4]

    def write(self, off: int, val: int) -> None:
        self.words[off // 4] = val


def burst(dst: str, flows: int, rounds: int, size: int = 64) -> None:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(flows)]
    for _ in range(rounds):
        for i, s in enumerate(socks):
            s.sendto(b"x" * size, (dst, 20000 + i))


def flood(dst: str, seconds: float) -> None:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(16)]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for i, s in enumerate(socks):
            s.sendto(b"y" * 64, (dst, 21000 + i))
        time.sleep(0.004)


def dma_error() -> None:
    bar = Bar()
    for q in range(bar.read(NUM_QUEUES)):
        bar.write(qreg(q, TX_BASE_LO), 0)
        bar.write(qreg(q, TX_BASE_HI), BAD_IOVA_HI)
        bar.write(qreg(q, TX_SIZE), 8)
        bar.write(qreg(q, TXQ_CTRL), 1)
        bar.write(CTRL, CTRL_TX_EN)
        bar.write(qreg(q, TX_PROD), 1)  # the device reads the descriptor: DMA error
        bar.write(CTRL, 0)
        bar.write(qreg(q, TXQ_CTRL), 0)
    print(hex(bar.read(STATUS)))


def busmaster(on: bool) -> None:
    with open(f"{DEV}/config", "r+b", buffering=0) as f:
        f.seek(4)
        cmd = int.from_bytes(f.read(2), "little")
        cmd = cmd | 4 if on else cmd & ~4
        f.seek(4)
        f.write(cmd.to_bytes(2, "little"))


def main(argv: list[str]) -> None:
    what = argv[0]
    if what == "burst":
        burst(argv[1], int(argv[2]), int(argv[3]))
    elif what == "flood":
        flood(argv[1], float(argv[2]))
    elif what == "regs":
        bar = Bar()
        for off in argv[1:]:
            print(hex(bar.read(int(off, 0))))
    elif what == "dma-error":
        dma_error()
    elif what == "busmaster":
        busmaster(argv[1] == "on")
    else:
        sys.exit(f"unknown command {what}")


if __name__ == "__main__":
    main(sys.argv[1:])
