"""One class per block: the calls of a block whose written text differs in values only share a
class, whose constructor takes the block's parameters.

Each call is first written with its values as holes (a `Draft`). For every hole, over all the
calls: a value the same everywhere is written as itself (or as the parameter of the keyword's
name, `stride=stride`, or, as a constructor's leading argument, a parameter the block requires:
`nn.Linear(dim, classes)` reads as the block's interface); a value
that varies as the block parameter (or `in_channels`, the input's channels) that has it in every
call; failing both, as a constructor argument of its own. Where a block's calls differ in
structure (a `when:` that leaves a layer out), each structure is a class of its own.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from archspec.export.python_body import Context, attribute_names, expression, init_lines
from archspec.export.python_calls import same_value
from archspec.export.python_forward import forward_lines, units, _identifier
from archspec.export.python_fragments import COMMENT, FORWARD, Fragments, Hole, Keyword, Line, holes, skeleton, text
from archspec.export.python_tree import Scope, name_in

SHAPE_NAMES = ("in_channels", "in_h", "in_w")


@dataclass
class Draft:
    """One module (a block call, or the model) written with holes."""

    scope: Scope
    init: list[Line]
    forward: list[Line]
    inputs: list[str]  # forward's parameters
    sequential: list[Fragments] | None = None  # an nn.Sequential subclass: its children's expressions
    optional: list[str] = field(default_factory=list)  # optional module arguments (downsample)
    env: dict[str, Any] = field(default_factory=dict)  # names a hole may be written as -> values, best first
    interface: set[str] = field(default_factory=set)  # names that read as the module's interface
    defaults: dict[str, Any] = field(default_factory=dict)
    attributes: set[str] = field(default_factory=set)  # the module's attribute names (forward's values avoid them)
    returns: str = "torch.Tensor"  # forward's return annotation

    def key(self) -> tuple:
        lines = [(line.indent, skeleton(line.fragments)) for line in (*self.init, *self.forward)]
        entries = [skeleton(entry) for entry in self.sequential or ()]
        return (self.sequential is not None, tuple(lines), tuple(entries), tuple(self.inputs), tuple(self.optional))

    def holes(self) -> list[Hole]:
        found = [h for line in (*self.init, *self.forward) for h in holes(line.fragments)]
        return found + [h for entry in self.sequential or () for h in holes(entry)]


def draft(ctx: Context, scope: Scope, inputs: list[str], base: str, returned: list[str]) -> Draft:
    if scope.block and ctx.is_chain(scope):  # children 0, 1, 2 in a chain: torchvision's Conv2dNormActivation
        entries = [expression(ctx, child, name_in(scope, child)) for child in scope.children]
        return Draft(scope, [], [], inputs, entries)
    attributes = attribute_names(ctx, scope)
    init, optional = init_lines(ctx, scope, attributes)
    found = units(ctx, scope)
    forward = forward_lines(ctx, scope, found, dict(zip(scope.inputs, inputs)), base, returned)
    taken = {name_in(scope, child) for child in scope.children} | set(attributes.values())
    made = Draft(scope, init, forward, inputs, None, optional, attributes=taken)
    if not scope.path and (ctx.ir.named_outputs or len(returned) > 1):
        made.returns = "dict[str, torch.Tensor]"
    elif len(returned) > 1:
        made.returns = f"tuple[{', '.join(['torch.Tensor'] * len(returned))}]"
    return made


@dataclass
class Signature:
    names: list[str]  # constructor parameters, in order
    annotations: dict[str, str]
    defaults: dict[str, Any]
    extra: dict[str, list[Any]]  # arguments of their own -> the value at each call


def resolve(drafts: list[Draft]) -> tuple[dict[int, str], Signature]:
    """Each hole of the first draft as text, and the constructor parameters that text uses."""
    columns = list(zip(*(d.holes() for d in drafts)))
    written: dict[int, str] = {}
    used: dict[str, str] = {}  # name -> where it is read (init or forward)
    extra: dict[str, list[Any]] = {}
    for column in columns:
        first, values = column[0], [hole.value for hole in column]
        chosen = _choose(first, values, drafts)
        if chosen is None or first.where == COMMENT:
            written[id(first)] = repr(values[0]) if chosen is None else chosen[0].format(*chosen[1])
            continue
        template, names = chosen
        if not names:  # no parameter gives it: an argument of its own
            names = [_extra_name(extra, first.label, values, drafts[0].env)]
            extra[names[0]] = values
        for name in names:
            used[name] = FORWARD if used.get(name) == FORWARD or first.where == FORWARD else first.where
        kept = (stored_name(n, drafts[0]) for n in names)  # forward reads what __init__ keeps
        written[id(first)] = template.format(*(f"self.{n}" for n in kept) if first.where == FORWARD else names)
    return written, _signature(drafts, used, extra)


def stored_name(name: str, made: Draft) -> str:
    """The attribute that keeps a parameter forward reads (`self.heads_` where `heads` is a module)."""
    return f"{name}_" if name in made.attributes else name


def _choose(first: Hole, values: list[Any], drafts: list[Draft]) -> tuple[str, list[str]] | None:
    """How a hole is written: None for its value, else (a template, the names it reads); no
    names asks for an argument of its own."""
    constant = all(same_value(values[0], v) for v in values)
    candidates = [n for n in drafts[0].env if all(n in d.env and same_value(d.env[n], v) for d, v in zip(drafts, values))]
    if first.where == COMMENT:  # a size that varies reads as its parameter, else as its axis letter
        named = [n for n in candidates if n not in SHAPE_NAMES]
        return None if constant else (named[0] if named else first.label, [])
    interface = [n for n in candidates if n in drafts[0].interface]
    if constant:  # a constructor's leading arguments (channels, features) are its interface
        return ("{0}", interface[:1]) if interface and first.keyword is None and first.where != FORWARD else None
    if candidates:
        best = first.keyword if first.keyword in candidates else (interface or candidates)[0]
        return "{0}", [best]
    return _derived(values, drafts) or ("{0}", [])


# sizes a layer computes from its block's parameters: `(kernel - 1) // 2`, `4 * anchors`
UNARY = (("({0} - 1) // 2", lambda a: (a - 1) // 2), ("{0} // 2", lambda a: a // 2), ("2 * {0}", lambda a: 2 * a),
         ("4 * {0}", lambda a: 4 * a))
BINARY = (("{0} * {1}", lambda a, b: a * b), ("{0} + {1}", lambda a, b: a + b), ("{0} - {1}", lambda a, b: a - b),
          ("{0} // {1}", lambda a, b: a // b if b else None))


def _derived(values: list[Any], drafts: list[Draft]) -> tuple[str, list[str]] | None:
    """The first small expression of the calls' whole-number parameters that gives the value in
    every call, if one does."""
    if not all(type(v) is int for v in values):
        return None
    names = [n for n in drafts[0].env if all(type(d.env.get(n)) is int for d in drafts)]
    for template, rule in UNARY:
        for name in names:
            if all(rule(d.env[name]) == v for d, v in zip(drafts, values)):
                return template, [name]
    for template, rule in BINARY:
        for a in names:
            for b in names:
                if a != b and all(rule(d.env[a], d.env[b]) == v for d, v in zip(drafts, values)):
                    return template, [a, b]
    return None


def _extra_name(extra: dict[str, list[Any]], label: str, values: list[Any], env: dict[str, Any]) -> str:
    name = _identifier(label)
    count = 2
    while (name in extra and extra[name] != values) or name in env:
        name, count = f"{_identifier(label)}_{count}", count + 1
    return name


def _signature(drafts: list[Draft], used: dict[str, str], extra: dict[str, list[Any]]) -> Signature:
    first = drafts[0]
    names = list(used)
    defaults = {n: first.defaults[n] for n in names if n in first.defaults}
    order = {n: k for k, n in enumerate(first.env)}
    required = sorted((n for n in names if n not in defaults), key=lambda n: (n not in SHAPE_NAMES, n in extra, order.get(n, 0)))
    defaulted = sorted((n for n in names if n in defaults), key=lambda n: order.get(n, 0))
    annotations = {n: type(first.env.get(n, extra.get(n, [None])[0])).__name__ for n in names}
    return Signature([*required, *defaulted], annotations, defaults, {n: extra[n] for n in names if n in extra})


def class_text(name: str, drafts: list[Draft], base: str = "nn.Module") -> tuple[list[str], Signature]:
    """The class's source lines (before formatting) and its constructor's signature."""
    written, signature = resolve(drafts)
    first = drafts[0]
    parameters = ["self"] + [_parameter(n, signature) for n in signature.names]
    parameters += [f"{n}: Optional[nn.Module] = None" for n in first.optional]
    kind = "nn.Sequential" if first.sequential is not None else base
    lines = [f"class {name}({kind}):", f"    def __init__({', '.join(parameters)}) -> None:"]
    if first.sequential is not None:
        entries = ", ".join(text(entry, written) for entry in first.sequential)
        return [*lines, f"        super().__init__({entries})", ""], signature
    lines.append("        super().__init__()")
    forward_names = {n for n, line in _reads(first, written)}
    lines += [f"        self.{stored_name(n, first)} = {n}" for n in signature.names if stored_name(n, first) in forward_names]
    lines += [_line(line, written) for line in first.init]
    arguments = ", ".join(f"{n}: torch.Tensor" for n in first.inputs)
    lines += ["", f"    def forward(self, {arguments}) -> {first.returns}:"] + [_line(line, written) for line in first.forward] + [""]
    return lines, signature


def _reads(draft: Draft, written: dict[int, str]) -> list[tuple[str, Line]]:
    """(name, line) for each `self.name` a forward line reads as a hole."""
    found = []
    for line in draft.forward:
        for hole in holes(line.fragments):
            if hole.where == FORWARD and written[id(hole)].startswith("self."):
                found.append((written[id(hole)][5:], line))
    return found


def _parameter(name: str, signature: Signature) -> str:
    annotation = signature.annotations.get(name)
    typed = f"{name}: {annotation}" if annotation in ("int", "float", "bool", "str") else name
    return f"{typed} = {signature.defaults[name]!r}" if name in signature.defaults else typed


def _line(line: Line, written: dict[int, str]) -> str:
    return "    " * line.indent + text(line.fragments, written)


def call_site(name: str, signature: Signature, draft: Draft, index: int, optional: dict[str, Fragments]) -> Fragments:
    """`Name(values...)` for one call, its values as holes of the caller."""
    parts: Fragments = [f"{name}("]
    positional = [n for n in signature.names if n not in signature.defaults]
    for k, n in enumerate(positional):
        value = signature.extra[n][index] if n in signature.extra else draft.env[n]
        parts += ([", "] if k else []) + [Hole(value, f"{draft.scope.name}_{n}")]
    for n in signature.names[len(positional):]:
        parts.append(Keyword(n, [Hole(draft.env[n], f"{draft.scope.name}_{n}", keyword=n)], signature.defaults[n]))
    for n in draft.optional:
        if n in optional:
            parts.append(Keyword(n, optional[n], None))
    return [*parts, ")"]
