"""Kernels by name (--kernel debian:X.Y), what differs between kernels (kernel_features),
and a build the user already has (--kernel-build)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from bqlab.build import kernel, kernel_features, prebuilt, sources
from bqlab.errors import BadInput

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("spelling,package", [
    ("debian:6.12", "linux-source-6.12"), ("7.2", "linux-source-7.2"),
    ("debian:7.3", "linux-source-7.3"), ("debian:6.1", "linux-source-6.1")])
def test_kernel_names(spelling: str, package: str) -> None:
    assert sources.debian_kernel(spelling).package == package


def test_unknown_kernel_is_bad_input_naming_the_known_ones() -> None:
    with pytest.raises(BadInput, match="debian:6.12, debian:6.1, debian:7.2, debian:7.3"):
        sources.debian_kernel("debian:9.9")


def test_private_apt_never_reads_the_hosts_sources(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BQLAB_CACHE", str(tmp_path))
    opts = sources.private_apt_options()
    assert "Dir::Etc::SourceParts=/dev/null" in opts
    assert f"Dir::Etc::SourceList={tmp_path}/apt/sources.list" in opts
    assert all(str(tmp_path) in o or "/dev/null" in o for o in opts if "=" in o)


def test_the_default_kernel_key_is_what_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    """6.12's source entry keeps its shape: an existing cache stays valid."""
    monkeypatch.setattr(sources, "linux_source_key_version", lambda fetch, k=None: "V")
    got = kernel.tree_inputs(kernel.KernelSpec())["source"]
    assert got == {"debian": "linux-source-6.12", "version": "V"}
    other = kernel.tree_inputs(kernel.KernelSpec(debian="7.3"))["source"]
    assert other == {"debian": "linux-source-7.3", "version": "V"}


def test_env_names_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BQLAB_KERNEL", "debian:7.2")
    assert kernel.KernelSpec.from_env().debian == "7.2"
    assert kernel.KernelSpec.from_env(kernel="7.3").debian == "7.3"


def test_cli_rejects_an_unknown_kernel_before_anything(tmp_path: Path) -> None:
    env = dict(os.environ, BQLAB_CACHE=str(tmp_path / "cache"))
    res = subprocess.run([sys.executable, "-m", "bqlab.cli", "build", "--keys", "--kernel",
                          "debian:5.10"], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "unknown kernel 'debian:5.10'" in res.stderr
    assert not (tmp_path / "cache").exists()


# --- kernel_features ---------------------------------------------------------------

def lay_out_ynl(root: Path, rel: str) -> None:
    (root / rel / "lib").mkdir(parents=True)
    (root / rel / "cli.py").write_text("")
    (root / rel / "lib" / "__init__.py").write_text("")


@pytest.mark.parametrize("rel", ["tools/net/ynl/pyynl", "tools/net/ynl"])
def test_ynl_where_each_kernel_keeps_it(tmp_path: Path, rel: str) -> None:
    lay_out_ynl(tmp_path, rel)
    assert kernel_features.ynl_dir(tmp_path) == rel


def test_no_ynl_is_none(tmp_path: Path) -> None:
    assert kernel_features.ynl_dir(tmp_path) is None


NETDEV_SPEC = """\
name: netdev
attribute-sets:
  -
    name: dev
operations:
  list:
    -
      name: dev-get
    -
      name: page-pool-get
    - name: qstats-get
"""


def test_netdev_ops_read_from_the_spec(tmp_path: Path) -> None:
    spec = tmp_path / "netdev.yaml"
    spec.write_text(NETDEV_SPEC)
    assert kernel_features.netdev_ops(spec) == ["dev-get", "page-pool-get", "qstats-get"]
    spec.write_text(NETDEV_SPEC.replace("    - name: qstats-get\n", ""))
    found = {"ynl": "tools/net/ynl", "netdev_ops": ["page-pool-get"],
             "config": sorted(kernel_features.CONFIG_WITNESSES)}
    assert kernel_features.lost_witnesses(found) == [
        "per-queue qstats (rx packets and allocation failures per queue) "
        "(netdev netlink has no qstats-get)"]


def test_features_of_a_tree(tmp_path: Path) -> None:
    lay_out_ynl(tmp_path, "tools/net/ynl/pyynl")
    spec = tmp_path / kernel_features.NETDEV_SPEC
    spec.parent.mkdir(parents=True)
    spec.write_text(NETDEV_SPEC)
    got = kernel_features.features(tmp_path, "7.3.0-rc7", "CONFIG_KCSAN=y\nCONFIG_X=m\n")
    assert got == {"release": "7.3.0-rc7", "version": [7, 3], "ynl": "tools/net/ynl/pyynl",
                   "netdev_ops": ["page-pool-get", "qstats-get"], "config": ["CONFIG_KCSAN"]}


def test_a_renamed_option_stands_for_the_old_name() -> None:
    """7.3 renamed PROC_SYSCTL to SYSCTL: the fragment's old name is satisfied."""
    assert kernel.config_mismatches({"CONFIG_PROC_SYSCTL": "y"}, "CONFIG_SYSCTL=y\n") == []
    assert kernel.config_mismatches({"CONFIG_PROC_SYSCTL": "y"}, "CONFIG_SYSCTL=n\n") != []
    assert kernel.config_mismatches({"CONFIG_PROC_SYSCTL": "y"},
                                    "CONFIG_PROC_SYSCTL=y\n") == []


# --- --kernel-build ----------------------------------------------------------------

def fake_build(root: Path, config: str) -> Path:
    """A directory shaped like a kernel built in place (no real objects)."""
    files = {"arch/x86/boot/bzImage": "bz", "vmlinux": "elf", ".config": config,
             "include/config/kernel.release": "7.2.13\n", "Module.symvers": "",
             "modules.order": "drivers/net/ethernet/intel/igb/igb.o\n",
             "modules.builtin": "kernel/fs/ext4/ext4.ko\n", "System.map": "",
             "scripts/decode_stacktrace.sh": "", "Makefile": ""}
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_a_directory_that_is_not_built_names_what_is_missing(tmp_path: Path) -> None:
    build = fake_build(tmp_path / "b", "")
    (build / "vmlinux").unlink()
    (build / "Module.symvers").unlink()
    with pytest.raises(BadInput, match=r"missing vmlinux \(make vmlinux\), Module.symvers "
                                       r"\(make modules\)"):
        prebuilt.check_dir(build)


def test_config_gaps_fatal_and_costly() -> None:
    fragments = sorted((REPO / "guest-kernel" / "config").glob("*.config"))
    wanted = kernel.wanted_options(fragments)
    config = "".join(f"{o}={v}\n" for o, v in wanted.items())
    purposes = prebuilt.option_purposes(fragments)
    assert prebuilt.config_gaps(wanted, config, purposes) == ([], [])
    fatal, costly = prebuilt.config_gaps(
        wanted, config.replace("CONFIG_VIRTIO_BLK=y", "CONFIG_VIRTIO_BLK=m")
        .replace("CONFIG_FAIL_FUNCTION=y\n", "").replace("CONFIG_IGB=m\n", ""), purposes)
    assert [f.split(":")[0] for f in fatal] == ["CONFIG_VIRTIO_BLK"]
    assert sorted(c.split(":")[0] for c in costly) == ["CONFIG_FAIL_FUNCTION", "CONFIG_IGB"]
    igb = next(c for c in costly if c.startswith("CONFIG_IGB"))
    assert "In-tree drivers for QEMU's own NIC models" in igb
    # a module where bqlab asks for built-in is fine (not for an essential one)...
    assert prebuilt.config_gaps(wanted, config.replace("CONFIG_VETH=y", "CONFIG_VETH=m"),
                                purposes) == ([], [])
    # ...but built in where it asks for a module costs the scenarios that rmmod it
    assert [c.split(":")[0] for c in prebuilt.config_gaps(
        wanted, config.replace("CONFIG_IGB=m", "CONFIG_IGB=y"), purposes)[1]] == ["CONFIG_IGB"]


def test_essential_gap_is_bad_input(tmp_path: Path) -> None:
    fragments = sorted((REPO / "guest-kernel" / "config").glob("*.config"))
    wanted = kernel.wanted_options(fragments)
    config = "".join(f"{o}={v}\n" for o, v in wanted.items() if o != "CONFIG_EXT4_FS")
    build = fake_build(tmp_path / "b", config)
    with pytest.raises(BadInput, match="CONFIG_EXT4_FS: bqlab asks y, this kernel has n"):
        prebuilt.report_gaps(build, fragments, wanted)


def test_identity_follows_a_rebuild(tmp_path: Path) -> None:
    build = fake_build(tmp_path / "b", "CONFIG_X=y\n")
    first = prebuilt.identity(build)
    assert prebuilt.identity(build) == first
    (build / "arch/x86/boot/bzImage").write_text("rebuilt")
    assert prebuilt.identity(build) != first


def test_modules_installed_by_copy(tmp_path: Path) -> None:
    build = fake_build(tmp_path / "b", "")
    ko = build / "drivers/net/ethernet/intel/igb/igb.ko"
    ko.parent.mkdir(parents=True)
    subprocess.run(["cc", "-c", "-x", "c", "-", "-o", str(ko)], input=b"int igb;\n",
                   check=True)
    before = {p: p.stat().st_mtime_ns for p in build.rglob("*")}
    root = prebuilt.install_modules(build, "7.2.13", tmp_path / "out")
    assert (root / "kernel/drivers/net/ethernet/intel/igb/igb.ko").is_file()
    assert (root / "modules.order").read_text() == \
        "kernel/drivers/net/ethernet/intel/igb/igb.ko\n"
    # the tree's modules.builtin names kernel/... already, as modules_install leaves it
    assert (root / "modules.builtin").read_text() == "kernel/fs/ext4/ext4.ko\n"
    assert {p: p.stat().st_mtime_ns for p in build.rglob("*")} == before  # only read


def test_kernel_build_with_a_non_driver_patch_is_bad_input(tmp_path: Path) -> None:
    build = fake_build(tmp_path / "b", "")
    patch = tmp_path / "core.patch"
    patch.write_text("--- a/net/core/dev.c\n+++ b/net/core/dev.c\n@@ -1 +1 @@\n-a\n+b\n")
    with pytest.raises(BadInput, match="used as built"):
        kernel.KernelSpec(prebuilt=build, patches=(patch,)).validate()
    with pytest.raises(BadInput, match="give one"):
        kernel.KernelSpec(tree=build, prebuilt=build).validate()


SYSTEM_MAP_612 = "ffffffff820336c0 d _eil_addr_page_pool_alloc_pages\n" \
    "ffffffff820336d0 d _eil_addr_bqnic_alloc_rx_page\n"
SYSTEM_MAP_72 = "ffffffff8203e350 d _eil_addr_page_pool_alloc_netmems\n"


@pytest.mark.parametrize("system_map,want", [
    (SYSTEM_MAP_612, "page_pool_alloc_pages"), (SYSTEM_MAP_72, "page_pool_alloc_netmems")])
def test_the_page_pool_injection_point_where_the_kernel_has_it(
        tmp_path: Path, system_map: str, want: str) -> None:
    """7.x moved ALLOW_ERROR_INJECTION to page_pool_alloc_netmems(): fail_function on the
    old name gave ERANGE and reconfigure-under-failure an ERROR on 7.2."""
    (tmp_path / "System.map").write_text(system_map)
    assert kernel_features.injection_point(tmp_path, "page_pool_alloc_pages") == want
    # a function the kernel marks is itself; one it does not know is left to fail_function
    assert kernel_features.injection_point(tmp_path, "bqnic_alloc_rx_page") == \
        "bqnic_alloc_rx_page"
    assert kernel_features.injection_point(tmp_path / "none", "x") == "x"
