"""Scopes -> spec items: what the writer prints, with named wiring (`from: name`, never an index).

An `Item` is one entry of a layer list: an op, a block call, a `seq` (a module kept as a named
group) or a `repeat`. Items keep the values they read and give (`inputs`, `output`) so that
`from:` is written only where an item does not read the one before it, and so that the block
folding can compare items and chain repeats. References are relative to where the item is: a
name in the same list, a dotted path into an earlier module (`layer1.0.conv1`, or `layer1` for
what that module gives), or a block's input (`input`, `input2`, ...) inside a block.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from archspec.errors import ArchspecError
from archspec.importer.graph import ImportedGraph, ImportedNode
from archspec.importer.scopes import Scope, index, value_paths

GROUP = "seq"  # the spec language's construct for a named group (a module that is not a block)


@dataclass
class Item:
    callee: str
    name: str | None = None
    refs: list[str] | None = None  # `from:`, where the item does not read the previous item
    args: dict[str, Any] = field(default_factory=dict)
    layers: list["Item"] | None = None  # a group's items
    repeat: Any = None
    inputs: list[str] = field(default_factory=list)  # value ids read (not written)
    output: str = ""  # value id given
    spec_name: str = ""  # the name it has in the spec (written or automatic)
    defaults: dict[str, Any] = field(default_factory=dict)  # argument -> the value the writer leaves out
    node: ImportedNode | None = None  # the node an op item writes


class Shadowed(Exception):
    """A reference's first name is also a name in a scope between it and its target: the spec
    would find that one. The importer renames the one in `scope` and renders again."""

    def __init__(self, scope: str, name: str):
        super().__init__(f"'{name}' in '{scope}'")
        self.scope, self.name = scope, name


@dataclass
class Context:
    """Where items are rendered: inside the block instance `root` (None: the spec's top), whose
    outside values are its inputs by name."""

    root: str | None = None
    input_names: dict[str, str] = field(default_factory=dict)  # value id -> block input name


class Renderer:
    """Turns scopes into items; `scope_item` decides how a child scope is written (the block
    folding supplies it: a group, a block call or a repeat)."""

    def __init__(self, graph: ImportedGraph, root: Scope):
        self.graph = graph
        self.paths = value_paths(root)
        self.scopes = index(root)
        self.outputs_of = _scope_outputs(root)  # value id -> paths of the scopes it is the output of, outermost first
        self.scope_item: Callable[[Scope, Scope, Context], Item] = self.group_item
        self.finish: Callable[[list[Item]], list[Item]] = lambda items: items  # the folding merges repeats here

    def items(self, scope: Scope, context: Context, entry: str) -> list[Item]:
        """The items of a scope's units; `entry` is the value the first one reads by default."""
        items = []
        for unit in scope.units:
            item = self.scope_item(unit, scope, context) if isinstance(unit, Scope) else self.node_item(unit, scope)
            items.append(item)
        self.wire(items, scope, context, entry)
        return self.finish(items)

    def wire(self, items: list[Item], scope: Scope, context: Context, entry: str) -> None:
        previous = entry
        for item in items:
            if item.inputs != [previous]:
                item.refs = [self.reference(value, scope.path, context) for value in item.inputs]
            previous = item.output

    def node_item(self, node: ImportedNode, scope: Scope) -> Item:
        return Item(node.op.name, scope.written_name(node), args=op_args(node), inputs=list(node.inputs),
                    output=node.id, spec_name=scope.name_of(node), defaults=op_defaults(node), node=node)

    def group_item(self, child: Scope, scope: Scope, context: Context) -> Item:
        entry = first_input(child)
        layers = self.items(child, context, entry)
        return Item(GROUP, child.name, layers=layers, inputs=[entry], output=scope_output(child), spec_name=child.name)

    def reference(self, value: str, here: str, context: Context) -> str:
        """How a value is named from the list at path `here`."""
        if value in context.input_names:
            return context.input_names[value]
        if value in self.graph.inputs:
            if context.root is not None:
                raise ArchspecError(f"the model input '{value}' is read inside '{context.root}' but is not its input")
            return value
        path = self.paths[value]
        for scope_path in self.outputs_of.get(value, []):
            if not _inside(here, scope_path):
                path = scope_path  # `layer1` for what the module layer1 gives
                break
        if context.root is not None and not _inside(path, context.root):
            raise ArchspecError(f"'{path}' is read inside '{context.root}' but is not its input")
        here_parts = here.split(".") if here else []
        common = _common_prefix(here_parts, path.split("."))
        reference = path.split(".")[len(common):]
        for depth in range(len(here_parts), len(common), -1):  # the scopes the lookup passes on its way up
            scope = self.scopes.get(".".join(here_parts[:depth]))
            if scope is not None and reference[0] in {name for name, _ in scope.names.values()}:
                raise Shadowed(scope.path, reference[0])
        return ".".join(reference)


def op_args(node: ImportedNode) -> dict[str, Any]:
    """The matcher's arguments in the order of the op's schema."""
    return {key: node.match.args[key] for key in node.op.args.model_fields if key in node.match.args}


def op_defaults(node: ImportedNode) -> dict[str, Any]:
    return {key: info.default for key, info in node.op.args.model_fields.items() if not info.is_required()}


def same_value(value: Any, default: Any) -> bool:
    """Equal and of one kind (a True is not a 1); a pair of equal sizes is its one size."""
    if isinstance(value, (list, tuple)) and not isinstance(default, (list, tuple)):
        return len(set(value)) == 1 and same_value(value[0], default)
    return type(value) is type(default) and value == default


def first_input(scope: Scope) -> str:
    first = next(scope.nodes())
    return first.inputs[0] if first.inputs else ""


def scope_output(scope: Scope) -> str:
    last = scope.units[-1]
    return scope_output(last) if isinstance(last, Scope) else last.id


def external_inputs(scope: Scope) -> list[str]:
    """The values a scope reads from outside it, in the order they are first read."""
    inside = {n.id for n in scope.nodes()}
    found: list[str] = []
    for node in scope.nodes():
        for value in node.inputs:
            if value.partition(":")[0] not in inside and value not in found:
                found.append(value)
    return found


def _scope_outputs(root: Scope) -> dict[str, list[str]]:
    outputs: dict[str, list[str]] = {}

    def walk(scope: Scope) -> None:
        for unit in scope.units:
            if isinstance(unit, Scope):
                outputs.setdefault(scope_output(unit), []).append(unit.path)
                walk(unit)

    walk(root)
    return outputs


def _inside(path: str, scope_path: str) -> bool:
    return path == scope_path or path.startswith(scope_path + ".")


def _common_prefix(a: list[str], b: list[str]) -> list[str]:
    common = []
    for x, y in zip(a, b[:-1]):  # the last part of the target always stays in the reference
        if x != y:
            break
        common.append(x)
    return common
