"""Steps that tear the DUT's page_pools down and build them again: XDP attach/detach
cycles, ifdown/ifup, ring, channel and MTU changes, driver reload. Each change is recorded as a
teardown event with the pools that existed just before it (runstate.record_event), for the
teardown verdict."""

from __future__ import annotations

import random
import re
import time
from typing import TYPE_CHECKING

from ..progress import say
from ..vm import nics
from .pressure import MAKE_IT_FAIL

if TYPE_CHECKING:
    from ..run.runstate import RunState

XDP_DIR = "/usr/local/lib/bqlab/xdp"
XDP_ACTIONS = ("pass", "drop", "tx", "redirect_cpu")
# The cpumap of the program just attached, found by its id: names are not unique while the
# previous program is still being freed.
_CPUMAP_ID = (
    "id=$(ip -d link show dev test0 | sed -n 's/.*prog\\/xdp id \\([0-9]*\\).*/\\1/p'); "
    "map=$(bpftool prog show id $id | sed -n 's/.*map_ids \\([0-9]*\\).*/\\1/p'); ")


def _fill_cpumap(qsize: int) -> str:
    """CPU 0's entry: struct bpf_cpumap_val {u32 qsize; u32 prog fd (none)}, little endian."""
    value = " ".join(f"{b:02x}" for b in qsize.to_bytes(4, "little")) + " 00 00 00 00"
    return _CPUMAP_ID + f"bpftool map update id $map key hex 00 00 00 00 value hex {value}"


# Frames still queued for CPU 0's kthread are freed when the entry goes (__cpu_map_entry_free).
_DELETE_CPUMAP_ENTRY = _CPUMAP_ID + "bpftool map delete id $map key hex 00 00 00 00"

# The xdp:xdp_cpumap_enqueue tracepoint in a tracefs instance of our own: how many frames
# went into cpumap queues and how many a full queue dropped. Without overwrite, a full
# buffer keeps the first events: still proof that the queue overflowed. Summed in the
# guest (a full buffer is megabytes).
_CPUMAP_TRACE = "/sys/kernel/tracing/instances/bqlab-cpumap"
_CPUMAP_TRACE_ON = (f"mkdir -p {_CPUMAP_TRACE} && cd {_CPUMAP_TRACE} && "
                    "echo 0 > options/overwrite && echo 2048 > buffer_size_kb && "
                    "echo > trace && echo 1 > events/xdp/xdp_cpumap_enqueue/enable")
CPUMAP_SUM = ("awk '/xdp_cpumap_enqueue:/ { n++; for (i = 1; i <= NF; i++) { "
              "if ($i ~ /^processed=/) p += substr($i, 11); "
              "if ($i ~ /^drops=/) d += substr($i, 7) } } "
              "END { printf \"events=%d processed=%d drops=%d\\n\", n, p, d }'")
_CPUMAP_TRACE_OFF = (f"echo 0 > {_CPUMAP_TRACE}/events/xdp/xdp_cpumap_enqueue/enable; "
                     f"{CPUMAP_SUM} {_CPUMAP_TRACE}/trace; rmdir {_CPUMAP_TRACE}")
_SUMMED = re.compile(r"events=(\d+) processed=(\d+) drops=(\d+)")


def cpumap_counts(summed: str) -> dict[str, int] | None:
    """CPUMAP_SUM's line as numbers; None if it printed none."""
    m = _SUMMED.search(summed)
    if m is None:
        return None
    return dict(zip(("events", "processed", "drops"), map(int, m.groups()), strict=True))


Outcome = tuple[bool, str, dict]


def _marked(step: dict, command: str) -> str:
    """The command as the step runs it: marked for fault injection with `inject`. A
    simple command is exec'd by the marked shell, so no fork of it has to succeed."""
    if not step.get("inject"):
        return command
    simple = not any(op in command for op in ("&&", "||", ";", "|", "$("))
    return MAKE_IT_FAIL + ("exec " if simple else "") + command


def _failed(what: str, res) -> Outcome:
    return False, f"{what} failed (exit {res.exit_status}): {res.stderr.strip()[-300:]}", {}


def _refused(step: dict, refusals: list[str], what: str, res) -> bool:
    """With `may_fail`, a change the driver refuses (ENOMEM under fault injection) is a
    legitimate answer: note it and go on. What matters then is that the DUT survives it,
    which the steps and verdicts after it check. Returns True when the step may go on."""
    if not step.get("may_fail"):
        return False
    refusals.append(f"{what}: {res.stderr.strip()[-120:] or f'exit {res.exit_status}'}")
    return True


def _summary(done: str, refusals: list[str]) -> Outcome:
    if not refusals:
        return True, done, {}
    return True, f"{done}; refused {len(refusals)}x ({refusals[0]})", {"refused": refusals}


def xdp_cycles(state: RunState, step: dict) -> Outcome:
    """The cycles; with redirect_cpu, also what the cpumap queues took and dropped."""
    if "redirect_cpu" not in step["actions"]:
        return _xdp_cycles(state, step)
    dut = state.topo["dut"]
    traced = dut.run(_CPUMAP_TRACE_ON, timeout=20).ok
    try:
        ok, summary, details = _xdp_cycles(state, step)
    finally:
        trace = dut.run(_CPUMAP_TRACE_OFF, timeout=60).stdout if traced else ""
    counts = cpumap_counts(trace) if traced else None
    if counts is not None:
        details["cpumap"] = counts
        summary += (f"; cpumap: {counts['processed']} frames redirected, {counts['drops']} "
                    "dropped by a full queue")
    return ok, summary, details


def _xdp_cycles(state: RunState, step: dict) -> Outcome:
    rng = random.Random(step["seed"])
    lo, hi = step["dwell"]
    counts = dict.fromkeys(step["actions"], 0)
    refusals: list[str] = []
    for cycle in range(step["cycles"]):
        action = step["actions"][cycle % len(step["actions"])]
        attach = f"ip link set dev test0 xdpdrv obj {XDP_DIR}/xdp_{action}.o sec xdp"
        if action == "redirect_cpu":
            attach += f" && {_fill_cpumap(step['cpumap_qsize'])}"
        res = state.record_event(f"xdp attach {action} (cycle {cycle})", _marked(step, attach))
        if not res.ok and not _refused(step, refusals, f"attach {action}", res):
            return _failed(f"cycle {cycle}: attach {action}", res)
        dwell = rng.uniform(lo, hi)
        if action == "redirect_cpu" and step["cpumap_delete"] and res.ok:
            time.sleep(dwell / 2)
            res = state.topo["dut"].run(_DELETE_CPUMAP_ENTRY)
            if not res.ok:
                return _failed(f"cycle {cycle}: delete the cpumap entry", res)
            dwell /= 2
        time.sleep(dwell)
        res = state.record_event(f"xdp detach {action} (cycle {cycle})",
                                 _marked(step, "ip link set dev test0 xdpdrv off"))
        if not res.ok and not _refused(step, refusals, f"detach {action}", res):
            return _failed(f"cycle {cycle}: detach {action}", res)
        counts[action] += 1
        if (cycle + 1) % 10 == 0 and cycle + 1 < step["cycles"]:
            say(f"         xdp_cycles: {cycle + 1}/{step['cycles']} done")
        time.sleep(rng.uniform(lo, hi))
    done = ", ".join(f"{a} x{n}" for a, n in counts.items())
    ok, summary, details = _summary(
        f"{step['cycles']} XDP attach/detach cycles ({done}), seed {step['seed']}", refusals)
    return ok, summary, {**details, "cycles": counts, "seed": step["seed"]}


def ifdown_ifup(state: RunState, step: dict) -> Outcome:
    refusals: list[str] = []
    for i in range(step["times"]):
        res = state.record_event(f"ifdown ({i})", "ip link set test0 down", must_destroy=True)
        if not res.ok:
            return _failed("ifdown", res)  # closing may never fail
        res = state.record_event(f"ifup ({i})", _marked(step, "ip link set test0 up"))
        if not res.ok and not _refused(step, refusals, "ifup", res):
            return _failed("ifup", res)
    return _summary(f"ifdown/ifup x{step['times']}", refusals)


# What the ethtool core answers when the driver has no such operation (e1000e has no
# set_channels): no driver code ran, nothing was torn down, nothing to judge.
UNSUPPORTED = "Operation not supported"


def _one_change(state: RunState, step: dict, what: str, command: str) -> Outcome:
    res = state.record_event(what, _marked(step, command))
    if res.ok:
        return True, command, {}
    if UNSUPPORTED in res.stderr and command.startswith("ethtool"):
        driver = nics.model(state.topo["dut"].config.nic).driver
        return True, f"{command}: skipped, {driver} does not support it", \
            {"unsupported": True}
    refusals: list[str] = []
    if _refused(step, refusals, what, res):
        return _summary(command, refusals)
    return _failed(what, res)


def rings(state: RunState, step: dict) -> Outcome:
    size = f"rx {step['rx']}" + (f" tx {step['tx']}" if step["tx"] else "")
    return _one_change(state, step, f"ethtool -G {size}", f"ethtool -G test0 {size}")


def channels(state: RunState, step: dict) -> Outcome:
    n = step["combined"]
    return _one_change(state, step, f"ethtool -L combined {n}",
                       f"ethtool -L test0 combined {n}")


def mtu(state: RunState, step: dict) -> Outcome:
    return _one_change(state, step, f"mtu {step['mtu']}",
                       f"ip link set dev test0 mtu {step['mtu']}")


def reload(state: RunState, step: dict) -> Outcome:
    dut = state.topo["dut"]
    driver = nics.model(dut.config.nic).driver
    for i in range(step["times"]):
        res = state.record_event(f"rmmod {driver} ({i})", f"rmmod {driver}",
                                 must_destroy=True)
        if not res.ok:
            return _failed(f"rmmod {driver}", res)
        state.topo.configure_test_link(dut)  # modprobe with the same parameters
    return True, f"rmmod/modprobe {driver} x{step['times']}", {}
