"""The JSON Schema of the spec language, for editors: completion and errors as a spec is typed.

Generated, never written by hand: the document's keys from its pydantic models
(archspec.spec.document: SpecDocument, BlockFile, BlockDef, and the `init` and `detection`
models), the layer items and constructs from archspec.spec.schema_layers, and every op with its
arguments from the op registry (archspec.spec.schema_ops). `archspec schema` prints it; the copy
in schema/archspec.schema.json is what the library specs name on their first line:

    # yaml-language-server: $schema=../schema/archspec.schema.json

The schema accepts what archspec accepts, as far as a schema can tell without reading other
files: a spec with `blocks`, `use` or `extends` may call blocks it cannot see, so there any
unknown key is a block call; without them it is an error. What needs the built graph (shapes,
references, an expression's value) is for `archspec validate`.
"""
from __future__ import annotations

import json

from archspec.spec.document import BlockDef, BlockFile, SpecDocument
from archspec.spec.detection_head import DetectionHead
from archspec.spec.init_scheme import InitScheme
from archspec.spec.schema_json import field_comments, model_schema, ref
from archspec.spec.schema_layers import BRANCH_NAME, layer_definitions
from archspec.spec.schema_ops import expression_definition, op_definitions, reserved_definitions

DRAFT = "http://json-schema.org/draft-07/schema#"
SCHEMA_FILE = "schema/archspec.schema.json"  # the committed copy, from the repository root
INCLUDES = ("blocks", "use", "extends")  # keys that bring in blocks the schema cannot see
BASE = "extends"  # a variant: its base spec gives the keys it leaves out

KEY_DESCRIPTIONS = {
    "name": "The spec's name: 1-64 letters, digits, '_', '.' or '-'.",
    "summary": "What the spec builds, in a line; shown by `report` and `explain`.",
    "paper": "The paper the architecture comes from; shown by `report` and `explain`.",
    "task": "Which loss `train` uses; without it, the output shape decides.",
    "init": "How the lowered module's weights start: torch (each layer's own default), kaiming_normal, or "
            "{scheme: torchvision, family: resnet}: torchvision's scheme for that family.",
    "detection": "How a detection spec's output grid reads: {classes, anchors or boxes, output}.",
    "extends": "A base spec to start from (relative to this file, or archspec:PATH in the library); this "
               "file's keys replace the base's, `params` and `blocks` merged key by key.",
    "use": "Block files whose blocks this file calls: paths relative to this file, or archspec:PATH.",
    "params": "Parameters and their defaults (numbers, true/false, words, lists, or expressions over the "
              "parameters before them); `--set NAME=VALUE` overrides one.",
    "inputs": "Input name -> shape without the batch: {image: [3, 224, 224]}.",
    "outputs": "The output node(s): a name, a list of names, or {output name: node}.",
    "blocks": "Reusable, parameterised blocks by name: a sequence of `layers`, or `branches` merged by `merge`.",
    "layers": "The layer items, in order: `op` or `op: {arguments}`.",
}
BLOCK_DESCRIPTIONS = {
    "params": "The block's parameters and their defaults; null marks a required one.",
    "inputs": "The names of the block's inputs (default [input]); a block with several takes them with `from:`.",
    "output": "The node giving the block's output (default: its last layer).",
    "layers": "The block's layer items, in order.",
    "branches": "Branch name -> layers: branches that all start from the block's input, merged by `merge`.",
}


def schema_text() -> str:
    """The schema as `archspec schema` writes it: JSON, keys sorted, indented."""
    return json.dumps(spec_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def spec_schema() -> dict:
    document, nested = model_schema(SpecDocument)
    block_file, _ = model_schema(BlockFile)
    properties = document["properties"]
    if not set(block_file["properties"]) <= set(properties):  # one set of keys serves both kinds of file
        raise ValueError("a block file has keys a spec does not")
    for key, text in KEY_DESCRIPTIONS.items():
        properties[key] = {**properties[key], "description": text}
    properties["layers"] = {"type": "array", "minItems": 1, "description": KEY_DESCRIPTIONS["layers"]}
    properties["blocks"]["additionalProperties"] = ref("BlockDef")
    properties["inputs"]["additionalProperties"]["items"]["anyOf"][0]["minimum"] = 1  # sizes are positive
    nested["BlockDef"] = _block_definition(nested["BlockDef"])
    _describe_fields(nested["InitScheme"], InitScheme)
    _describe_fields(nested["DetectionHead"], DetectionHead)
    definitions = {**nested, **op_definitions(), **reserved_definitions(), **layer_definitions(),
                   "expression": expression_definition()}
    return {
        "$schema": DRAFT,
        "title": "archspec spec",
        "description": "An archspec spec (a network as a graph of ops) or a block file, in YAML. Generated by "
                       "`archspec schema` from archspec's spec models and op registry.",
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "allOf": [_layers_by_includes(), _required_keys(document["required"], block_file["required"], properties,
                                                        block_file["properties"])],
        "definitions": dict(sorted(definitions.items())),
    }


def _layers_by_includes() -> dict:
    """Block calls only where blocks can come from (schema_layers: the two modes)."""
    return {
        "if": {"anyOf": [{"required": [key]} for key in INCLUDES]},
        "then": {"properties": {"layers": ref("layers")}},
        "else": {"properties": {"layers": ref("layers_ops_only")}},
    }


def _required_keys(spec_required: list[str], block_file_required: list[str], keys: dict, block_file_keys: dict) -> dict:
    """A spec needs its keys (a variant's base may give them); a file with none of a spec's own
    keys is a block file, which needs `blocks`."""
    spec_only = [key for key in keys if key not in block_file_keys and key != BASE]
    return {
        "if": {"not": {"required": [BASE]}},
        "then": {
            "if": {"anyOf": [{"required": [key]} for key in spec_only]},
            "then": {"required": spec_required},
            "else": {"required": block_file_required},
        },
    }


def _block_definition(block: dict) -> dict:
    properties = block["properties"]
    properties["layers"] = {"allOf": [ref("layers")]}
    properties["branches"] = {"type": "object", "minProperties": 1, "propertyNames": {"pattern": BRANCH_NAME},
                              "additionalProperties": ref("branch")}
    for key, text in BLOCK_DESCRIPTIONS.items():
        properties[key]["description"] = text
    _describe_fields(block, BlockDef)
    # exactly one of the two (archspec.spec.document)
    return {**block, "oneOf": [{"required": ["layers"]}, {"required": ["branches"]}]}


def _describe_fields(definition: dict, model) -> None:
    """Each property without a description gets its field's comment, if the model has one."""
    comments = field_comments(model)
    for name, schema in definition.get("properties", {}).items():
        if "description" not in schema and name in comments:
            schema["description"] = comments[name]
