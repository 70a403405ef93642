"""Values the IR builder reads from a spec: parameter values, names with `{expression}` parts,
`when` conditions, whole numbers, `from` expressions and the shape names a block sees, each
checked and turned into a located error when wrong."""
from __future__ import annotations

from collections import ChainMap
from typing import Any, Mapping, Sequence

from archspec.errors import Location, SpecError
from archspec.spec.arguments import NAME_PART, value_text
from archspec.spec.document import check_name
from archspec.spec.expressions import FUNCTIONS, REFERENCE, ExpressionError, Unavailable, evaluate, shape_key
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


# --- what a block sees of its inputs ---------------------------------------------------------------
def shape_names(inputs: Sequence[str], shapes: Sequence[tuple[int, ...]], first: bool = True) -> dict[str, Any]:
    """`NAME.shape` for each named input (sizes without the batch axis); with `first`, also
    `in_channels`, `in_h`, `in_w` of the first input: C, H, W of a C x H x W map, C of a vector.
    A name that does not fit the first input's rank says what to read instead."""
    names: dict[str, Any] = {shape_key(name): list(shape) for name, shape in zip(inputs, shapes)}
    if not first or not inputs:
        return names
    shape, input_name = shapes[0], inputs[0]
    shown = "x".join(map(str, shape))
    instead = f"read {input_name}.shape[k] (it is [{', '.join(map(str, shape))}])"
    if len(shape) == 2:  # tokens x channels or rows x columns: which one is "channels" is the spec's to say
        names["in_channels"] = Unavailable(f"in_channels: the input '{input_name}' is {shown}, not a map or a vector "
                                           f"(which size is the channels?); {instead}")
    else:
        names["in_channels"] = shape[0]
    for name, axis in (("in_h", -2), ("in_w", -1)):
        names[name] = shape[axis] if len(shape) >= 3 else Unavailable(
            f"{name}: the input '{input_name}' is {shown}, which has no height and width; {instead}")
    return names


# --- `from:` as an expression ----------------------------------------------------------------------
class _Words(Mapping[str, str]):
    """In a `from` expression, a name that is not a parameter stands for itself: a node name."""

    def __getitem__(self, name: str) -> str:
        if name in ("true", "True", "false", "False"):
            raise KeyError(name)
        return name

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name not in ("true", "True", "false", "False")

    def __iter__(self):
        return iter(())

    def __len__(self) -> int:
        return 0


def chosen_references(value: Any, env: Mapping[str, Any], loc: Location | None, node: str) -> list[Any]:
    """`from: "skip if downsample else input"`: the reference(s) an expression gives. A plain
    reference (`conv1`, `layer1.0.conv2`) is itself; otherwise the expression is evaluated over the
    parameters, where any other name is a node name (`'layer1.0'` quoted for a dotted one)."""
    if not isinstance(value, str) or REFERENCE.match(value):
        return [value]
    try:
        result = evaluate(value, ChainMap(env, _Words()))
    except ExpressionError as err:
        raise SpecError(f"from: {err}", loc, node) from None
    refs = result if isinstance(result, list) else [result]
    if not refs or not all(isinstance(ref, str) and REFERENCE.match(ref) for ref in refs):
        raise SpecError(
            f"from: '{value}' gives {value_text(result)}, not a node name or a list of them", loc, node,
            hint="a name that is a parameter stands for its value; quote a node name to mean the node ('conv1')",
        )
    return refs
