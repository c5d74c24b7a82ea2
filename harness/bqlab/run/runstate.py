"""What a running scenario has going on: background workloads, the watchdog, and the
teardown events and pressure windows the verdicts are judged against."""

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..judge.verdicts import TeardownEvent
from ..judge.watchdog import Watchdog
from ..vm.ssh import CommandResult
from ..vm.topology import Topology
from ..workload.pressure import Pressure
from ..workload.traffic import Sinks


class Background(Protocol):
    def start(self) -> object: ...

    def stop(self) -> object: ...


@dataclass
class RunState:
    topo: Topology
    watchdog: Watchdog | None = None
    traffic: list[Background] = field(default_factory=list)
    pressure: list[Pressure] = field(default_factory=list)
    sinks: list[Sinks] = field(default_factory=list)
    # Teardown events, each with whether unread sinks held pages when it happened.
    events: list[tuple[TeardownEvent, bool]] = field(default_factory=list)
    pressure_windows: list[list[float]] = field(default_factory=list)  # [start, end]
    # While traffic is sent to the DUT: [start, end]. For a model that holds frames back
    # instead of dropping them, "frames keep arriving" means this.
    traffic_windows: list[list[float]] = field(default_factory=list)
    sinks_closed_at: float | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)  # {index, kind, start, end}

    def now(self) -> float:
        return self.watchdog.now() if self.watchdog else time.monotonic()

    @property
    def sinks_open(self) -> bool:
        return any(s.open for s in self.sinks)

    def start_pressure(self, p: Pressure) -> None:
        p.start()
        self.pressure.append(p)
        self.pressure_windows.append([self.now(), -1.0])

    def stop_pressure(self) -> int:
        stopped = len(self.pressure)
        while self.pressure:
            self.pressure.pop().stop()
        for w in self.pressure_windows:
            if w[1] < 0:
                w[1] = self.now()
        return stopped

    def start_traffic(self, flow: Background, to_dut: bool) -> None:
        flow.start()
        self.traffic.append(flow)
        if to_dut:
            self.traffic_windows.append([self.now(), -1.0])

    def stop_traffic(self) -> int:
        stopped = len(self.traffic)
        while self.traffic:
            self.traffic.pop().stop()
        for w in self.traffic_windows:
            if w[1] < 0:
                w[1] = self.now()
        return stopped

    def resume_dut_traffic(self) -> None:
        """Before a teardown: what the DUT was sending must be in flight through it, not
        stopped by the reconfiguration before (BQL, tx rings freed with skbs queued)."""
        dut = self.topo["dut"]
        for flow in self.traffic:
            resume = getattr(flow, "resume", None)
            if resume is not None and getattr(flow, "sender", None) is dut:
                resume()

    def close_sinks(self) -> int:
        was_open = self.sinks_open
        for s in self.sinks:
            s.stop()
        self.sinks.clear()
        if was_open:
            self.sinks_closed_at = self.now()
        return int(was_open)

    def record_event(self, what: str, command: str, must_destroy: bool = False,
                     timeout: float = 120) -> CommandResult:
        """Run a DUT command that tears page_pools down, noting the pools just before it.
        A command that fails is returned, not recorded: the step fails with it."""
        dut = self.topo["dut"]
        self.resume_dut_traffic()
        pools: dict = {}
        if self.watchdog is not None:
            # A sample taken after the previous event, so no pool born since is missed.
            last = self.events[-1][0].end if self.events else 0.0
            # Without one, the pools the previous event created are unknown: the event
            # says so, and the verdict cannot pass it.
            fresh = self.watchdog.wait_guest_samples(after=last, count=2)
            pools = self.watchdog.live_pools()
        else:
            fresh = True
        start = self.now()
        res = dut.run(command, timeout=timeout)
        if res.ok:
            event = TeardownEvent(what, start, self.now(), pools, must_destroy,
                                  pools_known=fresh)
            self.events.append((event, self.sinks_open))
        return res

    def teardown_events(self) -> list[TeardownEvent]:
        """Events with the sinks' close time where sinks held pages at the time."""
        return [dataclasses.replace(e, sinks_closed=self.sinks_closed_at) if held else e
                for e, held in self.events]

    def pressure_end(self) -> float | None:
        ends = [w[1] for w in self.pressure_windows if w[1] >= 0]
        return max(ends) if ends else None

    def step_done(self, index: int, kind: str, start: float) -> None:
        self.steps.append({"index": index, "kind": kind, "start": round(start, 3),
                           "end": round(self.now(), 3)})

    def timeline(self) -> dict[str, Any]:
        """What happened when, in watchdog seconds (report.json `timeline`): enough to draw
        the run again from its artifact directory alone."""
        dog = self.watchdog
        return {
            "interval": dog.interval if dog else None,
            "device_samples": bool(dog and dog.device_enabled),
            "dut_nic": dog.vm.config.nic if dog else None,
            "pressure": [[round(a, 3), round(b, 3)] for a, b in self.pressure_windows],
            "traffic": [[round(a, 3), round(b, 3)] for a, b in self.traffic_windows],
            "events": [{"what": e.what, "start": round(e.start, 3), "end": round(e.end, 3),
                        "pools": [{"id": i, "inflight": p.get("inflight", 0)}
                                  for i, p in sorted(e.pools.items())],
                        "must_destroy": e.must_destroy, "sinks_held": held}
                       for e, held in self.events],
            "sinks_closed_at": None if self.sinks_closed_at is None
            else round(self.sinks_closed_at, 3),
            "steps": self.steps,
        }

    def wind_down(self) -> None:
        """Stop everything that runs in the background; sinks last (they hold pages)."""
        self.stop_traffic()
        self.stop_pressure()
        self.close_sinks()
