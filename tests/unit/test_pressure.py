"""Memory pressure methods: the guest commands they run."""

import re
from dataclasses import dataclass

from bqlab.workload.pressure import FailFunction, FailPageAlloc, FailSlab, MemHog


@dataclass
class Result:
    ok: bool = True
    stdout: str = ""
    stderr: str = ""


class FakeVm:
    name = "dut"

    def __init__(self) -> None:
        self.commands: list[str] = []

    def run(self, command: str, **_kw: object) -> Result:
        self.commands.append(command)
        return Result()


def test_memhog_stop_kills_the_workers_and_their_parents_too() -> None:
    """stress-ng-vm parents restart an OOM-killed worker: killing only `stress-ng` left
    the hog running after the end of the pressure window."""
    vm = FakeVm()
    MemHog(vm, percent=90, workers=2, swap_mb=0).stop()  # type: ignore[arg-type]
    (cmd,) = vm.commands
    (pattern,) = re.findall(r"pkill -KILL '([^']+)'", cmd)
    for name in ("stress-ng", "stress-ng-vm"):
        assert re.search(pattern, name)
    assert not re.search(pattern, "bqlab-watch")
    assert "-x" not in cmd.split("pkill")[1].split(";")[0]  # no exact-name match


def test_fail_function_writes_a_negative_errno_the_way_debugfs_reads_it() -> None:
    """The retval file is parsed as an unsigned 64-bit number: `echo -16` is refused
    (EINVAL), so a request_irq failure could not be injected at all."""
    vm = FakeVm()
    FailFunction(vm, "bqnic_request_irq", -16, 100).start()  # type: ignore[arg-type]
    (cmd,) = vm.commands
    (value,) = re.findall(r"echo (\S+) > bqnic_request_irq/retval", cmd)
    assert int(value, 0) == (1 << 64) - 16
    vm = FakeVm()
    FailFunction(vm, "page_pool_alloc_pages", 0, 100).start()  # type: ignore[arg-type]
    assert "echo 0x0 > page_pool_alloc_pages/retval" in vm.commands[0]


def test_guest_wide_fail_page_alloc_stops_itself_in_the_guest() -> None:
    """Every atomic allocation fails, SSH's too: the harness cannot reach the guest to
    stop it, so the guest's own timer must, and must be forked before the failures."""
    vm = FakeVm()
    FailPageAlloc(vm, probability=100, min_order=0, seconds=4.0).start()  # type: ignore[arg-type]
    (cmd,) = vm.commands
    timer = cmd.index("sleep 4.0; echo 0 > /sys/kernel/debug/fail_page_alloc/probability")
    assert timer < cmd.index("echo 100 > probability")
    marked = FakeVm()
    FailPageAlloc(marked, 100, 0, task_filter=True, seconds=4.0).start()  # type: ignore[arg-type]
    assert "sleep" not in marked.commands[0]  # only marked commands fail: SSH still works


def test_failslab_fails_only_the_named_caches_non_sleeping_allocations() -> None:
    vm = FakeVm()
    slab = FailSlab(vm, ("radix_tree_node",), 100)  # type: ignore[arg-type]
    slab.start()
    (cmd,) = vm.commands
    for setting in ("echo Y > ignore-gfp-wait", "echo Y > cache-filter",
                    "echo 1 > /sys/kernel/slab/radix_tree_node/failslab"):
        assert setting in cmd
    # the cache is flagged before any allocation may fail
    assert cmd.index("radix_tree_node/failslab") < cmd.index("echo 100 > probability")
    slab.stop()
    stop = vm.commands[1]
    assert stop.index("echo 0 > /sys/kernel/debug/failslab/probability") < \
        stop.index("echo 0 > /sys/kernel/slab/radix_tree_node/failslab")
