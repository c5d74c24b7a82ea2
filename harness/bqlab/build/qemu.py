"""Build qemu-system-x86_64 from Debian's QEMU 10.0.2 source, with bqlab's device overlay.

Two cache levels: the configured tree (keyed by source and configure flags) is reused, so a
change to the device sources under qemu-device/ only re-runs ninja on the overlaid tree.
"""

import bz2
import re
import shutil
import sys
from pathlib import Path

from .. import hostdeps
from ..cachekey import file_digest, make_key, tree_digests, write_if_changed
from ..errors import MissingTool
from ..paths import cache_root, repo_root
from ..progress import run_logged
from ..store import Artifact, ensure
from . import sources

RECIPE_VERSION = 1
CONFIGURE_FLAGS = [
    "--target-list=x86_64-softmmu",
    "--without-default-features",
    "--enable-kvm",
    "--enable-tcg",
    "--enable-slirp",
    "--disable-docs",
    "--disable-install-blobs",
    "--disable-werror",
    "--disable-download",  # never reach for subprojects over git: Debian has them
]
BINARY = "qemu-system-x86_64"


def device_dir() -> Path:
    return repo_root() / "qemu-device"


def tree_inputs() -> dict:
    return {"recipe": RECIPE_VERSION, "tarball": sources.QEMU_TARBALL,
            "configure": CONFIGURE_FLAGS}


def inputs() -> dict:
    # Docs do not change the binary; everything else under qemu-device/ may.
    device = {k: v for k, v in tree_digests(device_dir()).items() if not k.endswith(".md")}
    return {**tree_inputs(), "device": device}


def artifact() -> Artifact:
    return Artifact("qemu", make_key(inputs()))


def binary(art: Path) -> Path:
    return art / "bin" / BINARY


def _stub_edk2_blobs(src: Path) -> None:
    """Debian's +ds tarball drops pc-bios blobs; meson insists on the edk2 .bz2 inputs.

    bqlab boots with SeaBIOS from Debian's seabios package, so empty stubs are enough.
    """
    text = (src / "pc-bios" / "meson.build").read_text()
    for name in re.findall(r"'(edk2-[\w.-]+\.fd)'", text):
        stub = src / "pc-bios" / f"{name}.bz2"
        if not stub.exists():
            stub.write_bytes(bz2.compress(b""))


def _check_python() -> None:
    try:
        import mesonbuild  # noqa: F401
        import pycotap  # noqa: F401
    except ImportError as e:
        raise MissingTool("meson/pycotap in the project venv",
                          "run `make venv` (pip installs meson>=1.5 and pycotap)") from e


def source_tree() -> Path:
    """The extracted, configured QEMU source tree (for its scripts, e.g. checkpatch.pl)."""
    return _configured_tree() / sources.QEMU_TOPDIR


def _configured_tree() -> Path:
    """Extract and configure the tree once per tree key; returns the tree directory."""
    tree_key = make_key(tree_inputs())
    tree = cache_root() / "qemu-tree" / tree_key
    stamp = tree / ".configured"
    if stamp.exists():
        return tree
    tarball = sources.qemu_tarball()
    if tree.exists():
        shutil.rmtree(tree)
    tree.mkdir(parents=True)
    log = tree / "build.log"
    run_logged("extracting QEMU source", ["tar", "-xJf", str(tarball), "-C", str(tree)], log)
    src = tree / sources.QEMU_TOPDIR
    _stub_edk2_blobs(src)
    build = src / "build"
    build.mkdir()
    run_logged("configuring QEMU",
               ["../configure", f"--python={sys.executable}", *CONFIGURE_FLAGS], log, cwd=build)
    stamp.write_text(tree_key)
    return tree


def apply_device_overlay(src: Path) -> list[str]:
    """Put qemu-device/hw/** into the tree: plain files are copied; `X.append` files are
    appended to the tree's pristine X (kept as X.bqlab-orig), so re-applying is idempotent.
    Returns the tree paths written."""
    written = []
    for f in sorted((device_dir() / "hw").rglob("*")):
        if not f.is_file():
            continue
        rel = f.relative_to(device_dir())
        if f.name.endswith(".append"):
            target = src / rel.with_name(f.name.removesuffix(".append"))
            pristine = target.with_name(target.name + ".bqlab-orig")
            if not pristine.exists():
                shutil.copy2(target, pristine)
            write_if_changed(target, pristine.read_bytes() + f.read_bytes())
        else:
            target = src / rel
            write_if_changed(target, f.read_bytes())
        written.append(str(target.relative_to(src)))
    return written


def build(force: bool = False) -> Path:
    art = artifact()

    def do_build(out: Path) -> None:
        hostdeps.require_packages(hostdeps.QEMU_BUILD, "building QEMU")
        _check_python()
        tree = _configured_tree()
        src = tree / sources.QEMU_TOPDIR
        apply_device_overlay(src)
        run_logged("building QEMU (ninja, ~4 min on 2 cores cold)",
                   ["ninja", "-C", str(src / "build"), BINARY], tree / "build.log")
        (out / "bin").mkdir()
        shutil.copy2(src / "build" / BINARY, out / "bin" / BINARY)
        (out / "bin" / "digest").write_text(file_digest(out / "bin" / BINARY))

    return ensure(art, "QEMU", inputs(), do_build, force=force)
