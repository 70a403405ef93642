"""References (`from: conv1`, `from: layer1.0.conv2`, `from: split1.0`) -> the binding they name.

The first part is looked up in the scope and its lexical parents; each further part is a name
inside what the previous one made (a block call's node, a repeat's copy, an output of a node with
several outputs, or an op of an `index_names` group by its index). A name that is defined later
in the list would make a cycle and is reported as such.
"""
from __future__ import annotations

from typing import Any

from archspec.errors import Location, SpecError, did_you_mean
from archspec.ir.scope import Binding, Scope


def resolve(ref: Any, scope: Scope, loc: Location | None, node: str | None = None) -> Binding:
    if not isinstance(ref, (str, int)) or isinstance(ref, bool) or str(ref) == "":
        raise SpecError(f"a reference is a node name, not {ref!r}", loc, node)
    parts = str(ref).split(".")
    binding = _first(parts[0], ref, scope, loc, node)
    for depth, part in enumerate(parts[1:], start=1):
        if part not in binding.children:
            inside = ".".join(parts[:depth])
            raise SpecError(
                f"'{inside}' has no node '{part}'",
                loc,
                node,
                hint=did_you_mean(part, binding.children) or (f"it contains: {', '.join(binding.children)}" if binding.children else None),
            )
        binding = binding.children[part]
    return binding


def _first(name: str, ref: Any, scope: Scope, loc: Location | None, node: str | None) -> Binding:
    current: Scope | None = scope
    passed: list[Scope] = []  # the scopes searched in vain (their names, for the hint)
    while current is not None:
        if name in current.names:
            return current.names[name]
        if name in current.pending:
            later = current.pending[name]
            raise SpecError(
                f"'{name}' is defined later (line {later.line}); a reference to it here would make a cycle",
                loc,
                node,
                hint="references point to earlier nodes; reorder the layers",
            )
        passed.append(current)
        current = current.parent
    visible = [known for searched in passed for known in searched.names]
    if node is not None and name == node.rsplit(".", 1)[-1]:
        raise SpecError(
            f"'{name}' is this node itself; a node cannot take its own output (a cycle)",
            loc,
            node,
            hint="references point to earlier nodes",
        )
    raise SpecError(
        f"unknown reference '{ref}'",
        loc,
        node,
        hint=did_you_mean(name, visible) or (f"names visible here: {', '.join(visible[-12:])}" if visible else None),
    )
