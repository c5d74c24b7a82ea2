"""Build the guest root filesystem: Debian bookworm (debootstrap) + bqlab init + modules.

Two cache levels: the debootstrap tree (keyed by the package list, ~1.5 min) and the final
ext4 image (keyed by that, the kernel artifact and images/ files, a few seconds), so a new
kernel does not re-run debootstrap. VMs boot the image with snapshot=on: it never changes.
"""

import shutil
import subprocess
from pathlib import Path

from .. import hostdeps
from ..paths import repo_root
from ..progress import run_logged
from . import kernel_features, sources
from .cachekey import file_digest, make_key, tree_digests
from .kernel import KCSAN_DIR
from .store import Artifact, ensure

RECIPE_VERSION = 3  # 2: the KCSAN twins of the NIC driver (GUEST_KCSAN_DIR); 3: GUEST_YNL
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
IMAGE_NAME = "rootfs.ext4"
KEY_NAME = "id_ed25519"
FREE_SPACE_MB = 1024
GUEST_FILES = ("init", "fstab", "sshd_config")
GUEST_KCSAN_DIR = "/usr/lib/bqlab/kcsan"  # the kernel artifact's KCSAN_DIR
GUEST_YNL_TREE = "/usr/local/share/ynl"  # the kernel's files, laid out as in its tree
# ynl's cli.py and lib/, wherever this kernel keeps them (kernel_features.ynl_dir): a
# symlink, so bqlab-watch and the wrapper below need not know the kernel's layout.
GUEST_YNL = "/usr/local/lib/bqlab/ynl"
YNL_WRAPPER = f"""#!/bin/sh
# The kernel's ynl CLI with the netdev family: ynl-netdev --dump page-pool-get
exec python3 {GUEST_YNL}/cli.py --no-schema \\
    --spec {GUEST_YNL_TREE}/{kernel_features.NETDEV_SPEC} "$@"
"""


def images_dir() -> Path:
    return repo_root() / "images"


def packages() -> list[str]:
    lines = (images_dir() / "packages.txt").read_text().splitlines()
    return [p for p in (line.split("#", 1)[0].strip() for line in lines) if p]


def rootfs_inputs() -> dict:
    return {"recipe": RECIPE_VERSION, "suite": SUITE, "mirror": MIRROR,
            "variant": "minbase", "packages": packages()}


def image_inputs(kernel_art: Path) -> dict:
    return {"recipe": RECIPE_VERSION, "rootfs": make_key(rootfs_inputs()),
            "kernel": kernel_art.name,
            "files": {n: file_digest(images_dir() / n) for n in GUEST_FILES},
            "xdp": tree_digests(images_dir() / "xdp", ("*.c",)),
            "tools": tree_digests(images_dir() / "tools", ("*",)),
            "ethtool": sources.ETHTOOL_DEB[1],
            "free_mb": FREE_SPACE_MB}


def image_artifact(kernel_art: Path) -> Artifact:
    return Artifact("image", make_key(image_inputs(kernel_art)))


def rootfs_artifact() -> Artifact:
    return Artifact("rootfs", make_key(rootfs_inputs()))


def build_rootfs(force: bool = False) -> Path:
    art = rootfs_artifact()

    def do_build(out: Path) -> None:
        hostdeps.require_packages(hostdeps.IMAGE_BUILD, "building the guest image")
        root = out / "root"
        run_logged("debootstrap Debian bookworm (~1.5 min)",
                   ["debootstrap", "--variant=minbase", f"--include={','.join(packages())}",
                    SUITE, str(root), MIRROR], out / "build.log")
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for p in (root / junk).glob("*"):
                if p.is_file():
                    p.unlink()

    return ensure(art, "guest rootfs", rootfs_inputs(), do_build, force=force)


def _install_guest_files(staging: Path, kernel_art: Path, out: Path) -> None:
    shutil.copy2(images_dir() / "init", staging / "sbin" / "bqlab-init")
    (staging / "sbin" / "bqlab-init").chmod(0o755)
    shutil.copy2(images_dir() / "sshd_config", staging / "etc/ssh/sshd_config.d/bqlab.conf")
    shutil.copy2(images_dir() / "fstab", staging / "etc/bqlab-fstab")
    (staging / "run/sshd").mkdir(parents=True, exist_ok=True)
    (staging / "etc/hosts").write_text("127.0.0.1 localhost\n::1 localhost\n")

    # Host key and the harness's login key are made now, not at boot (boot time matters).
    for old in (staging / "etc/ssh").glob("ssh_host_*"):
        old.unlink()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bqlab-guest",
                    "-f", str(staging / "etc/ssh/ssh_host_ed25519_key")], check=True)
    shutil.copy2(staging / "etc/ssh/ssh_host_ed25519_key.pub", out / "host_key.pub")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bqlab-harness",
                    "-f", str(out / KEY_NAME)], check=True)
    ssh_dir = staging / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    shutil.copy2(out / f"{KEY_NAME}.pub", ssh_dir / "authorized_keys")
    (ssh_dir / "authorized_keys").chmod(0o600)

    ynl = kernel_art / "ynl"
    ynl_rel = kernel_features.read(kernel_art).get("ynl")
    if ynl.is_dir() and ynl_rel:
        shutil.copytree(ynl, staging / GUEST_YNL_TREE.lstrip("/"), dirs_exist_ok=True)
        link = staging / GUEST_YNL.lstrip("/")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(f"{GUEST_YNL_TREE}/{ynl_rel}")
        wrapper = staging / "usr/local/bin/ynl-netdev"
        wrapper.write_text(YNL_WRAPPER)
        wrapper.chmod(0o755)

    _compile_xdp(staging / "usr/local/lib/bqlab/xdp", out / "build.log")
    _install_ethtool(staging, out / "build.log")
    for tool in sorted((images_dir() / "tools").iterdir()):
        shutil.copy2(tool, staging / "usr/local/bin" / tool.name)
        (staging / "usr/local/bin" / tool.name).chmod(0o755)

    modules = kernel_art / "modules" / "lib" / "modules"
    if modules.is_dir():
        shutil.copytree(modules, staging / "usr/lib/modules", symlinks=True,
                        dirs_exist_ok=True)
    # Outside /usr/lib/modules, where modprobe would find two bqnic.ko.
    twins = kernel_art / KCSAN_DIR
    if twins.is_dir():
        shutil.copytree(twins, staging / GUEST_KCSAN_DIR.lstrip("/"), dirs_exist_ok=True)


def _install_ethtool(staging: Path, log: Path) -> None:
    """trixie's ethtool in /usr/local/sbin, ahead of bookworm's in PATH (sources.py)."""
    deb = sources.pinned_deb(*sources.ETHTOOL_DEB)
    unpacked = staging.parent / "ethtool-deb"
    run_logged(f"unpacking {deb.name}", ["dpkg-deb", "-x", str(deb), str(unpacked)], log)
    dest = staging / "usr/local/sbin/ethtool"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(unpacked / "usr/sbin/ethtool", dest)
    shutil.rmtree(unpacked)


def _compile_xdp(dest: Path, log: Path) -> None:
    """XDP programs for pass, drop, tx and redirect-to-cpumap, compiled here with clang.

    Plain objects without CO-RE: `ip link set dev X xdpdrv obj F.o sec xdp` loads them on a
    kernel without BTF (xdp-tools' xdp-bench and libxdp's dispatcher need kernel BTF).
    """
    dest.mkdir(parents=True, exist_ok=True)
    multiarch = subprocess.run(["gcc", "-print-multiarch"], capture_output=True, text=True,
                               check=False).stdout.strip() or "x86_64-linux-gnu"
    for src in sorted((images_dir() / "xdp").glob("*.c")):
        run_logged(f"clang -target bpf {src.name}",
                   ["clang", "-O2", "-g", "-Wall", "-target", "bpf",
                    f"-I/usr/include/{multiarch}", "-c", str(src),
                    "-o", str(dest / f"{src.stem}.o")], log)


def _du_mb(path: Path) -> int:
    res = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True, check=True)
    return int(res.stdout.split()[0])


def build(kernel_art: Path, force: bool = False) -> Path:
    rootfs = build_rootfs()
    art = image_artifact(kernel_art)

    def do_build(out: Path) -> None:
        hostdeps.require_packages(hostdeps.IMAGE_BUILD, "building the guest image")
        staging = out / "staging"
        log = out / "build.log"
        run_logged("copying rootfs", ["cp", "-a", str(rootfs / "root"), str(staging)], log)
        _install_guest_files(staging, kernel_art, out)
        size_mb = _du_mb(staging) * 5 // 4 + FREE_SPACE_MB
        run_logged("mkfs.ext4 -d",
                   ["mkfs.ext4", "-q", "-F", "-L", "bqlab-root", "-d", str(staging),
                    str(out / IMAGE_NAME), f"{size_mb}M"], log)
        shutil.rmtree(staging)

    return ensure(art, "guest image", image_inputs(kernel_art), do_build, force=force)
