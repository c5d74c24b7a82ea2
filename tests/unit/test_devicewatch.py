"""Each NIC model's device evidence, turned into the samples the rx-stall verdict judges."""

from pathlib import Path

from bqlab.judge import devicewatch
from bqlab.judge.verdicts import PASS, STALL, rx_stall_verdict
from bqlab.judge.watchdog import DeviceSample, GuestSample
from bqlab.vm import nics


def guest(t: float, rx: int, ethtool: list | None = None) -> GuestSample:
    return GuestSample(t, 4, {}, {}, rx_packets=rx, ethtool=ethtool)


def vmxnet3_stats(rx: int, oob: int, fail: int) -> list[list]:
    block = lambda: [["Rx Queue#", 0], ["ucast pkts rx", rx], ["mcast pkts rx", 0],  # noqa: E731
                     ["bcast pkts rx", 0], ["pkts rx OOB", oob], ["rx buf alloc fail", fail]]
    return [["Tx Queue#", 0], ["ucast pkts tx", 5], *block(), *block()]


def test_vmxnet3_counters_come_per_rx_queue_from_ethtool_blocks() -> None:
    g = guest(1.0, 0, vmxnet3_stats(rx=10, oob=3, fail=2))
    assert devicewatch.vmxnet3_queues(g) == {
        q: {"ucast pkts rx": 10, "mcast pkts rx": 0, "bcast pkts rx": 0,
            "pkts rx OOB": 3, "rx buf alloc fail": 2} for q in (0, 1)}


def test_vmxnet3_stall_is_drops_for_lack_of_buffers_with_rx_frozen() -> None:
    model = nics.model("vmxnet3")
    frozen = [guest(0.5 * i, 0, vmxnet3_stats(rx=100, oob=50 * i, fail=9)) for i in range(20)]
    v = rx_stall_verdict(devicewatch.queue_series(model, frozen, []), pressure_end=2.0)
    assert v.verdict == STALL and "does not say how many buffers" in v.reason
    flowing = [guest(0.5 * i, 0, vmxnet3_stats(rx=100 * i, oob=50 * min(i, 4), fail=9))
               for i in range(20)]
    v = rx_stall_verdict(devicewatch.queue_series(model, flowing, []), pressure_end=2.0)
    assert v.verdict == PASS, v.reason


def test_virtio_owning_no_buffer_while_the_peer_sends_is_starving() -> None:
    """virtio-net holds frames back instead of dropping: no buffer + traffic = refused."""
    model = nics.model("virtio-net-pci")
    g = [guest(0.5 * i, 100) for i in range(20)]
    empty = [DeviceSample(0.5 * i + 0.1, [{"avail": 7, "last_avail": 7, "used": 7}], None)
             for i in range(20)]
    series = devicewatch.queue_series(model, g, empty, traffic_windows=[(0.0, -1.0)])
    assert [s.owned["rx"] for s in series[0]][:2] == [0, 0]
    assert rx_stall_verdict(series, pressure_end=2.0).verdict == STALL
    quiet = devicewatch.queue_series(model, g, empty, traffic_windows=[])
    assert rx_stall_verdict(quiet, pressure_end=2.0).verdict != STALL
    posted = [DeviceSample(s.t, [{"avail": 300, "last_avail": 44, "used": 44}], None)
              for s in empty]
    series = devicewatch.queue_series(model, g, posted, traffic_windows=[(0.0, -1.0)])
    assert series[0][0].owned["rx"] == 256
    assert rx_stall_verdict(series, pressure_end=2.0).verdict != STALL


def test_trace_events_are_counted_as_they_are_appended(tmp_path: Path) -> None:
    log = tmp_path / "qemu-trace.log"
    counter = devicewatch.TraceCounter(log, nics.E1000E_RX_TRACE)
    assert counter.read() == dict.fromkeys(nics.E1000E_RX_TRACE, 0)
    log.write_text("123@1.5:e1000e_rx_can_recv_rings_full Cannot receive\n"
                   "e1000e_rx_not_written_to_guest Received packet NOT written (queue 0)\n"
                   "123@1.6:e1000e_rx_can_recv_rings_f")
    assert counter.read() == {"e1000e_rx_can_recv_rings_full": 1,
                              "e1000e_rx_not_written_to_guest": 1}
    with log.open("a") as f:
        f.write("ull Cannot receive\n")
    assert counter.read()["e1000e_rx_can_recv_rings_full"] == 2


def test_trace_models_get_their_events_on_the_qemu_command_line(tmp_path: Path) -> None:
    args = devicewatch.qemu_args(nics.model("igb"), tmp_path)
    assert args[:2] == ["-D", str(tmp_path / devicewatch.TRACE_LOG)]
    assert "e1000e_rx_can_recv_rings_full" in args
    assert devicewatch.qemu_args(nics.model("bqnic"), tmp_path) == []
