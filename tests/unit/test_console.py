"""The console watcher on real-format kernel log excerpts: finds trouble, ignores noise."""

from pathlib import Path

from bqlab.vm.console import classify, scan, scan_file

DATA = Path(__file__).parent / "data"


def test_warn_and_pool_stall_found_boot_noise_ignored() -> None:
    findings = scan_file(DATA / "warn-page-pool.log")
    assert [f.kind for f in findings] == ["warning", "pool-stall"]
    warn = findings[0]
    assert warn.line_no == 6
    assert "page_pool.c:1066" in warn.line
    assert "bqnic_free_rx_ring" in warn.excerpt
    assert warn.excerpt.rstrip().endswith("---[ end trace 0000000000000000 ]---")
    assert "ADDRCONF" not in warn.excerpt
    assert "98 inflight" in findings[1].line


def test_oops_is_one_report_then_the_panic() -> None:
    findings = scan_file(DATA / "oops-null.log")
    assert [f.kind for f in findings] == ["oops", "panic"]
    assert "Oops: 0000 [#1]" in findings[0].excerpt
    assert "napi_pp_put_page" in findings[0].excerpt


def test_each_report_kind() -> None:
    kinds = [f.kind for f in scan_file(DATA / "misc-reports.log")]
    assert kinds == ["hung-task", "dma-api", "kmemleak", "soft-lockup", "rcu-stall"]


def test_clean_boot_has_no_findings() -> None:
    text = "\n".join([
        "[    0.000000] Linux version 6.12.117 #1 SMP",
        "[    0.412345] DMA-API: preallocated 65536 debug entries",
        "[    0.413000] DMA-API: debugging enabled by kernel config",
        "[    0.913000] kmemleak: Kernel memory leak detector initialized",
        "[    1.000000] e1000e: Intel(R) PRO/1000 Network Driver",
        "bqlab-init: starting sshd",
    ])
    assert scan(text) == []


def test_prefixes_without_timestamps_or_with_log_levels() -> None:
    assert classify("<4>[   1.0] WARNING: CPU: 0 PID: 1 at mm/page_alloc.c:4470 x+0x1/0x2") \
        == "warning"
    assert classify("Kernel panic - not syncing: VFS: Unable to mount root fs") == "panic"
    assert classify("[    3.1] [  T123] BUG: sleeping function called from invalid context") \
        == "bug"
    assert classify("some user said BUG: in a log line") is None


def test_a_kcsan_report_is_one_data_race_finding_up_to_its_closing_rule() -> None:
    findings = scan_file(DATA / "kcsan-race.log")
    assert [f.kind for f in findings] == ["data-race"]
    race = findings[0]
    assert race.line == "BUG: KCSAN: data-race in bqnic_poll [bqnic] / bqnic_poll [bqnic]"
    assert "value changed" in race.excerpt
    assert race.excerpt.splitlines()[-1].endswith("=" * 66)
    assert "refill deferred" not in race.excerpt
