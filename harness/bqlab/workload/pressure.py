"""Memory pressure on the DUT, started and stopped by scenario steps.

- fail_function: fail one error-injectable function (the driver's rx page allocation by
  default) with a given probability: deterministic, any kernel with FAIL_FUNCTION.
- fail_page_alloc: fail order >= min_order page allocations that may not sleep
  (ignore-gfp-wait): NAPI's GFP_ATOMIC refills fail, a GFP_KERNEL refill work succeeds.
  With task_filter: every page allocation of the commands marked for it (MAKE_IT_FAIL),
  sleeping ones too: an ifup whose rings cannot be allocated.
- failslab: fail the allocations from some slab caches that may not sleep, as memory
  pressure does (a sleeping allocation reclaims and gets its object): code that
  allocates under a lock, falls back to a sleeping allocation and must then drop the
  lock the way it took it (radix_tree_node: XArray users).
- memhog: stress-ng dirtying most of the free memory, with a swap file to push to.
- balloon: the host inflates a virtio-balloon over QMP until the guest has `leave_mb` left.
- dma_fault: not memory, a device fault: the DUT's NIC model fails its next DMA transfers
  as an IOMMU fault would, and stops the queues they hit until the driver resets it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import InfraError
from ..vm.nics import TESTNIC_QOM

if TYPE_CHECKING:
    from ..vm.machine import Vm

FAIL_FUNCTION = "/sys/kernel/debug/fail_function"
FAIL_PAGE_ALLOC = "/sys/kernel/debug/fail_page_alloc"
FAILSLAB = "/sys/kernel/debug/failslab"


def _guest(vm: Vm, script: str, what: str, timeout: float = 60) -> str:
    res = vm.run(script, timeout=timeout)
    if not res.ok:
        raise InfraError(f"{vm.name}: {what} failed: {res.stderr.strip()[-400:]}")
    return res.stdout


# Written to /proc/self/make-it-fail before a command: with task_filter, only what that
# command (and its children) does in process context fails, not the rest of the guest.
MAKE_IT_FAIL = "echo 1 > /proc/self/make-it-fail; "
# fail_function's retval file takes an unsigned 64-bit number: -ENOMEM is 0xff..f4
U64 = (1 << 64) - 1


@dataclass
class FailFunction:
    vm: Vm
    function: str
    retval: int
    probability: int
    interval: int = 1  # every interval-th call that passes the other tests may fail
    task_filter: bool = False  # only tasks marked with MAKE_IT_FAIL

    def start(self) -> None:
        # verbose first: each failure before it would print a stack on the console
        _guest(self.vm, f"cd {FAIL_FUNCTION} && echo 0 > verbose && "
               f"echo {self.function} > inject && "
               f"echo {self.retval & U64:#x} > {self.function}/retval && "
               f"echo {self.interval} > interval && echo -1 > times && "
               f"echo {'Y' if self.task_filter else 'N'} > task-filter && "
               f"echo {self.probability} > probability",
               f"fail_function on {self.function}")

    def stop(self) -> None:
        _guest(self.vm, f"echo > {FAIL_FUNCTION}/inject && echo N > {FAIL_FUNCTION}/task-filter",
               "clearing fail_function")


@dataclass
class FailPageAlloc:
    """Atomic allocations only (NAPI's refills), or with task_filter every allocation,
    sleeping ones too, of the marked commands (ring and page_pool set-up in an ifup).

    Every atomic allocation of the guest fails, the management NIC's and SSH's included:
    the harness cannot reach the guest to stop it. With `seconds`, the guest stops it
    itself when they are up (the harness's stop after that finds it stopped)."""

    vm: Vm
    probability: int
    min_order: int
    task_filter: bool = False
    seconds: float | None = None

    def start(self) -> None:
        # Marked commands: sleeping allocations fail too, but never user memory
        # (__GFP_HIGHMEM: GFP_HIGHUSER page faults), or the marked process itself could
        # not run, and would fault forever instead of reaching the driver.
        only_atomic, user, marked = ("N", "Y", "Y") if self.task_filter else ("Y", "N", "N")
        _guest(self.vm, self._self_stop() + f"cd {FAIL_PAGE_ALLOC} && echo 0 > verbose && "
               f"echo {only_atomic} > ignore-gfp-wait && echo {user} > ignore-gfp-highmem && "
               f"echo {self.min_order} > min-order && echo {marked} > task-filter && "
               "echo 1 > interval && echo -1 > times && "
               f"echo {self.probability} > probability", "fail_page_alloc")

    def _self_stop(self) -> str:
        if self.seconds is None or self.task_filter:
            return ""
        # Forked before the failures start: a fork then needs no atomic allocation.
        return (f"setsid sh -c 'sleep {self.seconds}; echo 0 > "
                f"{FAIL_PAGE_ALLOC}/probability' </dev/null >/dev/null 2>&1 & ")

    def stop(self) -> None:
        _guest(self.vm, f"echo 0 > {FAIL_PAGE_ALLOC}/probability && "
               f"echo N > {FAIL_PAGE_ALLOC}/task-filter", "stopping fail_page_alloc")


@dataclass
class FailSlab:
    """Non-sleeping allocations from `caches` fail (cache-filter, ignore-gfp-wait).

    A merged cache (another cache's alias) refuses the flag: the kernel would fail
    allocations of caches nobody named, so that is an error, not a wider pressure."""

    vm: Vm
    caches: tuple[str, ...]
    probability: int

    def _flag(self, value: int) -> str:
        return "".join(f"echo {value} > /sys/kernel/slab/{c}/failslab && "
                       for c in self.caches)

    def start(self) -> None:
        _guest(self.vm, f"cd {FAILSLAB} && echo 0 > verbose && echo Y > ignore-gfp-wait && "
               f"echo Y > cache-filter && {self._flag(1)}echo 1 > interval && "
               f"echo -1 > times && echo {self.probability} > probability",
               f"failslab on {', '.join(self.caches)}")

    def stop(self) -> None:
        _guest(self.vm, f"echo 0 > {FAILSLAB}/probability && {self._flag(0)}"
               f"echo N > {FAILSLAB}/cache-filter", "stopping failslab")


@dataclass
class MemHog:
    vm: Vm
    percent: int  # of the memory available when it starts
    workers: int
    swap_mb: int

    def start(self) -> None:
        swap = ""
        if self.swap_mb:
            swap = (f"fallocate -l {self.swap_mb}M /swapfile && chmod 600 /swapfile && "
                    "mkswap -q /swapfile >/dev/null && swapon /swapfile && ")
        # --vm-keep: keep the mapping and keep re-dirtying it, instead of remapping.
        _guest(self.vm, f"{swap}setsid stress-ng --vm {self.workers} "
               f"--vm-bytes {self.percent}% --vm-keep --timeout 3600 --quiet "
               ">/tmp/bqlab-memhog.log 2>&1 & sleep 1; pgrep -x stress-ng >/dev/null || "
               "{ cat /tmp/bqlab-memhog.log >&2; exit 1; }", "memhog")

    def stop(self) -> None:
        # Not only `stress-ng` itself: its per-stressor `stress-ng-vm` parents restart an
        # OOM-killed worker, so the hog would outlive the end of the pressure window.
        _guest(self.vm, "for i in $(seq 50); do pkill -KILL '^stress-ng' || break; "
               "sleep 0.1; done; if [ -e /swapfile ]; then swapoff /swapfile && "
               "rm -f /swapfile; fi; true", "stopping memhog", timeout=180)


@dataclass
class Balloon:
    vm: Vm
    leave_mb: int

    def start(self) -> None:
        if self.vm.qmp is None or not self.vm.config.balloon:
            raise InfraError(f"{self.vm.name}: no balloon device (set `balloon: true` on it)")
        self.vm.qmp.cmd("balloon", value=self.leave_mb << 20)

    def stop(self) -> None:
        if self.vm.qmp is not None:
            self.vm.qmp.cmd("balloon", value=self.vm.config.memory_mb << 20)


@dataclass
class DmaFault:
    """bqnic's `fail-dma` (qemu-device/SPEC.md 7.1): its next `count` transfers fail, each
    stopping the queue it hit until a device reset. start() returns once they have all
    hit (traffic must be flowing) or after `within` seconds, and cancels what is left: a
    fault still armed would stop the queues again right after the driver's reset. The
    device counts them apart (dma_faults_injected), so the dma verdict still sees any
    DMA error the driver causes."""
    vm: Vm
    count: int
    within: float = 5.0
    landed: int = 0

    def _set(self, count: int) -> None:
        self.vm.qmp.cmd("qom-set", path=TESTNIC_QOM, property="fail-dma", value=count)

    def _injected(self) -> int:
        return self.vm.qmp.cmd("qom-get", path=TESTNIC_QOM,
                               property="stats")["dma_faults_injected"]

    def start(self) -> None:
        if self.vm.qmp is None:
            raise InfraError(f"{self.vm.name}: no QMP to inject DMA faults through")
        before = self._injected()
        self._set(self.count)
        deadline = time.monotonic() + self.within
        while self._injected() - before < self.count and time.monotonic() < deadline:
            time.sleep(0.05)
        self._set(0)
        self.landed = self._injected() - before

    def stop(self) -> None:
        if self.vm.qmp is not None:
            self._set(0)


Pressure = FailFunction | FailPageAlloc | FailSlab | MemHog | Balloon | DmaFault
