"""The watchdog: samples the DUT's counters all through a scenario.

Two sources, each on its own thread, on the harness's clock:
- the guest: `bqlab-watch` runs in the DUT for the whole run and prints per-queue rx
  counters (qstats-get) and every page_pool (page-pool-get) each interval, over one SSH
  channel;
- the device: bqnic's `stats` property (buffers owned, drops for lack of buffers) over QMP.
Verdicts are computed from the recorded series afterwards (verdicts.py), and the series are
saved as evidence.
"""

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InfraError
from .ssh import LineStream
from .verdicts import DEFAULT_INTERVAL, PoolSnapshot, QueueSample
from .vm import Vm

TEST_IFACE = "test0"


@dataclass
class GuestSample:
    t: float  # harness seconds since the watchdog started, when the line arrived
    ifindex: int | None
    rx_queues: dict[int, dict[str, int]]  # queue id -> qstats-get attributes
    pools: dict[int, dict[str, Any]]  # page_pool id -> page-pool-get attributes


@dataclass
class DeviceSample:
    t: float
    queues: list[dict[str, int]]  # bqnic `stats`.queues
    dma_errors: int


class Watchdog:
    def __init__(self, vm: Vm, interval: float = DEFAULT_INTERVAL, device: bool = True):
        self.vm = vm
        self.interval = interval
        self.device_enabled = device
        self.t0 = time.monotonic()
        self.guest: list[GuestSample] = []
        self.device: list[DeviceSample] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._stream: LineStream | None = None
        self._threads: list[threading.Thread] = []
        self._cond = threading.Condition()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def start(self) -> None:
        if self.vm.ssh is None:
            raise InfraError(f"{self.vm.name}: watchdog needs SSH")
        # Real-time priority: a CPU hog in the DUT must not starve the sampler.
        self._stream = self.vm.ssh.stream(
            f"exec chrt -f 10 bqlab-watch {TEST_IFACE} {self.interval}")
        self._threads = [threading.Thread(target=self._read_guest, daemon=True,
                                          name="watch-guest")]
        if self.device_enabled:
            self._threads.append(threading.Thread(target=self._poll_device, daemon=True,
                                                  name="watch-device"))
        for t in self._threads:
            t.start()
        # The first sample proves the sampler runs (python + ynl start in about a second).
        if not self.wait_guest_samples(after=0.0, count=1, timeout=20):
            raise InfraError(f"{self.vm.name}: bqlab-watch printed nothing in 20 s"
                             f"{': ' + self._stream.stderr().strip() if self._stream else ''}")

    def stop(self) -> None:
        self._stop.set()
        if self._stream is not None:
            self._stream.close()
        for t in self._threads:
            t.join(5)

    def _read_guest(self) -> None:
        assert self._stream is not None
        for line in self._stream:
            if self._stop.is_set():
                break
            try:
                raw = json.loads(line)
            except ValueError:
                self.errors.append(f"bqlab-watch: {line[:200]}")
                continue
            sample = GuestSample(
                self.now(), raw["ifindex"],
                {q["queue-id"]: q for q in raw["queues"] if q.get("queue-type") == "rx"},
                {p["id"]: p for p in raw["pools"]})
            with self._cond:
                self.guest.append(sample)
                self._cond.notify_all()

    def _poll_device(self) -> None:
        while not self._stop.is_set():
            start = time.monotonic()
            try:
                stats = self.vm.qmp.cmd("qom-get", path="/machine/peripheral/testnic",
                                        property="stats", timeout=5)
                self.device.append(DeviceSample(self.now(), stats["queues"],
                                                stats["dma_errors"]))
            except Exception as e:  # QEMU gone: the runner notices and says so
                if not self._stop.is_set():
                    self.errors.append(f"QMP stats: {e}")
                return
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - start)))

    def wait_guest_samples(self, after: float, count: int = 2, timeout: float = 10.0) -> bool:
        """Wait until count guest samples taken after `after` (watchdog time) arrived."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(1 for s in self.guest if s.t > after) < count:
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set():
                    return False
                self._cond.wait(left)
        return True

    def live_pools(self) -> dict[int, dict[str, Any]]:
        """The interface's live pools (no detach-time) in the newest guest sample."""
        with self._cond:
            if not self.guest:
                return {}
            last = self.guest[-1]
        return {i: p for i, p in last.pools.items()
                if p.get("ifindex") == last.ifindex and "detach-time" not in p}

    def queue_series(self) -> dict[int, list[QueueSample]]:
        return queue_series(list(self.guest), list(self.device))

    def pool_snapshots(self) -> list[PoolSnapshot]:
        return [PoolSnapshot(s.t, s.pools) for s in list(self.guest)]

    def dma_errors(self) -> int | None:
        return self.device[-1].dma_errors if self.device else None

    def save(self, path: Path) -> None:
        with path.open("w") as f:
            for s in list(self.guest):
                f.write(json.dumps({"source": "guest", **s.__dict__}) + "\n")
            for d in list(self.device):
                f.write(json.dumps({"source": "device", **d.__dict__}) + "\n")
            for e in self.errors:
                f.write(json.dumps({"source": "error", "text": e}) + "\n")



def load_samples(path: Path) -> tuple[list[GuestSample], list[DeviceSample]]:
    """Samples saved by Watchdog.save(), for judging a finished run again."""
    guest, device = [], []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        source = rec.pop("source")
        if source == "guest":
            rec["rx_queues"] = {int(k): v for k, v in rec["rx_queues"].items()}
            rec["pools"] = {int(k): v for k, v in rec["pools"].items()}
            guest.append(GuestSample(**rec))
        elif source == "device":
            device.append(DeviceSample(**rec))
    return guest, device


def queue_series(guest: list[GuestSample],
                 device: list[DeviceSample]) -> dict[int, list[QueueSample]]:
    """Per rx queue: each device sample joined with the newest guest sample before it.

    A guest sample is used once: a device sample with no fresh guest sample since the last
    one is left out, so a guest sampler that fell behind (or a DUT that stopped answering)
    never reads as "guest rx did not move"."""
    out: dict[int, list[QueueSample]] = {}
    gi = 0
    used = -1
    for dev in device:
        while gi + 1 < len(guest) and guest[gi + 1].t <= dev.t:
            gi += 1
        if not guest or guest[gi].t > dev.t or gi == used:
            continue
        used = gi
        g = guest[gi]
        for q, dq in enumerate(dev.queues):
            gq = g.rx_queues.get(q)
            if gq is None:
                continue  # the queue is not in use (fewer channels, or down)
            out.setdefault(q, []).append(QueueSample(
                t=dev.t, guest_rx=gq.get("rx-packets", 0),
                alloc_fail=gq.get("rx-alloc-fail", 0),
                drop_no_sbq=dq["rx_drop_no_sbq"], drop_no_lbq=dq["rx_drop_no_lbq"],
                sbq_owned=dq["sbq_owned"], lbq_owned=dq["lbq_owned"]))
    return out
