"""bqnic against every Debian kernel it is written for, compiled with W=1 against each
one's prepared headers (no kernel built): an API that moved in a newer kernel, or a new
warning, shows here before anyone boots that kernel. About a minute per kernel cold
(download, unpack, modules_prepare), seconds warm."""

import os
import subprocess
import sys

from bqlab.build import sources


def test_bqnic_builds_clean_against_every_supported_kernel() -> None:
    res = subprocess.run([sys.executable, "-m", "bqlab.cli", "build", "driver-check"],
                         env=dict(os.environ), capture_output=True, text=True, timeout=1500,
                         check=False)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    table = {line.split()[0]: line.split()[-1] for line in res.stdout.splitlines()
             if line.startswith("debian:")}
    assert table == {k.spelling: "clean" for k in sources.DEBIAN_KERNELS.values()
                     if not k.no_bqnic}


def test_a_kernel_bqnic_is_not_written_for_says_why() -> None:
    res = subprocess.run([sys.executable, "-m", "bqlab.cli", "build", "driver-check",
                          "--kernel", "debian:6.1"], capture_output=True, text=True,
                         timeout=60, check=False)
    assert res.returncode == 2 and "6.8+ APIs" in res.stderr, res.stderr
