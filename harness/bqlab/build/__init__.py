"""Builders for the three artifacts a VM needs: QEMU, the guest kernel, the guest image."""
