"""The `forward` of one written module: one statement per call, in the IR's order, with named
locals as torchvision writes them: a chain runs through one name (`out = self.bn1(out)`), a
value read later keeps its own (`identity`), and merges carry a shape comment (`# (C, H, W)`).
"""
from __future__ import annotations

from dataclasses import dataclass

from archspec.export.python_body import Context, attribute_names, child_access, owns
from archspec.export.python_fragments import COMMENT, FORWARD, Fragments, Hole, Line, call_fragments, join
from archspec.export.python_tree import PROJECTION, Scope, name_in
from archspec.ir.graph import IRNode
from archspec.ops.source import Call

OPTIONAL = "optional"  # a projection shortcut some calls of the block have (torchvision's downsample)
SYMBOLS = {1: ("C",), 2: ("T", "C"), 3: ("C", "H", "W")}  # shape comment letters for sizes that vary
RESERVED = {"self", "torch", "nn", "F", "math", "Optional"}  # names a local must not hide


@dataclass
class Unit:
    """One statement's worth of `forward`: an op call, a call of a submodule, or an optional one."""

    inputs: list[str]
    outputs: list[str]
    access: str  # how forward reaches the module it calls
    label: str  # the name it has in the spec (a name for its result)
    node: IRNode | None = None
    kind: str = "call"


def units(ctx: Context, owner: Scope) -> list[Unit]:
    """The owner's statements in order: its own nodes, the submodules it calls as a whole (block
    calls and chains), and the nodes of its plain containers one by one."""
    attributes = attribute_names(ctx, owner)
    found: list[Unit] = []

    def walk(scope: Scope, access: str) -> None:
        for child in scope.children:
            name = name_in(scope, child)
            reach = child_access(scope, access, name)
            if isinstance(child, IRNode):
                found.append(_node_unit(ctx, owner, child, f"self.{attributes[child.id]}" if scope is owner else reach,
                                        attributes))
            elif _reused_block(ctx, child) is not None:
                found.append(Unit(child.inputs, child.outputs, ctx.access(owner, _reused_block(ctx, child)), child.name))
            elif scope is owner and owner.block and child.kind == PROJECTION:
                found.append(Unit(child.inputs, child.outputs, reach, child.name, kind=OPTIONAL))
            elif child.path in ctx.call_sites or ctx.is_chain(child):
                found.append(Unit(child.inputs, child.outputs, reach, child.name))
            else:
                walk(child, reach)

    walk(owner, "self")
    return _with_virtual_projections(ctx, owner, found)


def _node_unit(ctx: Context, owner: Scope, node: IRNode, access: str, attributes: dict[str, str]) -> Unit:
    if not owns(node):  # shared weights: call the owner's module
        access = f"self.{attributes[node.module]}" if node.module in attributes else ctx.access(owner, node.module)
    return Unit(list(node.inputs), node.values, access, name_in(owner, node), node, "node")


def _reused_block(ctx: Context, scope: Scope) -> str | None:
    """The path of the block call a `reuse` scope applies again as a whole, if it is one."""
    if scope.kind != "reuse" or not scope.nodes or owns(scope.nodes[0]):
        return None
    first = scope.nodes[0]
    origin = first.module[: len(first.module) - (len(first.id) - len(scope.path))]
    original = ctx.scopes.get(origin)
    if original is None or origin not in ctx.call_sites or len(original.nodes) != len(scope.nodes):
        return None
    same = all(n.module == origin + n.id[len(scope.path):] for n in scope.nodes)
    return origin if same else None


def _with_virtual_projections(ctx: Context, owner: Scope, found: list[Unit]) -> list[Unit]:
    """Where other calls of the block have a projection shortcut and this one has none, an
    optional unit that passes its input through, so that every call reads alike."""
    if not owner.block:
        return found
    present = {unit.label for unit in found if unit.kind == OPTIONAL}
    out = []
    for unit in found:
        name = ctx.optional.get((owner.kind, unit.label)) if unit.node is not None else None
        if name and name not in present:
            passed = unit.inputs[-1]
            shortcut = f"{owner.path}.{name}"  # a value name no node has
            out.append(Unit([passed], [shortcut], f"self.{name}", name, kind=OPTIONAL))
            unit.inputs = [*unit.inputs[:-1], shortcut]
        out.append(unit)
    return out


class Locals:
    """Variable names for values: a value read for the last time by a one-output statement hands
    its name on; otherwise a free name is chosen."""

    def __init__(self, inputs: dict[str, str], base: str, last_use: dict[str, int], reserved: set[str]):
        self.names = dict(inputs)  # value -> variable
        self.holding = {name: value for value, name in inputs.items()}  # variable -> value
        self.holding.update((name, "") for name in reserved)  # names the file gives a module or a helper
        self.inputs = set(inputs.values())
        self.base = base
        self.last_use = last_use

    def read(self, value: str) -> str:
        return self.names[value]

    def release(self, values: list[str], index: int) -> list[str]:
        """Free the names of values read for the last time at statement `index`; returns them."""
        freed = []
        for value in values:
            name = self.names.get(value)
            if name is not None and self.last_use.get(value, -1) == index and self.holding.get(name) == value:
                del self.holding[name]
                freed.append(name)
        return freed

    def assign(self, value: str, wanted: list[str]) -> str:
        """The first free name of `wanted` ("" stands for the base name, `out` or `x`)."""
        for name in [*wanted, self.base]:
            name = name or self.base
            if name not in self.holding:
                return self._take(value, name)
        stem = wanted[-1] if wanted and wanted[-1] else self.base
        count = 2
        while f"{stem}_{count}" in self.holding:
            count += 1
        return self._take(value, f"{stem}_{count}")

    def _take(self, value: str, name: str) -> str:
        self.names[value] = name
        self.holding[name] = value
        return name


def forward_lines(ctx: Context, owner: Scope, found: list[Unit], inputs: dict[str, str], base: str,
                  returned: list[str]) -> list[Line]:
    """The statements of `forward` for the units, given the input names and the returned values."""
    last_use = {value: index for index, unit in enumerate(found) for value in unit.inputs}
    last_use.update({value: len(found) for value in returned})
    names = Locals(inputs, base, last_use, {*ctx.helpers.sources, *RESERVED})
    lines: list[Line] = []
    for index, unit in enumerate(found):
        read = [names.read(value) for value in unit.inputs]
        freed = names.release(unit.inputs, index)
        handing = [name for name in read if name in freed and name not in names.inputs]
        in_place = unit.node is not None and unit.node.id in ctx.in_place and unit.node.entry.in_place_form is not None
        # the first input's name where the call overwrites it, else the base name (`x`) where it is handed on
        handed = (read[0] if read[0] in handing else None) if in_place or base not in handing else base
        handed = handed or (handing[0] if handing and not in_place else None)
        targets = [names.assign(value, _wanted(unit, value, handed, in_place, len(unit.outputs))) for value in unit.outputs]
        lines.extend(_statement(ctx, unit, read, targets))
    lines.append(Line(2, ["return ", _returned(ctx, owner, [names.read(value) for value in returned])]))
    return lines


def _wanted(unit: Unit, value: str, handed: str | None, in_place: bool, outputs: int) -> list[str]:
    """The names a result would like, best first."""
    label = _identifier(unit.label)
    if outputs > 1:  # `split1_0, split1_1 = ...`; a block's outputs by the names of their nodes
        return [f"{label}_{value.rpartition(':')[2]}" if ":" in value else _identifier(value.rpartition(".")[2])]
    if in_place and handed:
        return [handed]
    wanted = [handed] if handed else []
    if unit.kind == OPTIONAL:  # the shortcut, as torchvision names it
        wanted.append("identity")
    return [*wanted, "", label]


def _identifier(label: str) -> str:
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in label)
    return name if name[:1].isalpha() or name[:1] == "_" else f"x{name}"


def _statement(ctx: Context, unit: Unit, read: list[str], targets: list[str]) -> list[Line]:
    target = ", ".join(targets)
    if unit.kind == OPTIONAL:
        return [Line(2, [f"{target} = {read[0]}"]), Line(2, [f"if {unit.access} is not None:"]),
                Line(3, [f"{target} = {unit.access}({read[0]})"])]
    if unit.node is None:
        return [Line(2, [f"{target} = {unit.access}({', '.join(read)})"])]
    node, found = unit.node, ctx.written(unit.node)
    comment = _shape_comment(ctx, node) if node.entry.is_("merge") else []
    if found.module is not None and node.entry.tensor is None:
        first = Line(2, [f"{target} = {unit.access}({', '.join(read)})", *([] if found.then else comment)])
        if found.then is None:
            return [first]
        return [first, Line(2, [f"{target} = ", *_function(found.then, [target], unit.label), *comment])]
    inputs = [unit.access, *read] if node.entry.tensor is not None else read
    if found.then.callee == "+=":  # in place, as torchvision's `out += identity`, where the name is handed on
        operator = "+=" if target == read[0] else f"= {read[0]} +"
        return [Line(2, [f"{target} {operator} {' + '.join(read[1:])}", *comment])]
    return [Line(2, [f"{target} = ", *_function(found.then, inputs, unit.label), *comment])]


def _function(call: Call, inputs: list[str], label: str) -> Fragments:
    if call.callee in ("+", "*"):
        return [f" {call.callee} ".join(inputs)]
    parts = join([[name] for name in inputs])
    return call_fragments(call, label, FORWARD, parts)


def _shape_comment(ctx: Context, node: IRNode) -> Fragments:
    shape = node.shape
    symbols = SYMBOLS.get(len(shape), tuple(f"d{k}" for k in range(len(shape))))
    return ["  # (", *join([[Hole(size, symbol, COMMENT)] for size, symbol in zip(shape, symbols)]), ")"]


def _returned(ctx: Context, owner: Scope, names: list[str]) -> str:
    if owner.path or (not ctx.ir.named_outputs and len(names) == 1):
        return ", ".join(names)
    keys = list(ctx.ir.outputs)
    return "{" + ", ".join(f'"{key}": {name}' for key, name in zip(keys, names)) + "}"

