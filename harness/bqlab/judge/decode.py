"""Decode a console report's stack with the kernel tree's own scripts/decode_stacktrace.sh:
frames in the modules (the NIC drivers under test, built with line info) get file:line.
Frames in vmlinux stay as printed unless the kernel was built with DEBUG_INFO (a config
fragment): decode_stacktrace.sh leaves a frame it cannot place alone."""

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..build.kernel import DEBUG_DIR, KCSAN_DIR

MODULES = "modules"  # under DEBUG_DIR: the modules as installed
KCSAN_MODULES = KCSAN_DIR  # the KCSAN twins, for a DUT that ran one

# "bqnic_poll (drivers/net/ethernet/bqnic/bqnic_main.c:812)": a frame decode placed; with
# inlining, the chain innermost first: "bqnic_poll (./include/linux/skbuff.h:2485
# drivers/net/ethernet/bqnic/bqnic_main.c:604 drivers/net/ethernet/bqnic/bqnic_main.c:678)"
_PLACED = re.compile(r"([\w.]+) \(((?:\S+?\.[ch]:\d+ ?)+)\)")
_RIP = re.compile(r"\bRIP: \w+:")


@dataclass(frozen=True)
class Decoded:
    text: str  # the excerpt as decode_stacktrace.sh printed it
    where: str | None  # "function (file:line)" of the faulting frame, if placed

    @property
    def placed(self) -> int:
        return len(_PLACED.findall(self.text))


def available(kernel_art: Path) -> bool:
    return (kernel_art / DEBUG_DIR / "decode_stacktrace.sh").is_file()


def where(decoded: str) -> str | None:
    """The faulting frame (RIP), else the first frame that got a file:line: its innermost
    line, and the first line outside a header when that was inlined into it."""
    lines = decoded.splitlines()
    for line in [ln for ln in lines if _RIP.search(ln)] + lines:
        m = _PLACED.search(line)
        if m:
            chain = [loc.removeprefix("./") for loc in m.group(2).split()]
            outside = next((loc for loc in chain if not loc.startswith("include/")), None)
            place = chain[0] + (f", inlined in {outside}"
                                if outside is not None and outside != chain[0] else "")
            return f"{m.group(1)} ({place})"
    return None


def decode(excerpt: str, kernel_art: Path, modules: str = MODULES,
           timeout: float = 60) -> Decoded | None:
    """None when the kernel artifact has no decoding material (built before bqlab kept
    it) or the script failed; a report is never lost for want of decoding."""
    debug = kernel_art / DEBUG_DIR
    if not available(kernel_art):
        return None
    basepath = (debug / "basepath").read_text().strip()
    try:
        res = subprocess.run(["bash", str(debug / "decode_stacktrace.sh"),
                              str(debug / "vmlinux"), basepath, str(debug / modules)],
                             input=excerpt, capture_output=True, text=True,
                             timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if res.returncode != 0 or not res.stdout.strip():
        return None
    return Decoded(res.stdout, where(res.stdout))
