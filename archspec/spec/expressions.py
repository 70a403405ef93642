"""archspec's own small expression language for spec values (`c * 2`, `make_divisible(c * w, 8)`).

Expressions are parsed with `ast` and walked by a whitelist: numbers, booleans, parameter names,
arithmetic, comparisons, `and`/`or`/`not`, `a if cond else b`, indexing into list parameters and
a fixed table of functions. Nothing else is accepted: no attributes, no calls of other names, no
`eval`/`exec`. Length, nesting depth and result size are bounded.
"""
from __future__ import annotations

import ast
import math
import operator
import warnings
from typing import Any, Callable, Mapping

MAX_LENGTH = 200
MAX_DEPTH = 32
MAX_MAGNITUDE = 10**15


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
    "make_divisible": make_divisible,
}

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}


def evaluate(text: str, names: Mapping[str, Any]) -> Any:
    """Evaluate `text` with `names` (parameter values) in scope. Every failure is an
    ExpressionError: bad input never surfaces as a TypeError or OverflowError."""
    text = text.strip()
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression is longer than {MAX_LENGTH} characters")
    try:
        with warnings.catch_warnings():  # `1if x else 2` parses with a SyntaxWarning on stderr
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ExpressionError(f"'{text}' is not a valid expression") from None
    try:
        return _Evaluator(names).visit(tree.body, 0)
    except (TypeError, OverflowError, ZeroDivisionError) as err:  # a safety net: each case is checked below
        raise ExpressionError(f"cannot evaluate '{text}': {err}") from None


def free_names(text: str) -> set[str]:
    """The names an expression reads (parameters, functions aside); empty when it does not parse.
    The spec checker uses it to leave alone a value over names it cannot know (block parameters)."""
    if len(text) > MAX_LENGTH:
        return set()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError):
        return set()
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in called}


class _Evaluator:
    def __init__(self, names: Mapping[str, Any]):
        self.names = names

    def visit(self, node: ast.AST, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise ExpressionError(f"expression is nested deeper than {MAX_DEPTH} levels")
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            raise ExpressionError(f"'{ast.unparse(node)}' is not allowed in an expression")
        return _checked(method(node, depth + 1))

    def visit_Constant(self, node: ast.Constant, depth: int) -> Any:
        if isinstance(node.value, (bool, int, float)):
            return node.value
        if isinstance(node.value, str):
            return node.value
        raise ExpressionError(f"constant {node.value!r} is not allowed")

    def visit_Name(self, node: ast.Name, depth: int) -> Any:
        if node.id in self.names:
            return self.names[node.id]
        if node.id in ("true", "True"):
            return True
        if node.id in ("false", "False"):
            return False
        from archspec.errors import did_you_mean

        hint = did_you_mean(node.id, list(self.names))
        raise ExpressionError(f"unknown name '{node.id}'" + (f"; {hint}" if hint else ""))

    def visit_List(self, node: ast.List, depth: int) -> Any:
        return [self.visit(item, depth) for item in node.elts]

    visit_Tuple = visit_List

    def visit_UnaryOp(self, node: ast.UnaryOp, depth: int) -> Any:
        value = self.visit(node.operand, depth)
        if isinstance(node.op, ast.USub):
            return -_number(value)
        if isinstance(node.op, ast.UAdd):
            return +_number(value)
        if isinstance(node.op, ast.Not):
            return not value
        raise ExpressionError("operator not allowed")

    def visit_BinOp(self, node: ast.BinOp, depth: int) -> Any:
        op = _BINARY.get(type(node.op))
        if op is None:
            raise ExpressionError(f"operator in '{ast.unparse(node)}' is not allowed")
        left, right = _number(self.visit(node.left, depth)), _number(self.visit(node.right, depth))
        if isinstance(node.op, ast.Pow):
            _check_power(left, right, node)
        try:
            result = op(left, right)
        except ZeroDivisionError:
            raise ExpressionError(f"division by zero in '{ast.unparse(node)}'") from None
        except OverflowError:  # float arithmetic beyond 1e308
            raise ExpressionError(f"'{ast.unparse(node)}' would be too large (the limit is {MAX_MAGNITUDE:.0e})") from None
        if isinstance(result, complex):  # (-8) ** 0.5
            raise ExpressionError(f"'{ast.unparse(node)}' is not a real number")
        return result

    def visit_BoolOp(self, node: ast.BoolOp, depth: int) -> Any:
        # short-circuit like Python: `x != 0 and 10 / x > 1` never divides by a zero x
        stop_when = not isinstance(node.op, ast.And)  # `and` stops at a false value, `or` at a true one
        for value_node in node.values:
            if bool(self.visit(value_node, depth)) == stop_when:
                return stop_when
        return not stop_when

    def visit_Compare(self, node: ast.Compare, depth: int) -> Any:
        left = self.visit(node.left, depth)
        for op_node, right_node in zip(node.ops, node.comparators):
            op = _COMPARE.get(type(op_node))
            if op is None:
                raise ExpressionError("comparison not allowed")
            right = self.visit(right_node, depth)
            if op not in (operator.eq, operator.ne) and not _orderable(left, right):
                raise ExpressionError(
                    f"'{ast.unparse(node)}': <, <=, > and >= compare numbers (or two words), "
                    f"not {_kind(left)} and {_kind(right)}"
                )
            if not op(left, right):
                return False
            left = right
        return True

    def visit_IfExp(self, node: ast.IfExp, depth: int) -> Any:
        branch = node.body if self.visit(node.test, depth) else node.orelse
        return self.visit(branch, depth)

    def visit_Subscript(self, node: ast.Subscript, depth: int) -> Any:
        container = self.visit(node.value, depth)
        index = self.visit(node.slice, depth)
        if not isinstance(container, list) or not isinstance(index, int) or isinstance(index, bool):
            raise ExpressionError(f"'{ast.unparse(node)}': only a list can be indexed, by an integer")
        if not -len(container) <= index < len(container):
            raise ExpressionError(f"'{ast.unparse(node)}': index {index} is out of range (length {len(container)})")
        return container[index]

    def visit_Call(self, node: ast.Call, depth: int) -> Any:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            from archspec.errors import did_you_mean

            name = ast.unparse(node.func)
            hint = did_you_mean(name, FUNCTIONS)
            raise ExpressionError(
                f"'{name}' is not a known function (known: {', '.join(FUNCTIONS)})" + (f"; {hint}" if hint else "")
            )
        if node.keywords:
            raise ExpressionError("keyword arguments are not allowed in expressions")
        args = [self.visit(arg, depth) for arg in node.args]
        try:
            return FUNCTIONS[node.func.id](*args)
        except ExpressionError:
            raise
        except (TypeError, ValueError, OverflowError) as err:
            raise ExpressionError(f"{node.func.id}(): {err}") from None


def _check_power(base: int | float, exponent: int | float, node: ast.AST) -> None:
    """Refuse `base ** exponent` before computing it when the result would pass MAX_MAGNITUDE:
    `999999 ** 64` is a 384-digit integer and `1e15 ** 64` a float overflow. The size is
    estimated with logarithms (exact enough: the result is checked again once computed)."""
    if base == 0 or abs(base) == 1 or exponent == 0:
        return
    if exponent * math.log10(abs(base)) > math.log10(MAX_MAGNITUDE) + 1e-9:
        raise ExpressionError(f"'{ast.unparse(node)}' would be too large (the limit is {MAX_MAGNITUDE:.0e})")


def _orderable(left: Any, right: Any) -> bool:
    numbers = all(isinstance(v, (int, float)) for v in (left, right))  # booleans order as 0 and 1
    return numbers or (isinstance(left, str) and isinstance(right, str))


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {value}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the word '{value}'"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return type(value).__name__


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ExpressionError(f"{value!r} is not a number")
    return value


def _checked(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise ExpressionError("result is not a finite number")
        if abs(value) > MAX_MAGNITUDE:
            # an int beyond float range cannot be shown with :g (OverflowError); say its size instead
            shown = f"{value:.3g}" if isinstance(value, float) or value.bit_length() < 1000 else \
                f"with about {int(value.bit_length() * math.log10(2)) + 1:,} digits"
            raise ExpressionError(f"result {shown} is larger than the limit {MAX_MAGNITUDE:.0e}")
    return value
