"""archspec's own small expression language for spec values (`c * 2`, `make_divisible(c * w, 8)`).

Expressions are parsed with `ast` and walked by a whitelist: numbers, booleans, parameter names,
arithmetic, comparisons, `and`/`or`/`not`, `a if cond else b`, indexing into lists, list building
(`[w * 2 for w in widths if w > 8]`, `range(n)`, `a + b` and `[0] * n` on lists), a block input's
shape (`input.shape[0]`, the one attribute there is) and a fixed table of functions. Nothing else
is accepted: no other attributes, no calls of other names, no `eval`/`exec`. Length, nesting
depth, result size, list length and the work of one evaluation are bounded.
"""
from __future__ import annotations

import ast
import math
import operator
import re
import warnings
from collections import ChainMap
from typing import Any, Callable, Mapping

from archspec.spec.expression_functions import (  # noqa: F401  (FUNCTIONS, make_divisible: re-exported)
    FUNCTIONS, MAX_ITEMS, ExpressionError, check_length, kind, make_divisible, number,
)

MAX_LENGTH = 200
MAX_DEPTH = 32
MAX_MAGNITUDE = 10**15
MAX_STEPS = 100_000  # nodes visited in one evaluation: nested comprehensions multiply
SHAPE = "shape"  # `NAME.shape`: the one attribute, a value's shape; its key in the names is "NAME.shape"
IN_NAMES = ("in_channels", "in_h", "in_w")  # inside a block: its first input's channels, height and width
# a `from:` value of this form is a reference (conv1, layer1.0.conv2, halves.1); any other is an expression
REFERENCE = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")


class Unavailable:
    """A name that is defined but cannot be read here, with what to read instead (`in_h` of a
    block whose input is a vector)."""

    def __init__(self, message: str):
        self.message = message


def shape_key(name: str) -> str:
    """The key under which the names give `name.shape` (a dotted key: no parameter can clash)."""
    return f"{name}.{SHAPE}"


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
    """The names an expression reads (parameters, functions and comprehension variables aside;
    `input` for `input.shape`); empty when it does not parse. The spec checker uses it to leave
    alone a value over names it cannot know (block parameters)."""
    if len(text) > MAX_LENGTH:
        return set()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError):
        return set()
    return _free(tree.body, frozenset())


def _free(node: ast.AST, bound: frozenset[str]) -> set[str]:
    if isinstance(node, ast.Name):
        return set() if node.id in bound else {node.id}
    if isinstance(node, ast.Call):  # the function's own name is not a value
        return set().union(*(_free(arg, bound) for arg in [*node.args, *(k.value for k in node.keywords)]))
    if isinstance(node, (ast.ListComp, ast.GeneratorExp)):
        found: set[str] = set()
        for generator in node.generators:  # each `for` sees the variables of the ones before it
            found |= _free(generator.iter, bound)
            bound = bound | {n.id for n in ast.walk(generator.target) if isinstance(n, ast.Name)}
            found = found.union(*(_free(test, bound) for test in generator.ifs))
        return found | _free(node.elt, bound)
    return set().union(*(_free(child, bound) for child in ast.iter_child_nodes(node)))


class _Evaluator:
    def __init__(self, names: Mapping[str, Any]):
        self.names = names
        self.steps = 0

    def visit(self, node: ast.AST, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise ExpressionError(f"expression is nested deeper than {MAX_DEPTH} levels")
        self.charge(1)
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            raise ExpressionError(f"'{ast.unparse(node)}' is not allowed in an expression")
        return _checked(method(node, depth + 1))

    def charge(self, steps: int) -> None:
        """Count work: a node visited is one step, a list made by `+`, `*` or a function one per entry."""
        self.steps += steps
        if self.steps > MAX_STEPS:
            raise ExpressionError(f"expression takes more than {MAX_STEPS:,} steps to evaluate; "
                                  "build shorter lists or fewer nested `for`s")

    def size(self, value: Any) -> int:
        """Entries of a list, nested lists counted in full; stops counting past the steps left."""
        count, stack, left = 0, [value], MAX_STEPS - self.steps + 1
        while stack and count <= left:
            item = stack.pop()
            if isinstance(item, list):
                count += len(item)
                stack.extend(entry for entry in item if isinstance(entry, list))
        return max(count, 1)

    def visit_Constant(self, node: ast.Constant, depth: int) -> Any:
        if isinstance(node.value, (bool, int, float)):
            return node.value
        if isinstance(node.value, str):
            return node.value
        raise ExpressionError(f"constant {node.value!r} is not allowed")

    def visit_Name(self, node: ast.Name, depth: int) -> Any:
        if node.id in self.names:
            value = self.names[node.id]
            if isinstance(value, Unavailable):
                raise ExpressionError(value.message)
            return value
        if node.id in ("true", "True"):
            return True
        if node.id in ("false", "False"):
            return False
        from archspec.errors import did_you_mean

        hint = did_you_mean(node.id, [name for name in self.names if "." not in name])
        raise ExpressionError(f"unknown name '{node.id}'" + (f"; {hint}" if hint else ""))

    def visit_Attribute(self, node: ast.Attribute, depth: int) -> Any:
        """`NAME.shape`: the shape of a value (a block's input), sizes without the batch axis."""
        if node.attr != SHAPE or not isinstance(node.value, ast.Name):
            raise ExpressionError(f"'{ast.unparse(node)}' is not allowed in an expression; the one attribute "
                                  "is NAME.shape, the shape of a block's input (input.shape[0])")
        key = shape_key(node.value.id)
        if key not in self.names:
            readable = [name for name in self.names if name.endswith("." + SHAPE)]
            raise ExpressionError(
                f"'{ast.unparse(node)}': '{node.value.id}' is not an input here; "
                + (f"the shapes readable here: {', '.join(readable)}" if readable else
                   "shapes are readable of a block's inputs inside the block and of the spec's inputs at its top")
            )
        return list(self.names[key])

    def visit_ListComp(self, node: ast.ListComp | ast.GeneratorExp, depth: int) -> list:
        """`[expr for x in list if cond ...]`, at most MAX_ITEMS entries; `x` is seen only inside."""
        items: list = []

        def add() -> None:
            items.append(self.visit(node.elt, depth))
            self.charge(self.size(items[-1]) - 1)  # an entry that is a list counts its entries
            if len(items) > MAX_ITEMS:
                check_length(len(items), ast.unparse(node))

        self._generate(node.generators, add, depth)
        return items

    visit_GeneratorExp = visit_ListComp  # sum(w for w in widths): the same, built as a list

    def _generate(self, generators: list[ast.comprehension], add: Callable[[], None], depth: int) -> None:
        first, rest = generators[0], generators[1:]
        if first.is_async:
            raise ExpressionError("`async for` is not allowed in an expression")
        values = self.visit(first.iter, depth)
        if not isinstance(values, list):
            raise ExpressionError(f"'for ... in {ast.unparse(first.iter)}' goes over a list (e.g. range(n)), "
                                  f"not {kind(values)}")
        outer = self.names
        try:
            for value in values:
                self.names = ChainMap(_bound(first.target, value), outer)
                if all(self.visit(test, depth) for test in first.ifs):
                    self._generate(rest, add, depth) if rest else add()
        finally:
            self.names = outer

    def visit_List(self, node: ast.List, depth: int) -> Any:
        items = [self.visit(item, depth) for item in node.elts]
        self.charge(sum(self.size(item) for item in items if isinstance(item, list)))  # [w, w, w] of a long w
        return items

    visit_Tuple = visit_List

    def visit_UnaryOp(self, node: ast.UnaryOp, depth: int) -> Any:
        value = self.visit(node.operand, depth)
        if isinstance(node.op, ast.USub):
            return -number(value)
        if isinstance(node.op, ast.UAdd):
            return +number(value)
        if isinstance(node.op, ast.Not):
            return not value
        raise ExpressionError("operator not allowed")

    def visit_BinOp(self, node: ast.BinOp, depth: int) -> Any:
        op = _BINARY.get(type(node.op))
        if op is None:
            raise ExpressionError(f"operator in '{ast.unparse(node)}' is not allowed")
        left, right = self.visit(node.left, depth), self.visit(node.right, depth)
        if isinstance(left, list) or isinstance(right, list):
            joined = _list_arithmetic(node, left, right)
            self.charge(self.size(joined))  # [[0] * 9999] * 9999 shares one list, but a reader expands it
            return joined
        left, right = number(left), number(right)
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
                    f"not {kind(left)} and {kind(right)}"
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
            result = FUNCTIONS[node.func.id](*args)
        except ExpressionError:
            raise
        except (TypeError, ValueError, OverflowError) as err:
            raise ExpressionError(f"{node.func.id}(): {err}") from None
        self.charge(len(result) if isinstance(result, list) else 0)  # range(n)
        return result


def _bound(target: ast.AST, value: Any) -> dict[str, Any]:
    """The names a comprehension's `for TARGET in ...` binds: `x`, or `a, b` over lists of two."""
    if isinstance(target, ast.Name):
        return {target.id: value}
    if isinstance(target, (ast.Tuple, ast.List)) and all(isinstance(t, ast.Name) for t in target.elts):
        if not isinstance(value, list) or len(value) != len(target.elts):
            raise ExpressionError(f"'for {ast.unparse(target)} in ...' needs lists of {len(target.elts)}, "
                                  f"got {kind(value)}")
        return {t.id: v for t, v in zip(target.elts, value)}
    raise ExpressionError(f"'for {ast.unparse(target)} in ...': the variable is a name or names (`for a, b in ...`)")


def _list_arithmetic(node: ast.BinOp, left: Any, right: Any) -> list:
    """`a + b` joins two lists, `[0] * n` repeats one; the result is at most MAX_ITEMS long."""
    text = ast.unparse(node)
    if isinstance(node.op, ast.Add) and isinstance(left, list) and isinstance(right, list):
        check_length(len(left) + len(right), text)
        return left + right
    if isinstance(node.op, ast.Mult):
        items, times = (left, right) if isinstance(left, list) else (right, left)
        if isinstance(times, int) and not isinstance(times, bool):
            check_length(len(items) * max(times, 0), text)
            return items * times
    raise ExpressionError(f"'{text}': lists join with + (a + b) and repeat with * ([0] * n); "
                          f"not {kind(left)} and {kind(right)}")


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


def _checked(value: Any) -> Any:
    if isinstance(value, list):
        check_length(len(value), "the list")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise ExpressionError("result is not a finite number")
        if abs(value) > MAX_MAGNITUDE:
            # an int beyond float range cannot be shown with :g (OverflowError); say its size instead
            shown = f"{value:.3g}" if isinstance(value, float) or value.bit_length() < 1000 else \
                f"with about {int(value.bit_length() * math.log10(2)) + 1:,} digits"
            raise ExpressionError(f"result {shown} is larger than the limit {MAX_MAGNITUDE:.0e}")
    return value
