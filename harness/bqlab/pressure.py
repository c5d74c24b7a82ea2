"""Memory pressure on the DUT, started and stopped by scenario steps.

- fail_function: fail one error-injectable function (the driver's rx page allocation by
  default) with a given probability: deterministic, any kernel with FAIL_FUNCTION.
- fail_page_alloc: fail order >= min_order page allocations that may not sleep
  (ignore-gfp-wait): NAPI's GFP_ATOMIC refills fail, a GFP_KERNEL refill work succeeds.
- memhog: stress-ng dirtying most of the free memory, with a swap file to push to.
- balloon: the host inflates a virtio-balloon over QMP until the guest has `leave_mb` left.
"""

from dataclasses import dataclass

from .errors import InfraError
from .vm import Vm

FAIL_FUNCTION = "/sys/kernel/debug/fail_function"
FAIL_PAGE_ALLOC = "/sys/kernel/debug/fail_page_alloc"


def _guest(vm: Vm, script: str, what: str, timeout: float = 60) -> str:
    res = vm.run(script, timeout=timeout)
    if not res.ok:
        raise InfraError(f"{vm.name}: {what} failed: {res.stderr.strip()[-400:]}")
    return res.stdout


@dataclass
class FailFunction:
    vm: Vm
    function: str
    retval: int
    probability: int

    def start(self) -> None:
        _guest(self.vm, f"cd {FAIL_FUNCTION} && echo {self.function} > inject && "
               f"echo {self.retval} > {self.function}/retval && "
               f"echo {self.probability} > probability && echo 1 > interval && "
               "echo -1 > times && echo 0 > verbose",
               f"fail_function on {self.function}")

    def stop(self) -> None:
        _guest(self.vm, f"echo > {FAIL_FUNCTION}/inject", "clearing fail_function")


@dataclass
class FailPageAlloc:
    vm: Vm
    probability: int
    min_order: int

    def start(self) -> None:
        _guest(self.vm, f"cd {FAIL_PAGE_ALLOC} && echo Y > ignore-gfp-wait && "
               f"echo N > ignore-gfp-highmem && echo {self.min_order} > min-order && "
               "echo 1 > interval && echo -1 > times && echo 0 > verbose && "
               f"echo {self.probability} > probability", "fail_page_alloc")

    def stop(self) -> None:
        _guest(self.vm, f"echo 0 > {FAIL_PAGE_ALLOC}/probability", "stopping fail_page_alloc")


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
        _guest(self.vm, "pkill -KILL -x stress-ng; "
               "for i in $(seq 50); do pgrep -x stress-ng >/dev/null || break; sleep 0.1; "
               "done; if [ -e /swapfile ]; then swapoff /swapfile && rm -f /swapfile; fi; "
               "true", "stopping memhog", timeout=180)


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


Pressure = FailFunction | FailPageAlloc | MemHog | Balloon
