"""The kernel's own drivers/net selftests, run in the DUT against its test NIC.

The guest image carries them from the kernel tree the DUT was built from, laid out as in
the tree under /usr/local/share/ynl (they find the ynl library and the netlink specs
relative to themselves). NetDrvEpEnv reads `net.config` beside each test: the DUT's
test0 is NETIF, the peer is the remote endpoint, reached over SSH on the test link (the
DUT gets the harness's key and the peer's pinned host key; a forced pty, so a remote
iperf3 dies with its ssh session instead of holding its port).
"""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING

from ..errors import InfraError
from ..vm.ssh import CommandTimeout

if TYPE_CHECKING:
    from ..vm.topology import Topology

SELFTESTS = "/usr/local/share/ynl/tools/testing/selftests"
TEST_DIRS = ("drivers/net", "drivers/net/hw")
KTAP_RESULT = re.compile(r"^(not ok|ok) \d+ (\S+)(?:\s+#\s*(\w+))?", re.M)


def net_config(topo: Topology) -> str:
    dut, peer = topo.address("dut"), topo.address("peer")
    return (f"NETIF=test0\nLOCAL_V4={dut.ipv4}\nREMOTE_V4={peer.ipv4}\n"
            f"REMOTE_TYPE=ssh\nREMOTE_ARGS=root@{peer.ipv4}\n")


def prepare(topo: Topology) -> None:
    """net.config beside the tests, and SSH from the DUT to the peer over the test link."""
    dut, peer_ip = topo["dut"], topo.address("peer").ipv4
    key = topo.built.ssh_key.read_text()
    host_key = topo.built.host_key.read_text().split()
    config = net_config(topo)
    script = ["set -e", "umask 077", "mkdir -p /root/.ssh",
              f"printf %s {shlex.quote(key)} > /root/.ssh/id_ed25519",
              f"echo {shlex.quote(f'{peer_ip} {host_key[0]} {host_key[1]}')} "
              "> /root/.ssh/known_hosts",
              f"printf 'Host {peer_ip}\\n  IdentityFile /root/.ssh/id_ed25519\\n"
              "  BatchMode yes\\n  RequestTTY force\\n' > /root/.ssh/config"]
    for d in TEST_DIRS:
        script.append(f"printf %s {shlex.quote(config)} > {SELFTESTS}/{d}/net.config")
    res = dut.run("; ".join(script), timeout=30)
    if not res.ok:
        raise InfraError(f"dut: preparing the selftests: {res.stderr.strip()[-400:]}")


def summarize(ktap: str) -> dict[str, list[str]]:
    """Test case names by outcome (pass, fail, skip, xfail) from KTAP output."""
    out: dict[str, list[str]] = {"pass": [], "fail": [], "skip": [], "xfail": []}
    for m in KTAP_RESULT.finditer(ktap):
        status, name, directive = m.group(1), m.group(2), (m.group(3) or "").upper()
        if directive == "SKIP":
            out["skip"].append(name)
        elif directive == "XFAIL":
            out["xfail"].append(name)
        else:
            out["pass" if status == "ok" else "fail"].append(name)
    return out


def run(topo: Topology, test: str, timeout: float) -> tuple[bool, str, dict]:
    prepare(topo)
    path = f"{SELFTESTS}/drivers/net/{test}"
    try:
        res = topo["dut"].run(f"cd {shlex.quote(path.rsplit('/', 1)[0])} && "
                              f"python3 {shlex.quote(path.rsplit('/', 1)[1])}",
                              timeout=timeout)
    except CommandTimeout as e:
        return False, f"{test}: {e}", {"timed_out": e.host}
    counts = summarize(res.stdout)
    ok = res.exit_status == 0 and not counts["fail"]
    summary = (f"{test}: exit {res.exit_status}, " + ", ".join(
        f"{len(v)} {k}" for k, v in counts.items() if v) or f"{test}: no KTAP results")
    if counts["fail"]:
        summary += f" (failed: {', '.join(counts['fail'][:6])})"
    return ok, summary, {"results": counts, "stdout": res.stdout[-8000:],
                         "stderr": res.stderr[-4000:]}
