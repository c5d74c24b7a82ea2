"""The `bqlab` command line."""

import argparse
import json
import sys
import traceback

from .errors import BqlabError, ExitCode


def _kernel_spec(args: argparse.Namespace):
    from .build.kernel import KernelSpec

    return KernelSpec.from_env(args.kernel_tree, args.kernel_patch, args.kernel_config)


def cmd_build(args: argparse.Namespace) -> int:
    from .build import image, kernel, qemu

    what = args.what
    if what in ("all", "qemu"):
        qemu.build(force=args.force)
    if what in ("all", "kernel", "image"):
        spec = _kernel_spec(args)
        k = kernel.build(spec, force=args.force and what != "image")
        if what in ("all", "image"):
            image.build(k, force=args.force)
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
    from . import accel
    from .progress import say
    from .vm import firmware_args

    say(f"accelerator: {accel.choose(built.qemu, built.bzimage, firmware_args())}")


def cmd_run(args: argparse.Namespace) -> int:
    from . import scenario
    from .report import summary_table
    from .runner import run_scenario

    # Validate every scenario before building or booting anything.
    scenarios = [scenario.load(name, args.set or []) for name in args.scenarios]
    built = _built(args)
    say_accelerator(built)
    reports = []
    try:
        for sc in scenarios:
            reports.append(run_scenario(sc, built))
    finally:
        if reports:
            print(summary_table(reports))
            for r in reports:
                print(f"artifacts: {r.artifacts}")
    return max(int(r.exit_code) for r in reports)


def cmd_up(args: argparse.Namespace) -> int:
    import time

    from . import scenario
    from .rundir import new_run_dir
    from .runner import vm_configs
    from .topology import Topology

    sc = scenario.load(args.scenario, args.set or [])
    built = _built(args)
    run_dir = new_run_dir("up")
    with Topology(vm_configs(sc), built, run_dir) as topo:
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
            print(f"    qmp: {vm.qmp_socket}  (e.g. socat - UNIX-CONNECT:{vm.qmp_socket})")
            print(f"    console log: {vm.console_log}")
        print("Ctrl-C stops both VMs.", flush=True)
        try:
            while True:
                topo.wait_all_alive()
                time.sleep(1)
        except KeyboardInterrupt:
            print("stopping ...", flush=True)
    return ExitCode.PASS


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


def cmd_driver_patch(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .build import kernel
    from .build.driver_patch import export_series

    spec = _kernel_spec(args)
    kernel.build(spec)  # the series is made against the configured tree
    for patch in export_series(kernel.tree_dir(spec) / "src", Path(args.out)):
        print(patch)
    return ExitCode.PASS


def _add_kernel_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("guest kernel (also BQLAB_KERNEL_TREE/_PATCHES/_CONFIG)")
    g.add_argument("--kernel-tree", metavar="DIR",
                   help="build this Linux tree instead of Debian's linux-source-6.12")
    g.add_argument("--kernel-patch", metavar="FILE", action="append",
                   help="apply this patch (repeatable, applied in order)")
    g.add_argument("--kernel-config", metavar="FILE", action="append",
                   help="merge this config fragment (repeatable)")


def bench_nics() -> tuple[str, ...]:
    from .bench import NICS

    return NICS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bqlab", description="Reproduce NIC driver rx stalls and page_pool teardown bugs.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("build", help="build QEMU, the guest kernel and the image (cached)")
    p.add_argument("what", nargs="?", default="all", choices=["all", "qemu", "kernel", "image"])
    p.add_argument("--force", action="store_true", help="rebuild even if cached")
    _add_kernel_options(p)
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("run", help="run scenarios (built-in names or YAML files)")
    p.add_argument("scenarios", nargs="+", metavar="SCENARIO")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a scenario option, e.g. vms.dut.nic=e1000e")
    _add_kernel_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("up", help="boot the topology for hands-on work until Ctrl-C")
    p.add_argument("scenario", nargs="?", default="smoke",
                   help="take the VM setup from this scenario (default: smoke)")
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
                   help="probe KVM again by booting (otherwise the last probe's answer)")
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
