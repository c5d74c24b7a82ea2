"""The bqnic driver in the guest against the bqnic model: traffic, offloads, reconfiguration,
and the rx stall that bqlab exists to catch."""

import time
from pathlib import Path

from bqlab.topology import Topology
from bqlab.vm import Vm, VmConfig

from .conftest import DATA_DIR, only_report, run_bqlab

FAIL_FUNCTION = "/sys/kernel/debug/fail_function"


def test_traffic_jumbo_rings_channels(built, bqlab_env: dict[str, str], tmp_path: Path) -> None:
    res = run_bqlab(["run", str(DATA_DIR / "bqnic-traffic.yaml")], bqlab_env)
    assert res.returncode == 0, res.stdout + res.stderr
    report = only_report(tmp_path / "artifacts")
    assert report["verdict"] == "PASS" and report["console_findings"] == {}


def _rx_packets(vm: Vm) -> int:
    return int(vm.run("cat /sys/class/net/test0/statistics/rx_packets", check=True).stdout)


def _ethtool_stat(vm: Vm, name: str) -> int:
    out = vm.run("ethtool -S test0", check=True).stdout
    for line in out.splitlines():
        key, _, value = line.strip().partition(": ")
        if key == name:
            return int(value)
    raise AssertionError(f"no {name} in ethtool -S:\n{out}")


def _device_queue(vm: Vm) -> dict:
    return vm.qmp.cmd("qom-get", path="/machine/peripheral/testnic", property="stats")["queues"][0]


def _stall_probe(built, run_dir: Path, refill_fallback: bool) -> dict:
    """Fail every rx page allocation of the driver for a while under UDP load, then stop
    failing, and see whether reception comes back."""
    configs = [VmConfig("dut", cpus=2, memory_mb=1024, nic="bqnic", queues=1,
                        driver_params={"refill_fallback": refill_fallback}),
               VmConfig("peer", cpus=1, memory_mb=512)]
    with Topology(configs, built, run_dir) as topo:
        dut, peer = topo["dut"], topo["peer"]
        dut.run("iperf3 -s -D", check=True)
        time.sleep(0.5)
        peer.run("setsid iperf3 -u -b 40M -l 1400 -t 60 -c 10.99.0.1 >/dev/null 2>&1 &",
                 check=True)
        time.sleep(2)
        before = _rx_packets(dut)
        dut.run(f"cd {FAIL_FUNCTION} && echo bqnic_alloc_rx_page > inject && "
                "echo 0 > bqnic_alloc_rx_page/retval && echo 100 > probability && "
                "echo -1 > times && echo 0 > verbose", check=True)
        time.sleep(4)  # long enough to drain every buffer the device owns
        starved = _device_queue(dut)
        dut.run(f"echo > {FAIL_FUNCTION}/inject", check=True)
        time.sleep(3)  # the refill work retries every 0.5 s
        settled = _rx_packets(dut)
        dev_settled = _device_queue(dut)
        time.sleep(2)
        after = _rx_packets(dut)
        dev_after = _device_queue(dut)
        return {
            "rx_before_injection": before, "rx_settled": settled, "rx_after": after,
            "alloc_fail": _ethtool_stat(dut, "q0_rx_alloc_fail"),
            "refill_work_runs": _ethtool_stat(dut, "q0_rx_refill_work_runs"),
            "device_starved": starved, "device_settled": dev_settled, "device_after": dev_after,
        }


def test_default_driver_recovers_from_allocation_failures(built, tmp_path: Path) -> None:
    r = _stall_probe(built, tmp_path, refill_fallback=True)
    assert r["alloc_fail"] > 0, r
    assert r["refill_work_runs"] > 0, r
    assert r["rx_after"] > r["rx_settled"], r  # reception goes on
    assert r["device_after"]["lbq_owned"] > 0, r


def test_pre_fix_driver_stalls_for_good(built, tmp_path: Path) -> None:
    """refill_fallback=0 is qlge before the fix: once a buffer queue runs dry, nothing
    refills it. Frames keep arriving and are dropped, rx does not move, ever."""
    r = _stall_probe(built, tmp_path, refill_fallback=False)
    assert r["alloc_fail"] > 0, r
    assert r["refill_work_runs"] == 0, r
    assert r["rx_after"] == r["rx_settled"], r  # stalled
    assert r["device_after"]["lbq_owned"] == 0, r
    assert r["device_after"]["rx_drop_no_lbq"] > r["device_settled"]["rx_drop_no_lbq"], r
