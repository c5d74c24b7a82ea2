"""Did the DUT die? Tell a guest that stopped answering from a lab that failed.

A run that breaks with an infrastructure error (an SSH command timed out, the connection
dropped, the scenario overran) may have broken because the kernel under test hung: then
it is a finding about the DUT, not about the lab, and a CI that reads exit 3 as "retry"
would never see the bug. Two signs:
- QEMU still runs, yet a fresh SSH connection gets no answer. The guest is made to speak
  first: an NMI over QMP, which the kernel (booted with vm.DETECTOR_ARGS:
  unknown_nmi_panic, panic_print=0x40) turns into a panic with every CPU's backtrace.
- The DUT answers, but a command of the scenario on it never came back: a kernel stuck in
  a driver's close or reconfigure under RTNL. sysrq w shows who is stuck, and where.
"""

import contextlib
import time
from dataclasses import dataclass

from ..errors import BqlabError
from ..progress import say
from .machine import Vm
from .ssh import CommandTimeout, Ssh

ANSWER_TIMEOUT = 20.0  # a loaded TCG guest answers a fresh SSH `true` well within this
NMI_SETTLE = 6.0  # for the NMI's panic and backtraces to reach the console


@dataclass(frozen=True)
class Death:
    vm: str
    how: str  # one line: what stopped and how we know

    def as_verdict(self, findings: list[dict]) -> dict:
        first = findings[0] if findings else None
        at = f" at {first['where']}" if first and first.get("where") else ""
        reason = self.how + (f"; first console report: {first['text']} (line {first['line']})"
                             f"{at}" if first else "; the console holds no kernel report")
        return {"name": "dut-alive", "verdict": "FAIL", "reason": reason, "vm": self.vm,
                "console_findings": len(findings)}


def answers(vm: Vm, timeout: float = ANSWER_TIMEOUT) -> bool:
    """A fresh SSH connection (the old one may be wedged) runs `true` in time."""
    probe = Ssh(f"{vm.name}-probe", vm.port, vm.built.ssh_key, vm.built.host_key)
    try:
        probe.connect(time.monotonic() + timeout, alive=vm.alive)
        return probe.run("true", timeout=timeout).ok
    except BqlabError:
        return False
    finally:
        probe.close()


def check_dut(vms: dict[str, Vm], cause: BqlabError) -> Death | None:
    """After `cause` broke the run: a Death if the DUT's guest stopped answering while its
    QEMU ran (or its QEMU is gone), None if the DUT is fine and the cause lies elsewhere.
    A DUT that never came up to SSH is not judged here: a boot that is merely slow on a
    loaded host must not read as a dead kernel (its console findings still count)."""
    dut = vms.get("dut")
    if dut is None or dut.ssh is None or not dut.ssh_ready_at:
        return None
    if not dut.alive():
        return None  # QEMU exited: its console (a panic?) decides, see runner._finish
    say("  the run broke; checking whether the DUT still answers ...")
    stuck = isinstance(cause, CommandTimeout) and cause.host == dut.name
    if answers(dut):
        if not stuck:
            return None
        # It answers, but a command of the scenario never came back: the kernel is stuck
        # in it (e.g. napi_disable() spinning under RTNL). Show where: blocked tasks and
        # every CPU's backtrace, at a console level that prints them.
        say("  a DUT command never completed: dumping blocked tasks (sysrq w)")
        with contextlib.suppress(BqlabError):
            dut.run("dmesg -n 8; echo w > /proc/sysrq-trigger; echo l > /proc/sysrq-trigger",
                    timeout=ANSWER_TIMEOUT)
        time.sleep(2.0)  # for the dump to reach the console
        return Death("dut", f"a command on the DUT never completed, though the DUT still "
                            f"answers (the kernel is stuck in it): {_first_line(cause)}")
    say("  the DUT does not answer while its QEMU runs: NMI for a backtrace")
    if dut.qmp is not None:
        with contextlib.suppress(BqlabError):
            dut.qmp.cmd("inject-nmi", timeout=5)
    time.sleep(NMI_SETTLE)
    return Death("dut", f"the DUT stopped answering while its QEMU ran (after: "
                        f"{_first_line(cause)})")


def _first_line(cause: BqlabError) -> str:
    return str(cause).splitlines()[0] if str(cause) else type(cause).__name__
