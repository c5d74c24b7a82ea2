"""reconfigure-under-failure against the driver with one of its error-path fixes reverted
(tests/vm/patches/revert-*.patch, passed with --kernel-patch): each must fail, with the
diagnosis of what that fix prevents. The default driver passes it (test_scenarios.py)."""

from pathlib import Path

import pytest

from .conftest import only_report, run_bqlab

PATCHES = Path(__file__).parent / "patches"

REVERTED = [
    # the interface left up with its queues freed: the next close dereferences them
    ("revert-reconfigure-allocates-first.patch", "dut-alive", "FAIL"),
    # NAPI runs the program the core already freed
    ("revert-xdp-prog-dropped-on-error.patch", "dut-alive", "FAIL"),
    # an open under allocation failure waits for a frame that cannot come
    ("revert-open-refill-fallback.patch", "rx-stall", "STALL"),
    # skbs freed with their ring stay counted in flight
    ("revert-bql-reset.patch", "bql", "FAIL"),
    # a failed IRQ request frees rings the device was already given: the running queues
    # have lost theirs
    ("revert-queues-programmed-after-irqs.patch", "rx-stall", "STALL"),
    # the queues a DMA error stopped are programmed again without a device reset: they
    # stay stopped after the next up
    ("revert-dma-error-reset.patch", "rx-stall", "STALL"),
    # a register read (TX_CONS) in every NAPI poll instead of the DONE flag in memory
    ("revert-tx-done-flag.patch", "mmio", "FAIL"),
    # one rx_dropped for all queues, incremented by NAPI polls on two CPUs at once: lost
    # counts no counter shows; the DUT's KCSAN twin of the driver sees the race
    ("revert-per-queue-rx-dropped.patch", "data-race", "FAIL"),
    # per-queue counters as plain u64 (u64_stats_sync is empty on 64-bit): ethtool -S and
    # ndo_get_stats64 load them unmarked while NAPI stores them
    ("revert-u64-stats-t.patch", "data-race", "FAIL"),
]


def test_xarray_nomem_fails_without_the_page_pool_fix(built, bqlab_env: dict[str, str],
                                                      tmp_path: Path) -> None:
    """xarray-nomem's negative control: Debian's 6.12 page_pool as it is (without
    guest-kernel/patches/0002) sleeps with BHs off in __xas_nomem(), which the console
    (CONFIG_DEBUG_ATOMIC_SLEEP) reports: the run fails on that report."""
    res = run_bqlab(["run", "xarray-nomem", "--kernel-patch",
                     str(PATCHES / "revert-page-pool-bh-lock.patch")], bqlab_env,
                    timeout=1800)
    report = only_report(tmp_path / "artifacts")
    found = [f["text"] for f in report["console_findings"].get("dut", [])]
    assert res.returncode == 1 and any(
        "sleeping function called from invalid context" in f for f in found), \
        f"{report['diagnosis']}\n{found}"
    assert "__xas_nomem" in report["console_findings"]["dut"][0]["excerpt"]


def test_xarray_nomem_stalls_without_clearing_causes_at_open(
        built, bqlab_env: dict[str, str], tmp_path: Path) -> None:
    """The driver unmasked its queues at open with a cause still set from before IRQ_AUTO
    was on; the device sends a cause once until it is cleared (qemu-device/SPEC.md 6), so
    that queue never interrupted again. xarray-nomem's ring change and ifdown/ifup under
    traffic show it (reconfigure-under-failure did not, in the one run tried)."""
    res = run_bqlab(["run", "xarray-nomem", "--kernel-patch",
                     str(PATCHES / "revert-clear-causes-at-open.patch")], bqlab_env,
                    timeout=1800)
    report = only_report(tmp_path / "artifacts")
    got = {v["name"]: v["verdict"] for v in report["verdicts"]}
    assert (res.returncode, got.get("rx-stall")) == (1, "STALL"), \
        f"{report['diagnosis']}\n{got}"


@pytest.mark.parametrize("patch,verdict,outcome", REVERTED,
                         ids=[p.removeprefix("revert-").removesuffix(".patch")
                              for p, _, _ in REVERTED])
def test_reconfigure_under_failure_fails_without_the_fix(patch: str, verdict: str,
                                                         outcome: str, built,
                                                         bqlab_env: dict[str, str],
                                                         tmp_path: Path) -> None:
    res = run_bqlab(["run", "reconfigure-under-failure", "--kernel-patch",
                     str(PATCHES / patch)], bqlab_env, timeout=1800)
    report = only_report(tmp_path / "artifacts")
    got = {v["name"]: v["verdict"] for v in report["verdicts"]}
    assert (res.returncode, got.get(verdict)) == (1, outcome), \
        f"{report['diagnosis']}\n{got}"
