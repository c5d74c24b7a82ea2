"""Background traffic: the commands each method runs, and its scenario options."""

from pathlib import Path

import pytest
from bqlab import scenario
from bqlab.scenario.schema import ValidationError
from bqlab.workload.traffic import StoppedTcp

TCP = """\
name: t
vms:
  dut: {nic: bqnic, cpus: 2}
  peer: {}
steps:
  - traffic: {method: stopped-tcp, from: peer, to: dut}
"""


class FakeVm:
    def __init__(self) -> None:
        self.commands: list[str] = []

    def run(self, command: str, **_kw: object) -> None:
        self.commands.append(command)


def load(tmp_path: Path, text: str) -> scenario.Scenario:
    p = tmp_path / "s.yaml"
    p.write_text(text)
    return scenario.load(str(p))


def test_stopped_tcp_streams_default_and_range(tmp_path: Path) -> None:
    assert load(tmp_path, TCP).steps[0]["streams"] == 1
    sc = load(tmp_path, TCP.replace("to: dut}", "to: dut, streams: 8}"))
    assert sc.steps[0]["streams"] == 8
    with pytest.raises(ValidationError) as exc:
        load(tmp_path, TCP.replace("to: dut}", "to: dut, streams: 17}"))
    assert any("streams" in str(i) for i in exc.value.issues)


def test_stopped_tcp_runs_its_streams_into_one_stopped_server() -> None:
    sender, receiver = FakeVm(), FakeVm()
    flow = StoppedTcp(sender, receiver, "10.99.0.1", streams=4)  # type: ignore[arg-type]
    flow.start()
    assert "iperf3 -c 10.99.0.1 -p 5301 -t 3600 -P 4 " in sender.commands[0]
    assert receiver.commands[0] == "iperf3 -s -D -p 5301"
    assert "pkill -STOP -f 'iperf3 -s -D -p 5301'" in receiver.commands[1]


class Result:
    ok = True


class Host(FakeVm):
    def run(self, command: str, **_kw: object) -> Result:  # type: ignore[override]
        self.commands.append(command)
        return Result()


def test_pktgen_resume_restarts_only_a_stopped_device_with_its_carrier_up() -> None:
    from bqlab.workload.traffic import Pktgen

    dut = Host()
    gen = Pktgen(dut, "10.99.0.2", "52:54:00:00:00:02", 1400, 3000, (9100, 9101))  # type: ignore[arg-type]
    assert not gen.resume()  # never started: nothing to resume
    gen.start()
    assert gen.resume()
    script = dut.commands[-1]
    # still running: nothing else happens; link down: no restart (exit 3)
    assert script.index("grep -q '^Running: test0'") < script.index("add_device test0@0")
    assert script.index("/carrier") < script.index("add_device test0@0")
    assert "|| exit 3" in script


def test_a_teardown_event_resumes_what_the_dut_sends_first() -> None:
    from bqlab.run.runstate import RunState

    dut, peer = Host(), Host()
    order: list[str] = []

    class Flow:
        def __init__(self, sender: Host) -> None:
            self.sender = sender

        def start(self) -> None: ...

        def stop(self) -> None: ...

        def resume(self) -> bool:
            order.append("resume dut" if self.sender is dut else "resume peer")
            return True

    def run(command: str, **_kw: object) -> Result:
        order.append(command)
        return Result()

    dut.run = run  # type: ignore[method-assign]
    state = RunState(topo={"dut": dut, "peer": peer})  # type: ignore[arg-type]
    state.start_traffic(Flow(peer), to_dut=True)
    state.start_traffic(Flow(dut), to_dut=False)
    state.record_event("rings", "ethtool -G test0 rx 512")
    # pktgen stops a device whose carrier went: the DUT's flow is restarted before the
    # next teardown, so skbs are in flight through every one; the peer's link never moved
    assert order == ["resume dut", "ethtool -G test0 rx 512"]
