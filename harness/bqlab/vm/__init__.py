"""The machines: QEMU VMs (command line, QMP, SSH, console), the accelerator probe, the
DUT and peer joined by a link, the NIC models, liveness checks and snapshots."""
