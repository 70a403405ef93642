"""`archspec schema`: the JSON Schema (Draft 7) of the spec language, checked with jsonschema.

Every library spec and block file validates against it; the error catalogue's typos
(tests/test_errors.py: an unknown op, a misspelt argument, a wrong type, ...) are rejected, with
the error at the key the catalogue's YAML text gets wrong; the committed copy is the generated one.
"""
from __future__ import annotations

import json
import os
import typing
from pathlib import Path

import jsonschema
import pytest
import yaml
from jsonschema.exceptions import best_match
from typer.testing import CliRunner

from archspec.cli import app
from archspec.ops.catalog import entries
from archspec.spec.arguments import RESERVED_KEYS
from archspec.spec.schema import SCHEMA_FILE, schema_text
from conftest import ROOT, SPECS
from test_errors import CASES, H, UNIT_BLOCK

LIBRARY_FILES = sorted([*SPECS.glob("*.yaml"), *(SPECS / "blocks").glob("*.yaml"),
                        *(ROOT / "archspec" / "explain" / "case_specs").glob("*.yaml")])
CATALOGUE = {case.id: case for case in CASES}


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads(schema_text())  # what `archspec schema` gives an editor


@pytest.fixture(scope="module")
def validator(schema) -> jsonschema.Draft7Validator:
    jsonschema.Draft7Validator.check_schema(schema)  # a well-formed Draft 7 schema (the meta-schema)
    return jsonschema.Draft7Validator(schema)


def key_path(error: jsonschema.ValidationError) -> list:
    """Where an error is, down to the key: an unknown key's error sits on the mapping holding it,
    so the unexpected key is added (the one key the mapping's `properties` do not name)."""
    path = list(error.absolute_path)
    if error.validator == "additionalProperties":
        unexpected = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        assert len(unexpected) == 1, unexpected
        path.append(unexpected[0])
    return path


def first_error(validator, text: str):
    return best_match(validator.iter_errors(yaml.safe_load(text)))


def test_the_committed_schema_is_the_generated_one():
    committed = (ROOT / SCHEMA_FILE).read_text()
    assert committed == schema_text(), f"stale: run `archspec schema --out {SCHEMA_FILE}`"
    assert json.loads(committed)["$schema"] == "http://json-schema.org/draft-07/schema#"


def test_every_library_spec_and_block_file_validates(validator):
    assert len(LIBRARY_FILES) > 60
    failures = []
    for path in LIBRARY_FILES:
        error = best_match(validator.iter_errors(yaml.safe_load(path.read_text())))
        if error is not None:
            failures.append(f"{path.relative_to(ROOT)}: {key_path(error)}: {error.message[:200]}")
    assert not failures, "\n".join(failures)


def test_library_files_name_the_schema_on_their_first_line():
    for path in LIBRARY_FILES:
        first = path.read_text().splitlines()[0]
        prefix = "# yaml-language-server: $schema="
        assert first.startswith(prefix), path
        target = path.parent / first[len(prefix):]
        assert target.resolve() == (ROOT / SCHEMA_FILE).resolve(), path
        assert first[len(prefix):] == os.path.relpath(ROOT / SCHEMA_FILE, path.parent), path


# the catalogue's case -> the key its text gets wrong, read off the text itself
REJECTED = {
    "unknown-op": ["layers", 0, "cnov"],  # `- cnov: {out: 8, kernel: 3}`
    "typo-argument": ["layers", 0, "conv", "kernal"],  # `conv: {out: 8, kernal: 3}`
    "wrong-type-bool": ["layers", 0, "conv", "bias"],  # `bias: 3`
    "non-integer": ["layers", 0, "conv", "out"],  # `out: 2.5`
    "stride-zero": ["layers", 0, "conv", "stride"],
    "missing-argument": ["layers", 0, "conv"],  # no `kernel`
    "arguments-not-a-mapping": ["layers", 0, "conv"],  # `conv: [8, 3]`
    "choice-fit": ["layers", 0, "parallel", "fit"],  # `fit: crp`
    "choice-merge": ["layers", 0, "parallel", "merge"],
    "parallel-unknown-key": ["layers", 0, "parallel", "fitt"],
    "seq-unknown-key": ["layers", 0, "seq", "layerz"],
    "seq-index-names-not-a-boolean": ["layers", 0, "seq", "index_names"],
    "reuse-unknown-key": ["layers", 1, "reuse", "nod"],
    "trainable-not-a-boolean": ["layers", 0, "relu", "trainable"],
    "when-not-a-boolean": ["layers", 0, "relu", "when"],
    "repeat-not-a-number": ["layers", 0, "relu", "repeat"],
    "repeat-negative": ["layers", 0, "relu", "repeat"],
    "repeat-over-the-limit": ["layers", 0, "relu", "repeat"],
    "repeat-a-list": ["layers", 0, "relu", "repeat"],
    "from-empty": ["layers", 0, "relu", "from"],
    "from-not-a-name": ["layers", 0, "relu", "from", 1],
    "unknown-top-level-key": ["layer"],
    "missing-layers": [],
    "input-size-not-positive": ["inputs", "x", 1],
}


@pytest.mark.parametrize("case_id", sorted(REJECTED))
def test_the_error_catalogue_is_rejected_at_the_key(validator, case_id):
    error = first_error(validator, CATALOGUE[case_id].text)
    assert error is not None, f"the schema accepts {case_id}"
    assert key_path(error) == REJECTED[case_id], error.message


def test_the_unknown_op_the_typo_and_the_wrong_type_say_what_is_wrong(validator):
    assert "'cnov' was unexpected" in first_error(validator, CATALOGUE["unknown-op"].text).message
    assert "'kernal' was unexpected" in first_error(validator, CATALOGUE["typo-argument"].text).message
    error = first_error(validator, CATALOGUE["wrong-type-bool"].text)
    assert {leaf.message for leaf in error.context} >= {"3 is not of type 'boolean'"}


def test_a_typo_inside_a_block_file_is_caught_there(validator):
    case = CATALOGUE["error-inside-a-used-file"]
    assert first_error(validator, case.text) is None  # the spec calls `unit`, which its `use:` file defines
    error = first_error(validator, case.files["blocks/unit.yaml"])
    assert key_path(error) == ["blocks", "unit", "layers", 0, "conv", "kernal"]


def test_block_calls_only_where_blocks_can_come_from(validator):
    call = "  - unit: {width: 8}\n"
    assert first_error(validator, H.replace("layers:\n", UNIT_BLOCK + "layers:\n") + call) is None
    assert first_error(validator, "use: [blocks.yaml]\n" + H + call) is None
    assert first_error(validator, "extends: base.yaml\nlayers:\n" + call) is None
    assert key_path(first_error(validator, H + call)) == ["layers", 0, "unit"]  # no blocks: an unknown op
    # a known op is checked even where blocks may be called
    assert key_path(first_error(validator, "use: [blocks.yaml]\n" + H + "  - conv: {out: 8, kernal: 3}\n")) == \
        ["layers", 0, "conv", "kernal"]


def test_expressions_where_the_language_reads_them(validator):
    text = ("name: t\nparams: {width: 8, pad: same, k: 3}\ninputs: {x: [3, 32, 32]}\nlayers:\n"
            "  - conv: {out: width * 2, kernel: k, padding: pad, stride: [1, \"1 + 0\"], bias: \"width > 4\"}\n"
            "  - relu: {repeat: \"k - 1\", when: \"width > 2\", name: \"r{i}\"}\n")
    assert first_error(validator, text) is None
    bad = text.replace("repeat: \"k - 1\"", "repeat: \"\"")  # an empty string is no expression
    assert key_path(first_error(validator, bad)) == ["layers", 1, "relu", "repeat"]


def test_a_block_file_needs_blocks_and_a_variant_needs_only_its_base(validator):
    assert key_path(first_error(validator, "summary: some blocks\n")) == []
    assert first_error(validator, "blocks: {unit: {layers: [relu]}}\n") is None
    assert first_error(validator, "extends: base.yaml\nparams: {num_classes: 10}\n") is None
    error = first_error(validator, "blocks: {unit: {summary: none}}\n")  # neither layers nor branches
    assert key_path(error) == ["blocks", "unit"]


def test_every_op_and_its_arguments_are_in_the_schema(schema):
    definitions = schema["definitions"]
    calls = definitions["layer_ops_only"]["else"]["properties"]
    for op in entries():
        for name in (op.name, *op.aliases):
            assert calls[name] == {"$ref": f"#/definitions/op_{op.name}"}
        definition = definitions[f"op_{op.name}"]
        assert op.summary in definition["description"]
        assert set(definition["properties"]) == set(op.args.model_fields) | set(RESERVED_KEYS)
        assert set(definition.get("required", ())) == {n for n, f in op.args.model_fields.items() if f.is_required()}
        for name, field in op.args.model_fields.items():
            argument = definition["properties"][name]
            assert argument["description"], (op.name, name)
            words = [a for a in typing.get_args(field.annotation) if isinstance(a, str)]
            if typing.get_origin(field.annotation) is typing.Literal:  # the allowed words, and expressions
                assert argument["anyOf"] == [{"enum": words, "type": "string"}, {"$ref": "#/definitions/expression"}]
    conv = definitions["op_conv"]["properties"]
    assert conv["padding"]["anyOf"][2] == {"enum": ["same", "valid"], "type": "string"}
    assert conv["stride"]["default"] == 1 and "output channels" in conv["out"]["description"]


def test_the_command_prints_and_writes_the_schema(tmp_path):
    runner = CliRunner()
    printed = runner.invoke(app, ["schema"])
    assert printed.exit_code == 0 and printed.stdout == schema_text()
    written = runner.invoke(app, ["schema", "--out", str(tmp_path / "s.json")])
    assert written.exit_code == 0 and (tmp_path / "s.json").read_text() == schema_text()
    folder = runner.invoke(app, ["schema", "--out", str(tmp_path)])
    assert folder.exit_code == 1 and folder.stderr.startswith(f"error: --out {tmp_path} is a folder")
    assert "Traceback" not in folder.stderr and Path(tmp_path / "s.json").exists()
