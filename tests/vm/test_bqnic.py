"""The bqnic driver in the guest against the bqnic model: traffic, offloads, reconfiguration.

The rx stall and the teardown leaks are judged by the scenarios (test_scenarios.py)."""

import json
import time
from pathlib import Path

from bqlab.vm.machine import Vm, VmConfig
from bqlab.vm.topology import Topology

from .conftest import DATA_DIR, only_report, run_bqlab


def test_traffic_jumbo_rings_channels(built, bqlab_env: dict[str, str], tmp_path: Path) -> None:
    res = run_bqlab(["run", str(DATA_DIR / "bqnic-traffic.yaml")], bqlab_env)
    assert res.returncode == 0, res.stdout + res.stderr
    report = only_report(tmp_path / "artifacts")
    assert report["verdict"] == "PASS" and report["console_findings"] == {}


def _ethtool_stat(vm: Vm, name: str) -> int:
    out = vm.run("ethtool -S test0", check=True).stdout
    for line in out.splitlines():
        key, _, value = line.strip().partition(": ")
        if key == name:
            return int(value)
    raise AssertionError(f"no {name} in ethtool -S:\n{out}")


def _bqnic_topology(built, run_dir: Path, queues: int = 2, **params) -> Topology:
    """A DUT with a bqnic (module parameters from params) and a virtio-net peer."""
    configs = [VmConfig("dut", cpus=2, memory_mb=1024, nic="bqnic", queues=queues,
                        driver_params=params),
               VmConfig("peer", cpus=1, memory_mb=512)]
    return Topology(configs, built, run_dir)


def _start_udp_load(topo: Topology, seconds: int, rate: str = "20M") -> None:
    topo["dut"].run("iperf3 -s -D", check=True)
    time.sleep(0.5)
    topo["peer"].run(f"setsid iperf3 -u -b {rate} -l 1400 -t {seconds} -c 10.99.0.1 "
                     ">/dev/null 2>&1 &", check=True)


def _test0_pools(vm: Vm, detached: bool) -> list[dict]:
    """test0's page_pools from netlink: live ones, or destroyed ones still waiting for
    in-flight pages (those carry a detach-time)."""
    out = vm.run("ynl-netdev --dump page-pool-get --output-json", check=True).stdout
    ifindex = int(vm.run("cat /sys/class/net/test0/ifindex", check=True).stdout)
    return [p for p in json.loads(out) if p.get("ifindex") == ifindex
            and ("detach-time" in p) == detached]


def _page_pools(vm: Vm) -> list[dict]:
    return _test0_pools(vm, detached=False)


def test_page_pools_visible_over_netlink(built, tmp_path: Path) -> None:
    with _bqnic_topology(built, tmp_path, queues=2) as topo:
        dut = topo["dut"]
        pools = _page_pools(dut)
        assert len(pools) == 2, pools  # one per rx queue
        assert all("inflight" in p and p["inflight"] > 0 for p in pools), pools
        assert len({p["napi-id"] for p in pools}) == 2, pools
        ids = {p["id"] for p in pools}
        dut.run("ip link set test0 down", check=True)
        time.sleep(1)
        assert not ids & {p["id"] for p in _page_pools(dut)}  # destroyed with the rings
        qstats = dut.run("ynl-netdev --dump qstats-get --output-json", check=True).stdout
        assert "rx-alloc-fail" in qstats


XDP_OBJ = "/usr/local/lib/bqlab/xdp"
CPUMAP_QSIZE_1024 = ("bpftool map update name cpu_map key hex 00 00 00 00 "
                     "value hex 00 04 00 00 00 00 00 00")


def test_xdp_actions_under_traffic(built, tmp_path: Path) -> None:
    """Attach and detach each action under load: every attach rebuilds the rings with new
    page_pools; the old ones must go away."""
    with _bqnic_topology(built, tmp_path, queues=2) as topo:
        dut = topo["dut"]
        _start_udp_load(topo, 120)
        for action in ("pass", "drop", "tx", "redirect_cpu"):
            pools_before = {p["id"] for p in _page_pools(dut)}
            attach = f"ip link set dev test0 xdpdrv obj {XDP_OBJ}/xdp_{action}.o sec xdp"
            if action == "redirect_cpu":
                attach += f" && {CPUMAP_QSIZE_1024}"
            dut.run(attach, timeout=60, check=True)
            time.sleep(2)
            assert "prog/xdp" in dut.run("ip link show test0").stdout
            dut.run("ip link set dev test0 xdpdrv off", timeout=60, check=True)
            time.sleep(1)
            pools_after = {p["id"] for p in _page_pools(dut)}
            assert len(pools_after) == 2 and not pools_after & pools_before, action
        stats = {k: sum(_ethtool_stat(dut, f"q{q}_rx_xdp_{k}") for q in (0, 1))
                 for k in ("drop", "tx", "redirect")}
        assert all(v > 0 for v in stats.values()), stats
        assert dut.run("ping -c 2 -i 0.3 10.99.0.2").ok  # detached: normal rx again
        assert topo.findings()["dut"] == []


def test_rmmod_insmod_under_traffic(built, tmp_path: Path) -> None:
    reload = (
        "for i in $(seq 20); do rmmod bqnic || exit 1; modprobe bqnic || exit 2; "
        "d=$(basename $(ls -d /sys/bus/pci/drivers/bqnic/*/net/*)); "
        "ip link set $d name test0 && ip addr add 10.99.0.1/24 dev test0 && "
        "ip link set test0 up || exit 3; done")
    with _bqnic_topology(built, tmp_path, queues=2) as topo:
        dut = topo["dut"]
        dma_errors = dut.run("cat /sys/kernel/debug/dma-api/error_count", check=True).stdout
        _start_udp_load(topo, 120)
        res = dut.run(reload, timeout=300)
        assert res.ok, res.stdout + res.stderr
        time.sleep(1)
        assert dut.run("ping -c 2 -i 0.3 10.99.0.2").ok
        assert dut.run("cat /sys/kernel/debug/dma-api/error_count").stdout == dma_errors
        assert topo.findings()["dut"] == []
