"""The bql verdict: bytes BQL still counts in flight once the traffic has stopped."""

from dataclasses import dataclass

from bqlab.judge.run_verdicts import judge_bql

SYSFS = "/sys/class/net/test0/queues/{q}/byte_queue_limits/inflight"


@dataclass
class Result:
    stdout: str
    ok: bool = True


class FakeDut:
    def __init__(self, readings: list[dict[str, int]]) -> None:
        self.readings = readings

    def run(self, command: str, timeout: float = 0) -> Result:
        values = self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]
        return Result("".join(f"{SYSFS.format(q=q)}:{v}\n" for q, v in values.items()))


class FakeState:
    def __init__(self, dut: FakeDut) -> None:
        self.topo = {"dut": dut}


def test_bytes_that_never_complete_fail_naming_the_queue() -> None:
    v = judge_bql(FakeState(FakeDut([{"tx-0": 0, "tx-1": 4242}])), settle=0.6)
    assert v["verdict"] == "FAIL" and v["inflight"] == {"tx-1": 4242}
    assert v["reason"].startswith("tx-1: BQL holds 4242 byte(s) in flight")


def test_bytes_that_complete_while_it_waits_pass() -> None:
    dut = FakeDut([{"tx-0": 3000}, {"tx-0": 1500}, {"tx-0": 0}])
    assert judge_bql(FakeState(dut), settle=5)["verdict"] == "PASS"


def test_a_driver_without_bql_passes_and_says_so() -> None:
    v = judge_bql(FakeState(FakeDut([{}])), settle=0.1)
    assert v["verdict"] == "PASS" and "no BQL" in v["reason"]
