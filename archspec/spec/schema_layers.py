"""The layer part of the spec schema: a layer item, a list of them, and the constructs.

An item is `op`, or a one-key mapping `op: {arguments}` whose key is an op (or an alias), a
construct (`parallel`, `seq`, `reuse`) or a block. A spec's block names come from its `blocks:`
and its `use:` files, which a schema cannot read, so the definitions come in two modes:
- with block calls (`layer`, `layers`, ...): any other key is a block call, its value the block's
  parameters and the reserved keys (archspec checks the names when it builds the spec);
- ops only (`layer_ops_only`, ...), for a spec that has no `blocks`, `use` or `extends`: any
  other key is an error, so a misspelt op (`cnov`) is caught in the editor.
"""
from __future__ import annotations

from archspec.spec.arguments import RESERVED_KEYS, ParallelKeys, ReuseKeys, SeqKeys
from archspec.spec.schema_json import model_schema, ref
from archspec.spec.schema_ops import op_names

MODES = {"": True, "_ops_only": False}  # definition suffix -> whether a key may be a block call
BRANCH_NAME = r"^[A-Za-z0-9_\-]{1,64}$"  # a node name (archspec.spec.document.check_name)

CONSTRUCT_DESCRIPTIONS = {
    "parallel": "parallel: branches that all start from the item's input, merged by `merge` "
                "(an Inception module): `parallel: {branches: {b1: [...], b2: {...}}, merge: concat}`.",
    "seq": "seq: a named group of layers, its own scope (`features`); `index_names: true` names its items "
           "0, 1, ... as torchvision's nn.Sequential does.",
    "reuse": "reuse: apply an existing node or block again with the same weights (shared weights): "
             "`reuse: {node: tower, from: right}`.",
}
BLOCK_CALL = (
    "A call of a block defined under `blocks:` or in a `use:` file: the block's parameters by name, and the "
    "reserved keys. A schema cannot know a spec's block names, so any key that is not an op or a construct "
    "is read as a block call here; `archspec validate` checks that the block exists and takes these parameters."
)
PARAMETER_VALUE = {"type": ["boolean", "integer", "number", "string", "array", "null"],
                   "description": "A value: a number, true/false, a word, a list, or an expression over the parameters."}


def layer_definitions() -> dict[str, dict]:
    definitions = {
        "block_call": {
            "type": ["object", "null"],
            "description": BLOCK_CALL,
            "properties": _reserved(),
            "additionalProperties": ref("parameter_value"),
        },
        "parameter_value": PARAMETER_VALUE,
        "reuse": _construct(ReuseKeys, "reuse", ""),
    }
    for suffix, blocks in MODES.items():
        definitions.update(_mode(suffix, blocks))
    return definitions


def _mode(suffix: str, blocks: bool) -> dict[str, dict]:
    names = op_names()
    calls = {name: ref(definition) for name, definition in names.items()}
    calls.update({"parallel": ref("parallel" + suffix), "seq": ref("seq" + suffix), "reuse": ref("reuse")})
    mapping = {
        "type": "object",
        "description": "`op: {arguments}`: one key, an op" + (", a construct or a block" if blocks else " or a construct"),
        "minProperties": 1,
        "maxProperties": 1,
        "properties": calls,
        "additionalProperties": ref("block_call") if blocks else False,
    }
    if blocks:
        word = {"type": "string", "description": "An op, or a block, with no arguments: `- relu`.",
                "examples": list(names)}
    else:
        word = {"enum": list(names), "description": "An op with no arguments: `- relu`."}
    return {
        # chosen by the value's type (not anyOf), so an error is the chosen form's own, at its key
        "layer" + suffix: {
            "description": "One layer item: `op` or `op: {arguments}` (README, \"The spec language\").",
            "if": {"type": "string"}, "then": word, "else": mapping,
        },
        "layers" + suffix: {"type": "array", "items": ref("layer" + suffix),
                            "description": "Layer items in order; each takes the previous item's output unless it says `from`."},
        "branch" + suffix: {"if": {"type": "array"}, "then": ref("layers" + suffix), "else": ref("layer" + suffix),
                            "description": "A list of layer items, or one item (which then takes the branch's name)."},
        "parallel" + suffix: _construct(ParallelKeys, "parallel", suffix),
        "seq" + suffix: _construct(SeqKeys, "seq", suffix),
    }


def _construct(model, construct: str, suffix: str) -> dict:
    """A construct's keys (its model in archspec.spec.arguments) and the reserved keys; its
    layers in the mode of the item it is in."""
    schema, _ = model_schema(model)
    properties = schema["properties"]
    if "branches" in properties:
        properties["branches"] = {
            "type": "object",
            "description": properties["branches"].get("description", ""),
            "minProperties": 1,
            "propertyNames": {"pattern": BRANCH_NAME},
            "additionalProperties": ref("branch" + suffix),
        }
    if "layers" in properties:
        properties["layers"] = {"allOf": [ref("branch" + suffix)], "description": properties["layers"].get("description", "")}
    return {
        "type": "object",
        "description": CONSTRUCT_DESCRIPTIONS[construct],
        "properties": {**properties, **_reserved()},
        "additionalProperties": False,  # before `required`: an unknown key often explains a missing one
        "required": schema.get("required", []),
    }


def _reserved() -> dict[str, dict]:
    return {key: ref(f"reserved_{key}") for key in RESERVED_KEYS}
