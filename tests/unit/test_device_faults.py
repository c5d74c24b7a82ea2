"""DMA faults the device is asked for (pressure dma_fault), the dma verdict that must tell
them from the driver's own, and the mmio verdict on register reads in the hot path."""

from types import SimpleNamespace
from typing import Any

import pytest
from bqlab.judge import run_verdicts
from bqlab.judge.verdicts import MMIO_BUSY_INTERRUPTS, mmio_verdict
from bqlab.judge.watchdog import DeviceSample
from bqlab.run import steps
from bqlab.scenario import loader
from bqlab.workload.pressure import DmaFault


class FakeQmp:
    """bqnic's fail-dma: each transfer the device makes while armed fails."""

    def __init__(self, transfers_per_poll: int) -> None:
        self.armed = 0
        self.injected = 0
        self.per_poll = transfers_per_poll
        self.sets: list[int] = []

    def cmd(self, name: str, **args: Any) -> Any:
        if name == "qom-set":
            self.armed = args["value"]
            self.sets.append(args["value"])
            return {}
        hit = min(self.armed, self.per_poll)  # the device moved frames since
        self.armed -= hit
        self.injected += hit
        return {"dma_faults_injected": self.injected}


def fault_vm(qmp: FakeQmp) -> Any:
    return SimpleNamespace(name="dut", qmp=qmp)


def test_dma_fault_waits_for_every_fault_to_land_then_disarms() -> None:
    qmp = FakeQmp(transfers_per_poll=1)
    fault = DmaFault(fault_vm(qmp), count=2, within=5)
    fault.start()
    assert fault.landed == 2
    assert qmp.sets == [2, 0]  # armed, then nothing left to hit after the driver's reset


def test_dma_fault_cancels_what_did_not_land_in_time() -> None:
    """No traffic: no transfer to fail. What is left must not hit later, after the reset
    the driver makes to recover."""
    qmp = FakeQmp(transfers_per_poll=0)
    fault = DmaFault(fault_vm(qmp), count=2, within=0.2)
    fault.start()
    assert fault.landed == 0 and qmp.sets == [2, 0]


def _state(dma_errors: int, injected: int, api: int = 0) -> Any:
    dut = SimpleNamespace(run=lambda *_a, **_k: SimpleNamespace(ok=True, stdout=f"{api}\n"),
                          console_text=lambda: "")
    dog = SimpleNamespace(dma_errors=lambda: dma_errors,
                          dma_faults_injected=lambda: injected)
    return SimpleNamespace(topo={"dut": dut}, watchdog=dog)


def test_injected_dma_faults_are_not_the_drivers() -> None:
    v = run_verdicts.judge_dma(_state(dma_errors=2, injected=2), api_before=0)
    assert v["verdict"] == "PASS", v
    assert "besides the 2 injected" in v["reason"]


def test_a_dma_error_beyond_the_injected_ones_fails() -> None:
    """A driver that, recovering, hands the device a freed buffer causes one more."""
    v = run_verdicts.judge_dma(_state(dma_errors=3, injected=2), api_before=0)
    assert v["verdict"] == "FAIL"
    assert "1 DMA error(s) besides the 2 injected" in v["reason"]


def test_without_injection_any_device_dma_error_fails() -> None:
    assert run_verdicts.judge_dma(_state(dma_errors=1, injected=0), 0)["verdict"] == "FAIL"


def _dut_scenario(tmp_path, nic: str) -> loader.Scenario:
    path = tmp_path / "fault.yaml"
    path.write_text(f"""\
name: fault
vms:
  dut: {{nic: {nic}}}
  peer: {{nic: virtio-net-pci}}
steps:
  - pressure: {{method: dma_fault, count: 2}}
  - stop: {{what: pressure}}
""")
    return loader.load(path)


def test_a_model_that_cannot_inject_says_so_in_the_report(tmp_path) -> None:
    scenario = _dut_scenario(tmp_path, "e1000e")
    step = scenario.steps[0]
    assert (step["method"], step["count"], step["within"]) == ("dma_fault", 2, 5.0)
    dut = SimpleNamespace(config=SimpleNamespace(nic="e1000e"))
    state = SimpleNamespace(topo={"dut": dut})
    ok, summary, details = steps._pressure(state, step)
    assert ok and "not applicable" in summary
    assert "e1000e" in details["not_applicable"]


def test_dma_fault_count_is_checked(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nvms: {dut: {nic: bqnic}}\nsteps:\n"
                    "  - pressure: {method: dma_fault, count: 0}\n")
    with pytest.raises(loader.ValidationError, match=r"bad.yaml:4"):
        loader.load(path)


BUSY = MMIO_BUSY_INTERRUPTS


def test_a_register_read_per_interrupt_fails_mmio() -> None:
    v = mmio_verdict([(BUSY + 3, BUSY)] * 10 + [(5, 2)])
    assert v is not None and v.verdict == "FAIL"
    assert v.intervals == 10 and "hot path" in v.reason


def test_tool_reads_while_busy_pass_mmio() -> None:
    """ethtool -S and qstats read the drop counters: a dozen reads per sample."""
    v = mmio_verdict([(12, BUSY)] * 10 + [(12, 500)] * 5)
    assert v is not None and v.verdict == "PASS", v


def test_reads_while_idle_are_not_judged() -> None:
    """Reconfiguration and tools read registers with few interrupts: no hot path then."""
    assert mmio_verdict([(40, 3), (12, 0), (0, BUSY - 1)]) is None


def test_mmio_intervals_come_from_the_device_samples() -> None:
    def sample(t: float, reads: int, irqs: tuple[int, int]) -> DeviceSample:
        return DeviceSample(t, [{"interrupts": irqs[0]}, {"interrupts": irqs[1]}], 0,
                            mmio_reads=reads)

    dog = SimpleNamespace(device=[sample(0, 10, (0, 0)), sample(0.25, 15, (100, 50)),
                                  sample(0.5, 215, (250, 100))])
    assert run_verdicts.mmio_intervals(SimpleNamespace(watchdog=dog)) == [(5, 150),
                                                                           (200, 200)]
