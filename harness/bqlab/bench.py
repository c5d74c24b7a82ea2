"""Benchmarks (figures, not pass/fail): `bqlab bench boot` for now."""

import statistics
import time
from pathlib import Path

from .build.artifacts import BuiltArtifacts
from .progress import say
from .rundir import new_run_dir, write_json
from .topology import Topology
from .vm import VmConfig


def boot(built: BuiltArtifacts, runs: int = 5, cpus: int = 2, memory_mb: int = 1024) -> dict:
    """Median QEMU-start-to-SSH-login of a lone DUT over `runs` boots."""
    run_dir = new_run_dir("bench-boot")
    samples: list[float] = []
    accel = ""
    for i in range(runs):
        topo = Topology([VmConfig("dut", cpus=cpus, memory_mb=memory_mb)], built,
                        run_dir / f"boot{i}")
        (run_dir / f"boot{i}").mkdir(exist_ok=True)
        with topo:
            samples.append(topo.boot_seconds["dut"])
            accel = topo.accel
        say(f"  boot {i + 1}/{runs}: {samples[-1]:.2f}s to SSH")
    result = {"benchmark": "boot-to-ssh", "runs": runs, "accelerator": accel,
              "cpus": cpus, "memory_mb": memory_mb,
              "samples_s": [round(s, 3) for s in samples],
              "median_s": round(statistics.median(samples), 3),
              "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    write_json(run_dir / "bench.json", result)
    say(f"boot-to-SSH median {result['median_s']:.2f}s over {runs} boots ({accel}); "
        f"{Path(run_dir) / 'bench.json'}")
    return result
