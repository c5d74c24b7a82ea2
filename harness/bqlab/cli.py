"""The `bqlab` command line."""

import argparse
import json
import sys
import traceback
from typing import TextIO

from .errors import BadInput, BqlabError, ExitCode


def _kernel_spec(args: argparse.Namespace):
    from .build.kernel import KernelSpec

    return KernelSpec.from_env(args.kernel_tree, args.kernel_patch, args.kernel_config,
                               args.kernel, args.kernel_build)


def cmd_build(args: argparse.Namespace) -> int:
    from .build import image, kernel, qemu

    if args.keys or args.json:
        return _print_keys(args)
    what = args.what
    if what == "driver-check":
        return _driver_check(args)
    if args.sanitize and what != "qemu":
        raise BadInput("--sanitize goes with `bqlab build qemu`")
    if what in ("all", "qemu"):
        qemu.build(force=args.force, sanitize=args.sanitize)
    if what in ("all", "kernel", "image"):
        spec = _kernel_spec(args)
        k = kernel.build(spec, force=args.force and what != "image")
        if what in ("all", "image"):
            image.build(k, force=args.force)
    return ExitCode.PASS


def _driver_check(args: argparse.Namespace) -> int:
    """bqnic compiled (W=1) against each Debian kernel's prepared headers, none built."""
    from .build import driver_check

    if args.kernel_tree or args.kernel_build or args.kernel_patch:
        raise BadInput("driver-check builds against Debian's kernels: give --kernel NAME "
                       "or nothing (all of them)")
    results = driver_check.check_all([args.kernel] if args.kernel else None)
    for r in results:
        print(f"{r.kernel:<14} {r.version:<20} "
              f"{len(r.warnings)} warning(s)" if r.warnings else
              f"{r.kernel:<14} {r.version:<20} clean")
        for w in r.warnings:
            print(f"  {w}")
    return ExitCode.VERDICT_FAILED if any(r.warnings for r in results) else ExitCode.PASS


def _print_keys(args: argparse.Namespace) -> int:
    """`build --keys`: the input keys, name=key per line, for a CI cache key."""
    from .build.keys import artifact_keys
    from .errors import BadInput

    if not args.keys:
        raise BadInput("--json goes with --keys (bqlab build --keys --json)")
    keys = artifact_keys(_kernel_spec(args), args.what)
    if args.json:
        print(json.dumps(keys, indent=2))
    else:
        print("\n".join(f"{name}={key}" for name, key in keys.items()))
    return ExitCode.PASS


def cmd_paths(args: argparse.Namespace) -> int:
    from .build.artifacts import resolve_paths

    paths = resolve_paths(_kernel_spec(args), build_missing=False)
    if args.json:
        print(json.dumps(paths, indent=2))
    else:
        for k, v in paths.items():
            print(f"{k:14} {v}")
    return ExitCode.PASS


def _built(args: argparse.Namespace, purpose: str = "run"):
    """Run-time packages first (a cached build brings none), then the built artifacts."""
    from . import hostdeps
    from .build.artifacts import resolve

    hostdeps.require(purpose)
    return resolve(_kernel_spec(args), build_missing=True)


def say_accelerator(built) -> None:
    """The run's first line after the build: which accelerator, and why."""
    from .progress import say
    from .vm import accel
    from .vm.machine import firmware_args

    say(f"accelerator: {accel.choose(built.qemu, built.bzimage, firmware_args())}")


UNTIL_FAIL_CAP = 100  # --until-fail without --repeat: at most this many runs each


def cmd_run(args: argparse.Namespace) -> int:
    from . import scenario

    # Validate every option and scenario before building or booting anything.
    if args.repeat < 1:
        raise BadInput(f"--repeat {args.repeat}: expected at least 1")
    if args.until_fail and args.repeat == 1:
        args.repeat = UNTIL_FAIL_CAP
    scenarios = [scenario.load(name, args.set or []) for name in args.scenarios]
    return _run_scenarios(args, scenarios)


def cmd_selftests(args: argparse.Namespace) -> int:
    """The kernel's drivers/net selftests against the DUT: the built-in `selftests`
    scenario, for the NIC model asked, with only the tests named."""
    from . import scenario

    overrides = [*(args.set or []), *([f"vms.dut.nic={args.nic}"] if args.nic else [])]
    sc = scenario.load("selftests", overrides)
    if args.tests:
        known = [s["test"] for s in sc.steps if s["kind"] == "selftest"]
        unknown = [t for t in args.tests if t not in known]
        if unknown:
            raise BadInput(f"unknown selftest(s) {', '.join(unknown)}; expected some of "
                           f"{', '.join(known)}")
        sc.steps = [s for s in sc.steps
                    if s["kind"] != "selftest" or s["test"] in args.tests]
    args.repeat, args.until_fail, args.format = 1, False, "table"
    args.shard, args.label = None, None
    return _run_scenarios(args, [sc])


def _run_scenarios(args: argparse.Namespace, scenarios: list) -> int:
    from .run.report import summary_table
    from .run.runner import run_scenario

    scenarios = _shard_and_label(args, scenarios)
    if not scenarios:  # an empty shard: said so, and left a shard.json for the merge
        return ExitCode.PASS
    built = _built(args)
    say_accelerator(built)
    reports = []
    try:
        for sc in scenarios:
            for i in range(args.repeat):
                if args.repeat > 1:
                    from .progress import say

                    say(f"{sc.name}: run {i + 1} of {args.repeat}")
                reports.append(run_scenario(sc, built,
                                            getattr(args, "snapshot_on_fail", False)))
                if args.until_fail and reports[-1].exit_code != ExitCode.PASS:
                    break
    finally:
        if reports and (args.repeat > 1 or args.until_fail):
            _write_tally(reports)
        if reports:
            out = sys.stderr if args.format == "ktap" else sys.stdout  # KTAP alone on stdout
            print(summary_table(reports), file=out)
            for r in reports:
                print(f"artifacts: {r.artifacts}", file=out)
            if len(reports) > 1:
                _write_index([r.artifacts for r in reports], out)
            if args.format == "ktap":
                from .run.ktap import render

                print(render([r.as_dict() for r in reports]), end="")
    return max(int(r.exit_code) for r in reports)


def _write_tally(reports: list) -> None:
    from .run import repeat
    from .run.rundir import new_run_dir

    tallies = repeat.tally([r.as_dict() for r in reports])
    path = repeat.write(new_run_dir("repeat"), tallies)
    print(repeat.render(tallies), file=sys.stderr)
    print(f"tally: {path}", file=sys.stderr)


def cmd_validate(args: argparse.Namespace) -> int:
    """The scenarios on the base kernel and on base + the patches (or another tree),
    --repeat times each, interleaved; a before/after table and a conclusion each."""
    from pathlib import Path

    from . import hostdeps, scenario
    from .build.artifacts import resolve
    from .build.kernel import KernelSpec
    from .progress import say
    from .run import validate
    from .run.rundir import new_run_dir
    from .run.runner import run_scenario

    if args.repeat < 1:
        raise BadInput(f"--repeat {args.repeat}: expected at least 1")
    if not args.kernel_patch and not args.after_tree:
        raise BadInput("nothing to validate: give the patches under test (--kernel-patch "
                       "FILE, repeatable) or the tree to compare with (--after-tree DIR)")
    scenarios = [scenario.load(name, args.set or []) for name in args.scenarios]
    before = KernelSpec.from_env(args.kernel_tree, args.base_patch, args.kernel_config,
                                 args.kernel)
    after = KernelSpec(Path(args.after_tree).expanduser().resolve() if args.after_tree
                       else before.tree,
                       before.patches + tuple(Path(p).resolve()
                                              for p in args.kernel_patch or []),
                       before.fragments, debian=before.debian)
    after.validate()
    hostdeps.require("run")
    say("validate: the base kernel (before)")
    built_before = resolve(before, build_missing=True)
    say("validate: the base kernel with the change (after)")
    built_after = resolve(after, build_missing=True)
    say_accelerator(built_before)
    results = []
    for sc in scenarios:
        runs: dict[str, list[dict]] = {"before": [], "after": []}
        name = sc.name
        for i in range(args.repeat):
            # Interleaved: whatever the host does meanwhile falls on both sides alike.
            for side, built in (("before", built_before), ("after", built_after)):
                say(f"{name}: {side}, run {i + 1} of {args.repeat}")
                sc.name = f"{name}@{side}"
                rep = run_scenario(sc, built).as_dict()
                rep["scenario"] = name
                runs[side].append(rep)
        sc.name = name
        got = validate.conclude(name, runs["before"], runs["after"], args.expect)
        print(validate.render(name, validate.rows(runs["before"], runs["after"])))
        print(f"{name}: {got.text}")
        results.append((got, runs["before"], runs["after"]))
    path = validate.write(new_run_dir("validate"), _describe(before), _describe(after),
                          results)
    print(f"validate: {path}")
    return max(c.exit_code for c, _, _ in results)


def cmd_bisect(args: argparse.Namespace) -> int:
    """git bisect over a kernel or driver history, each step judged by --repeat runs."""
    from collections import Counter
    from pathlib import Path

    from . import hostdeps, scenario
    from .build.artifacts import resolve
    from .build.cachekey import make_key
    from .build.kernel import KernelSpec
    from .errors import InfraError
    from .paths import cache_root
    from .progress import say
    from .run import bisect, repeat
    from .run.rundir import new_run_dir, write_json
    from .run.runner import run_scenario

    if args.repeat < 1:
        raise BadInput(f"--repeat {args.repeat}: expected at least 1")
    if (args.kernel_tree is None) == (args.driver_tree is None):
        raise BadInput("bisect which history? give --kernel-tree DIR (a Linux tree) or "
                       "--driver-tree DIR (a repository with the bqnic driver), one of them")
    repo = bisect.check_repo(Path(args.kernel_tree or args.driver_tree))
    good, bad = bisect.resolve_commit(repo, args.good), bisect.resolve_commit(repo, args.bad)
    sc = scenario.load(args.scenario, args.set or [])
    if args.driver_tree:
        rel = Path(args.driver_path)
        if rel.is_absolute() or ".." in rel.parts:
            raise BadInput(f"--driver-path {rel}: expected a path inside the repository")
        if not bisect.has_file(repo, bad, f"{rel.as_posix()}/bqnic_main.c"):
            raise BadInput(f"--driver-path {rel}: no bqnic_main.c there at {args.bad}")
    hostdeps.require("run")
    base = KernelSpec.from_env(None, args.kernel_patch, args.kernel_config, args.kernel)
    steps: list[bisect.Step] = []
    where = cache_root() / "bisect" / make_key({"repo": str(repo)})
    with bisect.Worktree(repo, where) as wt:
        out = bisect.git(wt.path, "bisect", "start", bad, good, "--")
        result = bisect.outcome_of(out)
        while result is None:
            commit, subject = wt.head()
            say(f"bisect: {commit[:12]} {subject}")
            spec = KernelSpec(wt.path if args.kernel_tree else None, base.patches,
                              base.fragments,
                              wt.path / args.driver_path if args.driver_tree else None,
                              debian=base.debian)
            try:
                built = resolve(spec, build_missing=True)
            except InfraError as e:  # the commit does not build: git bisect skip
                step = bisect.Step(commit, subject, "skip", why=f"does not build: {e}")
            else:
                reports = []
                for i in range(args.repeat):
                    sc.name = f"{args.scenario}@{commit[:12]}"
                    say(f"bisect: {commit[:12]} run {i + 1} of {args.repeat}")
                    reports.append(run_scenario(sc, built).as_dict())
                    if reports[-1]["exit_code"] != ExitCode.PASS:
                        break  # one failure is enough to call it bad
                mark = bisect.judge(reports)
                step = bisect.Step(commit, subject, mark,
                                   dict(Counter(repeat.outcome(r) for r in reports)),
                                   [r["artifacts"] for r in reports])
                if mark == "error":
                    steps.append(step)
                    raise InfraError(f"bisect stopped at {commit[:12]}: a run could not "
                                     f"finish (host side): {reports[-1]['artifacts']}")
            steps.append(step)
            result = bisect.outcome_of(bisect.git(wt.path, "bisect", step.mark))
        first_subject = "" if result == "skipped" else \
            bisect.git(repo, "log", "-1", "--format=%s", result).strip()
    print(bisect.render(steps, result, first_subject))
    path = new_run_dir("bisect") / "report.json"
    write_json(path, {"schema": bisect.SCHEMA, "repository": str(repo), "good": good,
                      "bad": bad, "scenario": args.scenario, "repeat": args.repeat,
                      "first_bad": None if result == "skipped" else result,
                      "first_bad_subject": first_subject,
                      "steps": [vars(s) for s in steps]})
    print(f"bisect: {path}")
    return ExitCode.PASS if result != "skipped" else ExitCode.VERDICT_FAILED


def _describe(spec) -> str:
    tree = str(spec.tree) if spec.tree else "Debian linux-source-6.12"
    return tree + "".join(f" + {p.name}" for p in spec.patches)


def cmd_selfcheck(args: argparse.Namespace) -> int:
    """Every built-in (or the given scenarios) against its `expect:`: does bqlab still see
    the bugs its negative controls plant, on this kernel, and pass the positives?"""
    from . import scenario
    from .run.runner import run_scenario
    from .scenario.expect import check

    # `selftests` is the kernel's tests of the driver, not a check of bqlab's verdicts:
    # `bqlab selftests` runs it.
    names = args.scenarios or [n for n in scenario.builtin_names() if n != "selftests"]
    scenarios = [scenario.load(name, args.set or []) for name in names]
    built = _built(args)
    say_accelerator(built)
    rows = []
    code = ExitCode.PASS
    for sc in scenarios:
        rep = run_scenario(sc, built)
        got = check(sc.expect, rep.as_dict())
        rows.append((sc.name, got.expected, got.got, "ok" if got.met else "MISMATCH",
                     got.detail, str(rep.artifacts)))
        if not got.met:
            # A run the lab could not finish says nothing about bqlab's eyes: exit 3.
            code = max(code, rep.exit_code if rep.exit_code in (
                ExitCode.BAD_INPUT, ExitCode.INFRA_FAILURE) else ExitCode.VERDICT_FAILED)
    print(selfcheck_table(rows))
    return code


def cmd_matrix(args: argparse.Namespace) -> int:
    """Each built-in verdict on each NIC model on this kernel (README's table)."""
    from . import scenario
    from .run import matrix
    from .run.rundir import new_run_dir
    from .run.runner import run_scenario

    if args.table:
        from pathlib import Path

        print(matrix.by_kernel([matrix.load(Path(p)) for p in args.table]), end="")
        return ExitCode.PASS
    built = _built(args)
    say_accelerator(built)
    cells = matrix.run(scenario.load, lambda sc: run_scenario(sc, built),
                       tuple(args.scenario or matrix.SCENARIOS), tuple(args.nic or matrix.NICS))
    out = new_run_dir("matrix")
    matrix.write(out, cells, built.kernel_release)
    print((out / "matrix.md").read_text())
    print(f"matrix: {out}")
    return matrix.exit_code(cells)


def selfcheck_table(rows: list[tuple[str, ...]]) -> str:
    head = ("scenario", "expected", "got", "check")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)).rstrip()
             for r in [head, *rows]]
    lines.insert(1, "-" * max(len(line) for line in lines))
    for r in rows:
        if r[3] != "ok":
            lines.append(f"{r[0]}: {r[4]} (artifacts: {r[5]})")
    met = sum(r[3] == "ok" for r in rows)
    lines.append(f"selfcheck: {met} of {len(rows)} scenarios show what they expect")
    return "\n".join(lines)


def _shard_and_label(args: argparse.Namespace, scenarios: list) -> list:
    """--shard K/N: this job's part of the scenarios; --label: the name they report under."""
    from .progress import say
    from .run import shard

    label = shard.check_label(args.label)
    if args.shard:
        split = shard.parse(args.shard)
        names = [sc.name for sc in scenarios]
        chosen = split.select(scenarios, name=lambda sc: sc.name)
        where = shard.write_manifest(split, names, label)
        say(f"shard {split}: {', '.join(sc.name for sc in chosen) or 'nothing'} "
            f"of {len(names)} scenario(s) ({where / shard.MANIFEST})")
        if not chosen:
            print(f"shard {split}: empty ({len(names)} scenario(s) over {split.count} shards "
                  f"leave none to this one); nothing to run, noted in {where}",
                  file=sys.stderr if args.format == "ktap" else sys.stdout)
            if args.format == "ktap":
                from .run.ktap import render

                print(render([]), end="")
        scenarios = chosen
    for sc in scenarios:
        sc.name = shard.labelled(sc.name, label)
    return scenarios


def cmd_up(args: argparse.Namespace) -> int:

    from . import scenario
    from .run.rundir import new_run_dir
    from .run.runner import vm_configs
    from .vm.topology import Topology

    if args.from_dir:
        return _up_from(args)
    sc = scenario.load(args.scenario, args.set or [])
    built = _built(args)
    run_dir = new_run_dir("up")
    with Topology(vm_configs(sc), built, run_dir) as topo:
        _hold(topo, built, run_dir)
    return ExitCode.PASS


def _up_from(args: argparse.Namespace) -> int:
    """The DUT and peer of a failed run, resumed from its snapshot, for hands-on work."""
    from pathlib import Path

    from . import hostdeps
    from .build.artifacts import BuiltArtifacts
    from .run.rundir import new_run_dir
    from .vm import snapshot
    from .vm.topology import Topology

    data = snapshot.load(Path(args.from_dir).expanduser().resolve())
    hostdeps.require("run")
    built = BuiltArtifacts(**{k: v if k == "kernel_release" else Path(v)
                              for k, v in data["built"].items()})
    run_dir = new_run_dir("up")
    restore = snapshot.restore_into(run_dir, data)
    print(f"resuming the snapshot of {args.from_dir} (taken {data['why']})", flush=True)
    with Topology(snapshot.configs(data), built, run_dir, restore=restore,
                  restore_accel=data["accel"]) as topo:
        _hold(topo, built, run_dir)
    return ExitCode.PASS


def _hold(topo, built, run_dir) -> None:
    """Say how to reach the VMs, and keep them up until Ctrl-C."""
    import time

    known_hosts = run_dir / "known_hosts"
    host_key = built.host_key.read_text().split()
    known_hosts.write_text("".join(
        f"[127.0.0.1]:{vm.port} {host_key[0]} {host_key[1]}\n" for vm in topo.vms.values()))
    print(f"topology up ({topo.accel}: {topo.accel_reason}); artifacts: {run_dir}")
    for name, vm in topo.vms.items():
        addr = topo.address(name)
        print(f"  {name}: test0 {addr.ipv4} {addr.ipv6}")
        print(f"    ssh -i {built.ssh_key} -p {vm.port} -o UserKnownHostsFile={known_hosts}"
              f" root@127.0.0.1")
        print(f"    qmp: {vm.user_qmp_socket}  (e.g. socat - UNIX-CONNECT:"
              f"{vm.user_qmp_socket})")
        print(f"    console log: {vm.console_log}")
    print("Ctrl-C stops both VMs.", flush=True)
    try:
        while True:
            topo.wait_all_alive()
            time.sleep(1)
    except KeyboardInterrupt:
        print("stopping ...", flush=True)


def cmd_bench(args: argparse.Namespace) -> int:
    from . import bench

    built = _built(args, "bench" if args.what in ("profile", "all") else "run")
    if args.what in ("boot", "all"):
        bench.boot(built, runs=args.runs)
    if args.what in ("throughput", "all"):
        bench.throughput(built, trials=args.trials, nics=tuple(args.nics.split(",")))
    if args.what in ("profile", "all"):
        bench.profile(built, nic=args.nics.split(",")[0])
    if args.what in ("stall", "all"):
        bench.stall_latency(built)
    if args.what in ("scenarios", "all"):
        bench.scenario_times(built)
    return ExitCode.PASS


def cmd_deps(args: argparse.Namespace) -> int:
    from . import hostdeps

    purposes = list(hostdeps.PURPOSES) if args.purpose == "all" else [args.purpose]
    if args.check:
        absent = sorted({p for purpose in purposes for p in hostdeps.missing(purpose)})
        if absent:
            print("missing Debian packages: " + " ".join(absent))
            print("install with: apt-get install -y --no-install-recommends " + " ".join(absent))
            return ExitCode.INFRA_FAILURE
        print(f"all Debian packages for {', '.join(purposes)} are installed")
        return ExitCode.PASS
    for purpose in purposes:
        hostdeps.require(purpose)
    return ExitCode.PASS


def cmd_doctor(args: argparse.Namespace) -> int:
    from . import doctor

    result = doctor.diagnose(probe=args.probe)
    print(json.dumps(result, indent=2) if args.json else doctor.render(result))
    return ExitCode.INFRA_FAILURE if doctor.has_problems(result) else ExitCode.PASS


def _write_index(run_dirs: list, out: TextIO | None = None) -> None:
    """index.html over a multi-scenario run, in an artifact directory of its own."""
    from .run.htmlreport import write_index
    from .run.rundir import new_run_dir

    try:
        print(f"index: {write_index(new_run_dir('index'), run_dirs)}", file=out or sys.stdout)
    except Exception as e:  # the runs' verdicts stand without it
        print(f"bqlab: index.html not written: {type(e).__name__}: {e}", file=sys.stderr)


def cmd_report_html(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .errors import BadInput
    from .run.htmlreport import write_html

    dirs = [Path(d) for d in args.dirs]
    for d in dirs:
        if not (d / "report.json").is_file():
            raise BadInput(f"{d}: no report.json (not a bqlab run's artifact directory)")
    for d in dirs:
        print(write_html(d))
    return ExitCode.PASS


def cmd_report_merge(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .run.merge import merge

    _, code, text = merge([Path(d) for d in args.dirs], Path(args.out) if args.out else None)
    print(text)
    return code


def cmd_driver_patch(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .build import kernel
    from .build.driver_patch import export_series

    spec = _kernel_spec(args)
    kernel.build(spec)  # the series is made against the configured tree
    for patch in export_series(kernel.tree_dir(spec) / "src", Path(args.out)):
        print(patch)
    return ExitCode.PASS


KERNEL_HELP = ("Debian's linux-source to build: " +
               ", ".join(f"debian:{n}" for n in ("6.12", "6.1", "7.2", "7.3")) +
               " (default debian:6.12; also BQLAB_KERNEL)")


def _add_kernel_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("guest kernel (also BQLAB_KERNEL, BQLAB_KERNEL_TREE/_BUILD/"
                             "_PATCHES/_CONFIG)")
    g.add_argument("--kernel", metavar="NAME", help=KERNEL_HELP)
    g.add_argument("--kernel-tree", metavar="DIR",
                   help="build this Linux tree (what git tracks and does not ignore)")
    g.add_argument("--kernel-build", metavar="DIR",
                   help="use this already built kernel (an O= directory or a tree built in "
                        "place): bqnic is built against it, nothing else")
    g.add_argument("--kernel-patch", metavar="FILE", action="append",
                   help="apply this patch (repeatable, applied in order)")
    g.add_argument("--kernel-config", metavar="FILE", action="append",
                   help="merge this config fragment (repeatable)")


def validate_expectations() -> tuple[str, ...]:
    from .run.validate import EXPECTATIONS

    return EXPECTATIONS


def bench_nics() -> tuple[str, ...]:
    from .bench import NICS

    return NICS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bqlab", description="Reproduce NIC driver rx stalls and page_pool teardown bugs.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("build", help="build QEMU, the guest kernel and the image (cached)")
    p.add_argument("what", nargs="?", default="all",
                   choices=["all", "qemu", "kernel", "image", "driver-check"],
                   help="driver-check: compile bqnic against each Debian kernel's headers")
    p.add_argument("--force", action="store_true", help="rebuild even if cached")
    p.add_argument("--keys", action="store_true",
                   help="print the artifacts' cache input keys (name=key), build nothing")
    p.add_argument("--json", action="store_true", help="with --keys: as a JSON object")
    p.add_argument("--sanitize", action="store_true",
                   help="qemu: the ASan+UBSan variant (its own cache entry), for make fuzz")
    _add_kernel_options(p)
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("run", help="run scenarios (built-in names or YAML files)")
    p.add_argument("scenarios", nargs="+", metavar="SCENARIO")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a scenario option, e.g. vms.dut.nic=e1000e")
    p.add_argument("--shard", metavar="K/N",
                   help="run only shard K of N: the scenarios at sorted-name index i with "
                        "i %% N == K-1")
    p.add_argument("--label", metavar="NAME",
                   help="report runs as SCENARIO@NAME (keeps variants apart in a merge)")
    p.add_argument("--format", choices=["table", "ktap"], default="table",
                   help="at the end: the summary table, or KTAP on stdout (table on stderr)")
    p.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="run each scenario N times and print a tally per outcome "
                        "(written as <time>-repeat/report.json with a flake rate)")
    p.add_argument("--until-fail", action="store_true",
                   help="stop repeating a scenario at its first run that does not pass "
                        "(at most --repeat runs, 100 without it)")
    p.add_argument("--snapshot-on-fail", action="store_true",
                   help="save the DUT and peer once the pressure ended (before the next "
                        "reconfiguration) and keep them if the run fails: bqlab up --from")
    _add_kernel_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("validate",
                       help="before/after: scenarios on a base kernel and on base + patches")
    p.add_argument("scenarios", nargs="+", metavar="SCENARIO")
    p.add_argument("--repeat", type=int, default=5, metavar="N",
                   help="runs per side and scenario, interleaved (default: %(default)s)")
    p.add_argument("--expect", choices=validate_expectations(), default="fix",
                   help="fix: what failed before must pass after (exit 0 only then); "
                        "same: nothing may get worse (a refactor)")
    p.add_argument("--base-patch", metavar="FILE", action="append",
                   help="a patch of the base kernel, on both sides (repeatable)")
    p.add_argument("--after-tree", metavar="DIR",
                   help="compare with this Linux tree instead of base + --kernel-patch")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override an option in every scenario")
    g = p.add_argument_group("guest kernel (the base; also BQLAB_KERNEL, "
                             "BQLAB_KERNEL_TREE/_CONFIG)")
    g.add_argument("--kernel", metavar="NAME", help=KERNEL_HELP)
    g.add_argument("--kernel-tree", metavar="DIR",
                   help="the base: this Linux tree instead of Debian's linux-source")
    g.add_argument("--kernel-patch", metavar="FILE", action="append",
                   help="the change under test: applied after the base's patches, on the "
                        "'after' side only (repeatable)")
    g.add_argument("--kernel-config", metavar="FILE", action="append",
                   help="merge this config fragment, both sides (repeatable)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("bisect", help="find the commit that made a scenario fail "
                                      "(git bisect in a scratch worktree)")
    p.add_argument("good", metavar="GOOD", help="a commit where the scenario passes")
    p.add_argument("bad", metavar="BAD", help="a later commit where it fails")
    p.add_argument("scenario", metavar="SCENARIO")
    p.add_argument("--kernel-tree", metavar="DIR", help="bisect this Linux tree's history")
    p.add_argument("--driver-tree", metavar="DIR",
                   help="bisect the history of the bqnic driver in this repository "
                        "(built into the default kernel)")
    p.add_argument("--driver-path", default="guest-kernel/bqnic", metavar="PATH",
                   help="with --driver-tree: where the driver is in it (default: "
                        "%(default)s)")
    p.add_argument("--repeat", type=int, default=3, metavar="N",
                   help="runs per step; a commit is good only if all pass (default: "
                        "%(default)s)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE")
    p.add_argument("--kernel", metavar="NAME",
                   help="with --driver-tree: the kernel the driver is built for; "
                   + KERNEL_HELP)
    p.add_argument("--kernel-patch", metavar="FILE", action="append",
                   help="apply this patch at every step (repeatable)")
    p.add_argument("--kernel-config", metavar="FILE", action="append",
                   help="merge this config fragment at every step (repeatable)")
    p.set_defaults(func=cmd_bisect)

    p = sub.add_parser("selftests",
                       help="run the kernel's drivers/net selftests against the DUT's NIC")
    p.add_argument("tests", nargs="*", metavar="TEST",
                   help="only these (ping.py, stats.py, queues.py, hw/rss_ctx.py, "
                        "hw/pp_alloc_fail.py; default: all)")
    p.add_argument("--nic", metavar="MODEL",
                   help="the DUT's NIC model (default bqnic): bqnic, virtio-net-pci, "
                        "e1000e, igb, vmxnet3")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override an option of the selftests scenario")
    _add_kernel_options(p)
    p.set_defaults(func=cmd_selftests)

    p = sub.add_parser("selfcheck",
                       help="run every built-in scenario and check it shows what it expects")
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                   help="only these (default: every built-in)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override an option in every scenario")
    _add_kernel_options(p)
    p.set_defaults(func=cmd_selfcheck)

    p = sub.add_parser("matrix", help="each built-in verdict on each NIC model, one kernel "
                                      "(README's driver x scenario table)")
    p.add_argument("--scenario", action="append", metavar="NAME",
                   help="only these scenarios (repeatable; default: smoke, rx-stall, "
                        "teardown, xdp-cycles, selftests)")
    p.add_argument("--nic", action="append", metavar="MODEL",
                   help="only these NIC models (repeatable; default: all five)")
    p.add_argument("--table", nargs="+", metavar="MATRIX_DIR",
                   help="run nothing: print saved matrices (artifacts/*-matrix) as one "
                        "table with a column per kernel")
    _add_kernel_options(p)
    p.set_defaults(func=cmd_matrix)

    p = sub.add_parser("up", help="boot the topology for hands-on work until Ctrl-C")
    p.add_argument("scenario", nargs="?", default="smoke",
                   help="take the VM setup from this scenario (default: smoke)")
    p.add_argument("--from", dest="from_dir", metavar="ARTIFACT_DIR",
                   help="resume the DUT and peer a failed run saved (run --snapshot-on-fail)"
                        " instead of booting")
    p.add_argument("--set", action="append", metavar="KEY=VALUE")
    _add_kernel_options(p)
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("bench", help="benchmarks (figures, not verdicts)")
    p.add_argument("what", nargs="?", default="all",
                   choices=["all", "boot", "throughput", "profile", "stall", "scenarios"])
    p.add_argument("--runs", type=int, default=5, help="boots to take the median of")
    p.add_argument("--trials", type=int, default=3, help="throughput trials per figure")
    p.add_argument("--nics", default=",".join(bench_nics()), metavar="NIC[,NIC...]",
                   help="DUT NIC models for throughput (profile takes the first); "
                        "default: %(default)s")
    _add_kernel_options(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("doctor", help="check this machine: host, KVM, packages, cache")
    p.add_argument("--probe", action="store_true",
                   help="probe KVM again by booting even if an answer is remembered")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("deps", help="install (as root) or name the Debian packages bqlab needs")
    p.add_argument("purpose", nargs="?", default="all",
                   choices=["all", "build", "run", "bench", "test"])
    p.add_argument("--check", action="store_true",
                   help="only list what is missing (exit 3 if anything is)")
    p.set_defaults(func=cmd_deps)

    p = sub.add_parser("driver-patch",
                       help="export the bqnic driver as a git format-patch series")
    p.add_argument("out", nargs="?", default="bqnic-series", help="output directory")
    _add_kernel_options(p)
    p.set_defaults(func=cmd_driver_patch)

    p = sub.add_parser("report", help="reports of finished runs, from their artifact "
                                      "directories")
    report = p.add_subparsers(dest="report_command", required=True)
    p = report.add_parser("html", help="(re)draw report.html in each run directory")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="a run's artifact directory")
    p.set_defaults(func=cmd_report_html)
    p = report.add_parser("merge", help="merge runs (CI shards, variants) into one junit.xml, "
                                        "report.json index, results.ktap and exit code")
    p.add_argument("dirs", nargs="+", metavar="DIR",
                   help="run artifact directories, or directories above them")
    p.add_argument("--out", metavar="DIR",
                   help="write the merge here (default: a new <time>-merged artifact dir)")
    p.set_defaults(func=cmd_report_merge)

    p = sub.add_parser("paths", help="where the built artifacts are")
    p.add_argument("--json", action="store_true")
    _add_kernel_options(p)
    p.set_defaults(func=cmd_paths)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except BqlabError as e:
        print(f"bqlab: error: {e}", file=sys.stderr)
        return int(e.exit_code)
    except KeyboardInterrupt:
        print("bqlab: interrupted", file=sys.stderr)
        return int(ExitCode.INFRA_FAILURE)
    except Exception:  # a bug in bqlab: exit 3, never 1, which means "verdict failed"
        traceback.print_exc()
        print("bqlab: internal error (a bug in bqlab; the traceback is above)", file=sys.stderr)
        return int(ExitCode.INFRA_FAILURE)


if __name__ == "__main__":
    sys.exit(main())
