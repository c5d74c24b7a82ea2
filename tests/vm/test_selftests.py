"""`bqlab selftests`: the kernel's own drivers/net selftests against the DUT's NIC, in one
command, reported like any scenario."""

from pathlib import Path

from .conftest import only_report, run_bqlab


def _results(report: dict) -> dict[str, dict]:
    return {s["summary"].split(":", 1)[0]: s for s in report["steps"]
            if s["kind"] == "selftest"}


def test_selftests_pass_on_bqnic_rss_ctx_included(built, bqlab_env: dict[str, str],
                                                  tmp_path: Path) -> None:
    res = run_bqlab(["selftests", "ping.py", "stats.py", "queues.py", "hw/rss_ctx.py"],
                    bqlab_env, timeout=1200)
    report = only_report(tmp_path / "artifacts")
    results = _results(report)
    assert sorted(results) == ["hw/rss_ctx.py", "ping.py", "queues.py", "stats.py"]
    for name, step in results.items():
        assert step["ok"], f"{name}: {step['summary']}\n{step['details']['stdout'][-3000:]}"
    # rss_ctx really ran on bqnic's RSS (key, indirection table, resizing), not skipped
    rss = results["hw/rss_ctx.py"]["details"]["results"]
    assert {"rss_ctx.test_rss_key_indir", "rss_ctx.test_rss_resize"} <= set(rss["pass"])
    assert res.returncode == 0 and (tmp_path / "artifacts").is_dir()


def test_selftests_run_on_virtio_net(built, bqlab_env: dict[str, str],
                                     tmp_path: Path) -> None:
    res = run_bqlab(["selftests", "--nic", "virtio-net-pci", "ping.py", "stats.py",
                     "queues.py"], bqlab_env, timeout=1200)
    results = _results(only_report(tmp_path / "artifacts"))
    assert all(s["ok"] for s in results.values()), [s["summary"] for s in results.values()]
    assert res.returncode == 0


def test_a_failing_selftest_fails_the_run_and_the_next_still_runs(
        built, bqlab_env: dict[str, str], tmp_path: Path) -> None:
    """Negative control, a real one: 6.12's rss_ctx reads an RSS key that virtio-net
    without RSS does not have (KeyError 'rss-hash-key' in test_hitless_key_update). The
    run fails and says which case; the test after it still runs."""
    res = run_bqlab(["selftests", "--nic", "virtio-net-pci", "hw/rss_ctx.py",
                     "hw/pp_alloc_fail.py"], bqlab_env, timeout=1200)
    report = only_report(tmp_path / "artifacts")
    results = _results(report)
    assert set(results) == {"hw/rss_ctx.py", "hw/pp_alloc_fail.py"}
    assert (res.returncode, report["verdict"]) == (1, "FAIL")
    rss = results["hw/rss_ctx.py"]
    assert not rss["ok"] and "rss_ctx.test_hitless_key_update" in rss["details"]["results"]["fail"]
    assert results["hw/pp_alloc_fail.py"]["ok"]
