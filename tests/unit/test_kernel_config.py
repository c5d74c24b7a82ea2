"""The kernel build refuses a config where olddefconfig silently dropped what we asked for."""

from pathlib import Path

from bqlab.build.kernel import OPTIONAL_MARK, config_mismatches, wanted_options

REPO = Path(__file__).resolve().parents[2]


def test_fragment_parsing(tmp_path: Path) -> None:
    frag = tmp_path / "f.config"
    frag.write_text("# comment\nCONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\nCONFIG_D=8\n")
    assert wanted_options([frag]) == {"CONFIG_A": "y", "CONFIG_B": "m", "CONFIG_C": "n",
                                      "CONFIG_D": "8"}


def test_mismatches_reported() -> None:
    wanted = {"CONFIG_A": "y", "CONFIG_B": "m", "CONFIG_C": "n", "CONFIG_D": "8"}
    config = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=y\nCONFIG_D=8\n"
    assert config_mismatches(wanted, config) == ["CONFIG_B: wanted m, got n",
                                                 "CONFIG_C: wanted n, got y"]
    assert config_mismatches(wanted, "CONFIG_A=y\nCONFIG_B=m\nCONFIG_D=8\n") == []


def test_our_fragment_asks_for_the_debug_features() -> None:
    wanted = wanted_options(sorted((REPO / "guest-kernel/config").glob("*.config")))
    for opt in ("CONFIG_VIRTIO_NET", "CONFIG_VIRTIO_BLK", "CONFIG_VIRTIO_BALLOON",
                "CONFIG_PCI_MSI", "CONFIG_ACPI", "CONFIG_BPF_SYSCALL",
                "CONFIG_XDP_SOCKETS", "CONFIG_PAGE_POOL_STATS",
                "CONFIG_DEBUG_FS", "CONFIG_FTRACE", "CONFIG_KPROBES", "CONFIG_FAULT_INJECTION",
                "CONFIG_FAIL_PAGE_ALLOC", "CONFIG_FUNCTION_ERROR_INJECTION",
                "CONFIG_FAIL_FUNCTION", "CONFIG_DMA_API_DEBUG", "CONFIG_DEBUG_KMEMLEAK"):
        assert wanted.get(opt) == "y", opt
    # The in-tree DUT drivers are modules, so scenarios can rmmod them (vm/nics.py).
    for opt in ("CONFIG_E1000E", "CONFIG_IGB", "CONFIG_VMXNET3", "CONFIG_BQNIC"):
        assert wanted.get(opt) == "m", opt
    assert wanted["CONFIG_NET_PKTGEN"] in ("y", "m")
    # the JIT's live-patched XDP dispatcher trips over multi-threaded TCG (see the fragment)
    assert wanted["CONFIG_BPF_JIT"] == "n"


def test_an_optional_fragment_is_merged_but_not_insisted_on(tmp_path: Path) -> None:
    """KCSAN excludes KASAN: a user's KASAN fragment must win over ours, not fail the build."""
    ours = tmp_path / "kcsan.config"
    ours.write_text(f"# why\n{OPTIONAL_MARK}\nCONFIG_KCSAN=y\n")
    theirs = tmp_path / "kasan.config"
    theirs.write_text("CONFIG_KASAN=y\n")
    assert wanted_options([ours, theirs]) == {"CONFIG_KASAN": "y"}
    kcsan = REPO / "guest-kernel/config/kcsan.config"
    assert OPTIONAL_MARK in kcsan.read_text().splitlines()
    assert "CONFIG_KCSAN=y" in kcsan.read_text().splitlines()
