"""The watchdog: samples the DUT's counters all through a scenario.

Two sources, each on its own thread, on the harness's clock:
- the guest: `bqlab-watch` runs in the DUT for the whole run and prints per-queue rx
  counters (qstats-get), every page_pool (page-pool-get), rx_packets, `ethtool -S` and
  the page_pool ledger (tracepoints) each interval, over one SSH channel;
- the device, where the NIC model has a host-side source (devicewatch.py): bqnic's
  `stats` over QMP, virtio-net's queue status, e1000e/igb trace events.
Verdicts are computed from the recorded series afterwards (verdicts.py), and the series are
saved as evidence.
"""

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InfraError
from ..vm import nics
from ..vm.machine import Vm
from ..vm.ssh import LineStream
from . import devicewatch
from .verdicts import DEFAULT_INTERVAL, PoolSnapshot, QueueSample

TEST_IFACE = "test0"


@dataclass
class GuestSample:
    t: float  # harness seconds since the watchdog started, when the line arrived
    ifindex: int | None
    rx_queues: dict[int, dict[str, int]]  # queue id -> qstats-get attributes
    pools: dict[int, dict[str, Any]]  # page_pool id -> page-pool-get attributes
    rx_packets: int | None = None  # the interface's, from sysfs
    ethtool: list[list] | None = None  # `ethtool -S` as [name, value], in driver order
    ledger: list[dict[str, Any]] = field(default_factory=list)  # page_pool trace events
    guest_t: float | None = None  # the guest's CLOCK_MONOTONIC when it sampled


@dataclass
class DeviceSample:
    t: float
    queues: list[dict[str, int]]  # per queue, as the model's reader gives it
    dma_errors: int | None
    dma_faults_injected: int | None = None  # of dma_errors, those the host asked for
    mmio_reads: int | None = None  # register reads by the driver (bqnic)


class Watchdog:
    def __init__(self, vm: Vm, interval: float = DEFAULT_INTERVAL, device: bool = True):
        self.vm = vm
        self.model = nics.model(vm.config.nic) if vm is not None else nics.model("bqnic")
        self.interval = interval
        self._read_device = devicewatch.device_reader(vm, self.model) if device else None
        self.device_enabled = self._read_device is not None
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
        # ethtool -S for every model: for bqnic it shows whether the refill work ran.
        flags = "--ledger --ethtool"
        self._stream = self.vm.ssh.stream(
            f"exec chrt -f 10 bqlab-watch {TEST_IFACE} {self.interval} {flags}")
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
                {p["id"]: p for p in raw["pools"]}, raw.get("rx_packets"),
                raw.get("ethtool"), raw.get("ledger") or [], raw.get("t"))
            with self._cond:
                self.guest.append(sample)
                self._cond.notify_all()

    def _poll_device(self) -> None:
        while not self._stop.is_set():
            start = time.monotonic()
            try:
                raw = self._read_device()
                self.device.append(DeviceSample(self.now(), **raw))
            except Exception as e:  # QEMU gone: the runner notices and says so
                if not self._stop.is_set():
                    self.errors.append(f"device sample ({self.model.evidence}): {e}")
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

    def queue_series(self, traffic_windows: list | None = None
                     ) -> dict[int, list[QueueSample]]:
        return devicewatch.queue_series(self.model, list(self.guest), list(self.device),
                                        traffic_windows)

    def pool_snapshots(self) -> list[PoolSnapshot]:
        return [PoolSnapshot(s.t, s.pools) for s in list(self.guest)]

    def dma_errors(self) -> int | None:
        return self.device[-1].dma_errors if self.device else None

    def dma_faults_injected(self) -> int:
        return (self.device[-1].dma_faults_injected or 0) if self.device else 0

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


def queue_series(guest: list[GuestSample], device: list[DeviceSample],
                 nic: str = "bqnic") -> dict[int, list[QueueSample]]:
    """Per rx queue, the samples the rx-stall verdict judges (devicewatch.queue_series)."""
    return devicewatch.queue_series(nics.model(nic), guest, device)
