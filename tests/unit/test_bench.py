"""Benchmark output handling: perf report parsing and the markdown tables."""

from bqlab.bench import inclusive_shares, parse_perf_report, throughput_table

PERF_CHILDREN = """\
# Samples: 2K of event 'cpu-clock:pppH'
#
# Children      Self  Symbol
# ........  ........  ......
#
    15.28%     0.12%  [.] main_loop_wait
     2.93%     0.24%  [.] bqnic_core_receive_iov
     0.45%     0.00%  [.] bqnic_core_receive_iov
     0.12%     0.08%  [.] bqnic_core_write

"""


def test_perf_children_rows_take_the_inclusive_column_and_add_up_per_function() -> None:
    rows = parse_perf_report(PERF_CHILDREN)
    assert rows[0] == (15.28, "[.] main_loop_wait")
    shares = inclusive_shares(rows)
    assert round(shares["bqnic_core_receive_iov"], 2) == 3.38
    assert shares["bqnic_core_write"] == 0.12
    assert "Samples" not in " ".join(shares)


def test_self_rows_keep_the_dso_and_symbol() -> None:
    text = "    16.32%  qemu-system-x86_64       [.] helper_lookup_tb_ptr\n"
    assert parse_perf_report(text) == [(16.32, "qemu-system-x86_64       [.] helper_lookup_tb_ptr")]


def test_throughput_table_gives_bqnic_against_virtio_and_dashes_for_missing() -> None:
    result = {"results": {
        "bqnic": {"pktgen64_pps": 11000.0, "pktgen64_lost": 0, "pktgen1500_pps": None,
                  "pktgen1500_lost": 3, "iperf3_gbps": 0.2, "pktgen64_cpu_us_per_frame": 60.0},
        "virtio-net-pci": {"pktgen64_pps": 10000.0, "pktgen64_lost": 0,
                           "pktgen1500_pps": 15000.0, "pktgen1500_lost": 0,
                           "iperf3_gbps": 0.25, "pktgen64_cpu_us_per_frame": 75.0}}}
    table = throughput_table(result)
    bqnic_row = next(line for line in table.splitlines() if line.startswith("| bqnic"))
    assert "11,000 (1.10x virtio)" in bqnic_row
    assert "60.0 (0.80x virtio)" in bqnic_row
    assert "| - |" in bqnic_row


def test_rates_come_from_the_traffic_window_only() -> None:
    from bqlab.bench import window_rate

    # 10,000 frames in the 5 s between two samples taken while pktgen sent: 2,000 pps,
    # whatever SSH set-up and tear-down cost around them.
    pps, cpu = window_rate((1_000, 10.0, 101.0), (11_000, 10.5, 106.0))
    assert pps == 2000.0 and cpu == 50.0
    assert window_rate((5, 1.0, 0.0), (5, 1.0, 1.0)) == (0.0, None)


def test_table_shows_min_and_max_beside_the_median() -> None:
    result = {"results": {"bqnic": {"pktgen64_pps": 11000.0, "pktgen64_pps_min": 9000.0,
                                    "pktgen64_pps_max": 12000.0}}}
    assert "11,000 [9,000–12,000]" in throughput_table(result)
