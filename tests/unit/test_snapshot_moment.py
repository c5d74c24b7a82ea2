"""When --snapshot-on-fail saves the pair: once the pressure has ended, before the next
step that reconfigures the DUT, or at the end of the steps; once per run."""

from pathlib import Path

from bqlab.run import runner
from bqlab.run.report import RunReport


class Topo:
    def __init__(self) -> None:
        self.taken: list[str] = []

    def snapshot(self, dest: Path, why: str) -> Path:
        self.taken.append(why)
        return dest


class State:
    def __init__(self, pressure: bool, ended: float | None) -> None:
        self.pressure = [object()] if pressure else []
        self.topo = Topo()
        self._ended = ended

    def pressure_end(self) -> float | None:
        return self._ended


def moment(steps: list[tuple[str | None, bool, float | None]]) -> list[str]:
    rep = RunReport("s", "s.yaml", Path("/tmp/x"))
    taken: list[str] = []
    for before, pressure, ended in steps:
        state = State(pressure, ended)
        runner._maybe_snapshot(state, rep, before)  # type: ignore[arg-type]
        taken += state.topo.taken
    return taken


def test_before_the_reconfiguration_that_follows_the_pressure() -> None:
    assert moment([("rings", False, None),          # no pressure yet: nothing to keep
                   ("sleep", True, None),           # under pressure
                   ("ifdown_ifup", True, None),     # still under pressure
                   ("sleep", False, 5.0),           # not a reconfiguration
                   ("ifdown_ifup", False, 5.0),     # this one
                   ("rings", False, 5.0),           # once per run
                   (None, False, 5.0)]) == ["before step ifdown_ifup"]


def test_at_the_end_when_nothing_reconfigured_after_the_pressure() -> None:
    assert moment([("sleep", True, None), (None, True, None)]) == ["at the end of the steps"]
    assert moment([("xdp_cycles", False, None), (None, False, None)]) == \
        ["at the end of the steps"]
