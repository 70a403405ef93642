"""The op part of the spec schema: one definition per op of the registry (its arguments, with
their types, allowed words, defaults and descriptions, plus the reserved keys), the reserved keys
themselves and what an expression is.

Everything comes from the op entries (archspec.ops.catalog): `summary` describes the op, its
arguments model gives the properties, and a property's description is its `Field(description=...)`
or, where it has none, the comment that documents the field in the model's source.
"""
from __future__ import annotations

import json

from archspec.ops.catalog import entries
from archspec.ops.registry import Op
from archspec.spec.arguments import MAX_REPEAT, REPEAT_INDEX, RESERVED_KEYS, ReservedKeys
from archspec.spec.expression_functions import FUNCTIONS
from archspec.spec.expressions import IN_NAMES, MAX_LENGTH
from archspec.spec.schema_json import EXPRESSION, field_comments, kind_text, model_schema, ref, with_expressions

# what each reserved key means (README, "The spec language"); their types come from ReservedKeys
RESERVED_DESCRIPTIONS = {
    "name": "The node's name, also its module path segment (`layer1.0.conv1`); without it, `<op><k>`. "
            "`{expression}` parts are evaluated over the parameters: `name: \"denselayer{i + 1}\"`.",
    "from": "The input(s) by name: `from: enc2`, `from: [up3, enc2]`. A dotted name reaches into a block "
            "(`layer3.1`) or picks one output of an op with several (`halves.1`); any other value is an "
            "expression that chooses the names. Without it, the item takes the previous item's output.",
    "repeat": f"N copies in sequence (0 to {MAX_REPEAT}), named 0..N-1 under the item's name; inside the item "
              f"`{REPEAT_INDEX}` is the copy's index. A whole number or an expression.",
    "trainable": "`false` freezes everything the item creates (transfer learning).",
    "when": "A condition (an expression): where it is false the item is left out, and the next item takes "
            "the previous output. `when: stride == 1`.",
}
EXPRESSION_DESCRIPTION = (
    "An expression over the spec's parameters, evaluated by archspec's own evaluator (never eval): numbers, "
    "parameter names, + - * / // % **, comparisons, and/or/not, `a if c else b`, indexing, list "
    "comprehensions, and the functions " + ", ".join(FUNCTIONS) + ". Inside a block also "
    + ", ".join(IN_NAMES) + " and NAME.shape (the block input's shape)."
)


def definition_name(op: Op) -> str:
    return f"op_{op.name}"


def op_names() -> dict[str, str]:
    """Every name a spec may call an op by (aliases too) -> the op's definition."""
    return {name: definition_name(op) for op in entries() for name in (op.name, *op.aliases)}


def op_definitions() -> dict[str, dict]:
    """The definition of each op's arguments, and the definitions they refer to."""
    definitions: dict[str, dict] = {}
    for op in entries():
        definition, nested = _op_definition(op)
        for name, schema in nested.items():
            if definitions.setdefault(name, schema) != schema:
                raise ValueError(f"two argument models define '{name}' differently")  # a bug in an op entry
        definitions[definition_name(op)] = definition
    return definitions


def _op_definition(op: Op) -> tuple[dict, dict]:
    schema, nested = model_schema(op.args)
    comments = field_comments(op.args)
    properties = {}
    for name, written in schema.get("properties", {}).items():
        argument = with_expressions(written)
        kind = kind_text(written)
        text = argument.get("description") or comments.get(name)
        needed = " (required)" if "default" not in written else \
            "" if written["default"] is None else f"; default {json.dumps(written['default'])}"
        argument["description"] = (f"{text.rstrip('.')}. " if text else "") + f"{op.name} argument: {kind}{needed}"
        properties[name] = argument
    aliases = f" Also called {', '.join(op.aliases)}." if op.aliases else ""
    required = schema.get("required", [])
    definition = {
        "description": f"{op.name}: {op.summary}.{aliases}",
        # `- relu:` with nothing after it is the op with no arguments
        "type": "object" if required else ["object", "null"],
        "properties": {**properties, **{key: ref(f"reserved_{key}") for key in RESERVED_KEYS}},
        "additionalProperties": False,
    }
    if required:
        definition["required"] = required
    return definition, nested


def reserved_definitions() -> dict[str, dict]:
    """The reserved keys any item takes (ReservedKeys), each with its meaning."""
    schema, _ = model_schema(ReservedKeys)
    definitions = {}
    for key in RESERVED_KEYS:
        written = {k: v for k, v in schema["properties"][key].items() if k != "default"}  # absent, not null
        definitions[f"reserved_{key}"] = {**written, "description": RESERVED_DESCRIPTIONS[key]}
    # the builder's own bounds: a whole count in range; `from` names at least one node
    definitions["reserved_repeat"]["anyOf"] = [{"type": "integer", "minimum": 0, "maximum": MAX_REPEAT}, EXPRESSION]
    for member in definitions["reserved_from"]["anyOf"]:
        if member.get("type") == "array":
            member["minItems"] = 1
    return definitions


def expression_definition() -> dict:
    return {"type": "string", "minLength": 1, "maxLength": MAX_LENGTH, "description": EXPRESSION_DESCRIPTION}
