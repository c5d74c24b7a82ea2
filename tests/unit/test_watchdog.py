"""The watchdog's join of guest and device samples, and its saved evidence."""

from pathlib import Path

from bqlab.judge.watchdog import DeviceSample, GuestSample, Watchdog, load_samples, queue_series


def _guest(t: float, rx: int, fail: int) -> GuestSample:
    return GuestSample(t, 4, {0: {"queue-id": 0, "rx-packets": rx, "rx-alloc-fail": fail}},
                       {7: {"id": 7, "ifindex": 4, "inflight": 512}})


def _device(t: float, drops: int, owned: int) -> DeviceSample:
    return DeviceSample(t, [{"rx_drop_no_sbq": drops, "rx_drop_no_lbq": 0,
                             "sbq_owned": owned, "lbq_owned": 256},
                            {"rx_drop_no_sbq": 0, "rx_drop_no_lbq": 0,
                             "sbq_owned": 256, "lbq_owned": 256}], 0)


def test_each_device_sample_takes_the_newest_guest_sample_before_it() -> None:
    guest = [_guest(0.1, 10, 0), _guest(0.6, 20, 1)]
    device = [_device(0.05, 0, 256), _device(0.3, 5, 0), _device(0.7, 9, 0)]
    series = queue_series(guest, device)
    assert list(series) == [0]  # queue 1 has no guest counters: not in use
    assert [(s.t, s.guest_rx, s.alloc_fail, s.turned_away["sbq"]) for s in series[0]] == \
        [(0.3, 10, 0, 5), (0.7, 20, 1, 9)]  # none before the first guest sample


def test_saved_samples_load_back_to_the_same_series(tmp_path: Path) -> None:
    dog = Watchdog(vm=None)  # type: ignore[arg-type]  # not started: no VM needed
    dog.guest = [_guest(0.1, 10, 0), _guest(0.6, 20, 1)]
    dog.device = [_device(0.3, 5, 0), _device(0.7, 9, 0)]
    dog.save(tmp_path / "watch.jsonl")
    guest, device = load_samples(tmp_path / "watch.jsonl")
    assert queue_series(guest, device) == dog.queue_series()
    assert guest[0].pools[7]["inflight"] == 512


def test_a_stale_guest_sample_is_never_joined_twice() -> None:
    # The guest sampler stops at 1.0 s (a DUT too busy to answer); the device keeps
    # dropping. Without fresh guest counters "rx did not move" is unknown, not true.
    guest = [_guest(0.25 * i, 100 * i, 3) for i in range(5)]
    device = [_device(0.25 * i + 0.1, 50 * i, 0) for i in range(40)]
    series = queue_series(guest, device)[0]
    assert [s.t for s in series] == [0.1, 0.35, 0.6, 0.85, 1.1]
    assert len({s.guest_rx for s in series}) == len(series)


def test_stall_is_not_judged_on_a_stale_guest_sample() -> None:
    from bqlab.judge.verdicts import STALL, rx_stall_verdict

    guest = [_guest(0.25 * i, 100 * i, 3) for i in range(5)]
    device = [_device(0.25 * i + 0.1, 50 * i, 0) for i in range(40)]
    v = rx_stall_verdict(queue_series(guest, device), pressure_end=0.5)
    assert v.verdict != STALL, v.reason
