"""Run one scenario end to end: boot, steps, console checks, report. Always stops the VMs."""

import shutil
import signal
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

from ..build import kernel_features
from ..build.artifacts import BuiltArtifacts
from ..errors import BqlabError, ExitCode, InfraError
from ..judge import decode
from ..judge.ledger import RETRY_PERIOD
from ..judge.run_verdicts import (
    dma_api_errors,
    judge_bql,
    judge_data_race,
    judge_dma,
    judge_mmio,
    judge_rx_stall,
    judge_teardown,
    kcsan_state,
)
from ..judge.watchdog import Watchdog
from ..progress import say
from ..scenario import Scenario
from ..vm import liveness, snapshot
from ..vm.machine import VmConfig
from ..vm.ssh import CommandTimeout
from ..vm.topology import Topology
from .report import RunReport
from .rundir import new_run_dir
from .runstate import RunState
from .steps import run_step

# Kernel reports after which the guest is gone or useless.
CRASH_KINDS = ("panic", "oops", "bug")


class ScenarioTimeout(InfraError):
    pass


class DutDied(BqlabError):
    """The DUT stopped answering: a finding about the kernel under test (exit 1)."""

    exit_code = ExitCode.VERDICT_FAILED

    def __init__(self, death: "liveness.Death"):
        super().__init__(death.how)
        self.death = death


@contextmanager
def deadline(seconds: float, what: str):
    """Raise ScenarioTimeout in the main thread when the scenario overruns."""

    def on_alarm(_signum, _frame):
        raise ScenarioTimeout(f"{what}: timed out after {seconds:.0f}s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def vm_configs(scenario: Scenario) -> list[VmConfig]:
    # The DUT listens on the link socket, so it is configured (and started) first.
    names = sorted(scenario.vms, key=lambda n: n != "dut")
    return [VmConfig(name=n, cpus=scenario.vms[n]["cpus"], memory_mb=scenario.vms[n]["memory"],
                     nic=scenario.vms[n]["nic"], queues=scenario.vms[n]["queues"],
                     driver_params=scenario.vms[n]["driver_params"],
                     silent=scenario.vms[n]["silent"], balloon=scenario.vms[n]["balloon"],
                     kcsan=scenario.vms[n]["kcsan"])
            for n in names]


def run_scenario(scenario: Scenario, built: BuiltArtifacts,
                 snapshot_on_fail: bool = False) -> RunReport:
    run_dir = new_run_dir(scenario.name)
    rep = RunReport(scenario.name, scenario.source, run_dir,
                    kernel_release=built.kernel_release, expect=dict(scenario.expect),
                    kernel_lost=kernel_features.lost_witnesses(
                        kernel_features.read(built.bzimage.parent)))
    for lost in rep.kernel_lost:
        say(f"kernel {built.kernel_release}: no {lost}")
    say(f"scenario {scenario.name}: artifacts in {run_dir}")
    start = time.monotonic()
    topo = Topology(vm_configs(scenario), built, run_dir)
    try:
        try:
            with deadline(scenario.timeout, f"scenario {scenario.name}"):
                topo.boot()
                rep.accelerator, rep.accelerator_reason = topo.accel, topo.accel_reason
                rep.boot_seconds = {k: round(v, 2) for k, v in topo.boot_seconds.items()}
                _run_steps(scenario, topo, rep, snapshot_on_fail)
        except InfraError as e:
            # Before the VMs stop: did the run break because the DUT's kernel hung?
            death = liveness.check_dut(topo.vms, e)
            if death is not None:
                raise DutDied(death) from e
            raise
        finally:
            # Outside the deadline: the stop itself must not be cut short by the alarm.
            topo.stop()
    except DutDied as e:
        rep.exit_code = e.exit_code
        rep.death = e.death
    except BqlabError as e:
        rep.exit_code = e.exit_code
        rep.error = str(e)
    except Exception as e:  # a harness bug or an unexpected library error: still report
        (run_dir / "harness-traceback.txt").write_text(traceback.format_exc())
        rep.exit_code = ExitCode.INFRA_FAILURE
        rep.error = f"harness error: {type(e).__name__}: {e} (see harness-traceback.txt)"
    except KeyboardInterrupt as e:
        rep.exit_code = ExitCode.INFRA_FAILURE
        rep.error = f"interrupted ({e or 'Ctrl-C'})"
        _finish(rep, topo, start)
        raise
    _finish(rep, topo, start)
    return rep


def _maybe_snapshot(state: RunState, rep: RunReport, before: str | None) -> None:
    """Once the pressure has ended, before anything reconfigures the DUT (or before the
    end): the moment a stall is there and nothing has repaired it (snapshot.py)."""
    if rep.snapshot is not None or rep.snapshot_error is not None:
        return  # once per run
    if before is not None and (state.pressure or before not in snapshot.RECONFIGURING
                               or state.pressure_end() is None):
        return  # under pressure still, not a reconfiguration, or no pressure yet
    why = f"before step {before}" if before else "at the end of the steps"
    try:
        state.topo.snapshot(rep.artifacts / "snapshot", why)
        rep.snapshot = str(rep.artifacts / "snapshot")
    except InfraError as e:  # the run goes on; the report says why there is none
        rep.snapshot_error = str(e)
        say(f"  snapshot failed: {e}")


def _run_steps(scenario: Scenario, topo: Topology, rep: RunReport,
               snapshot_on_fail: bool = False) -> None:
    state = RunState(topo)
    if scenario.watched:
        dut = topo["dut"]
        state.watchdog = Watchdog(dut, scenario.watch_interval)
        state.watchdog.start()
        say(f"  watchdog: DUT counters every {scenario.watch_interval}s "
            f"(guest{' and device' if state.watchdog.device_enabled else ''})")
    try:
        dma_before = dma_api_errors(state) if scenario.watched else None
        kcsan_before = kcsan_state(state) if _dut_kcsan(topo) else None
        for i, step in enumerate(scenario.steps):
            if snapshot_on_fail:
                _maybe_snapshot(state, rep, step["kind"])
            started = state.now()
            result = run_step(state, i, step)
            state.step_done(i, step["kind"], started)
            rep.steps.append(result.as_dict())
            if "not_applicable" in result.details:
                rep.not_applicable.append({"name": f"step {i} {step['kind']}",
                                           "why": result.details["not_applicable"]})
            mark = "ok  " if result.ok else "FAIL"
            say(f"  [{mark}] step {i} {step['kind']}: {result.summary}")
            if not result.ok:
                if result.details.get("timed_out"):
                    # A command that never came back: is the DUT still there?
                    timeout = CommandTimeout(result.summary, host=result.details["timed_out"])
                    death = liveness.check_dut(state.topo.vms, timeout)
                    if death is not None:
                        raise DutDied(death)
                if step["kind"] != "selftest":  # selftests stand alone: run the rest
                    break  # later steps assume this one worked
        if snapshot_on_fail:
            _maybe_snapshot(state, rep, None)
        state.wind_down()
        if scenario.watched:
            _judge(scenario, state, rep, dma_before)
        if kcsan_before is not None:
            rep.verdicts.append(judge_data_race(state, kcsan_before))
            say(f"  verdict data-race: {rep.verdicts[-1]['verdict']}: "
                f"{rep.verdicts[-1]['reason']}")
    finally:
        if state.watchdog is not None:
            state.watchdog.stop()
            state.watchdog.save(rep.artifacts / "watch.jsonl")
            rep.timeline = state.timeline()


def _dut_kcsan(topo: Topology) -> bool:
    """The DUT runs its NIC driver's KCSAN twin."""
    return any(c.name == "dut" and c.kcsan for c in topo.configs)


def _judge(scenario: Scenario, state: RunState, rep: RunReport,
           dma_before: int | None) -> None:
    dog = state.watchdog
    assert dog is not None
    teardown = scenario.verdicts["teardown"]
    if teardown is not None and state.events:
        # Sample past the last pool's deadline before judging (and past one more retry
        # of its release work, which the ledger sees it drain at).
        due = max(e.settled for e in state.teardown_events()) + teardown["grace"] + \
            RETRY_PERIOD
        dog.wait_guest_samples(after=due, count=1, timeout=due - dog.now() + 15)
    if scenario.verdicts["rx_stall"] is not None:
        rep.verdicts.append(judge_rx_stall(state, scenario.verdicts["rx_stall"]["threshold"]))
    if teardown is not None and not dog.model.page_pool:
        why = (f"{dog.model.driver} ({dog.model.name}) takes no rx buffers from page_pool "
               "in this kernel: there is no pool to tear down")
        rep.not_applicable.append({"name": "teardown", "why": why})
        say(f"  verdict teardown: not applicable: {why}")
    elif teardown is not None:
        rep.verdicts.append(judge_teardown(state, teardown["grace"]))
    rep.verdicts.append(judge_dma(state, dma_before))
    rep.verdicts.append(judge_bql(state))
    mmio, why_not = judge_mmio(state)
    if mmio is not None:
        rep.verdicts.append(mmio)
    else:
        rep.not_applicable.append({"name": "mmio", "why": why_not})
    for v in rep.verdicts:
        say(f"  verdict {v['name']}: {v['verdict']}: {v['reason']}")


def _drop_judged_pool_stalls(rep: RunReport) -> None:
    """The DUT's "stalled pool shutdown" warnings are the teardown verdict's to judge when
    it ran: it knows whether unread sockets legitimately held the pages (the kernel only
    knows they were in flight for 60 s). Judged patient, they are no finding."""
    judged = [v for v in rep.verdicts if v["name"] == "teardown" and "witnesses" in v]
    if not judged or judged[0]["witnesses"]["console"] != "patient":
        return
    kept = [f for f in rep.findings.get("dut", []) if f["kind"] != "pool-stall"]
    if kept:
        rep.findings["dut"] = kept
    else:
        rep.findings.pop("dut", None)


def _decode_first_report(rep: RunReport, kernel_art: Path, kcsan: bool) -> None:
    """The DUT's first kernel report, through the tree's decode_stacktrace.sh: the first
    report is the cause, the later ones mostly its consequences."""
    findings = rep.findings.get("dut") or []
    if not findings:
        return
    got = decode.decode(findings[0]["excerpt"], kernel_art,
                        decode.KCSAN_MODULES if kcsan else decode.MODULES)
    if got is None:
        return
    findings[0]["where"] = got.where
    findings[0]["decoded"] = got.text
    (rep.artifacts / "dut-first-report-decoded.txt").write_text(got.text)


def _finish(rep: RunReport, topo: Topology, start: float) -> None:
    rep.duration = time.monotonic() - start
    rep.accelerator = rep.accelerator or topo.accel
    rep.accelerator_reason = rep.accelerator_reason or topo.accel_reason
    rep.findings = {vm: [f.as_dict() for f in fs] for vm, fs in topo.findings().items() if fs}
    _drop_judged_pool_stalls(rep)
    _decode_first_report(rep, topo.built.bzimage.parent, _dut_kcsan(topo))
    if rep.death is not None:
        rep.verdicts.append(rep.death.as_verdict(rep.findings.get(rep.death.vm, [])))
    crashed = any(f["kind"] in CRASH_KINDS for fs in rep.findings.values() for f in fs)
    if rep.exit_code == ExitCode.PASS and (
            rep.findings or any(not s["ok"] for s in rep.steps)
            or any(v["verdict"] != "PASS" for v in rep.verdicts)):
        rep.exit_code = ExitCode.VERDICT_FAILED
    elif rep.exit_code == ExitCode.INFRA_FAILURE and crashed and \
            not (rep.error or "").startswith("interrupted"):
        # The run broke because a guest kernel crashed: that is a finding about the kernel
        # under test, not about the lab.
        rep.exit_code = ExitCode.VERDICT_FAILED
        dut_crash = [f for f in rep.findings.get("dut", []) if f["kind"] in CRASH_KINDS]
        if dut_crash and rep.death is None:
            rep.verdicts.append(liveness.Death(
                "dut", f"the DUT's kernel crashed mid-run ({dut_crash[0]['kind']})"
            ).as_verdict(rep.findings["dut"]))
    if rep.snapshot and rep.exit_code == ExitCode.PASS:
        shutil.rmtree(rep.snapshot, ignore_errors=True)  # kept for failed runs only
        rep.snapshot = None
    elif rep.snapshot:
        say(f"  snapshot kept: bqlab up --from {rep.artifacts}")
    for vm, fs in rep.findings.items():
        for f in fs:
            at = f" at {f['where']}" if f.get("where") else ""
            say(f"  kernel report on {vm} ({f['kind']}, console line {f['line']}){at}:\n"
                + "\n".join("    " + ln for ln in f["excerpt"].splitlines()[:15]))
    if rep.error:
        say(f"scenario {rep.scenario}: {rep.error}")
    rep.write()
    say(f"scenario {rep.scenario}: {rep.verdict} in {rep.duration:.0f}s; "
        f"report: {rep.artifacts / 'report.json'}")
