"""Values the IR builder reads from a spec: parameter values, names with `{expression}` parts,
`when` conditions and whole numbers, each checked and turned into a located error when wrong."""
from __future__ import annotations

from typing import Any, Mapping

from archspec.errors import Location, SpecError
from archspec.spec.arguments import NAME_PART, value_text
from archspec.spec.document import check_name
from archspec.spec.expressions import FUNCTIONS, ExpressionError, evaluate
from archspec.spec.yaml_source import MAX_INTEGER

MAX_OVERRIDE = MAX_INTEGER  # a number given from outside the spec (--set, the API), as in a spec


def name_of(value: Any, env: Mapping[str, Any], loc: Location | None) -> str:
    """A node name; its `{expression}` parts are evaluated (`denselayer{i + 1}`, `{e + 1}`)."""
    if is_template(value):
        try:
            value = NAME_PART.sub(lambda part: _name_text(evaluate(part.group(1), env)), value)
        except ExpressionError as err:
            raise SpecError(f"name '{value}': {err}", loc) from None
    return check_name(value, loc)


def condition(value: Any, env: Mapping[str, Any], loc: Location | None, node: str) -> bool:
    """`when: COND`: the item is built only where COND (an expression) is true."""
    if isinstance(value, str):
        try:
            value = evaluate(value, env)
        except ExpressionError as err:
            raise SpecError(f"when: {err}", loc, node) from None
    if not isinstance(value, bool):
        raise SpecError(f"`when` must be true or false, got {value!r}", loc, node, hint="e.g. `when: stride == 1`")
    return value


def param_value(value: Any, env: Mapping[str, Any], loc: Location | None, name: str) -> Any:
    """A parameter's value: numbers and booleans as they are, strings as expressions (a bare
    word that names nothing stays a word, e.g. `mode: bilinear`), lists element-wise."""
    if isinstance(value, list):
        return [param_value(v, env, loc, name) for v in value]
    if isinstance(value, str):
        if value.isidentifier() and value not in env and value not in FUNCTIONS:
            return value
        try:
            return evaluate(value, env)
        except ExpressionError as err:
            raise SpecError(f"parameter '{name}': {err}", loc) from None
    return value


def integer(value: Any, env: Mapping[str, Any], loc: Location | None, what: str, node: str | None = None) -> int:
    if isinstance(value, str):
        try:
            value = evaluate(value, env)
        except ExpressionError as err:
            raise SpecError(f"{what}: {err}", loc, node) from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{what} must be a whole number, got {value!r}", loc, node)
    return value


def check_override(name: str, value: Any) -> None:
    """A number given from outside the spec (--set, or the API) is at most MAX_OVERRIDE in
    magnitude, like a number written in a spec (archspec.spec.yaml_source.MAX_INTEGER)."""
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, list):
            check_override(name, item)
        elif isinstance(item, (int, float)) and not isinstance(item, bool) and abs(item) > MAX_OVERRIDE:
            raise SpecError(f"--set {name}: {value_text(item)} is larger than the limit {MAX_OVERRIDE:.0e}")


def kind_of(value: Any) -> str:
    """The kind of a parameter value, for checking --set against the default."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    return "a word" if isinstance(value, str) else "empty"


def is_template(name: Any) -> bool:
    return isinstance(name, str) and NAME_PART.search(name) is not None


def _name_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ExpressionError(f"a name part is a whole number or a word, not {value!r}")
    return str(value)
