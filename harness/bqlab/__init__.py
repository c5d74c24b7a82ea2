"""bqlab: reproduce NIC driver rx stalls and page_pool teardown bugs in QEMU VMs."""

__version__ = "0.1.0"
