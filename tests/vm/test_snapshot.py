"""--snapshot-on-fail keeps the stalled pair of a failed run, and `bqlab up --from` brings
it back still stalled: the starved buffer queue at 0, the device turning frames away (the
peer's pktgen resumes with it)."""

import re
import time
from pathlib import Path

from bqlab.vm import snapshot
from bqlab.vm.machine import VmConfig
from bqlab.vm.qmp import Qmp
from bqlab.vm.topology import Topology

from .conftest import interrupt, only_report, run_bqlab, start_bqlab, wait_no_qemu
from .test_cleanup import _wait_for_line


def test_up_from_brings_back_a_stalled_dut(built, bqlab_env: dict[str, str],
                                           tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    res = run_bqlab(["run", "rx-stall-buggy", "--snapshot-on-fail"], bqlab_env)
    report = only_report(artifacts)
    assert (res.returncode, report["verdict"]) == (1, "FAIL"), report["diagnosis"]
    assert report["snapshot"], report.get("snapshot_error")
    stall = next(v for v in report["verdicts"] if v["name"] == "rx-stall")
    queue = int(re.search(r"queue (\d+): sbq starved", stall["reason"]).group(1))

    proc = start_bqlab(["up", "--from", report["artifacts"]], bqlab_env)
    try:
        out = _wait_for_line(proc, "Ctrl-C stops both VMs.", 240)
        dut_qmp = Path(re.search(r"qmp: (\S+dut-user\.qmp)", out).group(1))
        qmp = Qmp("dut", dut_qmp, tmp_path / "qmp-events.jsonl")
        qmp.connect()
        try:
            def stats() -> dict:
                return qmp.cmd("qom-get", path="/machine/peripheral/testnic",
                               property="stats")["queues"][queue]
            first = stats()
            time.sleep(3)
            later = stats()
        finally:
            qmp.close()
        interrupt(proc)
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert first["sbq_owned"] == later["sbq_owned"] == 0, (first, later)
    assert later["rx_drop_no_sbq"] > first["rx_drop_no_sbq"], (first, later)
    assert later["completions"] == first["completions"]  # nothing received: still stalled
    assert wait_no_qemu(artifacts) == []


def test_a_pair_saved_mid_traffic_carries_on(built, tmp_path: Path) -> None:
    """Saved while the peer pings the DUT's bqnic 50 times a second, resumed in two new
    QEMUs: the same ping goes on to the end, nothing duplicated, nothing lost beyond the
    frames that were on the link at that moment."""
    configs = [VmConfig("dut", cpus=1, memory_mb=512, nic="bqnic"),
               VmConfig("peer", cpus=1, memory_mb=512)]
    first = tmp_path / "first"
    first.mkdir()
    with Topology(configs, built, first) as topo:
        topo["peer"].run("setsid sh -c 'ping -n -i 0.02 -c 400 10.99.0.1 > /root/ping.txt "
                         "2>&1' >/dev/null 2>&1 &")
        time.sleep(3)
        topo.snapshot(first / "snapshot", "mid-traffic")
    data = snapshot.load(first)
    second = tmp_path / "second"
    second.mkdir()
    with Topology(snapshot.configs(data), built, second,
                  restore=snapshot.restore_into(second, data),
                  restore_accel=data["accel"]) as topo:
        deadline = time.monotonic() + 120
        while "packets transmitted" not in (out := topo["peer"].run("cat /root/ping.txt").stdout):
            assert time.monotonic() < deadline, out[-500:]
            time.sleep(1)
    sent, received = map(int, re.search(r"(\d+) packets transmitted, (\d+) received",
                                        out).groups())
    assert sent == 400 and "DUP" not in out, out[-800:]
    assert received >= sent - 3, out[-800:]
