"""Export the bqnic driver as a `git format-patch` series against the kernel source, the way
it would be posted to netdev."""

import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import InfraError
from . import kernel

HOOKED = ("drivers/net/ethernet/Kconfig", "drivers/net/ethernet/Makefile")
HOOK_PATCH = "0001-net-ethernet-hook-up-the-bqnic-driver.patch"
MESSAGE = """\
net: ethernet: add bqnic driver

bqnic is the emulated NIC of bqlab: a PCIe device with qlge-style small
and large rx buffer queues, completion queues and MSI-X. The driver uses
one page_pool per rx queue, refills from NAPI and falls back to a delayed
work with GFP_KERNEL when NAPI cannot refill and the device is left with
too few buffers, so an allocation failure cannot stall reception. It
supports XDP (pass, drop, tx, redirect, ndo_xdp_xmit), netdev qstats and
page_pool stats.

Three module parameters bring known bugs back on purpose (refill only
from NAPI; ring pages leaked on close; XDP_TX error-path page leak), so
that test harnesses can prove they catch them.
"""


def _git(work: Path, *args: str) -> str:
    res = subprocess.run(["git", "-c", "user.name=bqlab", "-c", "user.email=bqlab@localhost",
                          *args], cwd=work, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise InfraError(f"git {' '.join(args)}: {res.stderr.strip()}")
    return res.stdout


def export_series(tree: Path, out_dir: Path) -> list[Path]:
    """tree: a configured kernel tree (the hook patch applied). Returns the patch files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    hook = kernel.kernel_dir() / "patches" / HOOK_PATCH
    with tempfile.TemporaryDirectory(prefix="bqnic-series-") as tmp:
        work = Path(tmp)
        for rel in HOOKED:
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(tree / rel, work / rel)
        # Undo the hook to get the pristine files the series applies to.
        subprocess.run(["patch", "-R", "-p1", "--batch", "-s", "-i", str(hook)], cwd=work,
                       check=True)
        _git(work, "init", "-q")
        _git(work, "add", ".")
        _git(work, "commit", "-q", "-m", "base")
        subprocess.run(["patch", "-p1", "--batch", "-s", "-i", str(hook)], cwd=work, check=True)
        dest = work / kernel.DRIVER_IN_TREE
        dest.mkdir(parents=True)
        for f in sorted(kernel.driver_dir().iterdir()):
            if f.is_file() and not f.name.endswith(".md"):
                shutil.copy2(f, dest / f.name)
        _git(work, "add", ".")
        subprocess.run(["git", "-c", "user.name=bqlab", "-c", "user.email=bqlab@localhost",
                        "commit", "-q", "-s", "-F", "-"], cwd=work, input=MESSAGE, text=True,
                       check=True)
        names = _git(work, "format-patch", "-1", "-o", str(out_dir.resolve()))
    return [Path(n) for n in names.split()]
