"""Scenario files: load, apply --set overrides, validate, all before anything boots."""

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import BadInput
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

VM_NAMES = ("dut", "peer")
NIC_MODELS = ("bqnic", "virtio-net-pci", "e1000e")

VM_SPEC = Struct({
    "nic": Field(Scalar(str, choices=NIC_MODELS), default="virtio-net-pci",
                 help="test NIC model"),
    "cpus": Field(Scalar(int, minimum=1, maximum=8), default=1),
    "memory": Field(Scalar(int, minimum=256, maximum=8192), default=512, help="MiB"),
    "queues": Field(Scalar(int, minimum=1, maximum=8), default=2,
                    help="bqnic queue pairs"),
    "driver_params": Field(MapOf(AnyScalar()), default=dict,
                           help="bqnic module parameters, e.g. refill_fallback: 0"),
})

_VM = Scalar(str, choices=VM_NAMES)
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
}

SCENARIO_SPEC = Struct({
    "name": Field(Scalar(str), required=True),
    "description": Field(Scalar(str), default=""),
    "timeout": Field(Scalar(float, minimum=1), default=900.0,
                     help="seconds for the whole run, boot included"),
    "vms": Field(MapOf(VM_SPEC, keys=VM_NAMES), required=True),
    "steps": Field(ListOf(OneKey(STEPS), min_items=1), required=True),
})


@dataclass
class Scenario:
    name: str
    description: str
    timeout: float
    vms: dict[str, dict[str, Any]]
    steps: list[dict[str, Any]]
    source: str


def builtin_dir() -> Path:
    return Path(str(resources.files("bqlab") / "scenarios"))


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
            if not last:
                raise ValidationError([Issue(where, "", f"no key {key!r} to descend into")])
            key_node = yaml.ScalarNode("tag:yaml.org,2002:str", key)
            _relabel(key_node, where)
            node.value.append((key_node, value))
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


def load(name_or_path: str, overrides: list[str] | tuple[str, ...] = ()) -> Scenario:
    path = locate(name_or_path)
    text = path.read_text()
    node = compose(text, str(path))
    for assignment in overrides:
        _override(node, assignment)
    data = validate(node, SCENARIO_SPEC, str(path))
    _check_references(data, path)
    return Scenario(name=data["name"], description=data["description"],
                    timeout=data["timeout"], vms=data["vms"], steps=data["steps"],
                    source=str(path))


def _check_references(data: dict[str, Any], path: Path) -> None:
    """Steps may only name VMs the scenario declares."""
    issues = []
    for i, step in enumerate(data["steps"]):
        for role in ("from", "to", "client", "server", "on"):
            vm = step.get(role)
            if vm is not None and vm not in data["vms"]:
                issues.append(Issue(f"{path}:{step['line']}", f"steps[{i}].{step['kind']}",
                                    f"{role}: {vm!r} is not declared under vms"))
    if issues:
        raise ValidationError(issues)
