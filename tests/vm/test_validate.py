"""bqlab validate on a real fix: the driver built without its refill fallback (the base)
against the base plus the patch that restores it, and against the base plus a patch that
changes nothing (tests/vm/patches/validate/)."""

import json
from pathlib import Path

from .conftest import run_bqlab

PATCHES = Path(__file__).parent / "patches" / "validate"
BASE = ["--base-patch", str(PATCHES / "base-refill-fallback-off.patch")]


def _validate(args: list[str], env: dict[str, str], artifacts: Path) -> tuple[int, dict, str]:
    res = run_bqlab(["validate", *BASE, *args], env, timeout=1800)
    [path] = artifacts.glob("*-validate/report.json")
    return res.returncode, json.loads(path.read_text()), res.stdout


def test_validate_confirms_a_fix(built, bqlab_env: dict[str, str], tmp_path: Path) -> None:
    code, report, out = _validate(
        ["--kernel-patch", str(PATCHES / "fix-restore-refill-fallback.patch"),
         "--repeat", "1", "rx-stall"], bqlab_env, tmp_path / "artifacts")
    [sc] = report["scenarios"]
    stall = next(v for v in sc["verdicts"] if v["name"] == "rx-stall")
    assert (code, sc["conclusion"]) == (0, "fix confirmed"), out
    # one run each keeps the suite short; the counts and p-value are unit-tested
    assert (stall["before"], stall["after"]) == ({"STALL": 1}, {"PASS": 1})
    assert "rx-stall: fix confirmed: rx-stall STALL 1/1 before, PASS 1/1 after" in out
    assert report["after"].endswith("fix-restore-refill-fallback.patch")


def test_validate_says_when_a_patch_has_no_effect(built, bqlab_env: dict[str, str],
                                                  tmp_path: Path) -> None:
    code, report, out = _validate(
        ["--kernel-patch", str(PATCHES / "no-effect.patch"), "--repeat", "1", "rx-stall"],
        bqlab_env, tmp_path / "artifacts")
    [sc] = report["scenarios"]
    assert (code, sc["conclusion"]) == (1, "no effect"), out
    assert "no effect: rx-stall STALL 1/1 before, STALL 1/1 after" in out
