"""What each scenario step does on the VMs, and what counts as passing."""

import json
import shlex
import time
from dataclasses import dataclass, field
from typing import Any

from ..build import kernel_features
from ..errors import InfraError
from ..vm import nics
from ..vm.ssh import CommandTimeout
from ..vm.topology import Topology
from ..workload import churn, selftests
from ..workload.pressure import Balloon, DmaFault, FailFunction, FailPageAlloc, FailSlab, MemHog
from ..workload.traffic import Pktgen, Sinks, StoppedTcp, parse_ports
from .runstate import RunState


@dataclass
class StepResult:
    index: int
    kind: str
    line: int
    ok: bool
    summary: str
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _ping(topo: Topology, step: dict) -> tuple[bool, str, dict]:
    src, dst = topo[step["from"]], topo.address(step["to"])
    target = dst.ipv6 if step["ipv6"] else dst.ipv4
    cmd = f"ping {'-6 ' if step['ipv6'] else ''}-c {step['count']} -i 0.2 -W 2 {target}"
    try:
        res = src.run(cmd, timeout=10 + 2.5 * step["count"])
    except CommandTimeout as e:
        return False, str(e), {"timed_out": e.host}
    last = [ln for ln in res.stdout.splitlines() if "packets transmitted" in ln]
    stats = last[0] if last else res.stderr.strip()
    return res.ok, f"{step['from']} -> {step['to']} {target}: {stats}", {"output": res.stdout}


def _iperf3(topo: Topology, step: dict) -> tuple[bool, str, dict]:
    server, client = topo[step["server"]], topo[step["client"]]
    addr = topo.address(step["server"]).ipv4
    server.run("pkill -x iperf3; iperf3 -s -1 -D", timeout=15, check=True)
    time.sleep(0.3)  # the daemon needs a moment to listen
    try:
        res = client.run(f"iperf3 -c {addr} -t {step['seconds']} -J",
                         timeout=step["seconds"] + 30)
    except CommandTimeout as e:
        return False, str(e), {"timed_out": e.host}
    try:
        data = json.loads(res.stdout)
        bps = data["end"]["sum_received"]["bits_per_second"]
    except (ValueError, KeyError) as e:
        return False, f"iperf3 gave no result: {res.stderr.strip() or e}", {}
    mbps = bps / 1e6
    ok = res.ok and mbps > step["min_mbps"] and bps > 0
    return ok, (f"{step['client']} -> {step['server']}: {mbps:.1f} Mbit/s over "
                f"{step['seconds']} s"), {"mbps": round(mbps, 2)}


def _shell(topo: Topology, step: dict) -> tuple[bool, str, dict]:
    try:
        res = topo[step["on"]].run(step["command"], timeout=step["timeout"])
    except CommandTimeout as e:
        return False, str(e), {"timed_out": e.host}
    ok = res.exit_status == step["expect_exit"]
    return ok, (f"{step['on']}: `{shlex.quote(step['command'])[:60]}` exited "
                f"{res.exit_status} (expected {step['expect_exit']})"), \
        {"stdout": res.stdout[-4000:], "stderr": res.stderr[-4000:]}


def _traffic(state: RunState, step: dict) -> tuple[bool, str, dict]:
    topo = state.topo
    sender, receiver = topo[step["from"]], topo[step["to"]]
    dst = topo.address(step["to"]).ipv4
    if step["method"] == "stopped-tcp":
        flow = StoppedTcp(sender, receiver, dst, streams=step["streams"])
        state.start_traffic(flow, to_dut=step["to"] == "dut")
        return True, (f"{step['from']} -> {step['to']}: {step['streams']} TCP stream(s) into "
                      "a stopped receiver"), {}
    ports = parse_ports(step["ports"])
    sinks = ""
    if step["sinks"]:
        sink = Sinks(receiver, ports, step["rcvbuf_mb"])
        sink.start()
        state.sinks.append(sink)
        sinks = f", unread sinks of {step['rcvbuf_mb']} MiB"
    gen = Pktgen(sender, dst, receiver.config.test_mac, step["size"], step["rate"], ports,
                 step["threads"])
    state.start_traffic(gen, to_dut=step["to"] == "dut")
    rate = f"{step['rate']} pps" if step["rate"] else "full rate"
    return True, (f"{step['from']} -> {step['to']}: pktgen {step['size']} B, {rate}, "
                  f"UDP ports {step['ports']}{sinks}"), {}


def _pressure(state: RunState, step: dict) -> tuple[bool, str, dict]:
    dut = state.topo["dut"]
    kind = step["method"]
    if kind == "fail_function":
        function = kernel_features.injection_point(state.topo.built.bzimage.parent,
                                                   step["function"])
        p = FailFunction(dut, function, step["retval"], step["probability"],
                         step["interval"], step["task_filter"])
        moved = f" (this kernel's {step['function']})" if function != step["function"] else ""
        what = f"fail_function {function}{moved} at {step['probability']}%" + (
            f", every {step['interval']}th call" if step["interval"] > 1 else "") + (
            ", in marked commands only" if step["task_filter"] else "")
    elif kind == "fail_page_alloc":
        p = FailPageAlloc(dut, step["probability"], step["min_order"], step["task_filter"],
                          step["seconds"])
        what = f"fail_page_alloc ({'marked commands' if step['task_filter'] else 'atomic'}, " \
               f"order >= {step['min_order']}) at {step['probability']}%"
    elif kind == "failslab":
        p = FailSlab(dut, tuple(step["caches"]), step["probability"])
        what = (f"failslab on {', '.join(step['caches'])} (allocations that may not "
                f"sleep) at {step['probability']}%")
    elif kind == "dma_fault":
        model = nics.model(dut.config.nic)
        if not model.dma_faults:
            why = (f"QEMU's {model.name} model cannot fail a DMA on request: the driver's "
                   "recovery from a device DMA error is not exercised")
            return True, f"dma_fault: not applicable: {why}", {"not_applicable": why}
        fault = DmaFault(dut, step["count"], step["within"])
        # The window stays open until `stop: {what: pressure}`: the queues are down until
        # the driver resets the device, and rx must come back after that.
        state.start_pressure(fault)
        return True, (f"dma_fault: {fault.landed} of {step['count']} DMA transfer(s) failed "
                      f"(each stops its queue until the device is reset)"), \
            {"landed": fault.landed}
    elif kind == "memhog":
        p = MemHog(dut, step["percent"], step["workers"], step["swap_mb"])
        what = f"stress-ng --vm {step['percent']}% with {step['swap_mb']} MiB swap"
    else:
        p = Balloon(dut, step["leave_mb"])
        what = f"balloon down to {step['leave_mb']} MiB"
    if step.get("rx_alloc"):
        what += f" (rx_alloc for {dut.config.nic})"
    state.start_pressure(p)
    if step["seconds"] is None:
        return True, f"{what}: started", {}
    time.sleep(step["seconds"])
    state.stop_pressure()
    return True, f"{what}: held {step['seconds']} s", {}


def _stop(state: RunState, step: dict) -> tuple[bool, str, dict]:
    what = step["what"]
    if what in ("traffic", "all"):
        state.stop_traffic()
    if what in ("pressure", "all"):
        state.stop_pressure()
    if what in ("sinks", "all"):
        state.close_sinks()
    return True, f"stopped {what}", {}


def _sleep(state: RunState, step: dict) -> tuple[bool, str, dict]:
    time.sleep(step["seconds"])
    return True, f"slept {step['seconds']} s", {}


def _selftest(topo: Topology, step: dict) -> tuple[bool, str, dict]:
    return selftests.run(topo, step["test"], step["timeout"])


HANDLERS = {"ping": _ping, "iperf3": _iperf3, "shell": _shell, "selftest": _selftest}
STATEFUL = {"sleep": _sleep, "traffic": _traffic, "pressure": _pressure, "stop": _stop,
            "xdp_cycles": churn.xdp_cycles, "ifdown_ifup": churn.ifdown_ifup,
            "rings": churn.rings, "channels": churn.channels, "mtu": churn.mtu,
            "reload": churn.reload}


def run_step(state: RunState, index: int, step: dict) -> StepResult:
    start = time.monotonic()
    topo = state.topo
    topo.wait_all_alive()
    try:
        if step["kind"] in STATEFUL:
            ok, summary, details = STATEFUL[step["kind"]](state, step)
        else:
            ok, summary, details = HANDLERS[step["kind"]](topo, step)
    except InfraError:
        topo.wait_all_alive()  # a dead VM explains more than the failed command
        raise
    return StepResult(index, step["kind"], step["line"], ok, summary,
                      round(time.monotonic() - start, 2), details)
