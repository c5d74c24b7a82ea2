"""Build qemu-system-x86_64 from Debian's QEMU 10.0.2 source, with bqlab's device overlay.

Two cache levels: the configured tree (keyed by source and configure flags) is reused, so a
change to the device sources under qemu-device/ only re-runs ninja on the overlaid tree.

`sanitize=True` is a variant of both, configured with ASan and UBSan, for `make fuzz` and
the sanitizer qtests: its own tree and artifact, so it never rebuilds the normal one. They
run bqnic on q35 under -accel qtest only, so that build has no TCG and no other device
(qemu-device/configs/devices/x86_64-softmmu/bqlab-qtest.mak): about half the compile.
"""

import bz2
import re
import shutil
import sys
from pathlib import Path

from .. import hostdeps
from ..errors import MissingTool
from ..paths import cache_root, repo_root
from ..progress import run_logged
from . import sources
from .cachekey import file_digest, make_key, tree_digests, write_if_changed
from .store import Artifact, ensure

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
# Both: an ASan report or a UBSan "runtime error" is a finding, whichever device it is in.
SANITIZE_FLAGS = ["--enable-asan", "--enable-ubsan"]
QTEST_DEVICES = "bqlab-qtest"  # qemu-device/configs/devices/x86_64-softmmu/<this>.mak
# The sanitized QEMU runs under -accel qtest only: no TCG, q35 and bqnic only.
QTEST_ONLY_FLAGS = ["--disable-tcg", "--without-default-devices",
                    f"--with-devices-x86_64={QTEST_DEVICES}"]
BINARY = "qemu-system-x86_64"
# QEMU leaks at exit by design (LeakSanitizer would fail every run); UBSan reports and goes
# on, so one run finds every report, with its stack.
SANITIZER_ENV = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0",
                 "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=0"}


def device_dir() -> Path:
    return repo_root() / "qemu-device"


def configure_flags(sanitize: bool = False) -> list[str]:
    if not sanitize:
        return CONFIGURE_FLAGS
    return [f for f in CONFIGURE_FLAGS if f != "--enable-tcg"] + SANITIZE_FLAGS + \
        QTEST_ONLY_FLAGS


def devices_file() -> Path:
    return device_dir() / "configs/devices/x86_64-softmmu" / f"{QTEST_DEVICES}.mak"


def tree_inputs(sanitize: bool = False) -> dict:
    inputs = {"recipe": RECIPE_VERSION, "tarball": sources.QEMU_TARBALL,
              "configure": configure_flags(sanitize)}
    if sanitize:  # read at configure time
        inputs["devices"] = file_digest(devices_file())
    return inputs


def inputs(sanitize: bool = False) -> dict:
    # Docs do not change the binary; everything else under qemu-device/ may.
    device = {k: v for k, v in tree_digests(device_dir()).items() if not k.endswith(".md")}
    return {**tree_inputs(sanitize), "device": device}


def artifact(sanitize: bool = False) -> Artifact:
    return Artifact("qemu-sanitize" if sanitize else "qemu", make_key(inputs(sanitize)))


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


def _configured_tree(sanitize: bool = False) -> Path:
    """Extract and configure the tree once per tree key; returns the tree directory."""
    tree_key = make_key(tree_inputs(sanitize))
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
    # configure reads the device's Kconfig and the qtest devices file
    apply_device_overlay(src)
    build = src / "build"
    build.mkdir()
    run_logged("configuring QEMU" + (" with ASan and UBSan" if sanitize else ""),
               ["../configure", f"--python={sys.executable}", *configure_flags(sanitize)],
               log, cwd=build)
    stamp.write_text(tree_key)
    return tree


def apply_device_overlay(src: Path) -> list[str]:
    """Put qemu-device/{hw,configs}/** into the tree: plain files are copied; `X.append`
    files are appended to the tree's pristine X (kept as X.bqlab-orig), so re-applying is
    idempotent. Returns the tree paths written."""
    written = []
    files = [*(device_dir() / "hw").rglob("*"), *(device_dir() / "configs").rglob("*")]
    for f in sorted(files):
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


def build(force: bool = False, sanitize: bool = False) -> Path:
    art = artifact(sanitize)

    def do_build(out: Path) -> None:
        hostdeps.require_packages(hostdeps.QEMU_BUILD, "building QEMU")
        _check_python()
        tree = _configured_tree(sanitize)
        src = tree / sources.QEMU_TOPDIR
        apply_device_overlay(src)
        cold = "~6 min with sanitizers" if sanitize else "~4 min"
        run_logged(f"building QEMU (ninja, {cold} on 2 cores cold)",
                   ["ninja", "-C", str(src / "build"), BINARY], tree / "build.log")
        (out / "bin").mkdir()
        shutil.copy2(src / "build" / BINARY, out / "bin" / BINARY)
        (out / "bin" / "digest").write_text(file_digest(out / "bin" / BINARY))

    return ensure(art, "QEMU (ASan+UBSan)" if sanitize else "QEMU", inputs(sanitize), do_build,
                  force=force)
