"""bqnic compiled against every Debian kernel bqlab supports, without building any of them:
each linux-source unpacked once, configured like the guest kernel (tinyconfig + the
fragments) and `make modules_prepare`d, then the driver built with M= and W=1. Minutes per
kernel cold, seconds warm; `make test` runs it so an API change in a newer kernel shows
before anyone boots it.

The prepared trees are kept under kernel-headers/ (keyed by source and config); the result
of one driver against one tree is an artifact (driver-check/) holding the build log.
"""

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInput, InfraError
from ..progress import run_logged, say
from . import kernel, sources
from .cachekey import make_key
from .store import Artifact, ensure

RECIPE = 1


@dataclass(frozen=True)
class Result:
    kernel: str  # debian:X.Y
    version: str
    warnings: list[str]
    log: Path


def _tree_inputs(k: sources.DebianKernel) -> dict:
    # what the guest kernel's tree is made of (source, series, fragments), nothing else
    return {**kernel.tree_inputs(kernel.KernelSpec(debian=k.name)), "headers": RECIPE}


def prepared_tree(k: sources.DebianKernel) -> Path:
    """linux-source-X.Y unpacked, patched and configured as the guest kernel is, then
    modules_prepare'd (cached)."""
    inputs = _tree_inputs(k)
    art = Artifact("kernel-headers", make_key(inputs))

    def prepare(out: Path) -> None:
        log = out / "build.log"
        src = kernel.configured_source(kernel.KernelSpec(debian=k.name), out, log)
        run_logged(f"make modules_prepare ({k.package})",
                   ["make", f"-j{os.cpu_count() or 2}", "modules_prepare"], log, cwd=src)
        (out / "src").symlink_to(src.name)

    return ensure(art, f"{k.package} headers", inputs, prepare) / "src"


def check(k: sources.DebianKernel) -> Result:
    """bqnic (as in guest-kernel/bqnic) built against k with W=1; warnings are errors of
    this check, not of the build (the result lists them)."""
    tree = prepared_tree(k).resolve()
    inputs = {"recipe": RECIPE, "tree": tree.parent.name, "driver": kernel.driver_inputs()}
    art = Artifact("driver-check", make_key(inputs))

    def compile_driver(out: Path) -> None:
        log = out / "build.log"
        with tempfile.TemporaryDirectory(prefix="bqnic-check-") as tmp:
            kernel.install_driver(Path(tmp), [], log, kernel.driver_dir())
            module_dir = Path(tmp) / kernel.DRIVER_IN_TREE
            run_logged(f"compiling bqnic against {k.package} (W=1)",
                       ["make", f"-j{os.cpu_count() or 2}", f"M={module_dir}",
                        "CONFIG_BQNIC=m", "W=1", "KBUILD_MODPOST_WARN=1", "modules"],
                       log, cwd=tree)
            if not (module_dir / "bqnic.ko").is_file():
                raise InfraError(f"bqnic.ko was not built against {k.package}; see {log}")

    path = ensure(art, f"bqnic against {k.package}", inputs, compile_driver)
    log = path / "build.log"
    warnings = [line for line in log.read_text().splitlines() if "warning:" in line]
    version = sources.linux_source_version(sources.linux_source_deb(k))
    return Result(k.spelling, version, warnings, log)


def check_all(names: list[str] | None = None) -> list[Result]:
    """names: each must build; none: every Debian kernel bqnic is written for."""
    results = []
    for name in names or [n for n, k in sources.DEBIAN_KERNELS.items() if not k.no_bqnic]:
        k = sources.debian_kernel(name)
        if k.no_bqnic:
            raise BadInput(f"{k.spelling}: {k.no_bqnic}")
        results.append(check(k))
        say(f"bqnic against {k.spelling}: " +
            (f"{len(results[-1].warnings)} warning(s)" if results[-1].warnings else "clean"))
    return results

