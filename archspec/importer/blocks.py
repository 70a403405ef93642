"""Fold the module hierarchy into blocks: modules whose items are the same up to numbers become
one parameterised block, and consecutive calls of one block become a `repeat`.

Modules are compared from the leaves up (a module's height: 1 + its tallest child), so when a
module is compared its children are already block calls or groups. Each is rendered as a block
body would be (references inside it, its outside values as `input`, `input2`, ...), and its
items split into a structure and the numbers in it. Modules of one structure (two or more)
become one block; a number that differs between them becomes a parameter, or an expression
where it follows one (`in_channels`, `in_channels * 6`, `4 * width`, another parameter).
Consecutive calls of one block, each reading the one before, named `0`, `1`, ... or
`denselayer1`, `denselayer2`, ..., are one item with `repeat` (numbers that change per copy as
expressions of the copy's index `i`); a module that is nothing but such a run is that item.
"""
from __future__ import annotations

import copy
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from archspec.importer.items import GROUP, Context, Item, Renderer, external_inputs, first_input, scope_output
from archspec.importer.repeats import merge_repeats
from archspec.importer.scopes import Scope
from archspec.importer.writer import BlockText
from archspec.ops.catalog import lookup

RESERVED = {"i", "in_channels", "in_h", "in_w", "input", "name", "from", "repeat", "when", "trainable"}
CONSTRUCTS = {GROUP, "parallel", "reuse"}


@dataclass
class Block:
    name: str
    summary: str
    inputs: list[str]
    items: list[Item]  # the body, parameters in place of the numbers that differ
    params: dict[str, Any] = field(default_factory=dict)  # name -> default
    positions: dict[tuple, str] = field(default_factory=dict)  # value position -> parameter it passes


@dataclass
class Rendered:
    """One module rendered as a block body, with what its comparison needs."""

    scope: Scope
    items: list[Item]
    inputs: list[str]
    structure: str
    values: dict[tuple, Any]
    soft: dict[tuple, tuple]  # builder-argument position -> (value, node, default)
    in_channels: int | None


class Folder:
    def __init__(self, renderer: Renderer):
        self.renderer = renderer
        self.blocks: dict[str, Block] = {}
        self.calls: dict[int, tuple[Block, dict[tuple, Any]]] = {}  # id(scope) -> its block and values
        renderer.scope_item = self.scope_item
        renderer.finish = lambda items: merge_repeats(items, self.blocks)

    def scope_item(self, child: Scope, scope: Scope, context: Context) -> Item:
        if id(child) in self.calls:
            block, values = self.calls[id(child)]
            args = {name: values[position] for position, name in block.positions.items() if name in block.params}
            return Item(block.name, child.name, args=args, inputs=external_inputs(child), output=scope_output(child),
                        spec_name=child.name, defaults=block.params)
        entry = first_input(child)
        items = self.renderer.items(child, context, entry)
        if len(items) == 1 and items[0].repeat is not None and items[0].spec_name == "":  # a whole run named 0..N-1
            return Item(items[0].callee, child.name, args=items[0].args, repeat=items[0].repeat, inputs=[entry],
                        output=scope_output(child), spec_name=child.name, defaults=items[0].defaults)
        return Item(GROUP, child.name, layers=items, inputs=[entry], output=scope_output(child), spec_name=child.name)

    def fold(self, root: Scope) -> None:
        for level in _levels(root):
            groups: dict[str, list[Rendered]] = {}
            for scope in level:
                rendered = self.render(scope)
                if rendered is not None:
                    groups.setdefault(rendered.structure, []).append(rendered)
            for members in groups.values():
                if len(members) >= 2:
                    self.make_block(members)

    def render(self, scope: Scope) -> Rendered | None:
        inputs = external_inputs(scope)
        names = {value: "input" if k == 0 else f"input{k + 1}" for k, value in enumerate(inputs)}
        items = self.renderer.items(scope, Context(scope.path, names), inputs[0] if inputs else "")
        single = len(items) == 1 and items[0].layers is None
        if not inputs or (single and (items[0].repeat is None or items[0].spec_name == "")):
            return None  # one op, or a run of one block written as that run
        soft: dict[tuple, tuple] = {}
        structure, values = signature(items, soft=soft)
        shape = self.renderer.graph.shape_of(inputs[0])
        channels = shape[0] if len(shape) in (1, 3) else None
        return Rendered(scope, items, list(names.values()), structure, values, soft, channels)

    def make_block(self, members: list[Rendered]) -> None:
        """One block for modules of one structure; where their builder arguments (add's `project`)
        cannot be one choice for all, one block per choice."""
        unified = _unified(members)
        if unified is not None:
            self._block(members, unified)
            return
        choices: dict[str, list[Rendered]] = {}
        for member in members:
            choices.setdefault(repr(sorted((k, v[0]) for k, v in member.soft.items())), []).append(member)
        for group in choices.values():
            if len(group) >= 2:
                self._block(group, {k: v[0] for k, v in group[0].soft.items()})

    def _block(self, members: list[Rendered], soft: dict[tuple, Any]) -> None:
        first = members[0]
        attribute = {member.scope.name for member in members}
        name = self.block_name(first.scope.cls, first.items, attribute.pop() if len(attribute) == 1 else None)
        params, positions = parameters(members, first.items)
        body = copy.deepcopy(first.items)
        substitute(body, {**positions, **soft})
        cls = first.scope.cls
        summary = f"{cls.__module__}.{cls.__qualname__}" if cls is not None else "a module"
        block = Block(name, f"{summary} ({len(members)} modules)", first.inputs, body, params, positions)
        self.blocks[name] = block
        for member in members:
            self.calls[id(member.scope)] = (block, member.values)

    def block_name(self, cls: type | None, items: list[Item], attribute: str | None) -> str:
        """The module class in snake case (`Bottleneck` -> bottleneck); for torch's own containers,
        the attribute name they all have (ConvNeXt's `block`), or what they hold (`layernorm_conv`)."""
        if (cls is None or _container(cls)) and attribute and attribute.isidentifier():
            base = attribute
        elif cls is None or _container(cls):
            base = "_".join(dict.fromkeys(item.callee for item in items))[:40]
        else:
            base = _snake(cls.__name__)
        if base in CONSTRUCTS or lookup(base) is not None or not base.isidentifier():
            base = f"{base}_block"
        name, k = base, 2
        while name in self.blocks:
            name, k = f"{base}_{k}", k + 1
        return name

    def texts(self) -> dict[str, BlockText]:
        return {name: BlockText(b.summary, b.params, b.inputs, b.items) for name, b in self.blocks.items()}


def _container(cls: type | None) -> bool:
    """torch's own containers hold whatever they are given: a group or a run, never a block."""
    return cls is not None and cls.__module__.startswith("torch.nn") and cls.__name__ in ("Sequential", "ModuleList", "ModuleDict")


def _unified(members: list[Rendered]) -> dict[tuple, Any] | None:
    """One value per builder-argument position for all the modules: the one they share, or the
    one choice some make where it inserts nothing in the others (a `project: auto` where the
    shapes already agree); None where no one choice serves."""
    unified = {}
    for position in members[0].soft:
        column = [m.soft[position] for m in members]
        chosen = {value for value, _, default in column if value != default}
        if len(chosen) > 1:
            return None
        value = chosen.pop() if chosen else column[0][0]
        for current, node, _ in column:
            if current != value and not _inserts_nothing(node, position[1], value):
                return None
        unified[position] = value
    return unified


def _inserts_nothing(node, key: str, value: Any) -> bool:
    try:
        validated = node.op.args.model_validate({**node.match.args, key: value})
        return node.op.expand(validated, node.in_shapes) is None
    except Exception:  # the op refuses the choice here
        return False


def fold(renderer: Renderer, root: Scope) -> dict[str, BlockText]:
    folder = Folder(renderer)
    folder.fold(root)
    return folder.texts()


def _levels(root: Scope) -> list[list[Scope]]:
    """The scopes below the root grouped by height, lowest first."""
    heights: dict[int, list[Scope]] = {}

    def height(scope: Scope) -> int:
        found = 1 + max((height(u) for u in scope.units if isinstance(u, Scope)), default=0)
        if scope is not root:
            heights.setdefault(found, []).append(scope)
        return found

    height(root)
    return [heights[h] for h in sorted(heights)]


def _snake(name: str) -> str:
    name = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name.strip("_"))
    return re.sub(r"[^a-z0-9_]", "_", name.lower()) or "block"


# --- structure and values ---------------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numbers(value: Any) -> list[tuple[int | None, Any]] | None:
    """The numbers in an argument, by index (None for a plain number), or None if it holds other things."""
    if _is_number(value):
        return [(None, value)]
    if isinstance(value, list) and value and all(_is_number(v) for v in value):
        return list(enumerate(value))
    return None


def signature(items: list[Item], prefix: tuple = (), soft: dict | None = None) -> tuple[str, dict[tuple, Any]]:
    """The items' structure as text (numbers left out) and their numbers by position: a position
    is (the item's name path, the argument, the index in a list argument or None), as
    `(("conv2",), "stride", None)`, nested through groups. An op's builder arguments (add's
    `project`) go to `soft`: they decide nodes the rule inserts, not the structure written."""
    parts, values = [], {}
    soft = {} if soft is None else soft
    for item in items:
        where = (*prefix, item.spec_name)
        builder = item.node.op.builder_args if item.node is not None else ()
        for key in builder:
            soft[(where, key, None)] = (item.args.get(key, item.defaults.get(key)), item.node, item.defaults.get(key))
        args = {k: v for k, v in item.args.items() if k not in builder}
        fixed, numbered = {}, []
        for key, value in args.items():
            found = _numbers(value)
            if found is None:
                fixed[key] = value
                continue
            numbered.append((key, len(found) if found[0][0] is not None else None))
            values.update({(where, key, index): number for index, number in found})
        if _is_number(item.repeat):
            values[(where, "repeat", None)] = item.repeat
        inner = ""
        if item.layers is not None:
            inner, found_inner = signature(item.layers, where, soft)
            values.update(found_inner)
        repeat = item.repeat if not _is_number(item.repeat) else "#"
        parts.append(f"{item.callee}|{item.name}|{item.refs}|{fixed}|{numbered}|{repeat}|[{inner}]")
    return ";".join(parts), values


def parameters(members: list[Rendered], items: list[Item]) -> tuple[dict[str, Any], dict[tuple, str]]:
    """The block's parameters (name -> default, the commonest value) and, for each position whose
    number differs between the modules, the parameter or expression it is written as."""
    params: dict[str, Any] = {}
    positions: dict[tuple, str] = {}
    columns: dict[str, list] = {}  # parameter -> its value in each module
    channels = [m.in_channels for m in members]
    for position in members[0].values:
        column = [m.values[position] for m in members]
        if len(set(column)) == 1:
            continue
        text = _relation(column, channels, columns)
        if text is None:
            text = _param_name(position, params)
            value, count = Counter(column).most_common(1)[0]
            params[text] = value if 2 * count >= len(column) else None  # no usual value: every call says it
            columns[text] = column
        positions[position] = text
    return params, positions


def _relation(column: list, channels: list, columns: dict[str, list]) -> str | None:
    """An expression the numbers follow in every module: the input's channels, a multiple or a
    fraction of them, or of a parameter already found."""
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in column):
        return None
    sources = ([("in_channels", channels)] if None not in channels else []) + list(columns.items())
    for name, base in sources:
        if column == base:
            return name
        if all(b and v % b == 0 for v, b in zip(column, base)) and len({v // b for v, b in zip(column, base)}) == 1:
            return f"{name} * {column[0] // base[0]}"
        if all(v and b % v == 0 for v, b in zip(column, base)) and len({b // v for v, b in zip(column, base)}) == 1:
            return f"{name} // {base[0] // column[0]}"
    return None


def _param_name(position: tuple, params: dict[str, Any]) -> str:
    where, key, index = position
    key = "depth" if key == "repeat" else key
    base = key if index is None else f"{key}{index}"
    for candidate in (base, f"{where[-1]}_{base}" if where else base):
        candidate = re.sub(r"[^A-Za-z0-9_]", "_", candidate)
        if candidate not in params and candidate not in RESERVED and candidate.isidentifier():
            return candidate
    k = 2
    while f"{base}_{k}" in params:
        k += 1
    return f"{base}_{k}"


def substitute(items: list[Item], positions: dict[tuple, Any], prefix: tuple = ()) -> None:
    """Write each parameter position as its parameter (or expression)."""
    for item in items:
        where = (*prefix, item.spec_name)
        for (path, key, index), value in positions.items():
            if path != where:
                continue
            if key == "repeat":
                item.repeat = value
            elif index is None:
                item.args[key] = value  # a builder argument (`project`) may be new to this module's item
            else:
                item.args[key] = [value if k == index else v for k, v in enumerate(item.args[key])]
        if item.layers is not None:
            substitute(item.layers, positions, where)
