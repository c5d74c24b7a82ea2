"""The bqnic driver's error paths, driven in the guest with fail_function and by poking the
device: each test fails on the driver before its fix (guest-kernel/README.md, "Error paths").

One topology serves the module; a test that fails, or leaves the DUT in a state the next
one cannot start from, gets the next test a fresh boot."""

import json
import re
import time
from pathlib import Path

import pytest
from bqlab.vm.machine import Vm, VmConfig
from bqlab.vm.ssh import CommandResult
from bqlab.vm.topology import Topology

from .conftest import DATA_DIR

FAIL_FUNCTION = "/sys/kernel/debug/fail_function"
GUEST_HELPER = "/tmp/bqnic_guest.py"
# A driver that kept a program whose attach failed would drop every frame with it.
XDP_DROP = "/usr/local/lib/bqlab/xdp/xdp_drop.o"
DUT_IP, PEER_IP = "10.99.0.1", "10.99.0.2"
QUEUES = 2
OP_TIMEOUT = 60  # a reconfiguration that takes longer is hung (RTNL held)
RX_BACK_WITHIN = 5.0  # seconds for rx to work again once allocations succeed
ENOMEM = -12
# bqnic registers (qemu-device/SPEC.md, section 3)
STATUS, STATUS_DMA_ERR, STATUS_QSTOPPED = 0x00C, 0x2, 0x4


def rxq_ctrl(q: int) -> int:
    return 0x1000 + q * 0x100


def txq_ctrl(q: int) -> int:
    return 0x1000 + q * 0x100 + 0x60


class Lab:
    """The module's topology, booted again when a test left it unusable."""

    def __init__(self, built, run_root: Path):
        self.built = built
        self.run_root = run_root
        self.topo: Topology | None = None
        self.boots = 0
        self.dirty = True
        self.trace = Path()
        self.findings_mark = 0

    @property
    def dut(self) -> Vm:
        return self.topo["dut"]

    @property
    def peer(self) -> Vm:
        return self.topo["peer"]

    def boot(self) -> None:
        self.stop()
        self.boots += 1
        run_dir = self.run_root / f"boot{self.boots}"
        run_dir.mkdir()
        # Every register read of the DUT's bqnic, to see the tx completion read none.
        self.trace = run_dir / "dut-mmio-reads.log"
        configs = [VmConfig("dut", cpus=2, memory_mb=1024, nic="bqnic", queues=QUEUES,
                            extra_args=["-trace",
                                        f"enable=bqnic_mmio_read,file={self.trace}"]),
                   VmConfig("peer", cpus=1, memory_mb=512)]
        self.topo = Topology(configs, self.built, run_dir)
        self.topo.__enter__()
        helper = (DATA_DIR / "bqnic_guest.py").read_text()
        for vm in (self.dut, self.peer):
            vm.run(f"cat > {GUEST_HELPER} <<'EOF'\n{helper}EOF", check=True)
        self.static_neighbours()
        self.dirty = False

    def static_neighbours(self) -> None:
        """No ARP on the test link: a DUT that cannot receive must not also stop the
        peer from sending, and frames the DUT sends go straight to its driver."""
        for vm, other, ip in ((self.dut, self.peer, PEER_IP), (self.peer, self.dut, DUT_IP)):
            vm.run(f"ip neigh replace {ip} lladdr {other.config.test_mac} dev test0 "
                   "nud permanent", check=True)

    def stop(self) -> None:
        if self.topo is not None:
            self.topo.stop()
            self.topo = None

    def mark(self) -> None:
        self.findings_mark = len(self.dut.console_findings())

    def new_findings(self) -> list[str]:
        return [f.excerpt for f in self.dut.console_findings()[self.findings_mark:]]

    def reload_driver(self) -> None:
        self.topo.configure_test_link(self.dut)
        self.static_neighbours()

    def restore(self) -> bool:
        """Back to the state every test starts from; False if the DUT cannot get there."""
        try:
            self.dut.run(f"echo > {FAIL_FUNCTION}/inject", timeout=20, check=True)
            if not self.dut.run("test -e /sys/class/net/test0", timeout=20).ok:
                self.reload_driver()
            self.dut.run(f"python3 {GUEST_HELPER} busmaster on; "
                         "ip link set dev test0 xdpdrv off; "
                         f"ethtool -L test0 combined {QUEUES} 2>/dev/null; "
                         "ethtool -G test0 rx 256 tx 256 2>/dev/null; "
                         "ip link set test0 mtu 1500 && ip link set test0 up",
                         timeout=OP_TIMEOUT, check=True)
            ok, _ = rx_all_queues(self, within=10)
            return ok
        except Exception:
            return False


@pytest.fixture(scope="module")
def lab_module(built, tmp_path_factory):
    lab = Lab(built, tmp_path_factory.mktemp("driver-errors"))
    yield lab
    lab.stop()


@pytest.fixture
def lab(request, lab_module: Lab):
    if lab_module.dirty:
        lab_module.boot()
    lab_module.mark()
    failed = request.session.testsfailed
    yield lab_module
    if request.session.testsfailed != failed or not lab_module.restore():
        lab_module.dirty = True


# ---- helpers ----

def run(vm: Vm, command: str, timeout: float = OP_TIMEOUT) -> CommandResult:
    return vm.run(command, timeout=timeout)


def fail(vm: Vm, function: str, retval: int = 0) -> None:
    """Every call of function fails with retval from now on (fail_function)."""
    vm.run(f"cd {FAIL_FUNCTION} && echo {function} > inject && "
           f"printf %#x {retval} > {function}/retval && echo 100 > probability && "
           "echo 1 > interval && echo -1 > times && echo 0 > verbose", check=True)


def unfail(vm: Vm) -> None:
    vm.run(f"echo > {FAIL_FUNCTION}/inject", check=True)


def ethtool_stats(vm: Vm) -> dict[str, int]:
    out = vm.run("ethtool -S test0", check=True).stdout
    stats = {}
    for line in out.splitlines():
        key, sep, value = line.strip().partition(": ")
        if sep and value.strip().lstrip("-").isdigit():
            stats[key] = int(value)
    return stats


def active_queues(vm: Vm) -> int:
    return int(vm.run("ls -d /sys/class/net/test0/queues/rx-* | wc -l", check=True).stdout)


def burst(vm: Vm, dst: str, flows: int = 64, rounds: int = 2) -> None:
    vm.run(f"python3 {GUEST_HELPER} burst {dst} {flows} {rounds}", check=True)


def per_queue(stats: dict[str, int], name: str, queues: int) -> list[int]:
    return [stats[f"q{q}_{name}"] for q in range(queues)]


def rx_all_queues(lab: Lab, within: float = RX_BACK_WITHIN) -> tuple[bool, list[int]]:
    """Whether every rx queue of the DUT receives from the peer within `within` seconds,
    and how many frames each got."""
    n = active_queues(lab.dut)
    base = per_queue(ethtool_stats(lab.dut), "rx_packets", n)
    deadline = time.monotonic() + within
    while True:
        burst(lab.peer, DUT_IP)
        time.sleep(0.2)
        now = per_queue(ethtool_stats(lab.dut), "rx_packets", n)
        delta = [b - a for a, b in zip(base, now, strict=True)]
        if all(delta) or time.monotonic() > deadline:
            return all(delta), delta


def device_stats(vm: Vm) -> dict:
    return vm.qmp.cmd("qom-get", path="/machine/peripheral/testnic", property="stats")


def dma_api_errors(vm: Vm) -> int:
    return int(vm.run("cat /sys/kernel/debug/dma-api/error_count", check=True).stdout)


def regs(vm: Vm, *offsets: int) -> list[int]:
    out = vm.run(f"python3 {GUEST_HELPER} regs " + " ".join(hex(o) for o in offsets),
                 check=True).stdout
    return [int(v, 16) for v in out.split()]


def pools(vm: Vm) -> list[dict]:
    out = vm.run("ynl-netdev --dump page-pool-get --output-json", check=True).stdout
    return json.loads(out)


def live_pool_ids(vm: Vm) -> set[int]:
    ifindex = int(vm.run("cat /sys/class/net/test0/ifindex", check=True).stdout)
    return {p["id"] for p in pools(vm) if p.get("ifindex") == ifindex
            and "detach-time" not in p}


def unreleased_pools(vm: Vm, within: float = 10.0) -> list[dict]:
    """Destroyed page_pools still waiting for pages after `within` seconds."""
    deadline = time.monotonic() + within
    while (left := [p for p in pools(vm) if "detach-time" in p]) and \
            time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def xdp_progs(vm: Vm, within: float = 5.0) -> list[str]:
    """XDP programs still loaded after `within` seconds (freeing them is deferred)."""
    deadline = time.monotonic() + within
    while True:
        out = vm.run("bpftool prog show", check=True).stdout
        left = [line for line in out.splitlines() if re.match(r"^\d+: xdp ", line)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


def assert_clean_teardown(lab: Lab) -> None:
    """ifdown and rmmod complete, every page_pool goes, nothing in the console; the
    driver is loaded again for the next test."""
    dut = lab.dut
    res = run(dut, "ip link set test0 down", timeout=30)
    assert res.ok, res.stderr
    assert not live_pool_ids(dut)
    res = run(dut, "rmmod bqnic", timeout=30)
    assert res.ok, res.stderr
    assert unreleased_pools(dut) == []
    assert lab.new_findings() == []
    lab.reload_driver()


def assert_next_open_recovers(lab: Lab, dma_api0: int, dev_errors0: int) -> None:
    """After a failed bring-up and a successful open: rx on every queue, no DMA error
    (DMA-API debug or device), nothing in the console, and a clean teardown."""
    dut = lab.dut
    ok, delta = rx_all_queues(lab)
    assert ok, f"frames per rx queue after the next open: {delta}"
    assert dma_api_errors(dut) == dma_api0
    assert device_stats(dut)["dma_errors"] == dev_errors0
    assert lab.new_findings() == []
    assert_clean_teardown(lab)


# ---- tests ----

def test_tx_completion_reads_no_register(lab: Lab) -> None:
    """tx completions come from the DONE flag the device writes into each descriptor, not
    from an MMIO read of TX_CONS in every poll."""
    tx_cons_read = re.compile(r"bqnic_mmio_read addr 0x1[0-7]78 ")

    def reads() -> int:
        text = lab.trace.read_text() if lab.trace.exists() else ""
        return sum(1 for line in text.splitlines() if tx_cons_read.search(line))

    before_stats, before_reads = ethtool_stats(lab.dut), reads()
    burst(lab.dut, PEER_IP, flows=32, rounds=4)
    assert run(lab.dut, f"ping -c 5 -i 0.2 {PEER_IP}").ok
    time.sleep(0.5)
    sent = [b - a for a, b in zip(per_queue(before_stats, "tx_packets", QUEUES),
                                  per_queue(ethtool_stats(lab.dut), "tx_packets", QUEUES),
                                  strict=True)]
    assert all(sent), f"tx completions per queue: {sent}"
    assert reads() - before_reads == 0, "TX_CONS read over MMIO during tx completion"
    assert lab.new_findings() == []


def test_rx_drops_counted_per_queue(lab: Lab) -> None:
    """When no skb can be built every frame is dropped, and each drop is counted on its
    own queue (u64_stats, no shared counter two NAPI polls race on): the drops of each
    queue equal the completions the device wrote on it."""
    dut = lab.dut
    fail(dut, "bqnic_build_skb")
    time.sleep(0.3)
    stats0, dev0 = ethtool_stats(dut), device_stats(dut)
    total0 = int(run(dut, "cat /sys/class/net/test0/statistics/rx_dropped").stdout)
    burst(lab.peer, DUT_IP, flows=64, rounds=4)
    time.sleep(1)
    stats1, dev1 = ethtool_stats(dut), device_stats(dut)
    total1 = int(run(dut, "cat /sys/class/net/test0/statistics/rx_dropped").stdout)
    unfail(dut)
    completions = [dev1["queues"][q]["completions"] - dev0["queues"][q]["completions"]
                   for q in range(QUEUES)]
    assert all(completions), completions
    assert total1 - total0 == sum(completions), "drops lost or counted twice"
    assert all(f"q{q}_rx_dropped" in stats1 for q in range(QUEUES)), \
        "no per-queue rx_dropped in ethtool -S"
    dropped = [b - a for a, b in zip(per_queue(stats0, "rx_dropped", QUEUES),
                                     per_queue(stats1, "rx_dropped", QUEUES), strict=True)]
    assert dropped == completions
    assert lab.new_findings() == []


def test_bql_reset_when_inflight_tx_is_freed(lab: Lab) -> None:
    """tx skbs still in flight when the queues go down are freed with the rings; BQL must
    forget them (netdev_tx_reset_queue) or the tx queue stays stopped after the next up."""
    dut = lab.dut
    inflight = "cat /sys/class/net/test0/queues/tx-*/byte_queue_limits/inflight"
    # Without bus mastering the device takes no descriptor: every skb stays in flight.
    run(dut, f"python3 {GUEST_HELPER} busmaster off")
    burst(dut, PEER_IP, flows=32, rounds=2)
    held = [int(v) for v in run(dut, inflight).stdout.split()]
    assert sum(held) > 0, "precondition: no tx in flight"
    assert run(dut, "ip link set test0 down").ok
    run(dut, f"python3 {GUEST_HELPER} busmaster on")
    assert run(dut, "ip link set test0 up").ok
    after = [int(v) for v in run(dut, inflight).stdout.split()]
    assert after == [0] * len(after), f"BQL in flight after down/up: {after} (was {held})"
    before = per_queue(ethtool_stats(dut), "tx_packets", QUEUES)
    burst(dut, PEER_IP, flows=32, rounds=2)
    time.sleep(0.5)
    sent = [b - a for a, b in zip(before, per_queue(ethtool_stats(dut), "tx_packets",
                                                    QUEUES), strict=True)]
    assert all(sent), f"tx completions per queue after down/up: {sent}"
    assert lab.new_findings() == []


def test_dma_error_recovered_on_next_up(lab: Lab) -> None:
    """A DMA error stops a queue until the device is reset: the next up must reset it."""
    dut = lab.dut
    errors0 = device_stats(dut)["dma_errors"]
    assert run(dut, "ip link set test0 down").ok
    status = int(run(dut, f"python3 {GUEST_HELPER} dma-error").stdout, 16)
    assert status & (STATUS_DMA_ERR | STATUS_QSTOPPED) == STATUS_DMA_ERR | STATUS_QSTOPPED
    assert device_stats(dut)["dma_errors"] - errors0 == QUEUES
    assert run(dut, "ip link set test0 up").ok
    [status] = regs(dut, STATUS)
    assert not status & (STATUS_DMA_ERR | STATUS_QSTOPPED), hex(status)
    ok, delta = rx_all_queues(lab)
    assert ok, f"frames per rx queue after the up: {delta}"
    assert run(dut, f"ping -c 2 -i 0.3 {PEER_IP}").ok
    assert lab.new_findings() == []


def test_open_under_allocation_failure_recovers_alone(lab: Lab) -> None:
    """An open whose first fill gets no page starts anyway; once pages come back the refill
    work fills the queues with nothing else happening (no frame can start NAPI)."""
    dut = lab.dut
    fail(dut, "bqnic_alloc_rx_page")
    res = run(dut, "ip link set test0 down && ip link set test0 up")
    assert res.ok, res.stderr
    time.sleep(1)
    unfail(dut)
    ok, delta = rx_all_queues(lab)
    assert ok, f"rx did not come back by itself after the open: frames per queue {delta}"
    assert lab.new_findings() == []


def test_failed_open_leaves_the_device_quiet(lab: Lab) -> None:
    """An open that fails (here: its IRQ request) must leave no queue enabled on the
    device (its rings were freed: the device would DMA into freed memory), and the next
    open must work on every queue."""
    dut = lab.dut
    dma_api0, dev_errors0 = dma_api_errors(dut), device_stats(dut)["dma_errors"]
    fail(dut, "bqnic_request_irq", ENOMEM)
    res = run(dut, "ip link set test0 down && ip link set test0 up")
    assert not res.ok, "precondition: the IRQ request did not fail"
    unfail(dut)
    enabled = regs(dut, *[f(q) for q in range(QUEUES) for f in (rxq_ctrl, txq_ctrl)])
    assert enabled == [0] * len(enabled), f"queues left enabled (rx, tx per queue): {enabled}"
    res = run(dut, "ip link set test0 up")
    assert res.ok, res.stderr
    assert_next_open_recovers(lab, dma_api0, dev_errors0)


RECONFIGURATIONS = [
    "ethtool -G test0 rx 512",
    "ethtool -L test0 combined 1",
    "ethtool -L test0 combined 2",
    f"ip link set dev test0 xdpdrv obj {XDP_DROP} sec xdp",
    "ip link set dev test0 xdpdrv off",
    "ip link set test0 mtu 9000",
    "ip link set test0 mtu 1500",
]


def test_reconfigure_failure_keeps_the_running_queues(lab: Lab) -> None:
    """Ring, channel, XDP and MTU changes whose bring-up fails (every IRQ request fails)
    leave the queues that ran before running, untouched: same page_pools, rx on every
    queue, no XDP program kept by the driver (the core drops its reference on error)."""
    dut = lab.dut
    dma_api0, dev_errors0 = dma_api_errors(dut), device_stats(dut)["dma_errors"]
    pools0 = live_pool_ids(dut)
    xdp0 = {k: v for k, v in ethtool_stats(dut).items() if "_rx_xdp_" in k}
    fail(dut, "bqnic_request_irq", ENOMEM)
    results = {op: run(dut, op).ok for op in RECONFIGURATIONS}
    # Still failing: what runs must be what ran before.
    ok, delta = rx_all_queues(lab)
    assert ok, f"frames per rx queue after {results}: {delta}"
    assert live_pool_ids(dut) == pools0, results
    xdp1 = {k: v for k, v in ethtool_stats(dut).items() if "_rx_xdp_" in k}
    assert xdp1 == xdp0, "the driver ran an XDP program whose attach failed"
    assert "prog/xdp" not in run(dut, "ip link show test0").stdout
    assert xdp_progs(dut) == [], "an XDP program outlived its failed attach"
    # An open that fails leaves the interface down, and the next one works.
    assert not run(dut, "ip link set test0 down && ip link set test0 up").ok
    unfail(dut)
    assert run(dut, "ip link set test0 up").ok
    assert_next_open_recovers(lab, dma_api0, dev_errors0)


def test_reconfigure_under_allocation_failure(lab: Lab) -> None:
    """pp_alloc_fail.py's pattern: every rx page allocation fails while traffic flows and
    the rings, channels, XDP program, MTU and link are changed; then pages come back and
    rx must follow by itself, with nothing in the console, every old page_pool released,
    and ifdown and rmmod completing."""
    dut = lab.dut
    dma_api0 = dma_api_errors(dut)
    run(lab.peer, f"setsid timeout 120 python3 {GUEST_HELPER} flood {DUT_IP} 120 "
        ">/dev/null 2>&1 & echo $! > /tmp/flood.pid")
    fail(dut, "bqnic_alloc_rx_page")
    for op in [*RECONFIGURATIONS, "ip link set test0 down && ip link set test0 up"]:
        res = run(dut, op)
        assert res.ok, f"{op}: {res.stderr}"
        time.sleep(0.3)
    unfail(dut)
    ok, delta = rx_all_queues(lab)
    run(lab.peer, "kill $(cat /tmp/flood.pid)")
    assert ok, f"rx did not come back by itself: frames per queue {delta}"
    assert xdp_progs(dut) == [], "the detached XDP program is still loaded"
    assert dma_api_errors(dut) == dma_api0
    assert lab.new_findings() == []
    assert_clean_teardown(lab)
