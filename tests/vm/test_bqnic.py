"""The bqnic driver in the guest against the bqnic model: traffic, offloads, reconfiguration,
and the rx stall that bqlab exists to catch."""

import json
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


def _bqnic_topology(built, run_dir: Path, queues: int = 2, **params) -> Topology:
    """A DUT with a bqnic (module parameters from params) and a virtio-net peer."""
    configs = [VmConfig("dut", cpus=2, memory_mb=1024, nic="bqnic", queues=queues,
                        driver_params=params),
               VmConfig("peer", cpus=1, memory_mb=512)]
    return Topology(configs, built, run_dir)


def _stall_probe(built, run_dir: Path, refill_fallback: bool) -> dict:
    """Fail every rx page allocation of the driver for a while under UDP load, then stop
    failing, and see whether reception comes back."""
    with _bqnic_topology(built, run_dir, queues=1, refill_fallback=refill_fallback) as topo:
        dut, peer = topo["dut"], topo["peer"]
        # A silent DUT: no IPv6 chatter, no ARP. Its own transmissions would raise tx
        # completions, and NAPI would run for those.
        peer_mac = peer.config.test_mac
        dut.run("sysctl -qw net.ipv6.conf.test0.disable_ipv6=1 && "
                f"ip neigh replace 10.99.0.2 lladdr {peer_mac} dev test0 nud permanent",
                check=True)
        # Large frames drain the lbq, small ones the sbq: with both empty nothing completes,
        # so nothing raises an interrupt, so NAPI never runs again on its own.
        dut.run("iperf3 -s -D -p 5201 && iperf3 -s -D -p 5202", check=True)
        time.sleep(0.5)
        peer.run("setsid iperf3 -u -b 40M -l 1400 -t 60 -c 10.99.0.1 -p 5201 "
                 ">/dev/null 2>&1 & setsid iperf3 -u -b 2M -l 100 -t 60 -c 10.99.0.1 -p 5202 "
                 ">/dev/null 2>&1 &", check=True)
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
        result = {
            "rx_before_injection": before, "rx_settled": settled, "rx_after": after,
            "alloc_fail": _ethtool_stat(dut, "q0_rx_alloc_fail"),
            "refill_work_runs": _ethtool_stat(dut, "q0_rx_refill_work_runs"),
            "guest_sees_device_drops": _ethtool_stat(dut, "q0_dev_drop_no_lbq"),
            "device_starved": starved, "device_settled": dev_settled, "device_after": dev_after,
        }
        (run_dir / "stall-probe.json").write_text(json.dumps(result, indent=1))
        return result


def test_default_driver_recovers_from_allocation_failures(built, tmp_path: Path) -> None:
    r = _stall_probe(built, tmp_path, refill_fallback=True)
    assert r["alloc_fail"] > 0, r
    assert r["refill_work_runs"] > 0, r
    assert r["device_starved"]["lbq_owned"] == 0 == r["device_starved"]["sbq_owned"], r
    assert r["rx_after"] > r["rx_settled"], r  # reception goes on
    assert r["device_after"]["lbq_owned"] > 0 and r["device_after"]["sbq_owned"] > 0, r


def test_pre_fix_driver_stalls_for_good(built, tmp_path: Path) -> None:
    """refill_fallback=0 is qlge before the fix: once a buffer queue runs dry, nothing
    refills it. Frames keep arriving and are dropped, rx does not move, ever."""
    r = _stall_probe(built, tmp_path, refill_fallback=False)
    assert r["alloc_fail"] > 0, r
    assert r["refill_work_runs"] == 0, r
    assert r["rx_after"] == r["rx_settled"], r  # stalled
    assert r["device_after"]["lbq_owned"] == 0 == r["device_after"]["sbq_owned"], r
    assert r["guest_sees_device_drops"] > 0, r
    assert r["device_after"]["rx_drop_no_lbq"] > r["device_settled"]["rx_drop_no_lbq"], r


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


def test_teardown_leak_switch_leaves_pages_in_flight(built, tmp_path: Path) -> None:
    """teardown_leak=1 must leave its pools alive with pages in flight after close; the
    default driver's pools are gone."""
    leftovers = {}
    for leak in (False, True):
        with _bqnic_topology(built, tmp_path / f"leak{int(leak)}", queues=1,
                             teardown_leak=leak) as topo:
            dut = topo["dut"]
            assert topo["peer"].run("ping -c 3 -i 0.2 10.99.0.1").ok
            dut.run("ip link set test0 down", check=True)
            time.sleep(3)  # a grace period for pages still on their way back
            leftovers[leak] = _test0_pools(dut, detached=True)
    assert leftovers[False] == [], leftovers
    assert len(leftovers[True]) == 1 and leftovers[True][0]["inflight"] >= 256, leftovers
