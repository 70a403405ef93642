"""JSON Schema pieces the spec schema (archspec.spec.schema) is built from: pydantic's schemas
made Draft 7, an expression allowed wherever the spec language reads one, and descriptions taken
from the models' own comments.

Draft 7, because it is what editors validate YAML with (the Red Hat YAML extension of VS Code
ships Draft 7); pydantic writes 2020-12, whose `prefixItems` (a tuple) Draft 7 spells `items: [...]`
and whose `$ref` keeps its siblings, which Draft 7 ignores.
"""
from __future__ import annotations

import ast
import functools
import io
import sys
import tokenize
from pathlib import Path
from typing import Any

from pydantic import BaseModel

DEFINITIONS = "#/definitions/"
REF_TEMPLATE = DEFINITIONS + "{model}"
EXPRESSION = {"$ref": DEFINITIONS + "expression"}
ANNOTATIONS = ("description", "default", "examples")


def ref(name: str) -> dict[str, str]:
    return {"$ref": DEFINITIONS + name}


def model_schema(model: type[BaseModel]) -> tuple[dict, dict]:
    """A model's schema in Draft 7 form, without titles, and its nested models' schemas."""
    schema = draft7(model.model_json_schema(ref_template=REF_TEMPLATE, by_alias=True))
    return schema, schema.pop("$defs", {})


def draft7(schema: Any) -> Any:
    """pydantic's 2020-12 schema as Draft 7: tuples as `items: [...]`, a `$ref` with siblings
    wrapped in `allOf`, and no generated titles ("Negative Slope")."""
    if isinstance(schema, list):
        return [draft7(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in ("default", "enum", "const", "examples"):  # values, not schemas
            result[key] = value
        elif key == "prefixItems":
            result["items"] = draft7(value)
        elif key in ("properties", "$defs"):  # names, not schema keywords
            result[key] = {name: draft7(member) for name, member in value.items()}
        else:
            result[key] = draft7(value)
    if "$ref" in result and len(result) > 1:
        result = {"allOf": [{"$ref": result.pop("$ref")}], **result}
    return result


# --- expressions ------------------------------------------------------------------------------------
def with_expressions(schema: dict) -> dict:
    """The schema of an op argument, where a string is an expression over the parameters instead
    of the value (archspec.ops.registry.OpArgs): for the whole value and for each entry of a list."""
    schema = _entries_with_expressions(schema)
    if "anyOf" in schema:
        members = [_entries_with_expressions(member) for member in schema["anyOf"]]
        if not any(_takes_any_string(member) for member in members):
            members.append(EXPRESSION)
        return {**schema, "anyOf": members}
    if not schema or _takes_any_string(schema) or schema.get("type") == "null":
        return schema
    annotations = {key: schema[key] for key in ANNOTATIONS if key in schema}
    core = {key: value for key, value in schema.items() if key not in ANNOTATIONS}
    return {"anyOf": [core, EXPRESSION], **annotations}


def _entries_with_expressions(schema: dict) -> dict:
    items = schema.get("items")
    if schema.get("type") != "array" or items is None:
        return schema
    if isinstance(items, list):
        return {**schema, "items": [with_expressions(item) for item in items]}
    return {**schema, "items": with_expressions(items)}


def _takes_any_string(schema: dict) -> bool:
    return schema.get("type") == "string" and not {"enum", "const", "pattern"} & set(schema)


def kind_text(schema: dict) -> str:
    """What a schema takes, in words, for a description: "a whole number >= 1 or a pair [a, b]"."""
    if "anyOf" in schema:
        kinds = [kind_text(member) for member in schema["anyOf"] if member != EXPRESSION]
        return " or ".join(dict.fromkeys(kind for kind in kinds if kind))
    if "enum" in schema:
        return "one of " + ", ".join(map(str, schema["enum"]))
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items")
        if isinstance(items, list):
            return "a pair [height, width]" if len(items) == 2 else f"a list of {len(items)}"
        return "a list" + (f" of {kind_text(items)}" if isinstance(items, dict) and kind_text(items) else "")
    words = {"integer": "a whole number", "number": "a number", "boolean": "true or false", "string": "a word",
             "null": ""}.get(kind, "")
    bounds = [f"{sign} {schema[bound]:g}" for bound, sign in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="))
              if bound in schema]
    return f"{words} {' and '.join(bounds)}" if words and bounds else words


# --- descriptions from the models' comments ---------------------------------------------------------
def field_comments(model: type[BaseModel]) -> dict[str, str]:
    """Field name -> the comment that documents it in the model's source (the one on its line, or
    the comment lines right above it), over the model's bases too: the op argument models say
    what an argument means in comments rather than in `Field(description=...)`."""
    found: dict[str, str] = {}
    for cls in reversed(model.__mro__):  # a subclass's comment wins over its base's
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls.__module__.startswith("pydantic"):
            continue
        path = getattr(sys.modules.get(cls.__module__), "__file__", None)
        if path:  # else a model made at run time: no source
            found.update(_comments_of_classes(path).get(cls.__qualname__, {}))
    return found


@functools.lru_cache(maxsize=None)
def _comments_of_classes(path: str) -> dict[str, dict[str, str]]:
    """Class name -> field comments, for the top-level classes of one module (read once)."""
    source = Path(path).read_text(encoding="utf-8")
    trailing, whole_line = _comments_by_line(source)
    return {node.name: _comments_of_fields(node, trailing, whole_line)
            for node in ast.parse(source).body if isinstance(node, ast.ClassDef)}


def _comments_of_fields(node: ast.ClassDef, trailing: dict[int, str], whole_line: dict[int, str]) -> dict[str, str]:
    comments = {}
    for statement in node.body:
        if not (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)):
            continue
        line = statement.lineno
        text = trailing.get(line) or trailing.get(statement.end_lineno)
        if not text:
            above = []
            while line - 1 in whole_line:
                line -= 1
                above.insert(0, whole_line[line])
            text = " ".join(above)
        if text:
            comments[statement.target.id] = text
    return comments


def _comments_by_line(source: str) -> tuple[dict[int, str], dict[int, str]]:
    """Comments after code, and comments alone on their line, by line number."""
    trailing, whole_line, code_lines = {}, {}, set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            text = token.string.lstrip("#").strip()
            if text.startswith(("type:", "noqa")):
                continue
            (trailing if token.start[0] in code_lines else whole_line)[token.start[0]] = text
        elif token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            code_lines.update(range(token.start[0], token.end[0] + 1))
    return trailing, whole_line
