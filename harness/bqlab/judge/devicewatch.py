"""The device side of the evidence, per NIC model (vm/nics.py `evidence`), and how each model's
raw samples become QueueSamples the rx-stall verdict judges alike.

Host-side readers, from QEMU's own facilities (no new code in QEMU's devices):
- bqnic: its `stats` QOM property: buffers owned and drops per buffer queue, per queue;
- virtio-net: `x-query-virtio-queue-status` of rx queue 0: the avail index the device has
  seen against the one it has consumed up to, i.e. the buffers it holds;
- e1000e, igb: QEMU trace events enabled at start (`-trace`) into a per-VM log, counted:
  the rings could not take a frame (QEMU holds it back), or a frame was dropped for too
  few descriptors.
vmxnet3 has no host-side reader: the device's own per-queue counters (pkts rx OOB) come
through the driver (GET_STATS, `ethtool -S`), read by the guest sampler.

Models that count no drops and report no buffers are judged per device (queue 0 stands
for all of them); the verdict says so.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..vm import nics
from .verdicts import QueueSample

if TYPE_CHECKING:
    from ..vm.machine import Vm
    from .watchdog import DeviceSample, GuestSample

TESTNIC = nics.TESTNIC_QOM
VIRTIO_BACKEND = f"{TESTNIC}/virtio-backend"
TRACE_LOG = "qemu-trace.log"


def qemu_args(model: nics.NicModel, vm_dir: Path) -> list[str]:
    """Extra QEMU arguments the model's evidence needs (trace events into a log)."""
    if model.evidence != nics.EVIDENCE_TRACE:
        return []
    args = ["-D", str(vm_dir / TRACE_LOG)]
    for event in model.trace_events:
        args += ["-trace", event]
    return args


class TraceCounter:
    """Counts trace events in a growing QEMU log, reading only what was appended."""

    def __init__(self, path: Path, events: tuple[str, ...]):
        self.path = path
        self.counts = dict.fromkeys(events, 0)
        self.offset = 0
        self.partial = b""

    def read(self) -> dict[str, int]:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = self.partial + f.read()
                self.offset = f.tell()
        except FileNotFoundError:
            return dict(self.counts)
        lines = data.split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            # log backend lines: "<pid>@<time>:<event> <text>" (with -msg timestamp=off:
            # "<event> <text>"): the event name is the word before the first space.
            head = line.split(b" ", 1)[0].rsplit(b":", 1)[-1].decode(errors="replace")
            if head in self.counts:
                self.counts[head] += 1
        return dict(self.counts)


def device_reader(vm: Vm, model: nics.NicModel) -> Callable[[], dict[str, Any]] | None:
    """A function returning one device sample's raw data: {"queues": [...], "dma_errors"}."""
    if model.evidence == nics.EVIDENCE_BQNIC:
        def bqnic() -> dict[str, Any]:
            stats = vm.qmp.cmd("qom-get", path=TESTNIC, property="stats", timeout=5)
            return {"queues": stats["queues"], "dma_errors": stats["dma_errors"],
                    "dma_faults_injected": stats.get("dma_faults_injected"),
                    "mmio_reads": stats.get("mmio_reads")}
        return bqnic
    if model.evidence == nics.EVIDENCE_VIRTQUEUE:
        def virtqueue() -> dict[str, Any]:
            status = vm.qmp.cmd("x-query-virtio-queue-status", path=VIRTIO_BACKEND, queue=0,
                                timeout=5)
            return {"queues": [{"avail": status.get("shadow-avail-idx"),
                                "last_avail": status.get("last-avail-idx"),
                                "used": status["used-idx"]}], "dma_errors": None}
        return virtqueue
    if model.evidence == nics.EVIDENCE_TRACE:
        counter = TraceCounter(vm.dir / TRACE_LOG, model.trace_events)
        return lambda: {"queues": [counter.read()], "dma_errors": None}
    return None


def _in_windows(t: float, windows: list[tuple[float, float]]) -> bool:
    return any(a <= t and (b < 0 or t <= b) for a, b in windows)


def _ethtool_total(sample: GuestSample, *needles: str) -> int:
    return sum(v for name, v in sample.ethtool or []
               if any(n in name.lower() for n in needles))


def _whole_device_rx(guest: GuestSample) -> int | None:
    if guest.rx_queues:
        return sum(q.get("rx-packets", 0) for q in guest.rx_queues.values())
    return guest.rx_packets


def _alloc_fail(guest: GuestSample) -> int:
    if guest.rx_queues:
        return sum(q.get("rx-alloc-fail", 0) for q in guest.rx_queues.values())
    return _ethtool_total(guest, "alloc_rx_buff_failed", "alloc_failed", "alloc fail")


def vmxnet3_queues(guest: GuestSample) -> dict[int, dict[str, int]]:
    """vmxnet3's `ethtool -S`: per "Rx Queue#" block, the device's counters (ucast, mcast,
    bcast pkts rx; pkts rx OOB) and the driver's rx buf alloc fail."""
    queues: dict[int, dict[str, int]] = {}
    current: dict[str, int] | None = None
    for name, value in guest.ethtool or []:
        if name == "Rx Queue#":
            current = queues.setdefault(len(queues), {})
        elif name == "Tx Queue#":
            current = None
        elif current is not None:
            current[name] = value
    return queues


def queue_series(model: nics.NicModel, guest: list[GuestSample],
                 device: list[DeviceSample],
                 traffic_windows: list[tuple[float, float]] | None = None,
                 ) -> dict[int, list[QueueSample]]:
    """Per rx queue, the samples the rx-stall verdict judges.

    Host-side device samples are each joined with the newest guest sample before them; a
    guest sample is used once, so a guest sampler that fell behind (or a DUT that stopped
    answering) never reads as "guest rx did not move"."""
    if model.evidence == nics.EVIDENCE_GUEST_DEVICE_STATS:
        return _from_guest_device_stats(guest)
    out: dict[int, list[QueueSample]] = {}
    starved_intervals = 0  # virtqueue: intervals with no buffer while traffic was sent
    gi = 0
    used = -1
    for dev in device:
        while gi + 1 < len(guest) and guest[gi + 1].t <= dev.t:
            gi += 1
        if not guest or guest[gi].t > dev.t or gi == used:
            continue
        used = gi
        g = guest[gi]
        if model.evidence == nics.EVIDENCE_BQNIC:
            for q, dq in enumerate(dev.queues):
                gq = g.rx_queues.get(q)
                if gq is None:
                    continue  # the queue is not in use (fewer channels, or down)
                out.setdefault(q, []).append(QueueSample.bqnic(
                    dev.t, gq.get("rx-packets", 0), gq.get("rx-alloc-fail", 0),
                    dq["rx_drop_no_sbq"], dq["rx_drop_no_lbq"], dq["sbq_owned"],
                    dq["lbq_owned"], drop_stopped=dq.get("rx_drop_stopped")))
            continue
        rx = _whole_device_rx(g)
        if rx is None or not dev.queues:
            continue
        dq = dev.queues[0]
        if model.evidence == nics.EVIDENCE_VIRTQUEUE:
            owned = None
            if dq.get("avail") is not None and dq.get("last_avail") is not None:
                owned = (dq["avail"] - dq["last_avail"]) % (1 << 16)
            if owned == 0 and _in_windows(dev.t, traffic_windows or []):
                starved_intervals += 1
            out.setdefault(0, []).append(QueueSample(
                dev.t, rx, _alloc_fail(g), {"rx": starved_intervals}, {"rx": owned}))
        elif model.evidence == nics.EVIDENCE_TRACE:
            out.setdefault(0, []).append(QueueSample(
                dev.t, rx, _alloc_fail(g), {"rx": sum(dq.values())}, {"rx": None}))
    return out


def _from_guest_device_stats(guest: list[GuestSample]) -> dict[int, list[QueueSample]]:
    out: dict[int, list[QueueSample]] = {}
    for g in guest:
        for q, c in vmxnet3_queues(g).items():
            rx = c.get("ucast pkts rx", 0) + c.get("mcast pkts rx", 0) + \
                c.get("bcast pkts rx", 0)
            out.setdefault(q, []).append(QueueSample(
                g.t, rx, c.get("rx buf alloc fail", 0), {"rx": c.get("pkts rx OOB", 0)},
                {"rx": None}))
    return out
