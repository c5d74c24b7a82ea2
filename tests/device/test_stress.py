"""Randomised abuse: 100k register and descriptor writes with frames flying. QEMU must stay
up and answer, and a reset must bring the device back to work."""

import os
import random

from .bqnic_driver import CTRL, CTRL_RESET, Q_BASE, Q_STRIDE, RSS_INDIR, Bqnic
from .qtest_client import MMIO_BASE, Frame

WRITES = 100_000
GLOBAL_REGS = [0x008, 0x018, 0x01C, 0x020, 0x024, 0x028, 0x02C, 0x040, RSS_INDIR, 0x100,
               0x104, 0x108, 0x0FFC]
QUEUE_REGS = list(range(0, 0x90, 4))


def _value(rng: random.Random, ram: tuple[int, int]) -> int:
    kind = rng.random()
    if kind < 0.3:
        return rng.choice([0, 1, 7, 8, 16, 64, 4096, 4097, 65536, 0xFFFFFFFF])
    if kind < 0.5:
        return rng.randrange(ram[0], ram[1]) & ~7  # a plausible ring or buffer address
    if kind < 0.7:
        return rng.randrange(0, 256)  # small index
    return rng.getrandbits(32)


def test_random_programming_does_not_kill_qemu(make_qtest) -> None:
    seed = int(os.environ.get("BQLAB_STRESS_SEED", random.SystemRandom().getrandbits(32)))
    rng = random.Random(seed)
    qt = make_qtest(queues=4)
    nic = Bqnic(qt)
    for q in range(4):
        nic.setup_queue(q, cq_size=16, sbq_size=16, lbq_size=16, tx_size=16)
        nic.post(q, "sbq", 8)
        nic.post(q, "lbq", 8)
    nic.start()
    rings = (nic.queues[0].cq, qt.next_alloc)
    done = batches = 0
    while done < WRITES:
        batches += 1
        if batches % 20 == 0:
            # Bring the device back to a working state now and then, so the chaos also
            # hits live rings with frames flowing, not just a device that gave up.
            qt.set_bus_master(True)
            nic.write(CTRL, CTRL_RESET)
            qt.next_alloc = rings[0]
            for q in range(4):
                nic.setup_queue(q, cq_size=16, sbq_size=16, lbq_size=16, tx_size=16)
                nic.post(q, "sbq", 8)
                nic.post(q, "lbq", 8)
            nic.start(rng.getrandbits(7) & ~CTRL_RESET)
        lines = []
        for _ in range(500):
            r = rng.random()
            if r < 0.55:
                reg = Q_BASE + rng.randrange(5) * Q_STRIDE + rng.choice(QUEUE_REGS)
                value = _value(rng, rings)
                if reg % Q_STRIDE in (0x00, 0x60) and rng.random() < 0.8:
                    value = 1  # mostly (re)enable rings, so traffic flows through them
            elif r < 0.65:
                reg = rng.choice(GLOBAL_REGS)
                value = _value(rng, rings)
                if reg == CTRL and rng.random() < 0.9:
                    continue  # resets are rare: they would stop everything else
            elif r < 0.7:
                reg = rng.randrange(0, 0x10000) & ~3
                value = _value(rng, rings)
            else:
                # garbage into the rings: descriptors, buffer entries, completions
                addr = rng.randrange(*rings)
                lines.append(f"writel 0x{addr & ~3:x} 0x{_value(rng, rings):x}")
                continue
            lines.append(f"writel 0x{MMIO_BASE + reg:x} 0x{value:x}")
        qt.batch(lines)
        done += len(lines)
        for _ in range(rng.randrange(4)):
            qt.send_frame(Frame().raw(rng.randbytes(rng.randrange(1, 9300))))
        if rng.random() < 0.05:
            qt.set_bus_master(rng.random() < 0.8)
    qt.set_bus_master(True)
    assert qt.alive(), f"seed {seed}: {qt.stderr_text()}"
    assert qt.qmp.cmd("query-status")["status"] == "running", f"seed {seed}"
    assert "queues" in qt.stats()

    nic.write(CTRL, CTRL_RESET)
    nic.reset()
    nic.setup_queue(0)
    nic.start()
    nic.post(0, "sbq", 4)
    frame = Frame().raw(b"alive after the storm" * 2)
    qt.send_frame(frame)
    qt.sync()
    assert [d for _, d in nic.completions(0)] == [frame], f"seed {seed}"
