"""Validate YAML against a small schema and report errors as file:line: what was expected.

We walk pyyaml's node graph (yaml.compose) instead of loaded Python objects because only
nodes remember where in the file they came from.
"""

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import BadInput


@dataclass
class Issue:
    where: str  # "file:line"
    path: str  # dotted location, e.g. steps[1].ping.count
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.path}: {self.message}" if self.path else \
            f"{self.where}: {self.message}"


class ValidationError(BadInput):
    def __init__(self, issues: list[Issue]):
        self.issues = issues
        super().__init__("invalid scenario:\n  " + "\n  ".join(str(i) for i in issues))


class Spec:
    """Base: check(node, ctx, path) -> python value (or None after recording issues)."""

    type_name = "value"

    def check(self, node: yaml.Node, ctx: "Ctx", path: str) -> Any:
        raise NotImplementedError


@dataclass
class Ctx:
    filename: str
    issues: list[Issue] = field(default_factory=list)

    def where(self, node: yaml.Node) -> str:
        return where(node, self.filename)

    def error(self, node: yaml.Node, path: str, message: str) -> None:
        self.issues.append(Issue(self.where(node), path, message))


_SCALAR_TAGS = {
    int: "tag:yaml.org,2002:int",
    float: "tag:yaml.org,2002:float",
    bool: "tag:yaml.org,2002:bool",
    str: "tag:yaml.org,2002:str",
}


@dataclass
class Scalar(Spec):
    kind: type
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None
    validator: Callable[[Any], str | None] | None = None

    @property
    def type_name(self) -> str:  # type: ignore[override]
        if self.choices:
            return "one of " + ", ".join(str(c) for c in self.choices)
        return {int: "an integer", float: "a number", bool: "true or false",
                str: "a string"}[self.kind]

    def check(self, node, ctx, path):
        if not isinstance(node, yaml.ScalarNode):
            ctx.error(node, path, f"expected {self.type_name}, got a "
                      f"{'list' if isinstance(node, yaml.SequenceNode) else 'mapping'}")
            return None
        tags = {_SCALAR_TAGS[self.kind]}
        if self.kind is float:
            tags.add(_SCALAR_TAGS[int])
        if node.tag not in tags:
            ctx.error(node, path, f"expected {self.type_name}, got {node.value!r}")
            return None
        value = yaml.SafeLoader("").construct_object(node)
        if self.kind is float:
            value = float(value)
        if self.choices is not None and value not in self.choices:
            ctx.error(node, path, f"expected {self.type_name}, got {value!r}")
            return None
        if self.minimum is not None and value < self.minimum:
            ctx.error(node, path, f"must be >= {self.minimum}, got {value}")
            return None
        if self.maximum is not None and value > self.maximum:
            ctx.error(node, path, f"must be <= {self.maximum}, got {value}")
            return None
        if self.validator is not None:
            problem = self.validator(value)
            if problem:
                ctx.error(node, path, problem)
                return None
        return value


@dataclass
class AnyScalar(Spec):
    """A string, number or boolean (e.g. a module parameter value)."""

    type_name = "a scalar"

    def check(self, node, ctx, path):
        if not isinstance(node, yaml.ScalarNode):
            ctx.error(node, path, "expected a string, number or boolean")
            return None
        return yaml.SafeLoader("").construct_object(node)


@dataclass
class Field:
    spec: Spec
    required: bool = False
    default: Any = None
    help: str = ""


@dataclass
class Struct(Spec):
    fields: dict[str, Field]
    type_name: str = "a mapping"

    def check(self, node, ctx, path):
        if not isinstance(node, yaml.MappingNode):
            ctx.error(node, path, f"expected a mapping with keys: {', '.join(self.fields)}")
            return None
        out: dict[str, Any] = {}
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            sub = f"{path}.{key}" if path else key
            if key in seen:
                ctx.error(key_node, sub, "duplicate key")
                continue
            seen.add(key)
            if key not in self.fields:
                ctx.error(key_node, path or "(top level)",
                          f"unknown key {key!r} (expected one of: {', '.join(self.fields)})")
                continue
            out[key] = self.fields[key].spec.check(value_node, ctx, sub)
        for name, f in self.fields.items():
            if name in seen:
                continue
            if f.required:
                ctx.error(node, path or "(top level)", f"missing required key {name!r}"
                          + (f" ({f.help})" if f.help else ""))
            else:
                out[name] = f.default() if callable(f.default) else f.default
        return out


@dataclass
class ListOf(Spec):
    item: Spec
    min_items: int = 0

    @property
    def type_name(self) -> str:  # type: ignore[override]
        return "a list"

    def check(self, node, ctx, path):
        if not isinstance(node, yaml.SequenceNode):
            ctx.error(node, path, "expected a list")
            return None
        if len(node.value) < self.min_items:
            ctx.error(node, path, f"expected at least {self.min_items} item(s)")
        return [self.item.check(n, ctx, f"{path}[{i}]") for i, n in enumerate(node.value)]


@dataclass
class MapOf(Spec):
    """A mapping with free-form keys (e.g. VM names) and one value spec."""

    value: Spec
    keys: tuple[str, ...] | None = None

    def check(self, node, ctx, path):
        if not isinstance(node, yaml.MappingNode):
            ctx.error(node, path, "expected a mapping")
            return None
        out = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if self.keys is not None and key not in self.keys:
                ctx.error(key_node, path, f"unknown key {key!r} (expected one of: "
                          f"{', '.join(self.keys)})")
                continue
            out[key] = self.value.check(value_node, ctx, f"{path}.{key}")
        return out


@dataclass
class OneKey(Spec):
    """A mapping with exactly one key that selects the variant: `- ping: {...}`."""

    variants: dict[str, Spec]

    def check(self, node, ctx, path):
        names = ", ".join(self.variants)
        if not isinstance(node, yaml.MappingNode) or len(node.value) != 1:
            ctx.error(node, path, f"expected a mapping with one key, one of: {names}")
            return None
        key_node, value_node = node.value[0]
        kind = key_node.value
        if kind not in self.variants:
            ctx.error(key_node, path, f"unknown step {kind!r} (expected one of: {names})")
            return None
        return {"kind": kind, "line": node.start_mark.line + 1, "where": ctx.where(node),
                **(self.variants[kind].check(value_node, ctx, f"{path}.{kind}") or {})}


def where(node: yaml.Node, filename: str) -> str:
    """file:line of a node; a node inherited through `extends:` names its own file."""
    name = node.start_mark.name
    if name.startswith("--set"):
        return name  # a command-line override, not a file line
    if name.startswith("<"):  # composed from a string with no name
        name = filename
    return f"{name}:{node.start_mark.line + 1}"


def compose(text: str, filename: str) -> yaml.Node:
    stream = io.StringIO(text)
    stream.name = filename  # marks carry the file name (kept across `extends:` merges)
    try:
        node = yaml.compose(stream, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else 0
        raise ValidationError([Issue(f"{filename}:{line}", "",
                                     f"not valid YAML: {e.problem or e}")]) from e
    if node is None:
        raise ValidationError([Issue(f"{filename}:1", "", "file is empty")])
    return node


def validate(node: yaml.Node, spec: Spec, filename: str) -> Any:
    ctx = Ctx(filename)
    value = spec.check(node, ctx, "")
    if ctx.issues:
        raise ValidationError(ctx.issues)
    return value
