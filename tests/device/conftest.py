"""Device tests: the bqnic model under -accel qtest, no guest kernel. Marked `device`."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from bqlab import hostdeps
from bqlab.build import qemu

from .bqnic_driver import Bqnic
from .qtest_client import Qtest


@pytest.fixture(scope="session")
def qemu_binary() -> Path:
    hostdeps.require("run")  # firmware: qtest's q35 still loads SeaBIOS
    return qemu.binary(qemu.build())


@pytest.fixture
def make_qtest(qemu_binary: Path, tmp_path: Path) -> Iterator:
    started: list[Qtest] = []

    def make(**kwargs) -> Qtest:
        qt = Qtest(qemu_binary, tmp_path / f"qt{len(started)}", **kwargs)
        started.append(qt)
        return qt

    yield make
    for qt in started:
        qt.close()


@pytest.fixture
def qt(make_qtest) -> Qtest:
    return make_qtest()


@pytest.fixture
def nic(qt: Qtest) -> Bqnic:
    """A started device: queue 0 and 1 set up, no buffers posted yet."""
    dev = Bqnic(qt)
    for q in range(dev.num_queues):
        dev.setup_queue(q)
    dev.start()
    return dev
