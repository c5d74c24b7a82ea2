"""Benchmarks (figures, never pass/fail): boot time, rx throughput per NIC model, where
the DUT's QEMU spends its CPU, stall verdict latency, scenario wall times."""

import json
import os
import re
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from .build.artifacts import BuiltArtifacts
from .errors import MissingTool
from .hostdeps import require_packages
from .judge.verdicts import STALL, rx_stall_verdict
from .judge.watchdog import DEFAULT_INTERVAL, load_samples, queue_series
from .progress import say
from .run.rundir import new_run_dir, write_json
from .vm import procs, snapshot
from .vm.machine import Vm, VmConfig
from .vm.topology import Topology
from .workload.traffic import Pktgen


def boot(built: BuiltArtifacts, runs: int = 5, cpus: int = 2, memory_mb: int = 1024) -> dict:
    """Median QEMU-start-to-SSH-login of a lone DUT over `runs` cold boots, and over `runs`
    resumes of a snapshot of it booted and idle (snapshot.py)."""
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
    restored = _restored_boots(built, run_dir, runs, cpus, memory_mb)
    result = {"benchmark": "boot-to-ssh", "runs": runs, "accelerator": accel,
              "cpus": cpus, "memory_mb": memory_mb,
              "samples_s": [round(s, 3) for s in samples],
              "median_s": round(statistics.median(samples), 3),
              "restored_samples_s": [round(s, 3) for s in restored],
              "restored_median_s": round(statistics.median(restored), 3),
              "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    write_json(run_dir / "bench.json", result)
    say(f"boot-to-SSH median {result['median_s']:.2f}s cold, "
        f"{result['restored_median_s']:.2f}s from a snapshot, over {runs} each ({accel}); "
        f"{Path(run_dir) / 'bench.json'}")
    return result


def _restored_boots(built: BuiltArtifacts, run_dir: Path, runs: int, cpus: int,
                    memory_mb: int) -> list[float]:
    """QEMU start to SSH of a DUT resumed from a snapshot of it idle after boot."""
    source = run_dir / "snapshot-source"
    source.mkdir()
    with Topology([VmConfig("dut", cpus=cpus, memory_mb=memory_mb)], built, source) as topo:
        topo.snapshot(source / "snapshot", "idle after boot, for bench boot")
    data = snapshot.load(source)
    samples = []
    for i in range(runs):
        where = run_dir / f"restore{i}"
        where.mkdir()
        with Topology(snapshot.configs(data), built, where,
                      restore=snapshot.restore_into(where, data),
                      restore_accel=data["accel"]) as topo:
            samples.append(topo.boot_seconds["dut"])
        say(f"  restore {i + 1}/{runs}: {samples[-1]:.2f}s to SSH")
    return samples


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


RAMP_SECONDS = 1.0  # pktgen's start-up over SSH, before the measured window


def _sample(topo: Topology) -> tuple[int, float, float]:
    """DUT rx packets, its QEMU's CPU seconds, and when (the middle of the SSH read)."""
    dut = topo["dut"]
    assert dut.proc is not None
    before = time.monotonic()
    rx = _rx_packets(topo)
    after = time.monotonic()
    return rx, _qemu_cpu_seconds(dut.proc.pid), (before + after) / 2


def window_rate(first: tuple[int, float, float], last: tuple[int, float, float]
                ) -> tuple[float, float | None]:
    """pps and DUT QEMU CPU µs per frame between two samples taken while traffic ran."""
    frames = last[0] - first[0]
    pps = frames / (last[2] - first[2])
    return pps, (1e6 * (last[1] - first[1]) / frames if frames else None)


def _pktgen_trial(topo: Topology, size: int) -> dict:
    """Rates over the traffic window only: both samples fall while pktgen sends (after its
    start-up, before its stop), so SSH set-up and tear-down never dilute the figure."""
    dut = topo["dut"]
    gen = Pktgen(topo["peer"], topo.address("dut").ipv4, dut.config.test_mac, size, 0,
                 (9, 9))  # the discard port: nothing listens, nothing is queued
    rx0 = _rx_packets(topo)
    gen.start()
    time.sleep(RAMP_SECONDS)
    first = _sample(topo)
    time.sleep(TRIAL_SECONDS)
    last = _sample(topo)
    sent = gen.stop()
    time.sleep(0.5)  # frames still in flight on the link
    received = _rx_packets(topo) - rx0
    pps, cpu = window_rate(first, last)
    return {"sent": sent, "received": received, "lost": max(0, sent - received),
            "pps": pps, "window_s": round(last[2] - first[2], 3),
            "dut_qemu_cpu_us_per_frame": cpu}


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
        # One queue pair for every model: virtio-net over a stream netdev has just one.
        configs = [VmConfig("dut", cpus=2, memory_mb=1024, nic=nic, queues=1),
                   VmConfig("peer", cpus=1, memory_mb=512)]
        with Topology(configs, built, run_dir / nic) as topo:
            row: dict = {"trials": {}}
            for size in (64, 1500):
                runs = [_pktgen_trial(topo, size) for _ in range(trials)]
                row["trials"][f"pktgen{size}"] = runs
                row[f"pktgen{size}_pps"] = _median([r["pps"] for r in runs])
                row[f"pktgen{size}_pps_min"] = min(r["pps"] for r in runs)
                row[f"pktgen{size}_pps_max"] = max(r["pps"] for r in runs)
                row[f"pktgen{size}_lost"] = _median([r["lost"] for r in runs])
                row[f"pktgen{size}_cpu_us_per_frame"] = _median(
                    [r["dut_qemu_cpu_us_per_frame"] for r in runs])
                say(f"  {nic} pktgen {size} B: {row[f'pktgen{size}_pps']:.0f} pps")
            tcp = [_iperf3_trial(topo) for _ in range(trials)]
            row["trials"]["iperf3"] = tcp
            row["iperf3_gbps"] = _median(tcp)
            row["iperf3_gbps_min"], row["iperf3_gbps_max"] = min(tcp), max(tcp)
            say(f"  {nic} iperf3: {row['iperf3_gbps']:.3f} Gbit/s")
            results[nic] = row
    result = {"benchmark": "rx-throughput", "trials": trials, "trial_seconds": TRIAL_SECONDS,
              "accelerator": accel_of(run_dir), "results": results}
    _publish(run_dir, result, throughput_table)
    return result


def _publish(run_dir: Path, result: dict, table_of: Callable[[dict], str]) -> None:
    """Stamp the result, write bench.json and bench.md, print the table."""
    result["measured_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    write_json(run_dir / "bench.json", result)
    table = table_of(result)
    (run_dir / "bench.md").write_text(table + "\n")
    print(table)
    say(f"bench: {run_dir / 'bench.json'}")


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
        lo, hi = res[nic].get(f"{key}_min"), res[nic].get(f"{key}_max")
        if lo is not None and hi is not None and lo != hi:
            text += f" [{lo * scale:,.{digits}f}–{hi * scale:,.{digits}f}]"
        if nic == "bqnic" and base.get(key):
            text += f" ({value / base[key]:.2f}x virtio)"
        return text

    # Medians, with [min–max] over the trials where they differ.
    lines = ["| DUT NIC | pktgen 64 B rx pps | lost | pktgen 1500 B rx pps | lost | "
             "iperf3 TCP Gbit/s | DUT QEMU CPU µs/frame (64 B) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for nic in res:
        lines.append(f"| {nic} | {fmt(nic, 'pktgen64_pps')} | {fmt(nic, 'pktgen64_lost')} | "
                     f"{fmt(nic, 'pktgen1500_pps')} | {fmt(nic, 'pktgen1500_lost')} | "
                     f"{fmt(nic, 'iperf3_gbps', digits=3)} | "
                     f"{fmt(nic, 'pktgen64_cpu_us_per_frame', digits=1)} |")
    return "\n".join(lines)


# --- host CPU profile of the DUT's QEMU while it receives ------------------------------

# Where a frame enters the device model: the net layer's receive, the guest's MMIO
# accesses (doorbells, interrupt re-arm) and the moderation timer.
DEVICE_ENTRY_POINTS = ("bqnic_core_receive_iov", "bqnic_core_write", "bqnic_core_read",
                       "bqnic_itr_timer")
PROFILE_SECONDS = 6


_PERF_ROW = re.compile(r"\s*([\d.]+)%\s+(?:[\d.]+%\s+)?(.*\S)\s*$")


def parse_perf_report(text: str) -> list[tuple[float, str]]:
    """(first percentage, key) per row of `perf report --stdio -g none`: with --children
    the first column is the inclusive share, the self share after it is skipped."""
    rows = []
    for line in text.splitlines():
        m = _PERF_ROW.match(line)
        if m and not line.lstrip().startswith("#"):
            rows.append((float(m.group(1)), m.group(2)))
    return rows


def _perf_report(data: Path, *args: str) -> list[tuple[float, str]]:
    res = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "-g", "none",
                          "--percent-limit", "0.05", *args],
                         capture_output=True, text=True, check=True)
    return parse_perf_report(res.stdout)


def inclusive_shares(rows: list[tuple[float, str]]) -> dict[str, float]:
    """Inclusive share per function name. A function can have several rows (reached
    through different inlined sites): they add up."""
    shares: dict[str, float] = {}
    for pct, sym in rows:
        name = sym.split("] ", 1)[-1]
        shares[name] = shares.get(name, 0.0) + pct
    return shares


def _device_interrupts(vm: Vm) -> int:
    """Queue interrupts bqnic has raised so far (its host-side counters, over QMP)."""
    stats = vm.qmp.cmd("qom-get", path="/machine/peripheral/testnic", property="stats")
    return sum(q["interrupts"] for q in stats["queues"])


def profile(built: BuiltArtifacts, size: int = 64, nic: str = "bqnic") -> dict:
    """perf-record the DUT's QEMU (every thread) while pktgen floods it: host CPU per
    received frame, the share of it spent in the device model (everything called from
    its entry points), and the top functions."""
    require_packages(["linux-perf"], "bqlab bench profile (perf)")
    if shutil.which("perf") is None:
        raise MissingTool("perf", "apt-get install linux-perf")
    run_dir = new_run_dir("bench-profile")
    data = run_dir / "perf.data"
    configs = [VmConfig("dut", cpus=2, memory_mb=1024, nic=nic, queues=2),
               VmConfig("peer", cpus=1, memory_mb=512)]
    with Topology(configs, built, run_dir / nic) as topo:
        dut = topo["dut"]
        assert dut.proc is not None
        gen = Pktgen(topo["peer"], topo.address("dut").ipv4, dut.config.test_mac, size, 0,
                     (9, 9))
        gen.start()
        time.sleep(1)  # past pktgen's start-up
        rx0, cpu0 = _rx_packets(topo), _qemu_cpu_seconds(dut.proc.pid)
        irq0 = _device_interrupts(dut) if nic == "bqnic" else None
        with open(run_dir / "perf-record.log", "w") as log:
            rec = procs.spawn(["perf", "record", "-F", "499", "--call-graph", "dwarf,8192",
                               "-o", str(data), "-p", str(dut.proc.pid), "--",
                               "sleep", str(PROFILE_SECONDS)], stdout=log, stderr=log)
            try:
                rec.wait(timeout=PROFILE_SECONDS + 60)
            finally:
                procs.kill(rec)
        rx1, cpu1 = _rx_packets(topo), _qemu_cpu_seconds(dut.proc.pid)
        irq1 = _device_interrupts(dut) if nic == "bqnic" else None
        gen.stop()
    frames = rx1 - rx0
    irqs_per_frame = (None if irq0 is None or irq1 is None or not frames
                      else round((irq1 - irq0) / frames, 3))
    cpu_us_per_frame = 1e6 * (cpu1 - cpu0) / frames if frames else None
    inclusive = inclusive_shares(_perf_report(data, "--children", "--sort", "sym"))
    device_pct = sum(inclusive.get(f, 0.0) for f in DEVICE_ENTRY_POINTS)
    top = [{"percent": pct, "symbol": sym} for pct, sym in
           _perf_report(data, "--no-children", "--sort", "dso,sym")[:15]]
    by_dso: dict[str, float] = {}
    for pct, dso in _perf_report(data, "--no-children", "--sort", "dso"):
        key = "TCG-generated guest code" if dso.startswith("[JIT]") else dso
        by_dso[key] = round(by_dso.get(key, 0.0) + pct, 2)
    result = {"benchmark": "dut-qemu-profile", "nic": nic, "frame_bytes": size,
              "seconds": PROFILE_SECONDS, "frames": frames,
              "rx_pps": round(frames / PROFILE_SECONDS),
              "cpu_us_per_frame": None if cpu_us_per_frame is None
              else round(cpu_us_per_frame, 1),
              "interrupts_per_frame": irqs_per_frame,
              "device_model_percent": round(device_pct, 2),
              "device_model_us_per_frame": None if cpu_us_per_frame is None
              else round(cpu_us_per_frame * device_pct / 100, 2),
              "device_entry_points": {f: round(inclusive.get(f, 0.0), 2)
                                    for f in DEVICE_ENTRY_POINTS},
              "by_dso": by_dso, "top_functions": top, "perf_data": str(data)}
    _publish(run_dir, result, profile_table)
    say(f"bench: perf report -i {data}")
    return result


def profile_table(result: dict) -> str:
    lines = [f"DUT QEMU host CPU per received {result['frame_bytes']} B frame ({result['nic']}, "
             f"{result['rx_pps']:,} pps): {result['cpu_us_per_frame']} µs, of which the "
             f"device model {result['device_model_us_per_frame']} µs "
             f"({result['device_model_percent']}%); "
             f"{result['interrupts_per_frame']} interrupts per frame", "",
             "| where | share |", "| --- | ---: |"]
    lines += [f"| {dso} | {pct:.1f}% |" for dso, pct in
              sorted(result["by_dso"].items(), key=lambda kv: -kv[1])[:5]]
    lines += ["", "| top functions (self) | share |", "| --- | ---: |"]
    lines += [f"| `{row['symbol']}` | {row['percent']:.1f}% |"
              for row in result["top_functions"][:10]]
    return "\n".join(lines)


# --- verdict latency and scenario wall times ---------------------------------------------


def stall_latency(built: BuiltArtifacts) -> dict:
    """Run rx-stall-buggy, then replay its samples as a live watchdog would see them: the
    latency is from the moment the stall starts counting (buffer queue empty, frames
    dropped, and the pressure over) to the first sample at which the verdict is STALL."""
    from . import scenario
    from .run.runner import run_scenario

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
        f"(threshold {threshold}s, sampled every {DEFAULT_INTERVAL}s)")
    return result


def scenario_times(built: BuiltArtifacts) -> dict:
    from . import scenario
    from .run.runner import run_scenario

    times = {}
    for name in scenario.builtin_names():
        rep = run_scenario(scenario.load(name), built)
        times[name] = {"seconds": round(rep.duration, 1), "verdict": rep.verdict}
    lines = ["| scenario | wall time | verdict |", "| --- | ---: | --- |"]
    lines += [f"| `{name}` | {t['seconds']:.0f} s | {t['verdict']} |" for name, t in times.items()]
    print("\n".join(lines))
    return {"benchmark": "scenario-wall-time", "scenarios": times}
