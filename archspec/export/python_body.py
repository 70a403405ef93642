"""The `__init__` of one written module (the model, or one block call): each attribute at the
lowered module's path, built by its constructor call.

A scope becomes an `nn.Sequential` of its children where it is a chain (children 0, 1, 2, ...
each reading the one before, as torchvision's `layer1` or `downsample`), a block call becomes an
instance of its block's class, and any other scope a plain container (`nn.ModuleList` for
children 0, 1, 2, ..., else `nn.Module()`) whose children the owner's `forward` calls one by one.
Stateless modules that got an automatic name (`relu1`, `maxpool1`) take the op's name (`relu`),
one module serving every equal call, as torchvision writes `self.relu` once.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from archspec.errors import SpecError
from archspec.export.python_calls import written
from archspec.export.python_fragments import Fragments, Line, call_fragments
from archspec.export.python_helpers import Helpers
from archspec.export.python_tree import PROJECTION, Scope, name_in
from archspec.ir.graph import IRGraph, IRNode
from archspec.ops.catalog import lookup
from archspec.ops.source import Written


@dataclass
class Context:
    """What writing every module of one model shares."""

    ir: IRGraph
    in_place: set[str]  # nodes written in place (every call of a block agrees)
    block_inputs: dict[str, list[str]]  # block name -> its input names as the spec writes them
    helpers: Helpers = field(default_factory=Helpers)
    call_sites: dict[str, Fragments] = field(default_factory=dict)  # block call path -> its constructor call
    optional: dict[tuple[str, str], str] = field(default_factory=dict)  # (block, add) -> its projection's name
    readers: dict[str, list[str]] = field(default_factory=dict)  # value -> the nodes reading it
    scopes: dict[str, Scope] = field(default_factory=dict)  # path -> scope
    _written: dict[str, Written] = field(default_factory=dict)
    _chains: dict[int, bool] = field(default_factory=dict)

    def written(self, node: IRNode) -> Written:
        if node.id not in self._written:
            shapes = [self.ir.shapes[value] for value in node.inputs]
            try:
                found = written(node, shapes, node.id in self.in_place)
                for needed in found.needs:
                    self.helpers.add(needed)
            except ValueError as err:  # said at the node it comes from
                raise SpecError(f"cannot write the {node.op} '{node.id}' as Python source: {err}", node.loc, node.id) from None
            self._written[node.id] = found
        return self._written[node.id]

    def module_call(self, node: IRNode) -> Any:
        """The constructor call of the node's module, or None (a function, a free tensor, or a
        module another node owns: shared weights)."""
        return self.written(node).module if node.entry.tensor is None and owns(node) else None

    def access(self, owner: Scope, path: str) -> str:
        """How the owner's code reaches the module at `path` (inside the owner)."""
        if owner.path and not path.startswith(owner.path + "."):
            raise ValueError(f"'{path}' is outside '{owner.path}'")
        scope, reach = owner, "self"
        for part in (path[len(owner.path) + 1:] if owner.path else path).split("."):
            reach = child_access(scope, reach, part)
            scope = self.scopes.get(f"{scope.path}.{part}" if scope.path else part, scope)
        return reach

    def is_chain(self, scope: Scope) -> bool:
        """Whether the scope is called as one nn.Sequential (see the module docstring)."""
        if id(scope) not in self._chains:
            self._chains[id(scope)] = _chain(self, scope)
        return self._chains[id(scope)]


def owns(node: IRNode) -> bool:
    """Whether the node builds its module (a node reusing another's weights calls that one's)."""
    return node.module == node.id


def _chain(ctx: Context, scope: Scope) -> bool:
    if not scope.listed or len(scope.inputs) != 1 or len(scope.outputs) != 1 or (scope.block and scope.path in ctx.call_sites):
        return False
    value = scope.inputs[0]
    for index, child in enumerate(scope.children):
        if isinstance(child, IRNode):
            found = ctx.written(child)
            ok = ctx.module_call(child) is not None and found.then is None and len(child.values) == 1
            reads, makes = child.inputs, child.values
        else:
            ok = len(child.outputs) == 1 and (child.path in ctx.call_sites or ctx.is_chain(child))
            reads, makes = child.inputs, child.outputs
        if not ok or reads != [value]:
            return False
        value = makes[0]
        following = scope.children[index + 1] if index + 1 < len(scope.children) else None
        if following is not None and not all(_inside(following, reader) for reader in ctx.readers.get(value, ())):
            return False
    return value == scope.outputs[0]


def _inside(item: Scope | IRNode, node_id: str) -> bool:
    return item.id == node_id if isinstance(item, IRNode) else any(n.id == node_id for n in item.nodes)


def expression(ctx: Context, item: Scope | IRNode, label: str) -> Fragments | None:
    """The constructor expression of a child, where one expression builds it."""
    if isinstance(item, IRNode):
        call = ctx.module_call(item)
        return None if call is None else call_fragments(call, label)
    if item.path in ctx.call_sites:
        return list(ctx.call_sites[item.path])
    if ctx.is_chain(item):
        parts = [expression(ctx, child, f"{label}_{name_in(item, child)}") for child in item.children]
        return ["nn.Sequential(", *_joined(parts), ")"]
    return None


def _joined(parts: list[Fragments]) -> Fragments:
    out: Fragments = []
    for index, part in enumerate(parts):
        out.extend([", "] * bool(index) + part)
    return out


def holds_modules(ctx: Context, item: Scope | IRNode) -> bool:
    nodes = [item] if isinstance(item, IRNode) else item.nodes
    return any(owns(node) and ctx.written(node).module is not None for node in nodes)


def attribute_names(ctx: Context, owner: Scope) -> dict[str, str]:
    """Node id -> the attribute its module has in the owner: its own name, or, for a stateless
    module with an automatic name (`relu1`), the op's (`relu`), shared by equal calls."""
    taken = {name_in(owner, child) for child in owner.children}
    chosen: dict[str, str] = {}
    calls: dict[str, Any] = {}
    for child in owner.children:
        if not isinstance(child, IRNode):
            continue
        own = name_in(owner, child)
        found, call = ctx.written(child), ctx.module_call(child)
        automatic = re.fullmatch(r"(.*\D)\d+", own)
        name = own
        if call is not None and automatic and lookup(automatic.group(1)) is child.entry and _stateless(ctx, child):
            wanted = found.name or automatic.group(1)
            if calls.get(wanted) == call or (wanted not in taken and wanted not in calls):
                name = wanted
        if call is not None:
            calls.setdefault(name, call)
        chosen[child.id] = name
    return chosen


def _stateless(ctx: Context, node: IRNode) -> bool:
    shapes = [ctx.ir.shapes[value] for value in node.inputs]
    return not node.entry.params(node.args, shapes) and not node.entry.buffers(node.args, shapes)


def child_access(parent: Scope, target: str, name: str) -> str:
    """How code reaches a child module of a container written as `target`."""
    if parent.listed:
        return f"{target}[{name}]"
    return f"{target}.{name}" if name.isidentifier() else f'getattr({target}, "{name}")'


def init_lines(ctx: Context, owner: Scope, attributes: dict[str, str]) -> tuple[list[Line], list[str]]:
    """The owner's `__init__` statements, and the names of its optional module arguments (a
    projection shortcut some calls of its block have: torchvision's `downsample`)."""
    lines: list[Line] = []
    optional: list[str] = []
    done: set[str] = set()
    for child in owner.children:
        if isinstance(child, IRNode):
            name = attributes[child.id]
            virtual = ctx.optional.get((owner.kind, name_in(owner, child))) if owner.block else None
            if virtual and virtual not in optional:
                optional.append(virtual)
                lines.append(Line(2, [f"self.{virtual} = {virtual}"]))
            call = ctx.written(child).module if owns(child) else None
            if call is not None and name not in done:
                done.add(name)
                lines.append(Line(2, [f"self.{name} = ", *call_fragments(call, name)]))
        elif owner.block and child.kind == PROJECTION:
            optional.append(child.name)
            lines.append(Line(2, [f"self.{child.name} = {child.name}"]))
        elif holds_modules(ctx, child):
            _build(ctx, child, owner, "self", lines)
    return lines, optional


def _build(ctx: Context, scope: Scope, parent: Scope, holder: str, lines: list[Line]) -> None:
    """Statements that build a scope's module as the child `scope.name` of `holder` (the parent's
    module as code reaches it), and its children where one expression does not build them all."""
    made = expression(ctx, scope, scope.name)
    if made is None and scope.listed:
        entries = [expression(ctx, child, f"{scope.name}_{k}") or ["nn.Identity()"] for k, child in enumerate(scope.children)]
        made = ["nn.ModuleList([", *_joined(entries), "])"]
    lines.append(_assignment(parent, holder, scope.name, made or ["nn.Module()"]))
    if expression(ctx, scope, scope.name) is not None:
        return
    target = child_access(parent, holder, scope.name)
    for child in scope.children:
        name = name_in(scope, child)
        if not holds_modules(ctx, child) or (scope.listed and expression(ctx, child, name) is not None):
            continue
        if isinstance(child, Scope):
            _build(ctx, child, scope, target, lines)
        else:
            lines.append(_assignment(scope, target, name, call_fragments(ctx.written(child).module, name)))


def _assignment(parent: Scope, holder: str, name: str, made: Fragments) -> Line:
    """`holder.name = made`, or `holder.add_module("3", made)` for a name that is no identifier."""
    if parent.listed:
        return Line(2, [f"{holder}[{name}] = ", *made])
    if name.isidentifier():
        return Line(2, [f"{holder}.{name} = ", *made])
    return Line(2, [f'{holder}.add_module("{name}", ', *made, ")"])
