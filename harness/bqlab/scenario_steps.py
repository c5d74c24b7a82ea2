"""What each scenario step does on the VMs, and what counts as passing."""

import json
import shlex
import time
from dataclasses import dataclass, field
from typing import Any

from .errors import InfraError
from .ssh import CommandTimeout
from .topology import Topology


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
        return False, str(e), {}
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
        return False, str(e), {}
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
        return False, str(e), {}
    ok = res.exit_status == step["expect_exit"]
    return ok, (f"{step['on']}: `{shlex.quote(step['command'])[:60]}` exited "
                f"{res.exit_status} (expected {step['expect_exit']})"), \
        {"stdout": res.stdout[-4000:], "stderr": res.stderr[-4000:]}


def _sleep(topo: Topology, step: dict) -> tuple[bool, str, dict]:
    time.sleep(step["seconds"])
    return True, f"slept {step['seconds']} s", {}


HANDLERS = {"ping": _ping, "iperf3": _iperf3, "shell": _shell, "sleep": _sleep}


def run_step(topo: Topology, index: int, step: dict) -> StepResult:
    start = time.monotonic()
    topo.wait_all_alive()
    try:
        ok, summary, details = HANDLERS[step["kind"]](topo, step)
    except InfraError:
        topo.wait_all_alive()  # a dead VM explains more than the failed command
        raise
    return StepResult(index, step["kind"], step["line"], ok, summary,
                      round(time.monotonic() - start, 2), details)
