"""A kernel the user already built (--kernel-build DIR): an O= directory, or a tree built in
place (as virtme-ng leaves it). bqlab takes bzImage, the modules and vmlinux from it,
builds bqnic (and its KCSAN twin when the config has KCSAN) against it, and rebuilds
nothing else. DIR is only read: the modules are installed by copying, not by
`make modules_install`, and the module is built in a directory of bqlab's own.

Its .config is checked against guest-kernel/config/*.config: an option without which no
guest boots (ESSENTIAL) is bad input; every other gap is named with what it costs.
"""

import re
import shutil
import subprocess
from pathlib import Path

from ..errors import BadInput, InfraError
from ..progress import run_logged, say
from . import kernel_features
from .cachekey import file_digest, make_key

# Built in (=y) or the guest cannot boot bqlab's image (no initramfs) or load bqnic.
ESSENTIAL = ("CONFIG_64BIT", "CONFIG_PCI", "CONFIG_PCI_MSI", "CONFIG_VIRTIO_PCI",
             "CONFIG_VIRTIO_BLK", "CONFIG_VIRTIO_NET", "CONFIG_EXT4_FS", "CONFIG_DEVTMPFS",
             "CONFIG_SERIAL_8250_CONSOLE", "CONFIG_MODULES", "CONFIG_NET", "CONFIG_INET",
             "CONFIG_UNIX", "CONFIG_BINFMT_ELF", "CONFIG_BINFMT_SCRIPT", "CONFIG_PAGE_POOL",
             "CONFIG_BPF_SYSCALL")
# What the build directory must hold, and the make target that makes each.
NEEDED = (("arch/x86/boot/bzImage", "bzImage"), ("vmlinux", "vmlinux"),
          (".config", "a config"), ("include/config/kernel.release", "prepare"),
          ("Module.symvers", "modules"), ("modules.order", "modules"),
          ("System.map", "vmlinux"))


def source_of(build: Path) -> Path:
    """The source tree behind a build directory: O= builds leave a `source` link."""
    link = build / "source"
    return link.resolve() if link.is_symlink() else build


def check_dir(build: Path) -> None:
    if not build.is_dir():
        raise BadInput(f"--kernel-build {build}: no such directory")
    missing = [(rel, target) for rel, target in NEEDED if not (build / rel).exists()]
    if missing:
        what = ", ".join(f"{rel} (make {target})" for rel, target in missing)
        raise BadInput(f"--kernel-build {build}: not a built x86_64 kernel; missing {what}. "
                       "Build it with `make bzImage modules` (O=DIR for a separate "
                       "directory) and try again")
    if not (source_of(build) / "scripts/decode_stacktrace.sh").is_file():
        raise BadInput(f"--kernel-build {build}: its source tree {source_of(build)} is not "
                       "there (an O= directory needs the tree it was built from)")


def identity(build: Path) -> dict:
    """What the kernel key holds of a build directory: a rebuild changes bzImage, the
    config or a module, and with it the key."""
    check_dir(build)
    modules = []
    for line in (build / "modules.order").read_text().split():
        ko = build / (line.removesuffix(".o") + ".ko")
        if ko.is_file():
            st = ko.stat()
            modules.append((line, st.st_size, st.st_mtime_ns))
    return {"path": str(build),
            "release": (build / "include/config/kernel.release").read_text().strip(),
            "files": {rel: file_digest(build / rel)
                      for rel in (".config", "arch/x86/boot/bzImage", "Module.symvers")},
            "modules": make_key({"m": modules})}


def option_purposes(fragments: list[Path]) -> dict[str, str]:
    """CONFIG_X -> why bqlab asks for it: the comment just above it in its fragment, else
    the section's `# --- ... ---` title."""
    purposes: dict[str, str] = {}
    for frag in fragments:
        section, block = "", []
        for line in frag.read_text().splitlines():
            line = line.strip()
            title = re.match(r"^# --- (.*) ---$", line)
            opt = re.match(r"^(?:# )?(CONFIG_\w+)(?:=| is not set)", line)
            if title:
                section, block = title.group(1), []
            elif opt:
                purposes[opt.group(1)] = " ".join(block) or section or frag.name
            elif line.startswith("#"):
                block.append(line.lstrip("# "))
            else:
                block = []
    return purposes


def config_gaps(wanted: dict[str, str], config_text: str,
                purposes: dict[str, str]) -> tuple[list[str], list[str]]:
    """(fatal, costly): options the fragments ask for that the config lacks. A module
    where bqlab asks for built-in is fine but for ESSENTIAL ones; KCSAN is optional."""
    have: dict[str, str] = {}
    for line in config_text.splitlines():
        m = re.match(r"^(CONFIG_\w+)=(.*)$", line)
        if m:
            have[m.group(1)] = m.group(2)
    fatal, costly = [], []
    for opt, val in wanted.items():
        got = kernel_features.config_value(have, opt)
        if got == val or (val == "y" and got == "m" and opt not in ESSENTIAL) or \
                (val not in ("y", "m", "n")):  # numbers and strings: the user's choice
            continue
        line = f"{opt}: bqlab asks {val}, this kernel has {got} ({purposes.get(opt, '?')})"
        (fatal if opt in ESSENTIAL and got != "y" else costly).append(line)
    return fatal, costly


def install_modules(build: Path, release: str, dest: Path) -> Path:
    """modules_install by copying (stripped), so the build directory is never written;
    returns lib/modules/RELEASE under dest."""
    root = dest / "lib" / "modules" / release
    (root / "kernel").mkdir(parents=True)
    for line in (build / "modules.order").read_text().split():
        rel = line.removesuffix(".o") + ".ko"
        if (build / rel).is_file():
            (root / "kernel" / rel).parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["strip", "--strip-debug", "-o", str(root / "kernel" / rel),
                            str(build / rel)], check=True)
    # modules.order lists .o in 6.x and .ko in newer trees; depmod reads .ko
    order = [line.removesuffix(".o") + ".ko" for line in
             (build / "modules.order").read_text().split()]
    (root / "modules.order").write_text("".join(f"kernel/{n}\n" for n in order))
    for name in ("modules.builtin", "modules.builtin.modinfo"):  # already kernel/...
        if (build / name).is_file():
            shutil.copy2(build / name, root / name)
    return root


def depmod(modules: Path, release: str, log: Path) -> None:
    run_logged("depmod", ["depmod", "-b", str(modules), release], log)


def report_gaps(build: Path, fragments: list[Path], wanted: dict[str, str]) -> list[str]:
    fatal, costly = config_gaps(wanted, (build / ".config").read_text(),
                                option_purposes(fragments))
    if fatal:
        raise BadInput(f"--kernel-build {build}: its config lacks what every guest needs "
                       "(bqlab's image has no initramfs):\n  " + "\n  ".join(fatal) +
                       "\nAdd them (e.g. scripts/config -e OPTION) and rebuild")
    if costly:
        say(f"--kernel-build {build}: {len(costly)} option(s) bqlab asks for are not set; "
            "what each costs:\n  " + "\n  ".join(costly))
    return costly


def require_built(build: Path) -> None:
    if not shutil.which("depmod"):
        raise InfraError("depmod not found: apt-get install kmod")
    check_dir(build)
