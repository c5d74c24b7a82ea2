"""The NIC models a VM can have on the test link, and what bqlab knows about each.

One entry per model: its QEMU `-device` line, the in-tree Linux driver that binds it, how
fault injection reaches that driver's rx allocations, and where evidence of the device's
rx buffers comes from. Everything model-specific in the harness asks here.

Pure data: parsing a scenario file imports this, and nothing that boots a VM.
"""

from dataclasses import dataclass

# Where the harness learns how many rx buffers the device holds and whether frames are
# being turned away for lack of them (see judge/devicewatch.py).
EVIDENCE_BQNIC = "bqnic-stats"  # bqnic's `stats` QOM property over QMP: owned, drops
EVIDENCE_VIRTQUEUE = "virtqueue"  # x-query-virtio-queue-status: avail vs used index
EVIDENCE_TRACE = "trace"  # QEMU trace events of the model, enabled over QMP
EVIDENCE_GUEST_DEVICE_STATS = "device-stats-via-driver"  # the device's counters as the
# driver reads them from it (vmxnet3 GET_STATS -> ethtool -S): device numbers, guest path

# fail_function on the page_pool allocator reaches every page_pool driver's refill
# (ALLOW_ERROR_INJECTION in 6.12); fail_page_alloc reaches any other.
PAGE_POOL_ALLOC = "page_pool_alloc_pages"
# QEMU's e1000e and igb: the rings cannot take a frame (QEMU holds it), or a frame found
# too few descriptors and was dropped (RXO).
E1000E_RX_TRACE = ("e1000e_rx_can_recv_rings_full", "e1000e_rx_not_written_to_guest")


TESTNIC_ID = "testnic"  # the test NIC's QEMU id
TESTNIC_QOM = f"/machine/peripheral/{TESTNIC_ID}"


@dataclass(frozen=True)
class NicModel:
    name: str  # QEMU -device name, and vms.X.nic in a scenario
    driver: str  # the Linux driver that binds it (ethtool -i)
    module: bool  # loaded by the harness (with driver_params), else built in
    page_pool: bool  # rx buffers from page_pool in 6.12
    pools_in_netlink: bool  # its pools carry .netdev: page-pool-get sees them
    rx_alloc_function: str | None  # fail_function target that fails its rx refills
    evidence: str | None  # EVIDENCE_*; None: judged on guest and peer evidence only
    drops_when_empty: bool  # True: frames are dropped (and counted) when no buffer is
    # posted; False: the model stops taking frames and QEMU holds them back (pushback)
    queue_property: str | None = None  # QEMU property for the number of queue pairs
    device_props: str = ",romfile="  # no option ROM: nothing boots from the test NIC
    trace_events: tuple[str, ...] = ()  # EVIDENCE_TRACE: "no rx buffer" events
    xdp: bool = True
    note: str = ""  # what a report should say about this model's evidence
    dma_faults: bool = False  # the model fails DMA on request (pressure dma_fault)
    kcsan: bool = False  # bqlab builds a KCSAN twin of its driver (build/kernel.py)

    def device_arg(self, mac: str, queues: int) -> str:
        arg = f"{self.name},netdev=link,id={TESTNIC_ID},mac={mac}"
        if self.queue_property:
            arg += f",{self.queue_property}={queues}"
        return arg + self.device_props


MODELS: dict[str, NicModel] = {m.name: m for m in (
    NicModel("bqnic", driver="bqnic", module=True, page_pool=True, pools_in_netlink=True,
             rx_alloc_function="bqnic_alloc_rx_page", evidence=EVIDENCE_BQNIC,
             drops_when_empty=True, queue_property="queues", device_props="",
             dma_faults=True, kcsan=True),
    NicModel("virtio-net-pci", driver="virtio_net", module=False, page_pool=False,
             pools_in_netlink=False, rx_alloc_function=None, evidence=EVIDENCE_VIRTQUEUE,
             drops_when_empty=False,
             note="virtio-net pushes back instead of dropping: with no rx buffer posted "
                  "QEMU holds the frames, so 'frames keep arriving' means the device "
                  "owns no buffer while the peer's transmissions do not complete"),
    NicModel("e1000e", driver="e1000e", module=True, page_pool=False,
             pools_in_netlink=False, rx_alloc_function=None, evidence=EVIDENCE_TRACE,
             drops_when_empty=False, trace_events=E1000E_RX_TRACE, xdp=False,
             note="e1000e refuses frames while its rings are full (QEMU holds them): the "
                  "device side is QEMU's e1000e_rx_can_recv_rings_full trace event"),
    NicModel("igb", driver="igb", module=True, page_pool=False, pools_in_netlink=False,
             rx_alloc_function=None, evidence=EVIDENCE_TRACE, drops_when_empty=False,
             trace_events=E1000E_RX_TRACE,
             note="igb shares e1000e's rx trace events in QEMU: rings full, frames held"),
    # Its rx buffers come from page_pool only with an XDP program (skbs otherwise), so
    # rx_alloc falls back to fail_page_alloc.
    NicModel("vmxnet3", driver="vmxnet3", module=True, page_pool=True,
             pools_in_netlink=False, rx_alloc_function=None,
             evidence=EVIDENCE_GUEST_DEVICE_STATS, drops_when_empty=True,
             note="vmxnet3's pools have no .netdev (page-pool-get cannot see them): "
                  "teardown is judged on the page_pool ledger; its drops for lack of "
                  "buffers (pkts rx OOB) are the device's counters read by the driver"),
)}


def model(name: str) -> NicModel:
    return MODELS[name]
