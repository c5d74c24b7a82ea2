"""The run-time packages cover every library the built QEMU loads.

A QEMU restored from a cache (CI) runs on a machine that never installed its -dev build
packages: each shared library must come from a package in hostdeps.VM_RUNTIME or one of
their dependencies."""

import re
import subprocess
from pathlib import Path

from bqlab import hostdeps


def _owner(lib: str) -> str:
    res = subprocess.run(["dpkg-query", "-S", lib], capture_output=True, text=True,
                         check=False)
    if res.returncode != 0:  # /lib is a symlink to /usr/lib on Debian 12: try the other
        alt = lib.removeprefix("/usr") if lib.startswith("/usr/") else "/usr" + lib
        res = subprocess.run(["dpkg-query", "-S", alt], capture_output=True, text=True,
                             check=True)
    return res.stdout.split(":", 1)[0].strip()


def _depends_closure(packages: list[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(packages)
    while todo:
        pkg = todo.pop()
        if pkg in seen:
            continue
        seen.add(pkg)
        res = subprocess.run(["dpkg-query", "-W", "-f=${Depends},${Pre-Depends}", pkg],
                             capture_output=True, text=True, check=False)
        for alt in res.stdout.split(","):
            name = re.split(r"[\s(:]", alt.split("|")[0].strip())[0]
            if name:
                todo.append(name)
    return seen


def test_every_qemu_library_comes_from_the_runtime_packages(qemu_binary: Path) -> None:
    ldd = subprocess.run(["ldd", str(qemu_binary)], capture_output=True, text=True,
                         check=True).stdout
    libs = [m.group(1) for m in re.finditer(r"=> (/\S+)", ldd)]
    assert libs, ldd
    allowed = _depends_closure(hostdeps.VM_RUNTIME) | {"libc6"}
    owners = {lib: _owner(str(Path(lib).resolve())) for lib in libs}
    stray = {lib: pkg for lib, pkg in owners.items() if pkg not in allowed}
    assert not stray, f"libraries from packages not in hostdeps.VM_RUNTIME: {stray}"
