"""Benchmarks (figures, never pass/fail): boot time, rx throughput per NIC model."""

import json
import os
import statistics
import time
from pathlib import Path

from .build.artifacts import BuiltArtifacts
from .progress import say
from .rundir import new_run_dir, write_json
from .topology import Topology
from .traffic import Pktgen
from .verdicts import STALL, rx_stall_verdict
from .vm import VmConfig
from .watchdog import load_samples, queue_series


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


# --- rx throughput into the DUT, per NIC model, same peer --------------------------------

NICS = ("bqnic", "virtio-net-pci", "e1000e")
TRIAL_SECONDS = 5


def _qemu_cpu_seconds(pid: int) -> float:
    """utime + stime of a host process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rx_packets(topo: Topology) -> int:
    return int(topo["dut"].run("cat /sys/class/net/test0/statistics/rx_packets",
                               check=True).stdout)


def _pktgen_trial(topo: Topology, size: int) -> dict:
    dut = topo["dut"]
    gen = Pktgen(topo["peer"], topo.address("dut").ipv4, dut.config.test_mac, size, 0,
                 (9, 9))  # the discard port: nothing listens, nothing is queued
    assert dut.proc is not None
    rx0, cpu0, t0 = _rx_packets(topo), _qemu_cpu_seconds(dut.proc.pid), time.monotonic()
    gen.start()
    time.sleep(TRIAL_SECONDS)
    sent = gen.stop()
    time.sleep(0.5)  # frames still in flight on the link
    rx1, cpu1, t1 = _rx_packets(topo), _qemu_cpu_seconds(dut.proc.pid), time.monotonic()
    received = rx1 - rx0
    return {"sent": sent, "received": received, "lost": max(0, sent - received),
            "pps": received / (t1 - t0 - 0.5),
            "dut_qemu_cpu_us_per_frame": 1e6 * (cpu1 - cpu0) / received if received else None}


def _iperf3_trial(topo: Topology) -> float:
    dut, peer = topo["dut"], topo["peer"]
    dut.run("pkill -x iperf3; iperf3 -s -1 -D", check=True)
    time.sleep(0.3)
    res = peer.run(f"iperf3 -c {topo.address('dut').ipv4} -t {TRIAL_SECONDS} -J",
                   timeout=TRIAL_SECONDS + 30, check=True)
    return json.loads(res.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def throughput(built: BuiltArtifacts, trials: int = 3, nics: tuple[str, ...] = NICS) -> dict:
    """pktgen 64 B and 1500 B (pps, losses) and iperf3 TCP into the DUT, for each NIC model
    in turn, medians of `trials`."""
    run_dir = new_run_dir("bench-throughput")
    results: dict[str, dict] = {}
    for nic in nics:
        say(f"bench: DUT with {nic}")
        configs = [VmConfig("dut", cpus=2, memory_mb=1024, nic=nic, queues=2),
                   VmConfig("peer", cpus=1, memory_mb=512)]
        with Topology(configs, built, run_dir / nic) as topo:
            row: dict = {"trials": {}}
            for size in (64, 1500):
                runs = [_pktgen_trial(topo, size) for _ in range(trials)]
                row["trials"][f"pktgen{size}"] = runs
                row[f"pktgen{size}_pps"] = _median([r["pps"] for r in runs])
                row[f"pktgen{size}_lost"] = _median([r["lost"] for r in runs])
                row[f"pktgen{size}_cpu_us_per_frame"] = _median(
                    [r["dut_qemu_cpu_us_per_frame"] for r in runs])
                say(f"  {nic} pktgen {size} B: {row[f'pktgen{size}_pps']:.0f} pps")
            tcp = [_iperf3_trial(topo) for _ in range(trials)]
            row["trials"]["iperf3"] = tcp
            row["iperf3_gbps"] = _median(tcp)
            say(f"  {nic} iperf3: {row['iperf3_gbps']:.3f} Gbit/s")
            results[nic] = row
    result = {"benchmark": "rx-throughput", "trials": trials, "trial_seconds": TRIAL_SECONDS,
              "accelerator": accel_of(run_dir), "results": results,
              "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    write_json(run_dir / "bench.json", result)
    table = throughput_table(result)
    (run_dir / "bench.md").write_text(table + "\n")
    print(table)
    say(f"bench: {run_dir / 'bench.json'}")
    return result


def accel_of(run_dir: Path) -> str:
    for cmdline in run_dir.glob("*/*/qemu-cmdline.txt"):
        text = cmdline.read_text()
        return "kvm" if "-accel kvm" in text or "accel\nkvm" in text else "tcg"
    return ""


def throughput_table(result: dict) -> str:
    res = result["results"]
    base = res.get("virtio-net-pci", {})

    def fmt(nic: str, key: str, scale: float = 1.0, digits: int = 0) -> str:
        value = res[nic].get(key)
        if value is None:
            return "-"
        text = f"{value * scale:,.{digits}f}"
        if nic == "bqnic" and base.get(key):
            text += f" ({value / base[key]:.2f}x virtio)"
        return text

    lines = ["| DUT NIC | pktgen 64 B rx pps | lost | pktgen 1500 B rx pps | lost | "
             "iperf3 TCP Gbit/s | DUT QEMU CPU µs/frame (64 B) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for nic in res:
        lines.append(f"| {nic} | {fmt(nic, 'pktgen64_pps')} | {fmt(nic, 'pktgen64_lost')} | "
                     f"{fmt(nic, 'pktgen1500_pps')} | {fmt(nic, 'pktgen1500_lost')} | "
                     f"{fmt(nic, 'iperf3_gbps', digits=3)} | "
                     f"{fmt(nic, 'pktgen64_cpu_us_per_frame', digits=1)} |")
    return "\n".join(lines)


# --- verdict latency and scenario wall times ---------------------------------------------


def stall_latency(built: BuiltArtifacts) -> dict:
    """Run rx-stall-buggy, then replay its samples as a live watchdog would see them: the
    latency is from the moment the stall starts counting (buffer queue empty, frames
    dropped, and the pressure over) to the first sample at which the verdict is STALL."""
    from . import scenario
    from .runner import run_scenario

    rep = run_scenario(scenario.load("rx-stall-buggy"), built)
    guest, device = load_samples(rep.artifacts / "watch.jsonl")
    series = queue_series(guest, device)
    [stall] = [v for v in rep.verdicts if v["name"] == "rx-stall"]
    pressure_end, threshold = stall["pressure"][-1][1], stall["threshold"]
    detected = None
    for t in sorted({s.t for samples in series.values() for s in samples if s.t > pressure_end}):
        seen = {q: [s for s in samples if s.t <= t] for q, samples in series.items()}
        if rx_stall_verdict(seen, pressure_end, threshold).verdict == STALL:
            detected = t
            break
    result = {"benchmark": "stall-verdict-latency", "scenario": "rx-stall-buggy",
              "threshold_s": threshold, "verdict": stall["verdict"],
              "latency_s": None if detected is None else round(detected - pressure_end, 3),
              "artifacts": str(rep.artifacts)}
    say(f"bench: STALL verdict {result['latency_s']}s after the stall began "
        f"(threshold {threshold}s)")
    return result


def scenario_times(built: BuiltArtifacts) -> dict:
    from . import scenario
    from .runner import run_scenario

    times = {}
    for name in scenario.builtin_names():
        rep = run_scenario(scenario.load(name), built)
        times[name] = {"seconds": round(rep.duration, 1), "verdict": rep.verdict}
    return {"benchmark": "scenario-wall-time", "scenarios": times}
