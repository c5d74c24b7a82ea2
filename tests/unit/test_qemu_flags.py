"""The two QEMU builds: the normal one runs guests (TCG, every device); the sanitized one
runs bqnic's qtests only, so it leaves out what those never run."""

import shutil
from pathlib import Path

import pytest
from bqlab.build import qemu
from bqlab.build.cachekey import make_key


def test_the_normal_build_keeps_tcg_and_the_default_devices() -> None:
    flags = qemu.configure_flags()
    assert "--enable-tcg" in flags
    assert not any(f.startswith(("--without-default-devices", "--with-devices", "--enable-asan"))
                   for f in flags)


def test_the_sanitized_build_is_qtest_only() -> None:
    flags = qemu.configure_flags(sanitize=True)
    assert {"--enable-asan", "--enable-ubsan", "--disable-tcg",
            "--without-default-devices"} <= set(flags)
    assert "--enable-tcg" not in flags
    assert f"--with-devices-x86_64={qemu.QTEST_DEVICES}" in flags
    wanted = qemu.devices_file().read_text().splitlines()
    assert "CONFIG_Q35=y" in wanted and "CONFIG_BQNIC=y" in wanted


def test_the_devices_file_is_an_input_of_the_sanitized_tree(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "qemu-device"
    shutil.copytree(qemu.device_dir(), copy)
    monkeypatch.setattr(qemu, "device_dir", lambda: copy)
    normal, sanitized = make_key(qemu.tree_inputs()), make_key(qemu.tree_inputs(True))
    with qemu.devices_file().open("a") as f:
        f.write("CONFIG_VIRTIO_NET=y\n")
    assert make_key(qemu.tree_inputs()) == normal
    assert make_key(qemu.tree_inputs(True)) != sanitized
