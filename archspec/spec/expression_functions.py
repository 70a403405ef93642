"""The functions an expression may call (archspec.spec.expressions), and the checks they share
with the evaluator: each takes plain values, refuses bad ones with an ExpressionError and keeps
lists within MAX_ITEMS."""
from __future__ import annotations

import math
from typing import Any, Callable

MAX_ITEMS = 10_000  # entries of one list an expression builds (range, comprehension, a + b, [0] * n)


class ExpressionError(ValueError):
    """Raised with a user-facing message; the caller adds the location."""


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of `divisor`, never dropping more than 10%.

    The rule MobileNet v2 / EfficientNet use (torchvision `_make_divisible`).
    """
    divisor = int(divisor)
    if divisor <= 0:
        raise ExpressionError("make_divisible: divisor must be positive")
    min_value = divisor if min_value is None else min_value
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


def _round(value: float, ndigits: int | None = None) -> float:
    return round(value) if ndigits is None else round(value, int(ndigits))


def _log(value: float, base: float | None = None) -> float:
    """Natural log, or log to `base` (`log(x, 2)`); refused where math would say "domain error"."""
    if number(value) <= 0 or (base is not None and (number(base) <= 0 or base == 1)):
        raise ExpressionError(f"log({value}{'' if base is None else f', {base}'}): "
                              "needs a positive number (and a positive base other than 1)")
    return math.log(value) if base is None else math.log(value, base)


def _log2(value: float) -> float:
    return _log(value, 2)


def _range(*bounds: int) -> list[int]:
    """`range(stop)`, `range(start, stop)`, `range(start, stop, step)` as a list, at most MAX_ITEMS long."""
    if not 1 <= len(bounds) <= 3 or any(isinstance(b, bool) or not isinstance(b, int) for b in bounds):
        raise ExpressionError("range takes 1 to 3 whole numbers: range(n), range(start, stop), range(start, stop, step)")
    if len(bounds) == 3 and bounds[2] == 0:
        raise ExpressionError("range: the step cannot be 0")
    span = range(*bounds)
    check_length(len(span), f"range({', '.join(map(str, bounds))})")
    return list(span)


def _len(value: Any) -> int:
    if not isinstance(value, (list, str)):
        raise ExpressionError(f"len() takes a list or a word, not {kind(value)}")
    return len(value)


def _zip(*lists: Any) -> list[list]:
    """`zip(a, b)` as a list of pairs, as long as the shortest list (`for w, g in zip(widths, groups)`)."""
    if not lists or not all(isinstance(values, list) for values in lists):
        raise ExpressionError("zip() takes lists: zip(a, b)")
    return [list(entries) for entries in zip(*lists)]


def _sum(values: Any) -> int | float:
    if not isinstance(values, list):
        raise ExpressionError(f"sum() takes a list, not {kind(values)}")
    return sum(number(v) for v in values)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": min,
    "max": max,
    "abs": abs,
    "round": _round,
    "int": int,
    "float": float,
    "floor": math.floor,
    "ceil": math.ceil,
    "sqrt": math.sqrt,
    "log": _log,
    "log2": _log2,
    "len": _len,
    "sum": _sum,
    "range": _range,
    "zip": _zip,
    "make_divisible": make_divisible,
}



def kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {value}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the word '{value}'"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return type(value).__name__




def number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ExpressionError(f"{value!r} is not a number")
    return value




def check_length(length: int, text: str) -> None:
    if length > MAX_ITEMS:
        raise ExpressionError(f"'{text}' would have {length:,} items; the limit is {MAX_ITEMS:,}")
