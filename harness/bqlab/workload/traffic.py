"""Traffic into the DUT that runs in the background while other steps act.

- pktgen: the kernel's packet generator on the sender (/proc/net/pktgen), UDP to a port
  range on the receiver, where unread sockets with a large receive buffer sit (Sinks).
  Frames addressed by MAC and IP: no ARP, so a silent DUT stays silent.
- stopped-tcp: an iperf3 TCP stream whose receiving process is SIGSTOPped, so the socket
  queues fill and hold the driver's pages.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import InfraError

if TYPE_CHECKING:
    from ..vm.machine import Vm

PKTGEN = "/proc/net/pktgen"
SINKS_LOG = "/tmp/bqlab-sinks.log"


def parse_ports(spec: str) -> tuple[int, int]:
    """'9000-9007' or '9000' -> (first, last)."""
    first, _, last = spec.partition("-")
    lo, hi = int(first), int(last or first)
    if not (1 <= lo <= hi <= 65535):
        raise ValueError(f"bad port range {spec!r}")
    return lo, hi


@dataclass
class Sinks:
    """Unread UDP sockets on the receiver (images/tools/bqlab-sinks)."""

    vm: Vm
    ports: tuple[int, int]
    rcvbuf_mb: int
    open: bool = False

    def start(self) -> None:
        lo, hi = self.ports
        self.vm.run(f"setsid bqlab-sinks {lo} {hi} {self.rcvbuf_mb << 20} "
                    f">{SINKS_LOG} 2>&1 & for i in $(seq 50); do "
                    f"grep -q '^bqlab-sinks: ready' {SINKS_LOG} && exit 0; sleep 0.1; done; "
                    f"cat {SINKS_LOG} >&2; exit 1", check=True)
        self.open = True

    def stop(self) -> None:
        if self.open:
            # SIGKILL closes the sockets at once; their queued skbs free their pages.
            self.vm.run("pkill -KILL -f bqlab-sinks; true", timeout=30)
            self.open = False


@dataclass
class Pktgen:
    sender: Vm
    dst_ip: str
    dst_mac: str
    size: int  # frame size, bytes (pktgen's pkt_size, without the FCS)
    rate_pps: int  # 0: as fast as the sender can
    ports: tuple[int, int]
    threads: int = 1
    running: bool = False

    def start(self) -> None:
        res = self.sender.run(self._script(), timeout=30)
        if not res.ok:
            raise InfraError(f"{self.sender.name}: pktgen setup failed: "
                             f"{res.stderr.strip()[-300:]}")
        self.running = True

    def resume(self) -> bool:
        """Send again if pktgen stopped: it stops a device for good when its carrier goes
        (pktgen_xmit), so a DUT sending through a reconfiguration sends only until the
        first one. False if the link is down, or pktgen would not start."""
        if not self.running:
            return False
        script = (f"PG={PKTGEN}; grep -q '^Running: test0' $PG/kpktgend_0 && exit 0; "
                  "for i in $(seq 15); do [ \"$(cat /sys/class/net/test0/carrier 2>/dev/null)\" "
                  "= 1 ] && break; sleep 0.1; done; "
                  "[ \"$(cat /sys/class/net/test0/carrier 2>/dev/null)\" = 1 ] || exit 3\n"
                  + self._script())
        return self.sender.run(script, timeout=30).ok

    def _script(self) -> str:
        lo, hi = self.ports
        lines = ["modprobe pktgen"]
        for t in range(self.threads):
            dev = f"$PG/test0@{t}"
            # rem_device_all (and pgctrl reset) only flag the pktgen thread and wait 125 ms:
            # on a busy guest the thread acts later and removes the device added after it
            # ("test0@0: No such file"). Remove only what is there, and wait until it is.
            lines += [f"if grep -q @ $PG/kpktgend_{t}; then "
                      f"echo rem_device_all > $PG/kpktgend_{t}; for i in $(seq 200); do "
                      f"grep -q @ $PG/kpktgend_{t} || break; sleep 0.05; done; fi",
                      f"echo add_device test0@{t} > $PG/kpktgend_{t}"]
            conf = ["count 0", f"pkt_size {self.size}", f"dst {self.dst_ip}",
                    f"dst_mac {self.dst_mac}", f"udp_dst_min {lo}", f"udp_dst_max {hi}",
                    # Distinct source ports per thread spread flows over the rx queues (RSS).
                    f"udp_src_min {10000 + 100 * t}", f"udp_src_max {10099 + 100 * t}",
                    "flag UDPSRC_RND", "flag UDPDST_RND", "flag NO_TIMESTAMP"]
            if self.rate_pps:
                conf.append(f"ratep {max(1, self.rate_pps // self.threads)}")
            lines += [f"echo {shlex.quote(c)} > {dev}" for c in conf]
        # `start` blocks in the write until stopped: run it detached, then check it runs.
        lines += [f"setsid sh -c 'echo start > {PKTGEN}/pgctrl' >/dev/null 2>&1 &",
                  "for i in $(seq 50); do grep -q '^Running: test0' $PG/kpktgend_0 && "
                  "exit 0; sleep 0.1; done; echo 'pktgen did not start' >&2; exit 1"]
        return "\n".join([f"set -e; PG={PKTGEN}", *lines])

    def stop(self) -> int:
        """Stop and return the number of frames sent since the last (re)start."""
        if not self.running:
            return 0
        self.running = False
        self.sender.run(f"echo stop > {PKTGEN}/pgctrl", timeout=30)
        out = self.sender.run(f"cat {PKTGEN}/test0@* 2>/dev/null", timeout=30).stdout
        sent = 0
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("pkts-sofar:"):
                sent += int(line.split()[1])
        return sent


@dataclass
class StoppedTcp:
    """iperf3 TCP into the receiver, whose iperf3 server is then SIGSTOPped."""

    sender: Vm
    receiver: Vm
    dst_ip: str
    port: int = 5301
    streams: int = 1  # parallel TCP connections (iperf3 -P), all into the stopped process
    running: bool = False

    def start(self) -> None:
        self.receiver.run(f"iperf3 -s -D -p {self.port}", check=True)
        self.sender.run(f"sleep 0.3; setsid iperf3 -c {self.dst_ip} -p {self.port} -t 3600 "
                        f"-P {self.streams} >/dev/null 2>&1 &", check=True)
        self.receiver.run(f"sleep 1; pkill -STOP -f 'iperf3 -s -D -p {self.port}'", check=True)
        self.running = True

    def stop(self) -> int:
        if self.running:
            self.running = False
            self.sender.run("pkill -x iperf3; true")
            self.receiver.run(f"pkill -KILL -f 'iperf3 -s -D -p {self.port}'; true")
        return 0
