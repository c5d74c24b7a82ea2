"""Background traffic: the commands each method runs, and its scenario options."""

from pathlib import Path

import pytest
from bqlab import scenario
from bqlab.schema import ValidationError
from bqlab.traffic import StoppedTcp

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
