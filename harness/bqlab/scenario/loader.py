"""Scenario files: load, apply --set overrides, validate, all before anything boots."""

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..errors import BadInput
from ..judge.verdicts import DEFAULT_INTERVAL, DEFAULT_POOL_GRACE, DEFAULT_STALL_THRESHOLD
from ..vm import nics
from ..workload.churn import XDP_ACTIONS
from ..workload.traffic import parse_ports
from .schema import (
    AnyScalar,
    Field,
    Issue,
    ListOf,
    MapOf,
    OneKey,
    Scalar,
    Struct,
    ValidationError,
    compose,
    validate,
)

# rx_alloc: whatever fails the DUT NIC's rx refills (vm/nics.py), resolved at load time to
# fail_function on its refill function, or fail_page_alloc on atomic allocations.
PRESSURE_METHODS = ("rx_alloc", "fail_function", "fail_page_alloc", "failslab", "memhog",
                    "balloon", "dma_fault")

VM_NAMES = ("dut", "peer")
NIC_MODELS = tuple(nics.MODELS)

VM_SPEC = Struct({
    "nic": Field(Scalar(str, choices=NIC_MODELS), default="virtio-net-pci",
                 help="test NIC model"),
    "cpus": Field(Scalar(int, minimum=1, maximum=8), default=1),
    "memory": Field(Scalar(int, minimum=256, maximum=8192), default=512, help="MiB"),
    "queues": Field(Scalar(int, minimum=1, maximum=8), default=2,
                    help="queue pairs (models that take them from QEMU: bqnic)"),
    "driver_params": Field(MapOf(AnyScalar()), default=dict,
                           help="module parameters of the NIC's driver (a module: bqnic), "
                                "e.g. refill_fallback: 0"),
    "silent": Field(Scalar(bool), default=False,
                    help="no IPv6, static ARP: sends nothing unasked on the test link"),
    "balloon": Field(Scalar(bool), default=False, help="add a virtio-balloon device"),
    "kcsan": Field(Scalar(bool), default=False,
                   help="load the NIC driver's KCSAN-instrumented twin (bqnic): the "
                        "data-race verdict"),
})


def _port_range(value: str) -> str | None:
    try:
        parse_ports(value)
    except ValueError:
        return f"expected a UDP port or range like 9000-9007, got {value!r}"
    return None


def _slab_cache_name(value: str) -> str | None:
    # A name under /sys/kernel/slab, spliced into a guest shell command
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", value):
        return f"expected a slab cache name like radix_tree_node, got {value!r}"
    return None


def _selftest_name(value: str) -> str | None:
    if not re.fullmatch(r"(hw/)?[a-z0-9_]+\.py", value):
        return f"expected a test under drivers/net like ping.py or hw/rss_ctx.py, got {value!r}"
    return None


_VM = Scalar(str, choices=VM_NAMES)
# Under fault injection a driver may refuse a change (ENOMEM): that is an answer, not a
# failure; the steps after it check that the DUT survived (closing never may fail).
MAY_FAIL = Field(Scalar(bool), default=False,
                 help="a change the driver refuses (e.g. ENOMEM) is no failure")
# With a `task_filter` pressure: this step's commands are the ones that fail.
INJECT = Field(Scalar(bool), default=False,
               help="run the change marked for fault injection (pressure task_filter)")
STEPS = {
    "ping": Struct({
        "from": Field(_VM, required=True),
        "to": Field(_VM, required=True),
        "count": Field(Scalar(int, minimum=1, maximum=1000), default=3),
        "ipv6": Field(Scalar(bool), default=False),
    }),
    "iperf3": Struct({
        "client": Field(_VM, required=True, help="the sender"),
        "server": Field(_VM, required=True, help="the receiver"),
        "seconds": Field(Scalar(int, minimum=1, maximum=3600), default=5),
        "min_mbps": Field(Scalar(float, minimum=0), default=0.0,
                          help="fail below this throughput"),
    }),
    "shell": Struct({
        "on": Field(_VM, required=True),
        "command": Field(Scalar(str), required=True),
        "expect_exit": Field(Scalar(int), default=0),
        "timeout": Field(Scalar(float, minimum=0.1), default=60.0),
    }),
    "sleep": Struct({
        "seconds": Field(Scalar(float, minimum=0, maximum=3600), required=True),
    }),
    # Background traffic until `stop: {what: traffic}` or the end of the scenario.
    "traffic": Struct({
        "method": Field(Scalar(str, choices=("pktgen", "stopped-tcp")), default="pktgen"),
        "from": Field(_VM, required=True, help="the sender"),
        "to": Field(_VM, required=True, help="the receiver"),
        "size": Field(Scalar(int, minimum=60, maximum=9014), default=64,
                      help="pktgen frame size in bytes"),
        "rate": Field(Scalar(int, minimum=0), default=0, help="pktgen packets/s, 0: max"),
        "ports": Field(Scalar(str, validator=_port_range), default="9000-9007",
                       help="UDP destination ports"),
        "threads": Field(Scalar(int, minimum=1, maximum=8), default=1,
                         help="pktgen threads (at most the sender's cpus)"),
        "sinks": Field(Scalar(bool), default=True,
                       help="unread UDP sockets on the receiver's ports"),
        "rcvbuf_mb": Field(Scalar(int, minimum=1, maximum=1024), default=32,
                           help="receive buffer of each sink"),
        "streams": Field(Scalar(int, minimum=1, maximum=16), default=1,
                         help="stopped-tcp: parallel TCP streams (iperf3 -P)"),
    }),
    # Memory pressure on the DUT: held for `seconds`, or until `stop: {what: pressure}`.
    "pressure": Struct({
        "method": Field(Scalar(str, choices=PRESSURE_METHODS), required=True),
        "seconds": Field(Scalar(float, minimum=0.1, maximum=3600), default=None),
        "function": Field(Scalar(str), default=None,
                          help="fail_function: an ALLOW_ERROR_INJECTION function (default: "
                               "the one that fails the DUT NIC's rx refills, vm/nics.py)"),
        "retval": Field(Scalar(int), default=0, help="fail_function: what it returns"),
        "probability": Field(Scalar(int, minimum=1, maximum=100), default=100,
                             help="fail_function, fail_page_alloc, failslab: percent of "
                                  "calls"),
        "interval": Field(Scalar(int, minimum=1, maximum=100000), default=1,
                          help="fail_function: only every interval-th call may fail"),
        "task_filter": Field(Scalar(bool), default=False,
                             help="fail_function, fail_page_alloc: fail only in the "
                                  "commands of steps with `inject: true` (process "
                                  "context, sleeping allocations too), not in NAPI"),
        "min_order": Field(Scalar(int, minimum=0, maximum=10), default=0,
                           help="fail_page_alloc"),
        "caches": Field(ListOf(Scalar(str, validator=_slab_cache_name)), default=None,
                        help="failslab: the slab caches whose non-sleeping allocations "
                             "fail (/sys/kernel/slab names, e.g. radix_tree_node)"),
        "percent": Field(Scalar(int, minimum=1, maximum=100), default=90,
                         help="memhog: of the available memory"),
        "workers": Field(Scalar(int, minimum=1, maximum=8), default=1, help="memhog"),
        "swap_mb": Field(Scalar(int, minimum=0, maximum=4096), default=256,
                         help="memhog: swap file size"),
        "leave_mb": Field(Scalar(int, minimum=64), default=160,
                          help="balloon: memory left to the guest"),
        "count": Field(Scalar(int, minimum=1, maximum=64), default=1,
                       help="dma_fault: DMA transfers that fail (each stops its queue)"),
        "within": Field(Scalar(float, minimum=0.1, maximum=60), default=5.0,
                        help="dma_fault: seconds for them to hit; the rest is cancelled"),
    }),
    "stop": Struct({
        "what": Field(Scalar(str, choices=("traffic", "pressure", "sinks", "all")),
                      required=True),
    }),
    # One of the kernel's drivers/net selftests, in the DUT against test0, the peer as the
    # remote endpoint (selftests.py)
    "selftest": Struct({
        "test": Field(Scalar(str, validator=_selftest_name), required=True,
                      help="path under drivers/net, e.g. ping.py or hw/rss_ctx.py"),
        "timeout": Field(Scalar(float, minimum=1), default=600.0),
    }),
    "xdp_cycles": Struct({
        "cycles": Field(Scalar(int, minimum=1, maximum=10000), default=50),
        "actions": Field(ListOf(Scalar(str, choices=XDP_ACTIONS), min_items=1),
                         default=lambda: list(XDP_ACTIONS)),
        "dwell": Field(ListOf(Scalar(float, minimum=0, maximum=60), min_items=2),
                       default=lambda: [0.1, 0.5], help="[min, max] seconds, random"),
        "seed": Field(Scalar(int), default=1, help="for the dwell times"),
        "cpumap_qsize": Field(Scalar(int, minimum=1, maximum=16384), default=1024,
                              help="redirect_cpu: the cpumap entry's queue (small: overflows)"),
        "cpumap_delete": Field(Scalar(bool), default=False,
                               help="redirect_cpu: delete the entry mid-dwell, frames queued"),
        "may_fail": MAY_FAIL,
        "inject": INJECT,
    }),
    "ifdown_ifup": Struct({
        "times": Field(Scalar(int, minimum=1, maximum=1000), default=1),
        "may_fail": MAY_FAIL,
        "inject": INJECT,
    }),
    "rings": Struct({
        "rx": Field(Scalar(int, minimum=8, maximum=4096), required=True),
        "tx": Field(Scalar(int, minimum=8, maximum=4096), default=None),
        "may_fail": MAY_FAIL,
        "inject": INJECT,
    }),
    "channels": Struct({
        "combined": Field(Scalar(int, minimum=1, maximum=8), required=True),
        "may_fail": MAY_FAIL,
        "inject": INJECT,
    }),
    "mtu": Struct({
        "mtu": Field(Scalar(int, minimum=68, maximum=9000), required=True),
        "may_fail": MAY_FAIL,
        "inject": INJECT,
    }),
    "reload": Struct({"times": Field(Scalar(int, minimum=1, maximum=1000), default=1)}),
}

# expect: verdict name -> the verdict a negative control must show.
EXPECT_KEYS = {"rx-stall": ("STALL", "PASS", "INCONCLUSIVE"),
               "teardown": ("LEAK", "PASS", "INCONCLUSIVE"),
               "dma": ("FAIL", "PASS"),
               "bql": ("FAIL", "PASS"),
               "mmio": ("FAIL", "PASS"),
               "data-race": ("FAIL", "PASS"),
               "dut-alive": ("FAIL",),
               "run": ("PASS", "FAIL", "INCONCLUSIVE")}
EXPECTABLE = tuple(sorted({v for vs in EXPECT_KEYS.values() for v in vs}))

VERDICTS_SPEC = Struct({
    "rx_stall": Field(Struct({
        "threshold": Field(Scalar(float, minimum=0.1), default=DEFAULT_STALL_THRESHOLD,
                           help="seconds rx may stay frozen after the pressure ends"),
    }), default=None),
    "teardown": Field(Struct({
        "grace": Field(Scalar(float, minimum=0.1), default=DEFAULT_POOL_GRACE,
                       help="seconds a destroyed page_pool may keep pages in flight"),
    }), default=None),
})

WATCH_SPEC = Struct({
    "interval": Field(Scalar(float, minimum=0.05, maximum=0.5), default=DEFAULT_INTERVAL,
                      help="seconds between samples"),
})

SCENARIO_SPEC = Struct({
    "name": Field(Scalar(str), required=True),
    "description": Field(Scalar(str), default=""),
    "timeout": Field(Scalar(float, minimum=1), default=900.0,
                     help="seconds for the whole run, boot included"),
    "vms": Field(MapOf(VM_SPEC, keys=VM_NAMES), required=True),
    "watch": Field(WATCH_SPEC, default=lambda: {"interval": DEFAULT_INTERVAL}),
    "verdicts": Field(VERDICTS_SPEC, default=lambda: {"rx_stall": None, "teardown": None},
                      help="rx_stall, teardown: judged from the watchdog's samples"),
    "steps": Field(ListOf(OneKey(STEPS), min_items=1), required=True),
    "expect": Field(MapOf(Scalar(str, choices=EXPECTABLE), keys=tuple(EXPECT_KEYS)),
                    default=dict,
                    help="what this scenario must show, e.g. {rx-stall: STALL} for a "
                         "negative control; none: every verdict PASSes"),
})


@dataclass
class Scenario:
    name: str
    description: str
    timeout: float
    vms: dict[str, dict[str, Any]]
    steps: list[dict[str, Any]]
    source: str
    verdicts: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    watch_interval: float = DEFAULT_INTERVAL
    expect: dict[str, str] = field(default_factory=dict)
    extends: str | None = None

    @property
    def watched(self) -> bool:
        """The watchdog runs when some verdict needs its samples."""
        return any(v is not None for v in self.verdicts.values())


def builtin_dir() -> Path:
    return Path(str(resources.files("bqlab.scenario") / "builtin"))


def builtin_names() -> list[str]:
    return sorted(p.stem for p in builtin_dir().glob("*.yaml"))


def locate(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or "/" in name_or_path:
        if not path.is_file():
            raise BadInput(f"{name_or_path}: no such scenario file")
        return path
    builtin = builtin_dir() / f"{name_or_path}.yaml"
    if not builtin.is_file():
        raise BadInput(f"unknown scenario {name_or_path!r}: built-in ones are "
                       f"{', '.join(builtin_names())}, or give a path to a YAML file")
    return builtin


_SET = re.compile(r"^([A-Za-z_][\w-]*(?:\[\d+\])?(?:\.[A-Za-z_][\w-]*(?:\[\d+\])?)*)=(.*)$")


def _override(root: yaml.Node, assignment: str) -> None:
    """Apply `a.b[2].c=value` to the node tree; the value is parsed as YAML."""
    m = _SET.match(assignment)
    where = f"--set {assignment}"
    if not m:
        raise ValidationError([Issue(where, "", "expected KEY=VALUE with a dotted key, "
                                     "e.g. vms.dut.nic=e1000e")])
    parts = re.findall(r"([A-Za-z_][\w-]*)(?:\[(\d+)\])?", m.group(1))
    value = yaml.compose(m.group(2) or "''", Loader=yaml.SafeLoader)
    _relabel(value, where)
    node = root
    for i, (key, index) in enumerate(parts):
        last = i == len(parts) - 1 and index == ""
        if not isinstance(node, yaml.MappingNode):
            raise ValidationError([Issue(where, "", f"{key!r}: its parent is not a mapping")])
        for k, v in node.value:
            if k.value == key:
                if last:
                    node.value[node.value.index((k, v))] = (k, value)
                node = v
                break
        else:
            if index:
                raise ValidationError([Issue(where, "", f"no list {key!r} to index")])
            key_node = yaml.ScalarNode("tag:yaml.org,2002:str", key)
            _relabel(key_node, where)
            # A missing intermediate key becomes an empty mapping (e.g. driver_params).
            child = value if last else yaml.MappingNode("tag:yaml.org,2002:map", [])
            _relabel(child, where)
            node.value.append((key_node, child))
            node = child
        if index:
            if not isinstance(node, yaml.SequenceNode) or int(index) >= len(node.value):
                raise ValidationError([Issue(where, "", f"{key}[{index}]: no such item")])
            if i == len(parts) - 1:
                node.value[int(index)] = value
            node = node.value[int(index)]


def _relabel(node: yaml.Node, where: str) -> None:
    mark = yaml.Mark(where, 0, 0, 0, None, None)
    node.start_mark = node.end_mark = mark
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            _relabel(k, where)
            _relabel(v, where)
    elif isinstance(node, yaml.SequenceNode):
        for v in node.value:
            _relabel(v, where)


def _key(node: yaml.Node) -> str | None:
    return node.value if isinstance(node, yaml.ScalarNode) else None


def _merge(base: yaml.Node, child: yaml.Node) -> yaml.Node:
    """child over base: mappings merge key by key, anything else (lists too) replaces.
    Nodes keep their own file and line, so errors name the file that said it."""
    if not (isinstance(base, yaml.MappingNode) and isinstance(child, yaml.MappingNode)):
        return child
    merged = list(base.value)
    for ck, cv in child.value:
        for i, (bk, bv) in enumerate(merged):
            if _key(bk) is not None and _key(bk) == _key(ck):
                merged[i] = (ck, _merge(bv, cv))
                break
        else:
            merged.append((ck, cv))
    return yaml.MappingNode(child.tag, merged, child.start_mark, child.end_mark)


def _compose_with_bases(path: Path, seen: tuple[Path, ...] = ()) -> tuple[yaml.Node, str | None]:
    """The scenario's node tree with `extends: NAME` resolved (recursively)."""
    node = compose(path.read_text(), str(path))
    if not isinstance(node, yaml.MappingNode):
        return node, None
    ext = next(((k, v) for k, v in node.value if _key(k) == "extends"), None)
    if ext is None:
        return node, None
    key_node, value = ext
    node.value.remove(ext)
    where = f"{path}:{key_node.start_mark.line + 1}"
    if not isinstance(value, yaml.ScalarNode) or not value.value:
        raise ValidationError([Issue(where, "extends", "expected a scenario name or file")])
    name = value.value
    try:
        # A file is found beside the scenario that extends it; a plain name is built in.
        is_file = "/" in name or name.endswith((".yaml", ".yml"))
        base_path = locate(str(path.parent / name)) if is_file else locate(name)
    except BadInput as e:
        raise ValidationError([Issue(where, "extends", str(e))]) from e
    if base_path.resolve() in seen or base_path.resolve() == path.resolve():
        raise ValidationError([Issue(where, "extends", f"{name}: extends itself")])
    base, _ = _compose_with_bases(base_path, (*seen, path.resolve()))
    # What a scenario is and what it must show are its own, never inherited.
    if isinstance(base, yaml.MappingNode):
        base.value = [(k, v) for k, v in base.value
                      if _key(k) not in ("name", "description", "expect")]
    return _merge(base, node), name


def load(name_or_path: str, overrides: list[str] | tuple[str, ...] = ()) -> Scenario:
    path = locate(name_or_path)
    node, extends = _compose_with_bases(path)
    for assignment in overrides:
        _override(node, assignment)
    data = validate(node, SCENARIO_SPEC, str(path))
    _check_references(data, path)
    return Scenario(name=data["name"], description=data["description"],
                    timeout=data["timeout"], vms=data["vms"], steps=data["steps"],
                    source=str(path), verdicts=data["verdicts"],
                    watch_interval=data["watch"]["interval"], expect=data["expect"],
                    extends=extends)


# Steps that act on the DUT (and its page_pools) whatever they name.
DUT_STEPS = ("pressure", "xdp_cycles", "ifdown_ifup", "rings", "channels", "mtu", "reload",
             "selftest")
MODULE_STEPS = ("reload",)  # rmmod/modprobe the DUT NIC's driver


def _resolve_rx_alloc(step: dict, model: nics.NicModel) -> str | None:
    """A pressure step's injection point, from the DUT's NIC model where the file leaves
    it open. The step keeps `rx_alloc: true` so the report says it was chosen for it."""
    if step["method"] == "rx_alloc":
        step["rx_alloc"] = True
        if model.rx_alloc_function is not None:
            step["method"], step["function"] = "fail_function", model.rx_alloc_function
        else:
            # Atomic allocations only: NAPI's refills fail, a refill work's GFP_KERNEL
            # (the fix this bug class needs) still succeeds.
            step["method"] = "fail_page_alloc"
            if step["task_filter"]:
                return (f"rx_alloc: task_filter needs a fail_function target, and nothing "
                        f"known fails {model.driver}'s refills: name a `function`")
    elif step["method"] == "fail_function" and step["function"] is None:
        if model.rx_alloc_function is None:
            return (f"fail_function: nothing known fails {model.driver}'s rx refills: name "
                    "a `function`, or use method rx_alloc (fail_page_alloc for it)")
        step["function"] = model.rx_alloc_function
    return None


def _check_references(data: dict[str, Any], path: Path) -> None:
    """What the schema cannot see: steps name declared VMs, DUT steps have a DUT with what
    they need, verdicts have the counters they are judged on."""
    issues = []
    vms = data["vms"]
    dut = vms.get("dut")

    def problem(step: dict, i: int, message: str) -> None:
        issues.append(Issue(step["where"], f"steps[{i}].{step['kind']}", message))

    for i, step in enumerate(data["steps"]):
        kind = step["kind"]
        for role in ("from", "to", "client", "server", "on"):
            vm = step.get(role)
            if vm is not None and vm not in vms:
                problem(step, i, f"{role}: {vm!r} is not declared under vms")
        if step.get("from") is not None and step.get("from") == step.get("to"):
            problem(step, i, "from and to are the same VM")
        if kind in DUT_STEPS and dut is None:
            problem(step, i, "acts on the DUT, but vms has no dut")
            continue
        model = nics.model(dut["nic"]) if dut is not None else None
        if model is None:
            pass
        elif kind in MODULE_STEPS and not model.module:
            problem(step, i, f"reloads the NIC's driver module, but {model.driver} "
                    f"({dut['nic']}) is built in")
        elif kind == "xdp_cycles" and not model.xdp:
            problem(step, i, f"{model.driver} ({dut['nic']}) has no XDP")
        elif kind == "pressure":
            trouble = _resolve_rx_alloc(step, model)
            if trouble:
                problem(step, i, trouble)
        if kind == "traffic" and step["from"] in vms and \
                step["threads"] > vms[step["from"]]["cpus"]:
            problem(step, i, f"threads: {step['threads']} pktgen threads need as many cpus "
                    f"on {step['from']} (it has {vms[step['from']]['cpus']})")
        if kind == "pressure" and step["method"] == "balloon" and not dut["balloon"]:
            problem(step, i, "method balloon needs `balloon: true` on vms.dut")
        if kind == "pressure" and (step["method"] == "failslab") != bool(step["caches"]):
            problem(step, i, "method failslab needs `caches` (slab caches to fail), and "
                    "only failslab takes them")
        if kind == "xdp_cycles":
            lo, hi = step["dwell"][:2]
            if len(step["dwell"]) != 2 or lo > hi:
                problem(step, i, "dwell: expected [min, max] seconds with min <= max")
            if "redirect_cpu" in step["actions"] and dut["cpus"] < 2:
                problem(step, i, "redirect_cpu needs a DUT with at least 2 cpus")
    for name, vm in vms.items():
        if vm["kcsan"] and not nics.model(vm["nic"]).kcsan:
            issues.append(Issue(f"{path}:1", f"vms.{name}.kcsan",
                                "bqlab builds a KCSAN twin of bqnic's driver only, "
                                f"not of {nics.model(vm['nic']).driver}"))
        if vm["driver_params"] and not nics.model(vm["nic"]).module:
            issues.append(Issue(f"{path}:1", f"vms.{name}.driver_params",
                                f"{nics.model(vm['nic']).driver} is built in: it takes no "
                                "module parameters"))
    verdicts = data["verdicts"]
    if verdicts["rx_stall"] is not None and dut is None:
        issues.append(Issue(f"{path}:1", "verdicts.rx_stall", "needs a vms.dut"))
    if issues:
        raise ValidationError(issues)
