"""Artifact keys change when one of their inputs changes, and only then."""

import shutil
from pathlib import Path

import pytest
from bqlab.build import image, kernel, qemu, sources
from bqlab.build.kernel import KernelSpec

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for d in ("guest-kernel", "images", "qemu-device"):
        if (REPO / d).exists():
            shutil.copytree(REPO / d, tmp_path / d)
        else:
            (tmp_path / d).mkdir()
    monkeypatch.setenv("BQLAB_ROOT", str(tmp_path))
    monkeypatch.setenv("BQLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(sources, "linux_source_deb", lambda kernel=None: Path("/nonexistent.deb"))
    monkeypatch.setattr(sources, "linux_source_version", lambda deb: "6.12.117-1~deb12u1")
    return tmp_path


def keys(spec: KernelSpec | None = None) -> dict[str, str]:
    spec = spec or KernelSpec()
    k = kernel.artifact(spec)
    return {
        "qemu": qemu.artifact().key,
        "kernel-tree": kernel.make_key(kernel.tree_inputs(spec)),
        "kernel": k.key,
        "rootfs": image.make_key(image.rootfs_inputs()),
        "image": image.image_artifact(k.path).key,
    }


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {name for name in before if before[name] != after[name]}


def test_keys_are_stable(root: Path) -> None:
    assert keys() == keys()


def test_keys_do_not_depend_on_checkout_location(root: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    before = keys()
    moved = tmp_path / "elsewhere"
    shutil.copytree(root, moved, ignore=shutil.ignore_patterns("cache", "elsewhere"))
    monkeypatch.setenv("BQLAB_ROOT", str(moved))
    assert keys() == before


def test_config_fragment_rebuilds_kernel_and_image_only(root: Path) -> None:
    before = keys()
    with (root / "guest-kernel/config/bqlab.config").open("a") as f:
        f.write("CONFIG_TUN=y\n")
    assert changed(before, keys()) == {"kernel-tree", "kernel", "image"}


def test_new_patch_in_series_rebuilds_kernel(root: Path) -> None:
    before = keys()
    patches = root / "guest-kernel/patches"
    patches.mkdir(exist_ok=True)
    (patches / "0001-x.patch").write_text("--- a/x\n+++ b/x\n")
    with (patches / "series").open("a") as f:
        f.write("0001-x.patch\n")
    assert changed(before, keys()) == {"kernel-tree", "kernel", "image"}


def test_driver_source_keeps_the_configured_tree(root: Path) -> None:
    before = keys()
    drv = root / "guest-kernel/bqnic"
    drv.mkdir(parents=True, exist_ok=True)
    (drv / "bqnic_main.c").write_text("/* driver */\n")
    assert changed(before, keys()) == {"kernel", "image"}


def test_device_source_rebuilds_qemu_only(root: Path) -> None:
    before = keys()
    (root / "qemu-device/bqnic.c").write_text("/* device */\n")
    assert changed(before, keys()) == {"qemu"}


def test_docs_change_nothing(root: Path) -> None:
    before = keys()
    (root / "qemu-device/SPEC.md").write_text("# words\n")
    (root / "guest-kernel/NOTES.md").write_text("# words\n")
    (root / "guest-kernel/bqnic").mkdir(exist_ok=True)
    (root / "guest-kernel/bqnic/README.md").write_text("# words\n")
    assert changed(before, keys()) == set()


def test_image_recipe_and_packages(root: Path) -> None:
    before = keys()
    with (root / "images/init").open("a") as f:
        f.write("# tweak\n")
    assert changed(before, keys()) == {"image"}
    before = keys()
    with (root / "images/packages.txt").open("a") as f:
        f.write("strace\n")
    assert changed(before, keys()) == {"rootfs", "image"}


def test_user_patches_and_fragments_enter_the_key(root: Path, tmp_path: Path) -> None:
    before = keys()
    patch = tmp_path / "fix.patch"
    patch.write_text("--- a/y\n+++ b/y\n")
    with_patch = keys(KernelSpec(patches=(patch,)))
    assert changed(before, with_patch) == {"kernel-tree", "kernel", "image"}
    patch.write_text("--- a/y\n+++ b/y\n@@ changed\n")
    assert changed(with_patch, keys(KernelSpec(patches=(patch,)))) == \
        {"kernel-tree", "kernel", "image"}


def test_user_tree_is_keyed_by_its_git_state(root: Path, tmp_path: Path) -> None:
    import subprocess

    tree = tmp_path / "linux"
    tree.mkdir()
    (tree / "Makefile").write_text("all:\n")
    git = ["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    spec = KernelSpec(tree=tree)
    first = keys(spec)
    assert first == keys(spec)
    (tree / "Makefile").write_text("all:\n\ttrue\n")  # uncommitted edit
    assert changed(first, keys(spec)) == {"kernel-tree", "kernel", "image"}
