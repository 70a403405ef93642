"""Specs are data: nothing in a spec executes, and nothing is written outside the output folder."""
from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

import archspec
from archspec.errors import ArchspecError, SpecError
from archspec.files import safe_folder, write_atomic
from archspec.spec.expressions import ExpressionError, evaluate
from conftest import ROOT, run_cli

SPEC_HEAD = "name: x\ninputs: {image: [3, 8, 8]}\n"


@pytest.mark.parametrize(
    "payload",
    [
        "!!python/object/apply:os.system ['touch PWNED']",
        "!!python/name:os.system",
        "!!python/object:builtins.object {}",
        "!!binary aGVsbG8=",
        "!custom 3",
    ],
)
def test_yaml_tags_are_refused(write_spec, tmp_path, payload):
    path = write_spec(SPEC_HEAD + f"params:\n  p: {payload}\nlayers: [relu]\n")
    with pytest.raises(SpecError, match="YAML tag .* is not allowed") as caught:
        archspec.compile_spec(path)
    assert (caught.value.loc.line, caught.value.loc.column) == (4, 6)
    assert not (tmp_path / "PWNED").exists() and not Path("PWNED").exists()


ESCAPES = [
    "__import__('os').system('touch PWNED')",
    "().__class__.__bases__[0].__subclasses__()",
    "open('/etc/passwd')",
    "eval('1')",
    "exec('x = 1')",
    "(lambda: 1)()",
    "[c for c in ().__class__.__bases__]",  # list building is allowed (issue 15); attributes stay refused
    "{'a': 1}",
    "width.real",
    "f'{width}'",
    "(y := 3)",
    "globals()",
    "getattr(width, 'real')",
    "'a' * 10 ** 9",
    "9 ** 9 ** 9",
    "10 ** 100",
    "1" + " + 1" * 150,
    "-" * 50 + "1",  # nested deeper than the evaluator allows
]


@pytest.mark.parametrize("expression", ESCAPES)
def test_expression_escapes_are_refused(expression):
    with pytest.raises(ExpressionError):
        evaluate(expression, {"width": 1.0})
    assert not Path("PWNED").exists()


@pytest.mark.parametrize("expression", ESCAPES[:6])
def test_expression_escapes_in_a_spec_give_located_errors(write_spec, expression):
    quoted = "'" + expression.replace("'", "''") + "'"  # a YAML single-quoted string
    text = SPEC_HEAD + "layers:\n  - conv: {out: " + quoted + ", kernel: 3}\n"
    path = write_spec(text)
    with pytest.raises(SpecError) as caught:
        archspec.compile_spec(path)
    assert (caught.value.loc.line, caught.value.loc.column) == (4, 17)


def test_allowed_expressions_still_work():
    assert evaluate("make_divisible(32 * width, 8)", {"width": 0.75}) == 24
    assert evaluate("2 if i == 0 else 1", {"i": 0}) == 2
    assert evaluate("stages[1] * 2", {"stages": [1, 3]}) == 6
    assert evaluate("round(depth * 3)", {"depth": 1.4}) == 4


def test_spec_names_cannot_escape_the_output_folder(write_spec, tmp_path):
    path = write_spec("name: ../../x\ninputs: {image: [3, 8, 8]}\nlayers: [relu]\n")
    with pytest.raises(SpecError, match="'name'"):
        archspec.compile_spec(path)
    # the folder helper refuses (or neutralises) anything that would leave the root
    root = tmp_path / "reports"
    assert safe_folder(root, "../../x").parent == root.resolve()
    assert safe_folder(root, "a/../../b").is_relative_to(root.resolve())


def test_interrupted_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "summary.json"
    target.write_text("old")

    def interrupted(source, destination):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, "new" * 1000)
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]  # no partial temporary file left behind


def test_write_replaces_whole_file(tmp_path):
    target = tmp_path / "out" / "module.py"
    write_atomic(target, "first")
    write_atomic(target, "second")
    assert target.read_text() == "second"


def test_include_outside_the_spec_folder_is_refused(tmp_path):
    (tmp_path / "outside.yaml").write_text("blocks: {b: {layers: [relu]}}\n")
    spec = tmp_path / "specs" / "spec.yaml"
    spec.parent.mkdir()
    spec.write_text(SPEC_HEAD + "use: [../outside.yaml]\nlayers: [relu]\n")
    with pytest.raises(SpecError, match="outside the spec's folder") as caught:
        archspec.compile_spec(spec)
    assert caught.value.loc.line == 3


FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}


# `archspec import TARGET` imports the user's own model code, named on the user's command line (the
# issue's "package.module:factory" or "model.py:build"); no spec ever reaches this module.
IMPORTS_USER_CODE = {ROOT / "archspec" / "importer" / "target.py"}


def test_archspec_source_has_no_dynamic_code_execution():
    """No eval/exec/compile/__import__ and no importlib anywhere in the package, but for the module
    that imports `archspec import`'s command-line target."""
    offenders = []
    for path in sorted(set((ROOT / "archspec").rglob("*.py")) - IMPORTS_USER_CODE):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
                offenders.append(f"{path.name}:{node.lineno} {node.func.id}()")
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                if any(n and n.split(".")[0] == "importlib" for n in names):
                    offenders.append(f"{path.name}:{node.lineno} importlib")
    assert offenders == []


def test_only_the_import_command_reaches_the_user_code_importer():
    """The module that imports a TARGET is imported by the `import` command alone, never by the
    spec, IR or lowering code that a spec file drives."""
    importers = {str(path.relative_to(ROOT)) for path in (ROOT / "archspec").rglob("*.py")
                 for node in ast.walk(ast.parse(path.read_text()))
                 if isinstance(node, ast.ImportFrom) and node.module == "archspec.importer.target"}
    assert importers == {"archspec/commands/import_model.py"}


def test_archspec_never_unpickles():
    """Every torch.load passes weights_only=True (a literal, not a variable), and nothing imports
    pickle, shelve or marshal or calls numpy with allow_pickle=True: run folders and weights files
    are data."""
    offenders = []
    for path in sorted((ROOT / "archspec").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                if any(n and n.split(".")[0] in {"pickle", "shelve", "marshal", "dill", "cloudpickle"} for n in names):
                    offenders.append(f"{path.name}:{node.lineno} imports a pickle module")
            if not isinstance(node, ast.Call):
                continue
            keywords = {k.arg: k.value for k in node.keywords}
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name == "load" and isinstance(node.func, ast.Attribute) and getattr(node.func.value, "id", "") == "torch":
                flag = keywords.get("weights_only")
                if not (isinstance(flag, ast.Constant) and flag.value is True):
                    offenders.append(f"{path.name}:{node.lineno} torch.load without weights_only=True")
            flag = keywords.get("allow_pickle")
            if flag is not None and not (isinstance(flag, ast.Constant) and flag.value is False):
                offenders.append(f"{path.name}:{node.lineno} allow_pickle")
    assert offenders == []


def test_cli_refuses_a_tagged_spec_without_traceback(write_spec):
    path = write_spec(SPEC_HEAD + "params: {p: !!python/object/apply:os.system ['touch PWNED']}\nlayers: [relu]\n")
    result = run_cli("report", str(path), "--format", "json")
    assert result.returncode == 1
    assert "not allowed" in result.stderr and "Traceback" not in result.stderr
    assert not Path("PWNED").exists() and not (ROOT / "PWNED").exists()


def test_archspec_error_is_the_only_error_type_for_bad_input(write_spec):
    path = write_spec("name: [unclosed\n")
    with pytest.raises(ArchspecError):
        archspec.compile_spec(path)
