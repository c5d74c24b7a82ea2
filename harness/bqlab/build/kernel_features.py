"""What differs between the kernels bqlab runs, found in one place from the kernel's tree.

Each kernel artifact carries FEATURES_FILE, read from the tree it was built from: the
image lays out the guest by it (where ynl lives), and the run tells from it which
witnesses a verdict has (a kernel without page-pool netlink leaves the ledger alone).
Nothing here assumes a version: it looks at the files and the config.
"""

import json
import re
from pathlib import Path

FEATURES_FILE = "features.json"
# The kernel's ynl Python library and CLI moved in 6.14 (tools/net/ynl/pyynl/{cli.py,lib});
# before, since 6.5, they were tools/net/ynl/{cli.py,lib}. Newest first.
YNL_LAYOUTS = ("tools/net/ynl/pyynl", "tools/net/ynl")
NETDEV_SPEC = "Documentation/netlink/specs/netdev.yaml"
# What the harness reads over netlink, and the witness each is (judge/ names the loss).
NETDEV_OPS = {
    "page-pool-get": "page_pool netlink (pools of the DUT, inflight, detach time)",
    "qstats-get": "per-queue qstats (rx packets and allocation failures per queue)",
}
# Config options whose absence costs a witness, not the run (see config_gaps in prebuilt).
CONFIG_WITNESSES = {
    "CONFIG_PAGE_POOL_STATS": "page_pool alloc-fail and recycle counters",
    "CONFIG_KCSAN": "bqnic's KCSAN twin (the data-race verdict)",
    "CONFIG_DMA_API_DEBUG": "the dma verdict (leaked DMA mappings)",
    "CONFIG_FAIL_FUNCTION": "fail_function injection (rx_alloc pressure on bqnic's refill)",
    "CONFIG_FAIL_PAGE_ALLOC": "fail_page_alloc injection (rx_alloc pressure on other NICs)",
    "CONFIG_FAILSLAB": "failslab injection (xarray-nomem)",
    "CONFIG_DEBUG_ATOMIC_SLEEP": "the console verdict on sleeping in atomic context "
                                 "(xarray-nomem; otherwise only if it really sleeps)",
}

# Options a newer kernel renamed: bqlab's fragments use the old name, which older kernels
# need; on a kernel that has only the new one, that one stands for it.
CONFIG_RENAMES = {
    "CONFIG_PROC_SYSCTL": "CONFIG_SYSCTL",  # 7.3
}


# Error-injection points a newer kernel moved: a scenario names the one it means (6.12's),
# the kernel's System.map says which it has. page_pool's allocator became
# page_pool_alloc_netmems() (ALLOW_ERROR_INJECTION moved with it; page_pool_alloc_pages()
# is a wrapper fail_function refuses with ERANGE).
INJECTION_SUCCESSORS = {
    "page_pool_alloc_pages": ("page_pool_alloc_netmems",),
}
EIL_SYMBOL = re.compile(r"^\S+ \w _eil_addr_(\w+)$", re.MULTILINE)


def injectable(system_map: str) -> set[str]:
    """The functions ALLOW_ERROR_INJECTION marks in a kernel (fail_function's targets)."""
    return set(EIL_SYMBOL.findall(system_map))


def injection_point(kernel_art: Path, function: str) -> str:
    """function, or the successor this kernel marks instead; function itself when the
    kernel's System.map is not there to ask (fail_function then says what it thinks)."""
    try:
        marked = injectable((kernel_art / "System.map").read_text())
    except OSError:
        return function
    if function in marked:
        return function
    return next((f for f in INJECTION_SUCCESSORS.get(function, ()) if f in marked), function)

def config_value(have: dict[str, str], option: str) -> str:
    """option's value in a config (have: CONFIG_X -> value), through a rename."""
    if option not in have and option in CONFIG_RENAMES:
        return have.get(CONFIG_RENAMES[option], "n")
    return have.get(option, "n")


def ynl_dir(root: Path) -> str | None:
    """The directory (relative to root, a kernel tree or its copy) holding ynl's cli.py
    and lib/, or None for a kernel without ynl (before 6.5)."""
    for rel in YNL_LAYOUTS:
        if (root / rel / "cli.py").is_file() and (root / rel / "lib" / "__init__.py").is_file():
            return rel
    return None


def netdev_ops(spec: Path) -> list[str]:
    """The operations of the netdev netlink family the spec declares (no YAML parser:
    the ops are `- name: X` lines under `operations:`; the order is the spec's)."""
    if not spec.is_file():
        return []
    text = spec.read_text()
    start = text.find("\noperations:")
    if start < 0:
        return []
    return re.findall(r"^\s+-\s*name:\s*([\w-]+)\s*$", text[start:], re.MULTILINE)


def version_of(release: str) -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", release)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def features(src: Path, release: str, config_text: str) -> dict:
    ops = netdev_ops(src / NETDEV_SPEC)
    have = {m.group(1) for m in re.finditer(r"^(CONFIG_\w+)=[ym]", config_text, re.MULTILINE)}
    return {
        "release": release,
        "version": list(version_of(release)),
        "ynl": ynl_dir(src),
        "netdev_ops": [op for op in NETDEV_OPS if op in ops],
        "config": sorted(opt for opt in CONFIG_WITNESSES if opt in have),
    }


def write(out: Path, src: Path, release: str, config_text: str) -> dict:
    found = features(src, release, config_text)
    (out / FEATURES_FILE).write_text(json.dumps(found, indent=1) + "\n")
    return found


def read(kernel_art: Path) -> dict:
    """A kernel artifact's features; one from before they were recorded is a 6.12 one."""
    try:
        return json.loads((kernel_art / FEATURES_FILE).read_text())
    except (OSError, ValueError):
        return {"ynl": "tools/net/ynl", "netdev_ops": list(NETDEV_OPS),
                "config": sorted(CONFIG_WITNESSES)}


def lost_witnesses(found: dict) -> list[str]:
    """What this kernel cannot show, each as 'WHAT (why)'."""
    lost = []
    if found.get("ynl") is None:
        lost.append("every netlink witness (no ynl in this kernel's tree)")
    for op, what in NETDEV_OPS.items():
        if found.get("ynl") is not None and op not in found.get("netdev_ops", []):
            lost.append(f"{what} (netdev netlink has no {op})")
    for opt, what in CONFIG_WITNESSES.items():
        if opt not in found.get("config", []):
            lost.append(f"{what} ({opt} is not set)")
    return lost
