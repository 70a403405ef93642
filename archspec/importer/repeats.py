"""Runs of one block as one `repeat` item.

A run is two or more consecutive calls of the same block, each reading the one before (no
`from:`), named by consecutive numbers with one prefix (`0`, `1`, `2` or `denselayer1`,
`denselayer2`). Its item is named by a template (`"{4 + i}"`, `"denselayer{i + 1}"`), or, where
the run is the whole list and counts from `0`, carries no name (the enclosing module becomes
`block: {name: layer1, repeat: 3}`). A number that changes per copy becomes an expression of
the copy's index `i`: `2 if i == 0 else 1`, `a + b * i`, or `[a, b, c][i]`.
"""
from __future__ import annotations

import re
from typing import Any

from archspec.importer.items import Item

_NUMBERED = re.compile(r"^(.*?)(\d+)$")


def merge_repeats(items: list[Item], blocks: dict[str, Any]) -> list[Item]:
    merged: list[Item] = []
    start = 0
    while start < len(items):
        end = _run_end(items, start, blocks)
        if end - start >= 2:
            merged.append(_repeat_item(items[start:end], blocks[items[start].callee].params, whole=start == 0 and end == len(items)))
        else:
            merged.append(items[start])
        start = max(end, start + 1)
    return merged


def _run_end(items: list[Item], start: int, blocks: dict[str, Any]) -> int:
    first = items[start]
    if first.callee not in blocks or first.repeat is not None or _numbered(first.spec_name) is None:
        return start + 1
    prefix, number = _numbered(first.spec_name)
    block = blocks[first.callee]
    end = start + 1
    while end < len(items):
        item, previous = items[end], items[end - 1]
        if (item.callee != first.callee or item.refs is not None or item.inputs != [previous.output]
                or item.repeat is not None or _numbered(item.spec_name) != (prefix, number + end - start)):
            break
        if not _readable(items[start:end + 1], block.params):
            break
        end += 1
    return end


def _numbered(name: str) -> tuple[str, int] | None:
    found = _NUMBERED.match(name or "")
    if found is None or (found.group(2).startswith("0") and found.group(2) != "0"):
        return None
    return found.group(1), int(found.group(2))


def _readable(run: list[Item], defaults: dict[str, Any]) -> bool:
    """Whether the run reads better as one item: its copies differ in numbers only, and in one
    argument for a pair (two calls that differ in several are two different layers), two for
    longer runs."""
    args = _per_copy(run, defaults)
    if args is None:
        return False
    varying = sum(1 for key, value in args.items() if isinstance(value, str) and value != run[0].args.get(key))
    return varying <= (1 if len(run) == 2 else 2)


def _per_copy(run: list[Item], defaults: dict[str, Any]) -> dict[str, Any] | None:
    """The run's arguments, each a value or an expression of `i`; None when a value that is not
    a number changes between copies."""
    keys = [k for item in run for k in item.args]
    args = {}
    for key in dict.fromkeys(keys):
        column = [item.args.get(key, defaults.get(key)) for item in run]
        if len(set(map(repr, column))) == 1:
            args[key] = column[0]
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in column):
            args[key] = _expression(column)
        else:
            return None
    return args


def _expression(column: list) -> str:
    first, rest = column[0], column[1:]
    if len(set(rest)) == 1:
        return f"{_number(first)} if i == 0 else {_number(rest[0])}"
    step = (column[-1] - column[0]) / (len(column) - 1)
    step = int(step) if all(isinstance(v, int) for v in column) and step == int(step) else step
    if all(abs(v - (first + step * k)) <= 1e-9 * max(1.0, abs(v)) for k, v in enumerate(column)):
        head = "" if first == 0 else f"{_number(first)} + "
        return f"{head}{_number(step)} * i"  # a stochastic-depth schedule: p grows linearly per block
    return "[" + ", ".join(map(_number, column)) + "][i]"


def _number(value) -> str:
    """A float in 12 significant digits (0.0058823529411764705 -> 0.00588235294118), an int as is."""
    return f"{value:.12g}" if isinstance(value, float) else str(value)


def _repeat_item(run: list[Item], defaults: dict[str, Any], whole: bool) -> Item:
    prefix, number = _numbered(run[0].spec_name)
    args = _per_copy(run, defaults) or {}
    if whole and prefix == "" and number == 0:
        name = None  # the enclosing module is the run: `block: {name: layer1, repeat: N}`
    elif number == 0:
        name = f"{prefix}{{i}}"
    else:
        name = f"{prefix}{{i + {number}}}" if prefix else f"{{{number} + i}}"
    return Item(run[0].callee, name, refs=run[0].refs, args=args, repeat=len(run), inputs=run[0].inputs,
                output=run[-1].output, spec_name=name or "", defaults=defaults)
