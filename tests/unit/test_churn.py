"""Teardown steps with `may_fail`: a refused change is an answer, a failed close is not."""

from dataclasses import dataclass, field

from bqlab.vm.ssh import CommandResult
from bqlab.workload import churn


@dataclass
class FakeState:
    """Runs nothing: answers each command from a table (exit 0 unless listed)."""

    fails: dict[str, int]
    ran: list[str] = field(default_factory=list)

    def record_event(self, what: str, command: str, must_destroy: bool = False,
                     timeout: float = 120) -> CommandResult:
        self.ran.append(command)
        code = next((c for k, c in self.fails.items() if k in command), 0)
        return CommandResult(command, code, "", "RTNETLINK answers: Cannot allocate memory"
                             if code else "", 0.1)


def test_a_refused_change_fails_the_step_unless_it_may_fail() -> None:
    state = FakeState({"ethtool -G": 1})
    ok, summary, _ = churn.rings(state, {"rx": 512, "tx": None, "may_fail": False})
    assert not ok and "Cannot allocate memory" in summary
    ok, summary, details = churn.rings(state, {"rx": 512, "tx": None, "may_fail": True})
    assert ok and "refused 1x" in summary and details["refused"]


def test_a_refused_xdp_attach_goes_on_to_the_next_cycle() -> None:
    state = FakeState({"xdpdrv obj": 1})
    step = {"cycles": 2, "actions": ["pass"], "dwell": [0.0, 0.0], "seed": 1,
            "may_fail": True}
    ok, summary, details = churn.xdp_cycles(state, step)
    assert ok and "refused 2x" in summary
    assert sum("xdpdrv off" in c for c in state.ran) == 2  # detach still tried each cycle


def test_closing_may_never_fail() -> None:
    state = FakeState({"test0 down": 1})
    ok, summary, _ = churn.ifdown_ifup(state, {"times": 1, "may_fail": True})
    assert not ok and summary.startswith("ifdown failed")


def test_mtu_change() -> None:
    state = FakeState({})
    ok, summary, _ = churn.mtu(state, {"mtu": 3000, "may_fail": False})
    assert ok and state.ran == ["ip link set dev test0 mtu 3000"]


def test_an_operation_the_driver_lacks_is_skipped_not_failed() -> None:
    """e1000e has no set_channels: the ethtool core answers EOPNOTSUPP, no driver code
    ran, so there is nothing to judge (a driver that refuses with another error fails)."""

    @dataclass
    class Dut:
        config: object

    @dataclass
    class Topo:
        def __getitem__(self, name: str) -> Dut:
            return Dut(type("C", (), {"nic": "e1000e"})())

    @dataclass
    class Unsupported(FakeState):
        topo: Topo = field(default_factory=Topo)

        def record_event(self, what: str, command: str, must_destroy: bool = False,
                         timeout: float = 120) -> CommandResult:
            self.ran.append(command)
            return CommandResult(command, 1, "", "netlink error: Operation not supported",
                                 0.1)

    ok, summary, details = churn.channels(Unsupported({}), {"combined": 1, "may_fail": False})
    assert ok and "e1000e does not support it" in summary and details["unsupported"]
    ok, _, _ = churn.mtu(Unsupported({}), {"mtu": 3000, "may_fail": False})
    assert not ok  # only ethtool operations can be absent from a driver


# xdp:xdp_cpumap_enqueue as the 6.12 trace file prints it (include/trace/events/xdp.h)
CPUMAP_TRACE = """\
# tracer: nop
#
      ksoftirqd/0-15      [000] ..s1.   101.000001: xdp_cpumap_enqueue: enqueue cpu=0 map_id=7 action=REDIRECT processed=8 drops=0 to_cpu=0
      ksoftirqd/0-15      [000] ..s1.   101.000101: xdp_cpumap_enqueue: enqueue cpu=0 map_id=7 action=REDIRECT processed=8 drops=5 to_cpu=0
          <idle>-0        [001] ..s1.   101.000201: xdp_cpumap_enqueue: enqueue cpu=1 map_id=7 action=REDIRECT processed=3 drops=1 to_cpu=0
"""  # noqa: E501


def test_cpumap_overflow_is_summed_in_the_guest(tmp_path) -> None:
    """The guest sums the events with awk (a full trace buffer is megabytes): the same
    command, here on a recorded trace."""
    import subprocess

    trace = tmp_path / "trace"
    trace.write_text(CPUMAP_TRACE)
    out = subprocess.run(f"{churn.CPUMAP_SUM} {trace}", shell=True, capture_output=True,
                         text=True, check=True).stdout
    assert churn.cpumap_counts(out) == {"events": 3, "processed": 19, "drops": 6}
    empty = tmp_path / "empty"
    empty.write_text("# tracer: nop\n")
    out = subprocess.run(f"{churn.CPUMAP_SUM} {empty}", shell=True, capture_output=True,
                         text=True, check=True).stdout
    assert churn.cpumap_counts(out) == {"events": 0, "processed": 0, "drops": 0}
    assert churn.cpumap_counts("") is None
