"""What one layer item gives, checked: an op's arguments, a construct's keys, the reserved keys.

pydantic does the checking: each op's own arguments model, and the small models here for the
constructs (`parallel`, `seq`, `reuse`) and the reserved keys. The functions turn its errors into
located SpecErrors on the item the user wrote; a fixed-choice value (`mode: bilinar`,
`padding: sme`, `fit: crp`) says "must be one of ..." with a did-you-mean. The IR builder reports
the first error of an item, the spec checker (`archspec.spec.lint`) every one.
"""
from __future__ import annotations

import re
import types
import typing
from typing import Any, Iterable, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

from archspec.errors import Location, SpecError, did_you_mean
from archspec.ops.catalog import entries
from archspec.ops.merge import DEFAULT_MERGE, Fit
from archspec.spec.expressions import free_names
from archspec.spec.yaml_source import SourceMap

RESERVED_KEYS = ("name", "from", "repeat", "trainable", "when")
MAX_REPEAT = 1000
REPEAT_INDEX = "i"  # the name bound to the repetition index inside a repeated item
NAME_PART = re.compile(r"\{([^{}]*)\}")  # an `{expression}` inside a name (`denselayer{i + 1}`)

# how a `parallel` (or a block with `branches`) may join its branches: any op with the "merge"
# trait, by its own name (as archspec.ir.constructs)
MERGES = tuple(op.name for op in entries() if op.is_("merge"))
Merge = Literal[MERGES]  # type: ignore[valid-type]


# --- the shapes of the constructs and the reserved keys ---------------------------------------------
class _Keys(BaseModel):
    model_config = ConfigDict(extra="forbid")


Reference = Union[StrictStr, StrictInt]


class ParallelKeys(_Keys):
    branches: dict[Any, Any] = Field(min_length=1, description="a mapping of branch name -> layers")
    merge: Merge = Field(DEFAULT_MERGE, description="how the branch outputs are merged")
    fit: Fit = Field("none", description="how differing spatial sizes are aligned")


class SeqKeys(_Keys):
    layers: Any = Field(description="the list of layers of the group")
    index_names: StrictBool = Field(False, description="true or false")


class ReuseKeys(_Keys):
    node: Reference = Field(description="the name of the node or block whose weights to share")


CONSTRUCTS: dict[str, type[_Keys]] = {"parallel": ParallelKeys, "seq": SeqKeys, "reuse": ReuseKeys}


class ReservedKeys(BaseModel):
    """The reserved keys of any item; the rest are the op's (or block's, or construct's) own."""

    # a key that is absent is None; one given as null is of the wrong kind (defaults are not validated)
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    name: Reference = None
    from_: Union[Reference, list[Reference]] = Field(None, alias="from")
    repeat: Union[StrictInt, StrictFloat, StrictStr] = None
    trainable: StrictBool = None
    when: Union[StrictBool, StrictStr] = None


# what a reserved key of the wrong kind is told (the words the IR builder has always used)
RESERVED_MESSAGES = {
    "name": "'{raw}' is not a valid node name",
    "from": "a reference is a node name, not {value}",
    "repeat": "repeat must be a whole number, got {value}",
    "trainable": "`trainable` is true or false, not {value}",
    "when": "`when` must be true or false, got {value}",
}
RESERVED_ON_NODE = ("from", "repeat", "when")  # the errors that name the item's node
RESERVED_HINTS = {
    "name": "names are 1-64 letters, digits, '_' or '-' (dots separate scopes and are not allowed)",
    "when": "e.g. `when: stride == 1`",
}


# --- op arguments -----------------------------------------------------------------------------------
def argument_error(err: ValidationError, op, args: SourceMap, loc: Location, node_id: str | None) -> SpecError:
    """The first error of an op's arguments (the IR builder's report): an unknown argument
    first, since a misspelt one explains a missing one."""
    return argument_errors(err, op, args, loc, node_id)[0]


def argument_errors(err: ValidationError, op, args: SourceMap, loc: Location, node_id: str | None,
                    unknown: Iterable[str] = (), keys_only: bool = False) -> list[SpecError]:
    """Every independent error of an op's arguments, one per argument, unknown ones first.
    `unknown`: names whose values cannot be known here (block parameters): a value over them is
    left alone. `keys_only`: report unknown and missing arguments only (an item left out by `when`)."""
    known = list(op.args.model_fields)
    found = []
    for error in _independent(err.errors()):
        name = str(error["loc"][0]) if error["loc"] else None
        if error["type"] == "extra_forbidden":
            found.append(SpecError(
                f"{op.name} has no argument '{name}'",
                args.key_loc(name) if isinstance(args, SourceMap) else loc,
                node_id,
                hint=quoting_hint(name) or did_you_mean(name, known)
                or (f"{op.name} takes: {', '.join(known)}" if known else f"{op.name} takes no arguments"),
            ))
        elif error["type"] == "missing":
            found.append(SpecError(f"{op.name} needs argument '{name}'", loc, node_id, hint=f"{op.name} takes: {', '.join(known)}"))
        elif not keys_only and not _depends_on(args.get(name) if name else None, unknown):
            where = args.value_loc(name) if isinstance(args, SourceMap) and name in args else loc
            annotation = op.args.model_fields[name].annotation if name in op.args.model_fields else None
            found.append(_value_error(error, f"{op.name} argument '{name}'", annotation, where, node_id))
    return found


def _independent(errors: list[dict]) -> list[dict]:
    """The first error of each argument, unknown arguments first; when there are unknown ones,
    no missing ones (`kernal: 3` explains a missing `kernel`)."""
    extra = [e for e in errors if e["type"] == "extra_forbidden"]
    rest = [e for e in errors if e["type"] != "extra_forbidden" and not (extra and e["type"] == "missing")]
    seen, kept = set(), []
    for error in extra + rest:
        field_name = error["loc"][0] if error["loc"] else None
        if field_name is None or field_name not in seen:
            seen.add(field_name)
            kept.append(error)
    return kept


def _value_error(error: dict, what: str, annotation: Any, where: Location, node_id: str | None) -> SpecError:
    value = error.get("input")
    allowed = choices(annotation)
    if allowed and _is_a_choice_attempt(error, value, allowed):
        others = _other_kinds(annotation)
        return SpecError(
            f"{what} must be one of {', '.join(map(repr, allowed))}" + (f" (or {others})" if others else "")
            + f", not {value_text(value)}",
            where,
            node_id,
            hint=(did_you_mean(value, allowed) or _expression_hint(error)) if isinstance(value, str) else None,
        )
    message = error["msg"].removeprefix("Value error, ")
    shown = f" (got {value_text(value)})" if value is not None and not isinstance(value, (dict, list)) else ""
    return SpecError(f"{what}: {message}{shown}", where, node_id)


def _is_a_choice_attempt(error: dict, value: Any, allowed: tuple[str, ...]) -> bool:
    """A bare word that is not a choice (`bilinar`: an unknown name to the expression reader), or
    a value of a field that only takes the choices."""
    if isinstance(value, str):
        return value.isidentifier() and value not in allowed
    return error["type"] == "literal_error"


def _expression_hint(error: dict) -> str | None:
    """The did-you-mean of an unknown name (a misspelt parameter, `padding: pda` for `pad`)."""
    _, _, hint = error["msg"].partition("; ")
    return hint if hint.startswith("did you mean") else None


def choices(annotation: Any) -> tuple[str, ...]:
    """The fixed words a field takes: its Literal strings, inside Optional/Union/Annotated too."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return tuple(a for a in typing.get_args(annotation) if isinstance(a, str))
    if origin in (Union, types.UnionType, typing.Annotated):
        return tuple(word for arg in typing.get_args(annotation) for word in choices(arg))
    return ()


def _other_kinds(annotation: Any) -> str:
    """What else than a word the field takes, in words ("a whole number or a pair [a, b]")."""
    kinds: list[str] = []
    for arg in typing.get_args(annotation) if typing.get_origin(annotation) in (Union, types.UnionType) else ():
        kind = _kind_of(arg)
        if kind and kind not in kinds:
            kinds.append(kind)
    return " or ".join(kinds)


def _kind_of(annotation: Any) -> str | None:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _kind_of(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return _other_kinds(annotation) or None
    if origin in (tuple, list):
        return "a pair [a, b]"
    if annotation is bool:
        return "true or false"
    if annotation is int:
        return "a whole number"
    if annotation is float:
        return "a number"
    return None


def _depends_on(value: Any, unknown: Iterable[str]) -> bool:
    """Whether a raw value is an expression (or list of them) over a name in `unknown`."""
    unknown = set(unknown)
    if not unknown:
        return False
    if isinstance(value, str):
        return bool(free_names(value) & unknown) or value in unknown
    if isinstance(value, list):
        return any(_depends_on(item, unknown) for item in value)
    return False


# --- construct and reserved keys --------------------------------------------------------------------
def key_errors(model: type[BaseModel], what: str, body: dict, args: SourceMap, loc: Location,
               node_id: str | None) -> list[SpecError]:
    """Every error of a construct's keys (`model` is one of CONSTRUCTS), located on the item."""
    try:
        model.model_validate(body)
    except ValidationError as err:
        return [_key_error(error, model, what, args, loc, node_id) for error in _independent(err.errors())]
    return []


def construct_keys(construct: str, body: dict, args: SourceMap, loc: Location, node_id: str | None) -> BaseModel:
    """A construct's keys, validated (the IR builder's check); raises the first error."""
    model = CONSTRUCTS[construct]
    errors = key_errors(model, construct, body, args, loc, node_id)
    if errors:
        raise errors[0]
    return model.model_validate(body)


def _key_error(error: dict, model: type[BaseModel], what: str, args: SourceMap, loc: Location, node_id: str | None) -> SpecError:
    name = str(error["loc"][0]) if error["loc"] else None
    fields = model.model_fields
    if error["type"] == "extra_forbidden":
        return SpecError(
            f"{what} has no key '{name}'",
            args.key_loc(name) if isinstance(args, SourceMap) else loc,
            node_id,
            hint=quoting_hint(name) or did_you_mean(name, fields) or f"{what} takes: {', '.join(fields)}",
        )
    if error["type"] == "missing":
        return SpecError(f"{what} needs `{name}`: {fields[name].description}", loc, node_id)
    where = args.value_loc(name) if isinstance(args, SourceMap) and name in args else loc
    annotation = fields[name].annotation
    if choices(annotation):
        return _value_error(error, f"{what} key '{name}'", annotation, where, node_id)
    return SpecError(f"{what} key '{name}' is {fields[name].description}, not {value_text(args.get(name))}", where, node_id)


def reserved_errors(args: SourceMap, node_id: str | None) -> list[SpecError]:
    """Reserved keys of the wrong kind (`trainable: 3`, `from: []`, `when: [a]`), located."""
    found = []
    try:
        ReservedKeys.model_validate(args)
    except ValidationError as err:
        for error in _independent(err.errors()):
            key = str(error["loc"][0])
            raw = args.get(key)
            if key == "from" and isinstance(raw, list):  # name the reference that is not a name
                raw = next((ref for ref in raw if isinstance(ref, bool) or not isinstance(ref, (str, int))), raw)
            found.append(SpecError(
                RESERVED_MESSAGES[key].format(raw=raw, value=value_text(raw)), args.value_loc(key),
                node_id if key in RESERVED_ON_NODE else None, hint=RESERVED_HINTS.get(key),
            ))
    if isinstance(args.get("from"), list) and not args["from"]:
        found.append(SpecError("`from` is empty", args.value_loc("from")))
    return found


# --- small pieces on raw items ----------------------------------------------------------------------
def split_item(item: Any, loc: Location) -> tuple[str, SourceMap, Location]:
    """`op` or `op: {args}` -> (op, args, location of the args)."""
    if isinstance(item, str):
        return item, SourceMap(), loc
    if isinstance(item, SourceMap) and len(item) == 1:
        callee = next(iter(item))
        args = item[callee]
        if args is None:
            args = SourceMap()
        if not isinstance(args, SourceMap):
            raise SpecError(
                f"the arguments of '{callee}' must be a mapping like `{{out: 64}}`, not "
                + ("a list" if isinstance(args, list) else type(args).__name__),
                item.value_loc(callee),
            )
        if args.loc is None:
            args.loc = item.value_loc(callee)
        return callee, args, item.key_loc(callee)
    if isinstance(item, SourceMap):
        keys = ", ".join(item) or "none"
        raise SpecError(
            f"a layer is one op or block with its arguments, but this mapping has keys: {keys}",
            loc,
            hint="write `- conv: {out: 64, kernel: 3, name: conv1}`: the reserved keys go inside the arguments",
        )
    raise SpecError(f"a layer is `op` or `op: {{args}}`, not {item!r}", loc)


def quoting_hint(key: str) -> str | None:
    """A key like `8)` comes from an unquoted expression with a comma inside a YAML flow mapping."""
    if any(c in key for c in "()*+/ ,"):
        return "an expression with a comma must be quoted in a `{...}` mapping: \"make_divisible(32 * width, 8)\""
    return None


def value_text(value: Any) -> str:
    """repr, except for an integer too long to show (or to convert: Python's 4,300-digit limit);
    a list or mapping is cut short."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"a number of about {int(value.bit_length() * 0.30103):,} digits"
    if isinstance(value, (list, dict)):
        text = repr(value)  # SourceList and SourceMap show as the plain list and dict they are
        return text if len(text) <= 60 else text[:57] + "..."
    return repr(value)
