"""bqlab build --keys: the keys the builds use, printed without building or downloading,
changing when an input does."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bqlab.build import kernel, sources
from bqlab.build.kernel import KernelSpec

REPO = Path(__file__).resolve().parents[2]
BQLAB = [sys.executable, "-m", "bqlab.cli"]
VERSION = "6.12.117-1~deb12u1"
APT_CACHE = """#!/bin/sh
# A stand-in for apt-cache: `policy PACKAGE` with the candidate in $FAKE_CANDIDATE.
echo "$2:"
echo "  Installed: (none)"
echo "  Candidate: $FAKE_CANDIDATE"
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A copy of the sources the keys cover, an empty cache, a stand-in apt-cache."""
    root = tmp_path / "src"
    for d in ("guest-kernel", "images", "qemu-device"):
        shutil.copytree(REPO / d, root / d, ignore=shutil.ignore_patterns("__pycache__"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-cache").write_text(APT_CACHE)
    (bin_dir / "apt-cache").chmod(0o755)
    return dict(os.environ, BQLAB_ROOT=str(root), BQLAB_CACHE=str(tmp_path / "cache"),
                PATH=f"{bin_dir}:{os.environ['PATH']}", FAKE_CANDIDATE=VERSION,
                BQLAB_ARTIFACTS=str(tmp_path / "artifacts"))


def build_keys(env: dict[str, str], *args: str) -> dict[str, str]:
    res = subprocess.run([*BQLAB, "build", "--keys", *args], env=env, capture_output=True,
                         text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert all(line.count("=") == 1 for line in lines), res.stdout
    return dict(line.split("=") for line in lines)


def test_prints_name_key_lines_and_builds_nothing(env: dict[str, str]) -> None:
    got = build_keys(env)
    assert list(got) == ["qemu", "kernel", "image"]
    assert all(len(k) == 16 and int(k, 16) >= 0 for k in got.values())
    cache = Path(env["BQLAB_CACHE"])
    # Nothing built, nothing downloaded (not even the linux-source .deb).
    assert not cache.exists() or not any(cache.rglob("*"))


def test_json_and_one_artifact(env: dict[str, str]) -> None:
    res = subprocess.run([*BQLAB, "build", "--keys", "--json"], env=env, capture_output=True,
                         text=True, timeout=60, check=True)
    assert json.loads(res.stdout) == build_keys(env)
    assert build_keys(env, "image") == {"image": build_keys(env)["image"]}


def test_keys_follow_their_inputs(env: dict[str, str], tmp_path: Path) -> None:
    root = Path(env["BQLAB_ROOT"])
    before = build_keys(env)
    with (root / "guest-kernel" / "bqnic" / "bqnic_main.c").open("a") as f:
        f.write("/* changed */\n")
    driver = build_keys(env)
    assert {n for n in before if before[n] != driver[n]} == {"kernel", "image"}
    (root / "qemu-device" / "hw" / "net" / "extra.c").write_text("/* new */\n")
    device = build_keys(env)
    assert {n for n in driver if driver[n] != device[n]} == {"qemu"}
    patch = tmp_path / "fix.patch"
    patch.write_text("--- a/x\n+++ b/x\n")
    patched = build_keys(env, "--kernel-patch", str(patch))
    assert {n for n in device if device[n] != patched[n]} == {"kernel", "image"}
    newer = build_keys(dict(env, FAKE_CANDIDATE="6.12.118-1~deb12u1"))
    assert {n for n in device if device[n] != newer[n]} == {"kernel", "image"}


def test_keys_are_the_ones_the_build_uses(env: dict[str, str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Computed in-process the way kernel.build() does once the .deb is there."""
    for k in ("BQLAB_ROOT", "BQLAB_CACHE"):
        monkeypatch.setenv(k, env[k])
    monkeypatch.setattr(sources, "linux_source_deb", lambda kernel=None: Path("/cached.deb"))
    monkeypatch.setattr(sources, "linux_source_version", lambda deb: VERSION)
    assert build_keys(env)["kernel"] == kernel.artifact(KernelSpec()).key


def test_a_cached_deb_is_used_as_the_build_would(env: dict[str, str], tmp_path: Path) -> None:
    """With the .deb in the download cache its version counts, not apt's candidate."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb not installed")
    pkg = tmp_path / "pkg"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN" / "control").write_text(
        f"Package: {sources.LINUX_SOURCE_PACKAGE}\nVersion: {VERSION}\nArchitecture: all\n"
        "Maintainer: bqlab tests <t@localhost>\nDescription: stand-in\n")
    downloads = Path(env["BQLAB_CACHE"]) / "downloads"
    downloads.mkdir(parents=True)
    subprocess.run(["dpkg-deb", "-b", str(pkg),
                    str(downloads / f"{sources.LINUX_SOURCE_PACKAGE}_{VERSION}_all.deb")],
                   check=True, capture_output=True)
    from_deb = build_keys(dict(env, FAKE_CANDIDATE="9.9-not-this-one"))
    (next(downloads.iterdir())).unlink()
    assert build_keys(env) == from_deb


def test_no_candidate_is_an_infrastructure_error(env: dict[str, str]) -> None:
    res = subprocess.run([*BQLAB, "build", "--keys"], env=dict(env, FAKE_CANDIDATE="(none)"),
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 3
    assert "apt-get update" in res.stderr


def test_a_user_tree_needs_no_apt(env: dict[str, str], tmp_path: Path) -> None:
    tree = tmp_path / "linux"
    tree.mkdir()
    (tree / "Makefile").write_text("# a kernel tree\n")
    got = build_keys(dict(env, FAKE_CANDIDATE="(none)"), "--kernel-tree", str(tree))
    assert got["kernel"] != build_keys(env)["kernel"]


def test_json_without_keys_is_bad_input(env: dict[str, str]) -> None:
    res = subprocess.run([*BQLAB, "build", "--json"], env=env, capture_output=True,
                         text=True, timeout=60, check=False)
    assert res.returncode == 2 and "--json goes with --keys" in res.stderr
