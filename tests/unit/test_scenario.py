"""Scenario files are checked before anything boots; errors name file:line and the fix."""

import subprocess
import sys
from pathlib import Path

import pytest
from bqlab import scenario
from bqlab.errors import BadInput, ExitCode
from bqlab.scenario.schema import ValidationError

GOOD = """\
name: t
vms:
  dut: {nic: e1000e, cpus: 2}
  peer: {}
steps:
  - ping: {from: dut, to: peer}
  - iperf3: {client: peer, server: dut, seconds: 2}
"""


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "s.yaml"
    p.write_text(text)
    return str(p)


def errors_of(path: str, overrides: tuple[str, ...] = ()) -> list[str]:
    with pytest.raises(ValidationError) as exc:
        scenario.load(path, overrides)
    assert exc.value.exit_code == ExitCode.BAD_INPUT
    return [str(i) for i in exc.value.issues]


def test_good_file_and_defaults(tmp_path: Path) -> None:
    sc = scenario.load(write(tmp_path, GOOD))
    assert sc.vms["dut"] == {"nic": "e1000e", "cpus": 2, "memory": 512, "queues": 2,
                             "driver_params": {}, "silent": False, "balloon": False,
                             "kcsan": False}
    assert not sc.watched  # no verdict asks for the watchdog
    assert sc.vms["peer"]["nic"] == "virtio-net-pci"
    assert sc.steps[0] == {"kind": "ping", "line": 6, "where": f"{sc.source}:6",
                           "from": "dut", "to": "peer", "count": 3, "ipv6": False}
    assert sc.steps[1]["seconds"] == 2


def test_every_builtin_scenario_is_valid() -> None:
    assert "smoke" in scenario.builtin_names()
    for name in scenario.builtin_names():
        assert scenario.load(name).name == name


def test_unknown_key_names_line_and_choices(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("{from: dut, to: peer}", "{from: dut, to: peer, cout: 3}"))
    [err] = errors_of(path)
    assert err.startswith(f"{path}:6: ")
    assert "unknown key 'cout'" in err and "count" in err


def test_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("cpus: 2", "cpus: two"))
    [err] = errors_of(path)
    assert f"{path}:3: vms.dut.cpus: expected an integer, got 'two'" == err


def test_missing_field(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("client: peer, ", ""))
    [err] = errors_of(path)
    assert err.startswith(f"{path}:7: steps[1].iperf3: missing required key 'client'")


def test_bad_choice_range_and_unknown_step(tmp_path: Path) -> None:
    text = GOOD.replace("nic: e1000e", "nic: rtl8139").replace("seconds: 2", "seconds: 0")
    text += "  - pktgun: {}\n"
    path = write(tmp_path, text)
    errs = errors_of(path)
    assert any(e.startswith(f"{path}:3: vms.dut.nic: expected one of bqnic, virtio-net-pci, e1000e")
               for e in errs)
    assert any(e.startswith(f"{path}:7: steps[1].iperf3.seconds: must be >= 1") for e in errs)
    assert any(e.startswith(f"{path}:8: steps[2]: unknown step 'pktgun'") for e in errs)


def test_step_names_undeclared_vm(tmp_path: Path) -> None:
    text = GOOD.replace("  peer: {}\n", "").replace("iperf3: {client: peer", "iperf3: {client: dut")
    path = write(tmp_path, text)
    [err] = errors_of(path)
    assert err == f"{path}:5: steps[0].ping: to: 'peer' is not declared under vms"


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: t\nvms: {dut: {}\nsteps: []\n")
    [err] = errors_of(path)
    assert err.startswith(f"{path}:3: not valid YAML")


def test_empty_file(tmp_path: Path) -> None:
    assert errors_of(write(tmp_path, "")) == [f"{tmp_path / 's.yaml'}:1: file is empty"]


def test_driver_params(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("nic: e1000e", "nic: bqnic, driver_params: "
                                        "{refill_fallback: 0, teardown_leak: true}"))
    assert scenario.load(path).vms["dut"]["driver_params"] == {"refill_fallback": 0,
                                                               "teardown_leak": True}
    [err] = errors_of(write(tmp_path, GOOD.replace("nic: e1000e", "driver_params: [1]")))
    assert "vms.dut.driver_params: expected a mapping" in err


def test_set_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    sc = scenario.load(path, ("vms.dut.nic=virtio-net-pci", "vms.peer.memory=1024",
                              "steps[1].iperf3.seconds=9", "timeout=60"))
    assert sc.vms["dut"]["nic"] == "virtio-net-pci"
    assert sc.vms["peer"]["memory"] == 1024
    assert sc.steps[1]["seconds"] == 9
    assert sc.timeout == 60


def test_set_errors_name_the_option(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    [err] = errors_of(path, ("vms.dut.nic=rtl8139",))
    assert err.startswith("--set vms.dut.nic=rtl8139: vms.dut.nic: expected one of")
    [err] = errors_of(path, ("vms.dut.bogus=1",))
    assert "--set vms.dut.bogus=1" in err and "unknown key 'bogus'" in err
    [err] = errors_of(path, ("no-equals-sign",))
    assert "expected KEY=VALUE" in err


def test_unknown_scenario_name() -> None:
    with pytest.raises(BadInput, match="unknown scenario 'nope'.*smoke"):
        scenario.load("nope")


STALL = """\
name: s
vms:
  dut: {nic: bqnic, cpus: 1}
  peer: {}
verdicts:
  rx_stall: {}
steps:
  - traffic: {from: peer, to: dut, threads: 2}
  - pressure: {method: balloon, seconds: 2}
  - xdp_cycles: {actions: [tx, redirect_cpu], dwell: [2, 1]}
"""


def test_stall_scenario_defaults(tmp_path: Path) -> None:
    text = STALL.replace("threads: 2", "threads: 1").replace("balloon", "fail_function")
    text = text.replace("[tx, redirect_cpu], dwell: [2, 1]", "[tx]")
    sc = scenario.load(write(tmp_path, text))
    assert sc.watched and sc.verdicts == {"rx_stall": {"threshold": 2.0}, "teardown": None}
    traffic, pressure, cycles = sc.steps
    assert (traffic["method"], traffic["size"], traffic["ports"]) == ("pktgen", 64, "9000-9007")
    assert pressure["function"] == "bqnic_alloc_rx_page" and pressure["seconds"] == 2.0
    assert (cycles["cycles"], cycles["dwell"]) == (50, [0.1, 0.5])


def test_cross_checks_name_the_line_and_the_fix(tmp_path: Path) -> None:
    path = write(tmp_path, STALL)
    errs = errors_of(path)
    assert f"{path}:8: steps[0].traffic: threads: 2 pktgen threads need as many cpus on " \
        "peer (it has 1)" in errs
    assert f"{path}:9: steps[1].pressure: method balloon needs `balloon: true` on vms.dut" \
        in errs
    assert any(e.startswith(f"{path}:10: ") and "min <= max" in e for e in errs)
    assert any(e.startswith(f"{path}:10: ") and "at least 2 cpus" in e for e in errs)


def test_each_nic_model_gets_its_own_rx_fault_injection(tmp_path: Path) -> None:
    """rx_alloc and a bare fail_function resolve to what fails the DUT NIC's rx refills."""
    text = STALL.replace("threads: 2", "threads: 1").replace("balloon", "rx_alloc")
    text = text.replace("[tx, redirect_cpu], dwell: [2, 1]", "[tx]")
    bqnic = scenario.load(write(tmp_path, text)).steps[1]
    assert (bqnic["method"], bqnic["function"]) == ("fail_function", "bqnic_alloc_rx_page")
    vmxnet3 = scenario.load(write(tmp_path, text.replace("nic: bqnic", "nic: vmxnet3")))
    assert vmxnet3.steps[1]["method"] == "fail_page_alloc" and vmxnet3.steps[1]["rx_alloc"]
    text = text.replace("rx_alloc", "fail_function")
    named = scenario.load(write(tmp_path, text.replace(
        "method: fail_function", "method: fail_function, function: e1000_alloc_rx_buffers")
        .replace("nic: bqnic", "nic: igb")))
    assert named.steps[1]["function"] == "e1000_alloc_rx_buffers"
    errs = errors_of(write(tmp_path, text.replace("nic: bqnic", "nic: igb")))
    assert any(":9: steps[1].pressure: fail_function: nothing known fails igb's rx "
               "refills" in e for e in errs), errs


def test_model_limits_are_bad_input(tmp_path: Path) -> None:
    """Module parameters and reloads need a driver built as a module; XDP needs XDP."""
    text = STALL.replace("threads: 2", "threads: 1").replace(
        "nic: bqnic, cpus: 1", "nic: virtio-net-pci, cpus: 2, driver_params: {x: 1}")
    text += "  - reload: {}\n"
    errs = errors_of(write(tmp_path, text))
    assert any("vms.dut.driver_params: virtio_net is built in" in e for e in errs), errs
    assert any(":11: steps[3].reload: reloads the NIC's driver module, but virtio_net" in e
               for e in errs), errs
    errs = errors_of(write(tmp_path, text.replace("virtio-net-pci", "e1000e")))
    assert any(":10: steps[2].xdp_cycles: e1000e (e1000e) has no XDP" in e for e in errs)
    assert not any("reload" in e or "driver_params" in e for e in errs), errs
    # only bqnic's driver has a KCSAN twin
    errs = errors_of(write(tmp_path, text.replace("driver_params: {x: 1}", "kcsan: true")))
    assert any("vms.dut.kcsan: bqlab builds a KCSAN twin of bqnic's driver only, not of "
               "virtio_net" in e for e in errs), errs


def test_bad_port_range_and_pressure_method(tmp_path: Path) -> None:
    text = STALL.replace("threads: 2", "ports: 9010-9000").replace("balloon", "oom")
    errs = errors_of(write(tmp_path, text))
    assert any(":8: steps[0].traffic.ports: expected a UDP port or range" in e for e in errs)
    assert any(":9: steps[1].pressure.method: expected one of rx_alloc, fail_function" in e
               for e in errs), errs


def test_set_creates_missing_mappings(tmp_path: Path) -> None:
    sc = scenario.load(write(tmp_path, GOOD), ("vms.dut.nic=bqnic",
                                               "vms.dut.driver_params.refill_fallback=0",
                                               "vms.peer.cpus=2"))
    assert sc.vms["dut"]["driver_params"] == {"refill_fallback": 0}
    assert sc.vms["peer"]["cpus"] == 2
    [err] = errors_of(write(tmp_path, GOOD), ("vms.dut.driver_params=3",))
    assert err.startswith("--set vms.dut.driver_params=3: ") and "mapping" in err


def test_extends_merges_mappings_and_replaces_lists(tmp_path: Path) -> None:
    child = tmp_path / "child.yaml"
    child.write_text("name: c\nextends: rx-stall\nvms:\n  dut: {driver_params: {x: 1}}\n"
                     "expect: {rx-stall: STALL}\n")
    base = scenario.load("rx-stall")
    sc = scenario.load(str(child))
    assert sc.name == "c" and sc.extends == "rx-stall"
    assert sc.vms["dut"]["driver_params"] == {"x": 1}
    assert sc.vms["dut"]["silent"] is True  # inherited
    assert [s["kind"] for s in sc.steps] == [s["kind"] for s in base.steps]
    assert sc.expect == {"rx-stall": "STALL"}


def test_extends_does_not_inherit_name_description_or_expect(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(GOOD.replace("name: t", "name: b\nexpect: {dma: FAIL}"))
    child = tmp_path / "child.yaml"
    child.write_text("extends: base.yaml\nsteps:\n  - sleep: {seconds: 1}\n")
    errors = errors_of(str(child))
    assert any("name" in e and "required" in e for e in errors), errors
    child.write_text("name: c\nextends: base.yaml\n")
    assert scenario.load(str(child)).expect == {}


def test_an_error_in_an_inherited_line_names_the_base_file(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(GOOD.replace("seconds: 2", "seconds: two"))
    child = tmp_path / "child.yaml"
    child.write_text("name: c\nextends: base.yaml\n")
    errors = errors_of(str(child))
    assert any(e.startswith(f"{tmp_path / 'base.yaml'}:7") for e in errors), errors


def test_extends_errors_name_the_line(tmp_path: Path) -> None:
    child = tmp_path / "child.yaml"
    child.write_text("name: c\nextends: no-such-scenario\n")
    [error] = errors_of(str(child))
    assert error.startswith(f"{child}:2") and "unknown scenario" in error
    child.write_text("name: c\nextends: child.yaml\n")
    [error] = errors_of(str(child))
    assert "extends itself" in error


def test_expect_names_known_verdicts_only(tmp_path: Path) -> None:
    errors = errors_of(write(tmp_path, GOOD + "expect: {rx-stal: STALL}\n"))
    assert any("rx-stal" in e for e in errors), errors
    errors = errors_of(write(tmp_path, GOOD + "expect: {rx-stall: STAL}\n"))
    assert any("STAL" in e for e in errors), errors


def test_parsing_a_scenario_imports_no_vm_machinery() -> None:
    """`bqlab run --dry-run`, editors and CI lint load scenarios: no SSH or QMP for that."""
    code = ("import sys, bqlab.scenario; "
            "print(' '.join(m for m in sys.modules if m.split('.')[0] in "
            "('paramiko', 'qemu') or m in ('bqlab.vm.machine', 'bqlab.vm.ssh', 'bqlab.vm.qmp')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == ""


def test_failslab_names_its_caches_and_only_it_does(tmp_path: Path) -> None:
    text = STALL.replace("threads: 2", "threads: 1").replace(
        "method: balloon", "method: failslab, caches: [radix_tree_node]")
    text = text.replace("[tx, redirect_cpu], dwell: [2, 1]", "[tx]")
    assert scenario.load(write(tmp_path, text)).steps[1]["caches"] == ["radix_tree_node"]
    path = write(tmp_path, text.replace(", caches: [radix_tree_node]", ""))
    assert any(e.startswith(f"{path}:9: steps[1].pressure: method failslab needs `caches`")
               for e in errors_of(path))
    path = write(tmp_path, text.replace("method: failslab", "method: fail_function"))
    assert any("only failslab takes them" in e for e in errors_of(path))
    path = write(tmp_path, text.replace("[radix_tree_node]", "['a; reboot']"))
    assert any("expected a slab cache name" in e for e in errors_of(path))
