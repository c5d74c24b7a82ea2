"""Build the debug guest kernel: Debian's linux-source-X.Y (or your tree) + patches + config.

Inputs (all enter the cache key):
  source   one of Debian's linux-source .debs (--kernel debian:6.12, the default, 6.1, 7.2,
           7.3) or your own kernel tree, copied as git sees it (copy_user_tree)
  patches  guest-kernel/patches/series (its debian-source-only fixes only on Debian's
           source), then your patch files, applied in order (patch -p1)
  config   tinyconfig + guest-kernel/config/*.config (sorted) + your fragments, merged
           with merge_config.sh; every option a fragment asks for must survive olddefconfig
The configured tree is kept per (source, patches, config) so later builds are incremental;
a tree with patches of your own starts as a copy of the built tree without them, so make
rebuilds only what they touch. Patches that touch only the bqnic driver (and bisect's
other driver histories) need no tree of their own: the module alone is built against the
kernel without them (driver_only).
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .. import hostdeps
from ..errors import BadInput, InfraError
from ..paths import cache_root, repo_root
from ..progress import run_logged, say
from . import kernel_features, prebuilt, sources
from .cachekey import file_digest, make_key, tree_digests, write_if_changed
from .store import Artifact, ensure

RECIPE_VERSION = 1  # how the tree is prepared and configured (a change rebuilds it all)
ARTIFACT_RECIPE = 8  # what is collected from the built tree (a change only re-collects);
# 3: a user patch's bqnic driver hunks are applied at every build, not undone by it
# 4: the drivers/net selftests and every netlink spec
# 5: modules with line info, and what decode_stacktrace.sh needs (DEBUG_DIR)
# 6: bqnic's KCSAN twin (KCSAN_DIR)
# 7: features.json (kernel_features) and ynl's 6.14+ layout (tools/net/ynl/pyynl)
# 8: --kernel-build: modules.builtin copied as the tree has it (kernel/... already)
# The NIC drivers under test are modules (e1000e, igb, vmxnet3, bqnic): built with line
# info, the frames of a kernel report in them decode to file:line. DWARF for all of
# vmlinux would triple the tree and slow every build; a fragment can still ask for it.
MODULE_CFLAGS = "CFLAGS_MODULE=-g"
DEBUG_DIR = "debug"  # vmlinux, the unstripped modules, decode_stacktrace.sh, basepath
# KCSAN: every kernel carries its runtime (guest-kernel/config/kcsan.config), but no file
# of the tree is instrumented: races in the core would drown the driver's, and an
# instrumented kernel is slow under TCG. bqnic is built twice, the second time
# instrumented: KCSAN_DIR/bqnic.ko in the artifact (unstripped: DEBUG_DIR/KCSAN_DIR), which
# a DUT with `kcsan: true` loads instead of the plain one.
NO_KCSAN = "KCSAN_SANITIZE=n"
KCSAN_DIR = "kcsan"
# The kernel's own netlink CLI and specs, for ynl page-pool-get / qstats-get in the guest,
# and its drivers/net selftests (bqlab selftests), laid out as in the tree: they find ynl
# and the specs relative to themselves.
YNL_FILES = ("tools/net/ynl/cli.py", "tools/net/ynl/lib/*.py",  # before 6.14
             "tools/net/ynl/pyynl/*.py", "tools/net/ynl/pyynl/lib/*.py",
             "Documentation/netlink/*.yaml", "Documentation/netlink/specs/*.yaml",
             "tools/testing/selftests/drivers/net/*.py",
             "tools/testing/selftests/drivers/net/hw/*.py",
             "tools/testing/selftests/drivers/net/lib/py/*.py",
             "tools/testing/selftests/drivers/net/hw/lib/py/*.py",
             "tools/testing/selftests/net/lib/py/*.py")


def kernel_dir() -> Path:
    return repo_root() / "guest-kernel"


def _split_paths(value: str | None) -> list[Path]:
    if not value:
        return []
    return [Path(p).expanduser().resolve() for p in re.split(r"[\s:]+", value.strip()) if p]


@dataclass(frozen=True)
class KernelSpec:
    """What to build. Defaults come from BQLAB_KERNEL_TREE/_PATCHES/_CONFIG."""

    tree: Path | None = None
    patches: tuple[Path, ...] = field(default_factory=tuple)
    fragments: tuple[Path, ...] = field(default_factory=tuple)
    driver: Path | None = None  # bqnic's sources, if not guest-kernel/bqnic (bqlab bisect)
    debian: str = sources.DEFAULT_KERNEL  # which linux-source, when there is no tree
    prebuilt: Path | None = None  # a kernel the user built (--kernel-build: prebuilt.py)

    @classmethod
    def from_env(cls, tree: str | None = None, patches: list[str] | None = None,
                 fragments: list[str] | None = None, kernel: str | None = None,
                 build_dir: str | None = None) -> "KernelSpec":
        tree_s = tree or os.environ.get("BQLAB_KERNEL_TREE")
        build_s = build_dir or os.environ.get("BQLAB_KERNEL_BUILD")
        patch_list = [Path(p).resolve() for p in patches or []] or \
            _split_paths(os.environ.get("BQLAB_KERNEL_PATCHES"))
        frag_list = [Path(p).resolve() for p in fragments or []] or \
            _split_paths(os.environ.get("BQLAB_KERNEL_CONFIG"))
        name = kernel or os.environ.get("BQLAB_KERNEL") or sources.DEFAULT_KERNEL
        spec = cls(Path(tree_s).expanduser().resolve() if tree_s else None,
                   tuple(patch_list), tuple(frag_list),
                   debian=sources.debian_kernel(name).name,
                   prebuilt=Path(build_s).expanduser().resolve() if build_s else None)
        spec.validate()
        return spec

    @property
    def debian_kernel(self) -> sources.DebianKernel:
        return sources.debian_kernel(self.debian)

    def validate(self) -> None:
        sources.debian_kernel(self.debian)
        if self.tree is not None and not (self.tree / "Makefile").is_file():
            raise BadInput(f"kernel tree {self.tree}: no Makefile there (expected a Linux tree)")
        for p in (*self.patches, *self.fragments):
            if not p.is_file():
                raise BadInput(f"{p}: no such file")
        if self.prebuilt is not None:
            if self.tree is not None:
                raise BadInput("--kernel-build and --kernel-tree: give one (a tree is built "
                               "by bqlab, a build directory is used as it is)")
            prebuilt.check_dir(self.prebuilt)
            for p in self.patches:
                if patch_sections(p.read_text(), driver=False).strip():
                    raise BadInput(f"{p}: patches more than the bqnic driver, but "
                                   f"--kernel-build {self.prebuilt} is used as built; "
                                   "apply it to your tree and rebuild, or use --kernel-tree")

    def all_patches(self) -> list[Path]:
        ours = [patch for patch, debian_only in series_entries()
                if not debian_only or (self.tree is None and self.prebuilt is None)]
        return ours + list(self.patches)

    def all_fragments(self) -> list[Path]:
        return sorted((kernel_dir() / "config").glob("*.config")) + list(self.fragments)


SERIES_QUALIFIERS = ("debian-source-only",)


def series_entries(series: Path | None = None) -> list[tuple[Path, bool]]:
    """guest-kernel/patches/series: (patch, applied to Debian's source only) per line."""
    series = series or kernel_dir() / "patches" / "series"
    entries: list[tuple[Path, bool]] = []
    if not series.is_file():
        return entries
    for lineno, line in enumerate(series.read_text().splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        name, *qualifiers = words
        unknown = [q for q in qualifiers if q not in SERIES_QUALIFIERS]
        patch = series.parent / name
        if unknown or not patch.is_file():
            what = f"unknown qualifier {unknown[0]!r}" if unknown else f"no file {name}"
            raise BadInput(f"{series}:{lineno}: {what}; expected 'PATCH "
                           f"[{' '.join(SERIES_QUALIFIERS)}]'")
        entries.append((patch, bool(qualifiers)))
    return entries


def _user_tree_id(tree: Path) -> dict:
    """Identify a user tree by git HEAD + uncommitted diff, or by a stat walk."""
    git = subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"],
                         capture_output=True, text=True, check=False)
    if git.returncode == 0:
        diff = subprocess.run(["git", "-C", str(tree), "diff", "HEAD"],
                              capture_output=True, check=False).stdout
        untracked = subprocess.run(
            ["git", "-C", str(tree), "ls-files", "--others", "--exclude-standard"],
            capture_output=True, text=True, check=False).stdout
        return {"path": str(tree), "head": git.stdout.strip(),
                "diff": make_key({"d": diff.hex()}), "untracked": untracked.split()}
    entries = []
    for p in sorted(tree.rglob("*")):
        if p.is_file() and not p.name.endswith((".o", ".cmd", ".ko")):
            st = p.stat()
            entries.append((str(p.relative_to(tree)), st.st_size, st.st_mtime_ns))
    return {"path": str(tree), "stat": make_key({"e": entries})}


def tree_inputs(spec: KernelSpec, fetch: bool = True) -> dict:
    """fetch=False: never download the source .deb (see sources.linux_source_key_version)."""
    if spec.prebuilt is not None:
        source = {"prebuilt": prebuilt.identity(spec.prebuilt)}
    elif spec.tree is None:
        source = {"debian": spec.debian_kernel.package,
                  "version": sources.linux_source_key_version(fetch, spec.debian_kernel)}
    else:
        source = {"tree": _user_tree_id(spec.tree)}
    return {
        "recipe": RECIPE_VERSION,
        "source": source,
        "patches": [(p.name, file_digest(p)) for p in spec.all_patches()],
        "fragments": [(p.name, file_digest(p)) for p in spec.all_fragments()],
    }


def driver_dir(spec: KernelSpec | None = None) -> Path:
    return spec.driver if spec is not None and spec.driver is not None \
        else kernel_dir() / "bqnic"


def driver_inputs(spec: KernelSpec | None = None) -> dict[str, str]:
    """The bqnic driver sources built into the kernel tree."""
    return {k: v for k, v in tree_digests(driver_dir(spec)).items()
            if not k.endswith(".md")}


def inputs(spec: KernelSpec, fetch: bool = True) -> dict:
    return {**tree_inputs(spec, fetch), "driver": driver_inputs(spec),
            "artifact": ARTIFACT_RECIPE}


def artifact(spec: KernelSpec, fetch: bool = True) -> Artifact:
    return Artifact("kernel", make_key(inputs(spec, fetch)))


# A fragment with this line asks without insisting (KCSAN, which KASAN excludes).
OPTIONAL_MARK = "# bqlab: optional"


def wanted_options(fragments: list[Path]) -> dict[str, str]:
    """CONFIG_X -> value ('n' for '# CONFIG_X is not set') from config fragments, but for
    the optional ones."""
    wanted: dict[str, str] = {}
    for frag in fragments:
        text = frag.read_text()
        if OPTIONAL_MARK in text.splitlines():
            continue
        for line in text.splitlines():
            line = line.strip()
            m = re.match(r"^(CONFIG_\w+)=(.*)$", line)
            if m:
                wanted[m.group(1)] = m.group(2)
                continue
            m = re.match(r"^# (CONFIG_\w+) is not set$", line)
            if m:
                wanted[m.group(1)] = "n"
    return wanted


def config_mismatches(wanted: dict[str, str], config_text: str) -> list[str]:
    """Options a fragment asked for that the final .config does not have."""
    have: dict[str, str] = {}
    for line in config_text.splitlines():
        m = re.match(r"^(CONFIG_\w+)=(.*)$", line)
        if m:
            have[m.group(1)] = m.group(2)
    bad = []
    for opt, val in wanted.items():
        got = kernel_features.config_value(have, opt)
        if got != val:
            bad.append(f"{opt}: wanted {val}, got {got}")
    return bad


def prepare_source(spec: KernelSpec, dest: Path, log: Path) -> Path:
    if spec.tree is None:
        kernel = spec.debian_kernel
        deb = sources.linux_source_deb(kernel)
        run_logged(
            f"extracting {kernel.package}",
            ["sh", "-c", f"dpkg-deb --fsys-tarfile '{deb}' | "
             f"tar -xO ./usr/src/{kernel.topdir}.tar.xz | tar -xJ -C '{dest}'"], log)
        return dest / kernel.topdir
    src = dest / "linux"
    src.mkdir()
    copy_user_tree(spec.tree, src, log)
    return src


# Build products of a tree built in place without git (with git, git's own ignore rules
# leave them out): never copied, and `make mrproper` then removes what these miss.
# (Only names no source file has: vmlinux.lds.S is a source, vmlinux is not.)
BUILD_PRODUCTS = ("*.o", "*.ko", "*.a", "*.mod", "*.mod.c", ".*.cmd", ".tmp_*", "*.dwo")


def git_files(tree: Path) -> list[str] | None:
    """What git would put in a commit of tree: tracked files plus untracked ones it does
    not ignore, by git's own rules (negations such as the kernel's
    !kernel/time/timeconst.bc included, which tar's --exclude-vcs-ignores gets wrong).
    None when tree is not a git work tree."""
    res = subprocess.run(["git", "-C", str(tree), "ls-files", "-z", "--cached", "--others",
                          "--exclude-standard"], capture_output=True, check=False)
    if res.returncode != 0:
        return None
    names = sorted({n for n in res.stdout.decode("utf-8", "surrogateescape").split("\0") if n})
    # a tracked file deleted in the work tree is not there to copy
    return [n for n in names if os.path.lexists(tree / n)]


def copy_user_tree(tree: Path, dest: Path, log: Path) -> None:
    """Copy the user's tree without VCS data and build products, so we never write into
    it and a stale .config there cannot leak in."""
    files = git_files(tree)
    if files is not None:
        listing = dest.parent / ".files"
        listing.write_bytes("".join(f"{n}\0" for n in files).encode("utf-8",
                                                                     "surrogateescape"))
        run_logged(f"copying kernel tree {tree} ({len(files)} files, as git lists them)",
                   ["sh", "-c", f"tar -C '{tree}' --null --no-recursion -T '{listing}' -cf - | "
                    f"tar -C '{dest}' -xf -"], log)
        listing.unlink()
        return
    excludes = " ".join(f"--exclude='{p}'" for p in BUILD_PRODUCTS)
    run_logged(f"copying kernel tree {tree} (no git: all but build products)",
               ["sh", "-c", f"tar -C '{tree}' --exclude-vcs {excludes} -cf - . | "
                f"tar -C '{dest}' -xf -"], log)
    run_logged("make mrproper (the copy's own build state)", ["make", "-s", "mrproper"],
               log, cwd=dest)


def tree_dir(spec: KernelSpec) -> Path:
    """Where the configured (and built) kernel tree for spec lives."""
    return cache_root() / "kernel-tree" / make_key(tree_inputs(spec))


def _seed_from_base(spec: KernelSpec, tree: Path, log: Path) -> Path | None:
    """With patches of your own on a source and config already built: start from a copy
    of that built tree (timestamps kept) and patch it, so make rebuilds only what the
    patches touch (a driver patch: that module, in seconds) instead of everything."""
    if not spec.patches:
        return None
    base = tree_dir(base_spec(spec))
    if not (base / ".configured").exists() or not (base / "src").exists():
        return None
    src_name = (base / "src").resolve().name
    run_logged(f"copying the built tree {base.name} (your patches on top of it)",
               ["cp", "-a", "--reflink=auto", str(base / src_name), str(tree / src_name)],
               log)
    return tree / src_name


SOURCE_NOTE = "source.json"  # in a user tree's build dir: which commit it holds
SEED_ANY = ("head", "path")  # a build of another commit, in any work tree of the repo


def _clean_commit(spec: KernelSpec) -> dict | None:
    """A user tree at a commit with nothing uncommitted or untracked: its build can start
    from the build of another commit of the same tree (bisect steps, a rebase)."""
    if spec.tree is None:
        return None
    ident = _user_tree_id(spec.tree)
    if "head" not in ident or ident["untracked"] or \
            ident["diff"] != make_key({"d": b"".hex()}):
        return None
    common = subprocess.run(["git", "-C", str(spec.tree), "rev-parse", "--git-common-dir"],
                            capture_output=True, text=True, check=False).stdout.strip()
    return {"path": ident["path"], "head": ident["head"],
            # the repository, whichever work tree of it: bisect's scratch worktree starts
            # from the user's own build of another commit
            "repo": str((spec.tree / common).resolve()) if common else ident["path"],
            "patches": [[p.name, file_digest(p)] for p in spec.all_patches()],
            "fragments": [[p.name, file_digest(p)] for p in spec.all_fragments()]}


def _seed_from_commit(spec: KernelSpec, tree: Path, log: Path) -> Path | None:
    """Start from a copy of the last built tree of another commit of the same user tree
    (same patches and config), with `git diff` between the two commits applied: make then
    rebuilds what the commits changed, not everything. None if there is no such build or
    the diff does not apply (a full copy follows)."""
    me = _clean_commit(spec)
    if me is None:
        return None
    builds = []
    for note in (cache_root() / "kernel-tree").glob(f"*/{SOURCE_NOTE}"):
        other = note.parent
        try:
            them = json.loads(note.read_text())
        except (OSError, ValueError):
            continue
        built = (other / "src" / "arch/x86/boot/bzImage").exists()
        if built and other != tree and (other / ".configured").exists() and \
                {k: them.get(k) for k in me if k not in SEED_ANY} == \
                {k: v for k, v in me.items() if k not in SEED_ANY} and \
                them["head"] != me["head"]:
            builds.append((note.stat().st_mtime, other, them["head"]))
    if not builds:
        return None
    _, other, head = max(builds)
    diff = subprocess.run(["git", "-C", str(spec.tree), "diff", "--binary", head, me["head"]],
                          capture_output=True, check=False)
    if diff.returncode != 0:
        return None
    src_name = (other / "src").resolve().name
    run_logged(f"copying the built tree of {head[:12]} (then the diff to {me['head'][:12]})",
               ["cp", "-a", "--reflink=auto", str(other / src_name), str(tree / src_name)],
               log)
    patch = tree / ".commits.diff"
    patch.write_bytes(diff.stdout)
    try:
        run_logged(f"applying {head[:12]}..{me['head'][:12]}",
                   ["git", "apply", "--whitespace=nowarn", str(patch)], log,
                   cwd=tree / src_name)
    except InfraError:
        shutil.rmtree(tree / src_name, ignore_errors=True)  # a full copy instead
        return None
    return tree / src_name


def _note_source(spec: KernelSpec, tree: Path) -> None:
    me = _clean_commit(spec)
    if me is not None:
        (tree / SOURCE_NOTE).write_text(json.dumps(me) + "\n")


def _configured_tree(spec: KernelSpec) -> Path:
    tree = tree_dir(spec)
    key = tree.name
    if (tree / ".configured").exists():
        return tree
    if tree.exists():
        shutil.rmtree(tree)
    tree.mkdir(parents=True)
    log = tree / "build.log"
    seeded = _seed_from_base(spec, tree, log)
    if seeded is None:
        seeded = _seed_from_commit(spec, tree, log)
        if seeded is not None:
            # Our series is applied in the copy already: only the driver goes in again.
            install_driver(seeded, spec.all_patches(), log, driver_dir(spec))
            configure(spec, seeded, log, base_config=True)
            (tree / "src").symlink_to(seeded.name)
            _note_source(spec, tree)
            (tree / ".configured").write_text(key)
            return tree
    if seeded is not None:
        install_driver(seeded, spec.all_patches(), log, driver_dir(spec))
        for patch in spec.patches:
            _apply_tree_part(patch, tree, seeded, log)
        # A patch may touch Kconfig: the same fragments, checked the same way.
        configure(spec, seeded, log, base_config=True)
        (tree / "src").symlink_to(seeded.name)
        (tree / ".configured").write_text(key)
        return tree
    src = configured_source(spec, tree, log)
    (tree / "src").symlink_to(src.name)
    _note_source(spec, tree)
    (tree / ".configured").write_text(key)
    return tree


def configured_source(spec: KernelSpec, tree: Path, log: Path) -> Path:
    """spec's source unpacked (or copied) into tree, with the driver, the patches and the
    config: ready for make. Returns the source directory."""
    src = prepare_source(spec, tree, log)
    # The hook patch sources drivers/net/ethernet/bqnic/Kconfig: it must exist before
    # any make target reads Kconfig. The patches' driver parts go in with the driver.
    install_driver(src, spec.all_patches(), log, driver_dir(spec))
    for patch in spec.all_patches():
        _apply_tree_part(patch, tree, src, log)
    configure(spec, src, log)
    return src


def _apply_tree_part(patch: Path, tree: Path, src: Path, log: Path) -> None:
    """A patch's sections outside the bqnic driver (those go in with the driver)."""
    rest = patch_sections(patch.read_text(), driver=False)
    if not rest:
        return
    staged = tree / f".{patch.name}.tree"
    staged.write_text(rest)
    run_logged(f"applying {patch.name}",
               ["patch", "-p1", "--forward", "--batch", "-i", str(staged)], log, cwd=src)


def configure(spec: KernelSpec, src: Path, log: Path, base_config: bool = False) -> None:
    """tinyconfig + the fragments; base_config: the copied tree's .config is that, so only
    olddefconfig (for what a patch changed in Kconfig). Every asked option must survive."""
    fragments = spec.all_fragments()
    if not base_config:
        run_logged("make tinyconfig", ["make", "tinyconfig"], log, cwd=src)
        run_logged("merging config fragments",
                   ["scripts/kconfig/merge_config.sh", "-m", ".config",
                    *[str(f) for f in fragments]], log, cwd=src)
    run_logged("make olddefconfig", ["make", "olddefconfig"], log, cwd=src)
    bad = config_mismatches(wanted_options(fragments), (src / ".config").read_text())
    if bad:
        raise InfraError("kernel config: options the fragments ask for did not survive "
                         "olddefconfig (missing dependency?):\n  " + "\n  ".join(bad))


DRIVER_IN_TREE = "drivers/net/ethernet/bqnic"


GIT_HEADER = ("diff ", "index ", "new file mode", "deleted file mode", "old mode", "new mode",
              "similarity index", "rename from", "rename to")


def patch_sections(text: str, driver: bool) -> str:
    """The per-file sections of a unified diff that patch the bqnic driver (driver=True),
    or all the others."""
    lines = text.splitlines(keepends=True)
    starts = []
    for i in range(len(lines) - 1):
        if lines[i].startswith("--- ") and lines[i + 1].startswith("+++ "):
            first = i
            while first > 0 and lines[first - 1].startswith(GIT_HEADER) and \
                    (not starts or first - 1 > starts[-1][1] + 1):
                first -= 1
            starts.append((first, i))
    out = []
    for k, (first, minus) in enumerate(starts):
        end = starts[k + 1][0] if k + 1 < len(starts) else len(lines)
        path = lines[minus + 1][4:].split("\t")[0].strip()
        if path.split("/", 1)[-1].startswith(DRIVER_IN_TREE + "/") == driver:
            out.extend(lines[first:end])
    return "".join(out)


def install_driver(src: Path, patches: list[Path], log: Path, driver: Path) -> None:
    """Copy guest-kernel/bqnic into the tree with the patches' driver parts applied (they
    would be lost at each build otherwise, which re-copies the driver). Unchanged files
    keep their mtime, so make rebuilds only what changed."""
    with tempfile.TemporaryDirectory(prefix="bqnic-driver-") as tmp:
        staged = Path(tmp) / DRIVER_IN_TREE
        staged.mkdir(parents=True)
        for f in sorted(driver.iterdir()):
            if f.is_file() and not f.name.endswith(".md"):
                shutil.copy2(f, staged / f.name)
        for patch in patches:
            part = patch_sections(patch.read_text(), driver=True)
            if part:
                (Path(tmp) / "driver.patch").write_text(part)
                run_logged(f"applying {patch.name} to the bqnic driver",
                           ["patch", "-p1", "--forward", "--batch", "-i", "driver.patch"],
                           log, cwd=Path(tmp))
        for f in sorted(staged.iterdir()):
            if f.suffix != ".orig":
                write_if_changed(src / DRIVER_IN_TREE / f.name, f.read_bytes())


def driver_only(spec: KernelSpec) -> bool:
    """Debian's source with another bqnic driver (bisect --driver-tree) or patches of your
    own that touch nothing but the driver's C files: the kernel is the one built without
    them, and only the module is built again."""
    if spec.tree is not None or spec.prebuilt is not None or \
            not (spec.patches or spec.driver is not None):
        return False
    for patch in spec.patches:
        text = patch.read_text()
        if patch_sections(text, driver=False).strip():
            return False
        if re.search(rf"^\+\+\+ \S*{DRIVER_IN_TREE}/(?:Kconfig|Makefile)", text, re.M):
            return False
    return True


def base_spec(spec: KernelSpec) -> KernelSpec:
    return KernelSpec(spec.tree, (), spec.fragments, debian=spec.debian,
                      prebuilt=spec.prebuilt)


def source_tree(spec: KernelSpec) -> Path:
    """The built tree behind spec's kernel (a driver-only spec: the one without its patches)."""
    if spec.prebuilt is not None:
        return prebuilt.source_of(spec.prebuilt)
    return tree_dir(base_spec(spec) if driver_only(spec) else spec) / "src"


def _collect_debug(src: Path, obj: Path, out: Path) -> None:
    """What scripts/decode_stacktrace.sh needs to name file:line in a report."""
    debug = out / DEBUG_DIR
    (debug / "modules").mkdir(parents=True, exist_ok=True)
    shutil.copy2(obj / "vmlinux", debug / "vmlinux")
    shutil.copy2(src / "scripts/decode_stacktrace.sh", debug / "decode_stacktrace.sh")
    for line in (obj / "modules.order").read_text().split():
        ko = obj / (line.removesuffix(".o") + ".ko")
        if ko.is_file():
            shutil.copy2(ko, debug / "modules" / ko.name)
    (debug / "basepath").write_text(str(src.resolve()) + "\n")


def has_kcsan(src: Path) -> bool:
    return "CONFIG_KCSAN=y" in (src / ".config").read_text().splitlines()


def _build_module(spec: KernelSpec, src: Path, log: Path, kcsan: bool,
                  why: str = "alone (the patches touch only the driver)") -> bytes:
    """bqnic.ko (unstripped) built alone against src's kernel, from the driver with the
    spec's patches applied; instrumented by KCSAN if kcsan."""
    with tempfile.TemporaryDirectory(prefix="bqnic-module-") as tmp:
        install_driver(Path(tmp), spec.all_patches(), log, driver_dir(spec))
        module_dir = Path(tmp) / DRIVER_IN_TREE
        what = "with KCSAN" if kcsan else why
        # file names in the line info as in the tree: drivers/net/ethernet/bqnic/...
        run_logged(f"building the bqnic module {what}",
                   ["make", f"-j{os.cpu_count() or 2}", f"M={module_dir}", "CONFIG_BQNIC=m",
                    f"{MODULE_CFLAGS} -fdebug-prefix-map={tmp}/={src}/",
                    "KCSAN_SANITIZE=y" if kcsan else NO_KCSAN, "modules"],
                   log, cwd=src)
        return (module_dir / "bqnic.ko").read_bytes()


def _install_module(ko: bytes, stripped: Path, unstripped: Path, log: Path) -> None:
    for dest in (stripped, unstripped):
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.unlink(missing_ok=True)  # may be a link to the base's: never write through it
    unstripped.write_bytes(ko)
    run_logged("installing the module", ["strip", "--strip-debug", "-o", str(stripped),
                                         str(unstripped)], log)


def _build_kcsan_twin(spec: KernelSpec, src: Path, out: Path, log: Path) -> None:
    (out / KCSAN_DIR).mkdir()
    if not has_kcsan(src):  # a fragment of yours turned it off (KASAN): no twin
        return
    _install_module(_build_module(spec, src, log, kcsan=True), out / KCSAN_DIR / "bqnic.ko",
                    out / DEBUG_DIR / KCSAN_DIR / "bqnic.ko", log)


def _build_driver_only(spec: KernelSpec, out: Path) -> None:
    base = build(base_spec(spec))
    src = source_tree(spec).resolve()
    if not (src / "Module.symvers").is_file():  # the artifact outlived its tree
        base = build(base_spec(spec), force=True)
        src = source_tree(spec).resolve()
    for item in base.iterdir():
        if item.name in ("manifest.json", "build.log", KCSAN_DIR):  # the twin: built anew
            continue
        if item.name == DEBUG_DIR:  # tens of MB, never written to: shared
            shutil.copytree(item, out / item.name, copy_function=os.link,
                            ignore=shutil.ignore_patterns(KCSAN_DIR))
        elif item.is_dir():
            shutil.copytree(item, out / item.name, symlinks=True)
        else:
            shutil.copy2(item, out / item.name)
    log = out / "build.log"
    installed = list((out / "modules").glob("lib/modules/*/kernel/" + DRIVER_IN_TREE
                                            + "/bqnic.ko"))
    if len(installed) != 1:
        raise InfraError(f"the base kernel {base} has no bqnic.ko to replace")
    _install_module(_build_module(spec, src, log, kcsan=False), installed[0],
                    out / DEBUG_DIR / "modules" / "bqnic.ko", log)
    _build_kcsan_twin(spec, src, out, log)


def _build_on_prebuilt(spec: KernelSpec, out: Path) -> None:
    obj = spec.prebuilt
    assert obj is not None
    prebuilt.require_built(obj)
    src = prebuilt.source_of(obj)
    log = out / "build.log"
    fragments = spec.all_fragments()
    gaps = prebuilt.report_gaps(obj, fragments, wanted_options(fragments))
    (out / "config-gaps.txt").write_text("".join(f"{g}\n" for g in gaps))
    version = (obj / "include/config/kernel.release").read_text().strip()
    modules = prebuilt.install_modules(obj, version, out / "modules")
    collect(src, obj, out)
    # src for the line info's file names, obj to build against (make -C obj M=...)
    _install_module(_build_module(spec, obj, log, kcsan=False, why=f"against {obj}"),
                    modules / "kernel" / DRIVER_IN_TREE / "bqnic.ko",
                    out / DEBUG_DIR / "modules" / "bqnic.ko", log)
    order = modules / "modules.order"
    ours = f"kernel/{DRIVER_IN_TREE}/bqnic.ko"
    if ours not in order.read_text().split():  # a tree of bqlab's has it already
        with order.open("a") as f:
            f.write(ours + "\n")
    _build_kcsan_twin(spec, obj, out, log)
    prebuilt.depmod(out / "modules", version, log)


def build(spec: KernelSpec, force: bool = False) -> Path:
    art = artifact(spec)

    def do_build(out: Path) -> None:
        hostdeps.require_packages(hostdeps.KERNEL_BUILD, "building the guest kernel")
        if driver_only(spec):
            _build_driver_only(spec, out)
            say(f"kernel {release(out)} ready (the bqnic module built alone)")
            return
        if spec.prebuilt is not None:
            _build_on_prebuilt(spec, out)
            say(f"kernel {release(out)} ready (yours, from {spec.prebuilt}: bqnic built "
                "against it, nothing else)")
            return
        tree = _configured_tree(spec)
        src = (tree / "src").resolve()
        install_driver(src, spec.all_patches(), tree / "build.log", driver_dir(spec))
        jobs = str(os.cpu_count() or 2)
        log = tree / "build.log"
        run_logged("building the kernel (~6 min on 2 cores cold)",
                   ["make", f"-j{jobs}", MODULE_CFLAGS, NO_KCSAN, "bzImage", "modules"], log,
                   cwd=src)
        run_logged("installing modules",
                   ["make", f"INSTALL_MOD_PATH={out / 'modules'}", "INSTALL_MOD_STRIP=1",
                    "modules_install"], log, cwd=src)
        collect(src, src, out)
        _build_kcsan_twin(spec, src, out, log)
        say(f"kernel {release(out)} ready")

    return ensure(art, "guest kernel", inputs(spec), do_build, force=force)


def collect(src: Path, obj: Path, out: Path) -> None:
    """What a run needs of a built kernel, from its source tree src and its build tree obj
    (the same directory unless it was built with O=): the modules are installed already."""
    for name, rel in (("bzImage", "arch/x86/boot/bzImage"), ("config", ".config"),
                      ("System.map", "System.map")):
        shutil.copy2(obj / rel, out / name)
    _collect_debug(src, obj, out)
    for pattern in YNL_FILES:
        for f in src.glob(pattern):
            dest = out / "ynl" / f.relative_to(src)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest)
    version = (obj / "include/config/kernel.release").read_text().strip()
    (out / "release").write_text(version + "\n")
    kernel_features.write(out, src, version, (obj / ".config").read_text())


def release(art: Path) -> str:
    return (art / "release").read_text().strip()
