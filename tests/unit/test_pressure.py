"""Memory pressure methods: the guest commands they run."""

import re
from dataclasses import dataclass

from bqlab.pressure import MemHog


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
