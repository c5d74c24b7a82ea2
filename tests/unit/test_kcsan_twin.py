"""A DUT asking for the driver's KCSAN twin gets it, or a clear no before anything boots."""

from pathlib import Path
from types import SimpleNamespace

import pytest
from bqlab.build.kernel import KCSAN_DIR, has_kcsan
from bqlab.errors import BadInput, ExitCode
from bqlab.vm.machine import VmConfig
from bqlab.vm.topology import Topology


def test_a_kernel_without_the_twin_is_bad_input_before_boot(tmp_path: Path) -> None:
    kernel = tmp_path / "kernel"
    (kernel / KCSAN_DIR).mkdir(parents=True)  # built with KCSAN off: the dir, no twin
    built = SimpleNamespace(bzimage=kernel / "bzImage")
    topo = Topology([VmConfig("dut", nic="bqnic", kcsan=True), VmConfig("peer")],
                    built, tmp_path / "run")  # type: ignore[arg-type]
    try:
        with pytest.raises(BadInput) as exc:
            topo.boot()
    finally:
        topo.stop()
    assert exc.value.exit_code == ExitCode.BAD_INPUT
    assert "vms.dut.kcsan: this kernel has no KCSAN twin of bqnic" in str(exc.value)
    assert topo.vms == {}  # nothing started


def test_has_kcsan_reads_the_final_config(tmp_path: Path) -> None:
    (tmp_path / ".config").write_text("CONFIG_KASAN=y\n# CONFIG_KCSAN is not set\n")
    assert not has_kcsan(tmp_path)
    (tmp_path / ".config").write_text("CONFIG_KCSAN=y\nCONFIG_KCSAN_SELFTEST=y\n")
    assert has_kcsan(tmp_path)
