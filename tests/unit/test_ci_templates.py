"""The CI templates under ci/ pass real linters from PyPI, offline: check-jsonschema with
its vendored GitHub workflow and GitLab CI schemas, zizmor (GitHub Actions static
analysis). Their bqlab command lines parse with bqlab's own CLI, and their matrix names
real NICs, shards and scenarios. A broken copy of each template must fail each check."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from bqlab import scenario
from bqlab.cli import build_parser
from bqlab.run import shard

REPO = Path(__file__).resolve().parents[2]
GITHUB = REPO / "ci" / "github" / "bqlab.yml"
ZIZMOR_CONFIG = REPO / "ci" / "github" / "zizmor.yml"
GITLAB = REPO / "ci" / "gitlab" / "bqlab.gitlab-ci.yml"
BIN = Path(sys.executable).parent
# Any attempt to reach the network fails fast: the linters must work offline.
OFFLINE = {**os.environ, **{k: "http://127.0.0.1:9" for k in (
    "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY")},
    "NO_PROXY": "", "no_proxy": ""}


def tool(name: str) -> str:
    path = BIN / name
    assert path.is_file(), f"{name} not in the venv: `make venv` installs the dev extra"
    return str(path)


def lint(argv: list[str]) -> str:
    """'' when the linter passes, else what it said."""
    res = subprocess.run(argv, env=OFFLINE, capture_output=True, text=True, timeout=120,
                         check=False)
    return "" if res.returncode == 0 else f"{' '.join(argv)}: exit {res.returncode}\n" \
        f"{res.stdout}{res.stderr}"


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        both = isinstance(v, dict) and isinstance(out.get(k), dict)
        out[k] = _deep_merge(out[k], v) if both else v
    return out


def expand_gitlab(doc: dict[str, Any]) -> dict[str, Any]:
    """The jobs as GitLab runs them: `extends` merged in, hidden templates dropped. The
    schema does not look inside hidden (`.name`) keys, where most of a template lives."""

    def resolved(name: str) -> dict:
        job = doc[name]
        parents = job.get("extends", [])
        merged: dict = {}
        for parent in [parents] if isinstance(parents, str) else parents:
            merged = _deep_merge(merged, resolved(parent))
        return _deep_merge(merged, {k: v for k, v in job.items() if k != "extends"})

    return {name: resolved(name) if isinstance(v, dict) else v
            for name, v in doc.items() if not name.startswith(".")}


def lint_github(path: Path) -> list[str]:
    return [p for p in (
        lint([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
              str(path)]),
        lint([tool("zizmor"), "--offline", "--no-progress", "--config", str(ZIZMOR_CONFIG),
              str(path)]),
    ) if p]


def lint_gitlab(path: Path, tmp_path: Path) -> list[str]:
    expanded = tmp_path / f"{path.stem}.expanded.json"
    expanded.write_text(json.dumps(expand_gitlab(yaml.safe_load(path.read_text()))))
    return [p for p in (
        lint([tool("check-jsonschema"), "--builtin-schema", "vendor.gitlab-ci", str(path)]),
        lint([tool("check-jsonschema"), "--builtin-schema", "vendor.gitlab-ci",
              str(expanded)]),
    ) if p]


def scripts(doc: dict[str, Any]) -> list[str]:
    """Every shell script in a GitHub workflow or a GitLab CI file."""
    out = []
    for job in doc.get("jobs", doc).values():
        if not isinstance(job, dict):
            continue
        out += [s["run"] for s in job.get("steps", []) if "run" in s]
        for key in ("before_script", "script", "after_script"):
            out += job.get(key, [])
    return out


def bqlab_commands(doc: dict[str, Any]) -> list[list[str]]:
    """The argv of every bqlab command in the scripts, variables replaced by `x`."""
    commands = []
    for text in scripts(doc):
        for line in text.replace("\\\n", " ").splitlines():
            m = re.search(r"(?:^|[\s/])bqlab\s+(.*)", line)
            if not m:
                continue
            rest = re.split(r"\s(?:\||>>?|;|&&|\|\|)\s", m.group(1))[0]
            rest = re.sub(r"\$\{\{[^}]*\}\}|\$\{?\w+\}?", "x", rest)
            commands.append(shlex.split(rest, comments=True))
    return commands


def command_problems(doc: dict[str, Any]) -> list[str]:
    problems = []
    commands = bqlab_commands(doc)
    if not commands:
        problems.append("no bqlab command found")
    for argv in commands:
        try:
            build_parser().parse_args(argv)
        except SystemExit:
            problems.append(f"bqlab {' '.join(argv)}: rejected by bqlab's CLI")
    return problems


def matrix_problems(entries: list[dict[str, Any]]) -> list[str]:
    """NIC, SHARD and scenario names of matrix entries (keys in any case)."""
    problems = []
    for entry in entries:
        e = {k.lower(): v for k, v in entry.items()}
        for nic in e["nic"] if isinstance(e["nic"], list) else [e["nic"]]:
            if nic not in scenario.NIC_MODELS:
                problems.append(f"{nic}: not a NIC model")
        for s in e["shard"] if isinstance(e["shard"], list) else [e["shard"]]:
            shard.parse(str(s))
        for name in str(e.get("scenarios", e.get("run"))).split():
            if name not in scenario.builtin_names():
                problems.append(f"{name}: not a built-in scenario")
    return problems


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def test_github_workflow_passes_the_linters() -> None:
    assert lint_github(GITHUB) == []


def test_gitlab_ci_passes_the_schema_as_written_and_expanded(tmp_path: Path) -> None:
    assert lint_gitlab(GITLAB, tmp_path) == []


@pytest.mark.parametrize("path", [GITHUB, GITLAB], ids=["github", "gitlab"])
def test_bqlab_commands_parse_with_the_cli(path: Path) -> None:
    doc = load(path)
    assert command_problems(doc) == []
    verbs = {tuple(argv[:2]) for argv in bqlab_commands(doc)}
    assert {("build", "--keys"), ("report", "merge")} <= verbs
    assert any(argv[0] == "run" and "--shard" in argv for argv in bqlab_commands(doc))


def test_matrices_name_real_nics_shards_and_scenarios() -> None:
    gh = load(GITHUB)["jobs"]["test"]["strategy"]["matrix"]["job"]
    gl = load(GITLAB)[".test"]["parallel"]["matrix"]
    assert matrix_problems(gh) == [] and matrix_problems(gl) == []
    nics = {e["nic"] for e in gh}
    assert nics == set(scenario.NIC_MODELS)


def test_files_and_make_targets_the_templates_use_exist() -> None:
    text = GITHUB.read_text() + GITLAB.read_text()
    for patch in set(re.findall(r"ci/patches/[\w.-]+", text)):
        assert (REPO / patch).is_file(), patch
    makefile = (REPO / "Makefile").read_text()
    lines = "\n".join(scripts(load(GITHUB)) + scripts(load(GITLAB)))
    targets = set(re.findall(r"^\s*make (\w+)", lines, re.MULTILINE))
    assert targets >= {"venv", "build"}
    for target in targets:
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), f"make {target}"


def test_needs_name_existing_jobs() -> None:
    gh = load(GITHUB)["jobs"]
    for job in gh.values():
        needs = job.get("needs", [])
        assert set([needs] if isinstance(needs, str) else needs) <= set(gh)
    gl = expand_gitlab(load(GITLAB))
    for job in gl.values():
        if isinstance(job, dict):
            names = {n["job"] if isinstance(n, dict) else n for n in job.get("needs", [])}
            assert names <= set(gl), names - set(gl)


# The checks can fail: a broken copy of each template.

def broken(tmp_path: Path, src: Path, old: str, new: str) -> Path:
    text = src.read_text()
    assert old in text, old
    out = tmp_path / src.name
    out.write_text(text.replace(old, new, 1))
    return out


def test_a_misspelled_key_fails_the_github_schema(tmp_path: Path) -> None:
    bad = broken(tmp_path, GITHUB, "    runs-on: ubuntu-24.04\n", "    runs_on: ubuntu-24.04\n")
    assert any("runs_on" in p for p in lint_github(bad))


def test_a_template_injection_fails_zizmor(tmp_path: Path) -> None:
    bad = broken(tmp_path, GITHUB, "      - run: make venv\n",
                 '      - run: echo "${{ github.event.pull_request.title }}"\n')
    assert any("template-injection" in p for p in lint_github(bad))


def test_a_misspelled_key_in_a_hidden_gitlab_template_fails_once_expanded(
        tmp_path: Path) -> None:
    bad = broken(tmp_path, GITLAB, "  script:\n    - make build\n",
                 "  scirpt:\n    - make build\n")
    problems = lint_gitlab(bad, tmp_path)
    assert len(problems) == 1 and "expanded" in problems[0] and "scirpt" in problems[0]


def test_a_misspelled_key_in_a_gitlab_job_fails(tmp_path: Path) -> None:
    bad = broken(tmp_path, GITLAB, "  stage: report\n", "  stag: report\n")
    assert any("stag" in p for p in lint_gitlab(bad, tmp_path))


def test_a_wrong_bqlab_option_fails(tmp_path: Path) -> None:
    bad = broken(tmp_path, GITHUB, '--shard "$SHARD"', '--shards "$SHARD"')
    assert command_problems(load(bad)) != []


def test_a_wrong_nic_fails() -> None:
    assert matrix_problems([{"NIC": "rtl8139", "SHARD": "1/1", "RUN": "smoke"}]) != []
