"""`bqlab selftests`: the kernel's own drivers/net selftests against the DUT's NIC, in one
command, reported like any scenario."""

from pathlib import Path

from .conftest import only_report, run_bqlab


def _results(report: dict) -> dict[str, dict]:
    return {s["summary"].split(":", 1)[0]: s for s in report["steps"]
            if s["kind"] == "selftest"}


# Two checks of hw/rss_ctx.py assume real hardware, not one TCG guest on a 2-core host:
# - test_rss_key_indir: iperf3's 16 flows (random ports) under a random RSS key must give
#   the third of 4 queues 3500 of 20000 frames; on any correct RSS about one run in 16
#   leaves it one flow or none ("traffic distributed: [12306, 6109, 1644, 9581]");
# - test_hitless_key_update: `ethtool -X` must take under 0.2 s (0.206 s seen).
# Seen in 3 of 7 runs on 2026-11-23 (issue note). A run where only these failed is judged
# again, up to 3 runs in all; any other failure, or these three times, fails.
UPSTREAM_FLAKY = {"rss_ctx.test_rss_key_indir": "traffic distributed: ",
                  "rss_ctx.test_hitless_key_update": "Check failed"}


def _only_upstream_flakes(results: dict[str, dict]) -> bool:
    failed = [name for name, step in results.items() if not step["ok"]]
    rss = results.get("hw/rss_ctx.py", {}).get("details", {})
    cases = rss.get("results", {}).get("fail", [])
    return failed == ["hw/rss_ctx.py"] and bool(cases) and \
        all(UPSTREAM_FLAKY.get(c, "\0") in rss.get("stdout", "") for c in cases)


def test_selftests_pass_on_bqnic_rss_ctx_included(built, bqlab_env: dict[str, str],
                                                  tmp_path: Path) -> None:
    for attempt in range(3):
        artifacts = tmp_path / f"run{attempt}"
        res = run_bqlab(["selftests", "ping.py", "stats.py", "queues.py", "hw/rss_ctx.py"],
                        {**bqlab_env, "BQLAB_ARTIFACTS": str(artifacts)}, timeout=1200)
        results = _results(only_report(artifacts))
        if not _only_upstream_flakes(results):
            break
    assert sorted(results) == ["hw/rss_ctx.py", "ping.py", "queues.py", "stats.py"]
    for name, step in results.items():
        assert step["ok"], f"{name}: {step['summary']}\n{step['details']['stdout'][-3000:]}"
    # rss_ctx really ran on bqnic's RSS (key, indirection table, resizing), not skipped
    rss = results["hw/rss_ctx.py"]["details"]["results"]
    assert {"rss_ctx.test_rss_key_indir", "rss_ctx.test_rss_resize"} <= set(rss["pass"])
    assert res.returncode == 0 and artifacts.is_dir()


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
