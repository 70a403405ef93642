"""Lines of written source with holes: every number, flag or word a line holds is a `Hole` that
remembers its value, so that the calls of one block can be compared line by line (their text
without the holes) and each hole written once for all of them: as the number itself where it is
the same in every call, else as the block parameter that has its value in every call.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from archspec.ops.source import Call, Name

INIT, FORWARD, COMMENT = "init", "forward", "comment"  # where a hole is written


@dataclass(eq=False)
class Hole:
    value: Any
    label: str  # the name of a constructor argument of its own, where no parameter has its value
    where: str = INIT
    keyword: str | None = None  # the keyword it is passed as, if any (`stride=stride` reads well)


@dataclass(eq=False)
class Keyword:
    """`, name=value` at a call of a written class, left out where the value is the parameter's
    default (known once the class is written)."""

    name: str
    value: "Fragments"
    default: Any


Fragment = Union[str, Hole, Keyword]
Fragments = list[Fragment]


@dataclass
class Line:
    indent: int
    fragments: Fragments


def skeleton(fragments: Fragments) -> tuple:
    """The text with every hole left blank: lines of two calls with equal skeletons differ in values only."""
    out = []
    for fragment in fragments:
        if isinstance(fragment, Hole):
            out.append(("hole", fragment.where))
        elif isinstance(fragment, Keyword):
            out.append(("keyword", fragment.name, skeleton(fragment.value)))
        else:
            out.append(fragment)
    return tuple(out)


def holes(fragments: Fragments) -> list[Hole]:
    found = []
    for fragment in fragments:
        if isinstance(fragment, Hole):
            found.append(fragment)
        elif isinstance(fragment, Keyword):
            found.extend(holes(fragment.value))
    return found


def value_fragments(value: Any, label: str, where: str = INIT, keyword: str | None = None) -> Fragments:
    """A Python value as fragments: literals as holes, tuples and lists item by item."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return [Hole(value, label, where, keyword)]
    if isinstance(value, Name):
        return [value.text]
    if isinstance(value, Call):
        return call_fragments(value, label, where)
    if isinstance(value, slice):  # Python's slice(start, stop, step), as an index tuple holds it
        return call_fragments(Call(type(value).__name__, (value.start, value.stop, value.step)), label, where)
    if value is Ellipsis:
        return ["..."]
    if isinstance(value, (tuple, list)):
        items = join([value_fragments(v, f"{label}_{k}", where, keyword) for k, v in enumerate(value)])
        if isinstance(value, list):
            return ["[", *items, "]"]
        return ["(", *items, ",)" if len(value) == 1 else ")"]
    raise ValueError(f"cannot write the value {value!r} as source")


def call_fragments(call: Call, label: str, where: str = INIT, inputs: Fragments | None = None) -> Fragments:
    """`callee(args, keyword=value)`; the op's inputs go where the call marks them."""
    from archspec.ops.source import INPUT_LIST, INPUTS

    parts = []
    for index, arg in enumerate(call.args):
        if arg is INPUTS:
            parts.append(list(inputs or []))
        elif arg is INPUT_LIST:
            parts.append(["[", *(inputs or []), "]"])
        else:
            parts.append(value_fragments(arg, f"{label}_{index}", where))
    defaults = dict(call.defaults)
    optional = []
    for name, value in call.keywords:
        fragments = value_fragments(value, f"{label}_{name}", where, name)
        if name in defaults:
            optional.append(Keyword(name, fragments, defaults[name]))
        else:
            parts.append([f"{name}=", *fragments])
    return [f"{call.callee}(", *join(parts), *optional, ")"]


def join(parts: list[Fragments], separator: str = ", ") -> Fragments:
    out: Fragments = []
    for index, part in enumerate(parts):
        if index:
            out.append(separator)
        out.extend(part)
    return out


def text(fragments: Fragments, written: dict[int, str]) -> str:
    """The fragments with each hole as `written[id(hole)]` (a keyword at its default left out)."""
    out = []
    for fragment in fragments:
        if isinstance(fragment, Hole):
            out.append(written[id(fragment)])
        elif isinstance(fragment, Keyword):
            value = text(fragment.value, written)
            if value != repr(fragment.default):
                opened = "".join(out).endswith("(")  # the call's first argument: no comma before it
                out.append(f"{'' if opened else ', '}{fragment.name}={value}")
        else:
            out.append(fragment)
    return "".join(out)
