"""The error catalogue: malformed specs, each giving exactly one located error,
`file:line:col node 'path': message` with a `hint:` line where one helps, through the library
(`SpecError`) and through `validate` (exit 1, the same text on stderr, no traceback).

A case names where the error must point by a piece of the spec text (`at`: the first occurrence
of `needle`, or of `sub` inside it), so the expected line and column are read off the spec itself.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import archspec
from archspec.cli import app
from archspec.errors import Location, SpecError
from conftest import SPECS, run_cli

H = "name: t\ninputs: {x: [3, 32, 32]}\nlayers:\n"  # the usual head: one 3x32x32 input

BOMB = "name: t\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, name in zip([None, "a", "b", "c", "d", "e", "f", "g"], ["a", "b", "c", "d", "e", "f", "g", "h"])
)  # 9**8 = 43 million values once the aliases are expanded

UNIT_BLOCK = "blocks:\n  unit:\n    params: {width: null}\n    layers:\n      - conv: {out: width, kernel: 3}\n"


@dataclass
class Case:
    id: str
    text: str | bytes
    at: tuple[str, str] | str | tuple[int, int]  # needle, (needle, sub) or (line, col)
    node: str | None
    message: list[str]
    hint: list[str] | None = None  # None: no hint line expected
    files: dict[str, str] = field(default_factory=dict)  # other files, relative to the spec's folder
    in_file: str = "spec.yaml"  # the file the location is in
    seconds: float = 10.0


def position(text: str, needle: str, sub: str | None = None) -> tuple[int, int]:
    """Line and column of the first `needle` in `text`, or of the last `sub` inside it."""
    start = text.index(needle) + (needle.rindex(sub) if sub else 0)
    line = text.count("\n", 0, start) + 1
    return line, start - (text.rfind("\n", 0, start) + 1) + 1


CASES = [
    # --- ops and their arguments ---
    Case("unknown-op", H + "  - cnov: {out: 8, kernel: 3}\n", "cnov", "cnov1",
         ["unknown op or block 'cnov'"], ["did you mean 'conv'"]),
    Case("typo-argument", H + "  - conv: {out: 8, kernal: 3}\n", "kernal", "conv1",
         ["conv has no argument 'kernal'"], ["did you mean 'kernel'?"]),
    Case("wrong-type-string", H + '  - conv: {out: "abc", kernel: 3}\n', '"abc"', "conv1",
         ["conv argument 'out'", "unknown name 'abc'"]),
    Case("wrong-type-bool", H + "  - conv: {out: 8, kernel: 3, bias: 3}\n", ("bias: 3", "3"), "conv1",
         ["conv argument 'bias'", "valid boolean", "got 3"]),
    Case("missing-argument", H + "  - conv: {out: 8}\n", "conv", "conv1",
         ["conv needs argument 'kernel'"], ["conv takes: out, kernel, stride"]),
    Case("arguments-not-a-mapping", H + "  - conv: [8, 3]\n", "[8, 3]", None,
         ["the arguments of 'conv' must be a mapping", "not a list"]),
    Case("stride-zero", H + "  - conv: {out: 8, kernel: 3, stride: 0}\n", ("stride: 0", "0"), "conv1",
         ["conv argument 'stride'", "greater than or equal to 1", "got 0"]),
    Case("kernel-larger-than-input", "name: t\ninputs: {x: [3, 8, 8]}\nlayers:\n  - conv: {out: 8, kernel: 11}\n",
         "conv", "conv1", ["kernel 11 is larger than the padded input 8+2*0=8 along height"]),
    # --- references ---
    Case("unknown-reference", H + "  - conv: {name: stem, out: 8, kernel: 3}\n  - relu: {from: stme}\n", "stme",
         "relu1", ["unknown reference 'stme'"], ["did you mean 'stem'?"]),
    Case("unknown-reference-nothing-close", H + "  - relu: {from: zzz}\n", "zzz", "relu1",
         ["unknown reference 'zzz'"], ["names visible here: x"]),
    Case("forward-reference", H + "  - conv: {name: a, out: 8, kernel: 3, from: b}\n  - conv: {name: b, out: 8, kernel: 3}\n",
         ("from: b", "b"), "a", ["'b' is defined later (line 5)", "cycle"], ["reorder the layers"]),
    Case("self-reference", H + "  - relu: {name: r, from: r}\n", ("from: r", "r"), "r",
         ["'r' is this node itself", "cycle"], ["earlier nodes"]),
    # --- shapes ---
    Case("concat-spatial-mismatch",
         "name: t\ninputs: {x: [3, 80, 80]}\nlayers:\n"
         "  - conv: {name: enc1, out: 8, kernel: 3, padding: 1}\n"
         "  - maxpool: {name: enc2, kernel: 4}\n"
         "  - conv_transpose: {name: dec3, out: 8, kernel: 2, stride: 2}\n"
         "  - concat: {name: up3, from: [dec3, enc2]}\n",
         "concat", "up3", ["spatial 40x40 from 'dec3' vs 20x20 from 'enc2'"], ["fit: crop"]),
    Case("add-shape-mismatch",
         H + "  - conv: {name: a, out: 8, kernel: 3, padding: 1}\n  - conv: {name: b, out: 16, kernel: 3, padding: 1}\n"
         "  - add: {from: [b, a]}\n",
         ("- add", "add"), "add1", ["add needs equal shapes", "16x32x32 from 'b' vs 8x32x32 from 'a'"], ["project: auto"]),
    Case("conv-after-flatten", H + "  - flatten\n  - conv: {out: 8, kernel: 3}\n", ("- conv", "conv"), "conv1",
         ["conv needs a (C, H, W) feature map", "3072", "flattened"]),
    # --- YAML ---
    Case("yaml-unclosed-brace", "name: t\ninputs: {x: [3, 32, 32]\nlayers:\n  - relu\n", "layers", None,
         ["YAML syntax error", "did not find expected ',' or '}'", "flow mapping started at line 2, column 9"]),
    Case("yaml-bad-indentation", "name: t\n  inputs: {x: [3, 32, 32]}\n", (2, 9), None,
         ["YAML syntax error", "mapping values are not allowed"]),
    Case("duplicate-key", H + "  - conv: {out: 8, kernel: 3, out: 4}\n", ("kernel: 3, out", "out"), None,
         ["duplicate key 'out' (first at line 4)"], ["may appear once"]),
    Case("duplicate-top-level-key", "name: a\nname: b\n", (2, 1), None, ["duplicate key 'name' (first at line 1)"],
         ["may appear once"]),
    Case("empty-file", "", (1, 1), None, ["the file is empty"], ["`name`"]),
    Case("only-comments", "# a spec, some day\n", (1, 1), None, ["the file is empty"], ["`name`"]),
    Case("top-level-list", "- conv\n- relu\n", (1, 1), None, ["the top level is a list", "a spec is a mapping"]),
    Case("top-level-scalar", "just words\n", (1, 1), None, ["the top level is a single value"]),
    Case("several-documents", "name: a\n---\nname: b\n", "---", None, ["several YAML documents"],
         ["one spec per file"]),
    Case("not-utf8", b"name: t\nsummary: caf\xe9\ninputs: {x: [3, 32, 32]}\nlayers: [relu]\n", (2, 13), None,
         ["byte 0xe9 is not valid UTF-8"], ["UTF-8"]),
    Case("control-character", "name: t\nsummary: a\x07b\n", (2, 11), None, ["U+0007", "not allowed"],
         ["remove the control character"]),
    Case("python-tag", "name: !!python/object/apply:os.system [echo hacked]\n", "!!python", None,
         ["python/object/apply:os.system", "not allowed", "plain data"], ["remove the tag"]),
    Case("custom-tag", "name: t\nuse: [!include blocks.yaml]\n", "!include", None, ["'!include' is not allowed"],
         ["remove the tag"]),
    # a..e expand to 66,430 values, f to 597,871: the error points at f, and comes at once
    Case("alias-bomb", BOMB, ("e: &e", "&e"), None, ["more than 50,000 values", "alias bomb"], ["aliases"],
         seconds=3.0),
    # the root mapping is level 1, so the 100th `[` opens level 101
    Case("deep-nesting", "a: " + "[" * 20_000 + "]" * 20_000 + "\n", (1, 103), None,
         ["nested more than 100 levels deep"], ["mistake"], seconds=3.0),
    # --- blocks ---
    Case("block-missing-parameter", H.replace("layers:\n", UNIT_BLOCK + "layers:\n") + "  - unit: {}\n",
         ("- unit", "unit"), "unit1", ["block 'unit' needs parameter 'width'"], ["unit: {width: ...}"]),
    Case("block-unknown-parameter", H.replace("layers:\n", UNIT_BLOCK + "layers:\n") + "  - unit: {width: 8, widht: 3}\n",
         "widht", "unit1", ["block 'unit' has no parameter 'widht'"], ["did you mean 'width'?"]),
    Case("block-uses-itself", H.replace("layers:\n", "blocks:\n  unit:\n    layers: [relu, unit]\nlayers:\n") + "  - unit\n",
         ("relu, unit", "unit"), "unit1.unit1", ["block 'unit' uses itself (unit -> unit)"], ["recursive"]),
    Case("blocks-use-each-other",
         H.replace("layers:\n", "blocks:\n  a:\n    layers: [b]\n  b:\n    layers: [relu, a]\nlayers:\n") + "  - a\n",
         ("relu, a", "a"), "a1.b1.a1", ["block 'a' uses itself (a -> b -> a)"], ["recursive"]),
    Case("blocks-nested-too-deep",
         H.replace("layers:\n", "blocks:\n" + "".join(f"  b{i}:\n    layers: [b{i + 1}]\n" for i in range(80))
                   + "  b80:\n    layers: [relu]\nlayers:\n") + "  - b0\n",
         ("[b64]", "b64"), ".".join(f"b{i}1" for i in range(65)), ["nested more than 64 levels deep"], ["chain of blocks"]),
    # --- included files ---
    Case("use-missing-file", "name: t\nuse: [blocks/nope.yaml]\ninputs: {x: [3, 32, 32]}\nlayers: [relu]\n",
         "blocks/nope.yaml", None, ["included file 'blocks/nope.yaml' does not exist"], ["looked for"]),
    Case("use-outside-the-folder", "name: t\nuse: [../shared.yaml]\ninputs: {x: [3, 32, 32]}\nlayers: [relu]\n",
         "../shared.yaml", None, ["'../shared.yaml' is outside the spec's folder"], ["spec's folder or below"],
         files={"../shared.yaml": "blocks: {}\n"}),
    Case("use-absolute-path", "name: t\nuse: [/etc/hostname]\ninputs: {x: [3, 32, 32]}\nlayers: [relu]\n",
         "/etc/hostname", None, ["'/etc/hostname' is outside the spec's folder"], ["spec's folder or below"]),
    Case("use-cycle", "name: t\nuse: [blocks/a.yaml]\ninputs: {x: [3, 32, 32]}\nlayers: [relu]\n",
         "a.yaml", None, ["`use` forms a cycle: spec.yaml -> a.yaml -> b.yaml -> a.yaml"], ["may not include itself"],
         files={"blocks/a.yaml": "use: [b.yaml]\nblocks: {}\n", "blocks/b.yaml": "use: [a.yaml]\nblocks: {}\n"},
         in_file="blocks/b.yaml"),
    Case("error-inside-a-used-file", "name: t\nuse: [blocks/unit.yaml]\ninputs: {x: [3, 32, 32]}\nlayers: [unit]\n",
         "kernal", "unit1.conv1", ["conv has no argument 'kernal'"], ["did you mean 'kernel'?"],
         files={"blocks/unit.yaml": "blocks:\n  unit:\n    layers:\n      - conv: {out: 8, kernal: 3}\n"},
         in_file="blocks/unit.yaml"),
    Case("extends-itself", "extends: spec.yaml\nname: t\n", "spec.yaml", None,
         ["`extends` forms a cycle: spec.yaml -> spec.yaml"]),
    # --- expressions ---
    Case("expression-unknown-name", "name: t\nparams: {width: 8}\ninputs: {x: [3, 32, 32]}\nlayers:\n"
         "  - conv: {out: widht * 2, kernel: 3}\n", "widht * 2", "conv1",
         ["conv argument 'out'", "unknown name 'widht'", "did you mean 'width'?"]),
    Case("expression-division-by-zero", H + "  - conv: {out: 8 // 0, kernel: 3}\n", "8 // 0", "conv1",
         ["division by zero in '8 // 0'"]),
    Case("expression-huge-power", H + "  - conv: {out: 10 ** 100, kernel: 3}\n", "10 ** 100", "conv1",
         ["'10 ** 100' would be too large"]),
    Case("expression-over-the-limit", H + "  - conv: {out: 10 ** 15 * 10, kernel: 3}\n", "10 ** 15", "conv1",
         ["larger than the limit 1e+15"]),
    Case("non-integer", H + "  - conv: {out: 2.5, kernel: 3}\n", "2.5", "conv1",
         ["conv argument 'out'", "valid integer", "fractional part"]),
    Case("expression-attribute", H + '  - conv: {out: "(8).real", kernel: 3}\n', '"(8).real"', "conv1",
         [".real' is not allowed in an expression"]),
    Case("expression-import", H + "  - conv: {out: \"__import__('os').getpid()\", kernel: 3}\n", '"__import__', "conv1",
         ["is not a known function", "known: min, max"]),
    Case("expression-in-a-parameter", "name: t\nparams: {a: '1 // 0'}\ninputs: {x: [3, 32, 32]}\nlayers: [relu]\n",
         "'1 // 0'", None, ["parameter 'a': division by zero"]),
    # --- repeat ---
    Case("repeat-negative", H + "  - relu: {repeat: -1}\n", "-1", "relu1", ["repeat must be between 0 and 1000, got -1"]),
    Case("repeat-over-the-limit", H + "  - relu: {repeat: 1001}\n", "1001", "relu1",
         ["repeat must be between 0 and 1000, got 1001"]),
    Case("repeat-not-a-number", H + "  - relu: {repeat: 2.5}\n", "2.5", "relu1", ["repeat must be a whole number, got 2.5"]),
    # --- the document's keys ---
    Case("unknown-top-level-key", H.replace("layers:", "layer: [relu]\nlayers:") + "  - relu\n", "layer:", None,
         ["unknown key 'layer'"], ["did you mean 'layers'"]),
    Case("missing-layers", "name: t\ninputs: {x: [3, 32, 32]}\n", (1, 1), None, ["missing required key 'layers'"]),
    Case("input-size-not-positive", "name: t\ninputs: {x: [3, 0, 32]}\nlayers: [relu]\n", "[3, 0, 32]", None,
         ["input 'x' needs positive sizes, got [3, 0, 32]"]),
    # --- fixed-choice arguments: the allowed words and a did-you-mean ---
    Case("choice-mode", H + "  - upsample: {scale: 2, mode: bilinar}\n", "bilinar", "upsample1",
         ["upsample argument 'mode' must be one of 'nearest', 'bilinear', 'bicubic', not 'bilinar'"],
         ["did you mean 'bilinear'?"]),
    Case("choice-padding-word", H + "  - conv: {out: 8, kernel: 3, padding: sme}\n", "sme", "conv1",
         ["conv argument 'padding' must be one of 'same', 'valid' (or a whole number or a pair [a, b]), not 'sme'"],
         ["did you mean 'same'?"]),
    Case("choice-approximate", H + "  - gelu: {approximate: tahn}\n", "tahn", "gelu1",
         ["gelu argument 'approximate' must be one of 'none', 'tanh', not 'tahn'"], ["did you mean 'tanh'?"]),
    Case("choice-project", H + "  - conv: {name: a, out: 8, kernel: 3, padding: 1}\n  - add: {from: [a, x], project: atuo}\n",
         "atuo", "add1", ["add argument 'project' must be one of 'auto', 'never', not 'atuo'"], ["did you mean 'auto'?"]),
    Case("choice-fit", H + "  - parallel: {branches: {a: relu, b: sigmoid}, fit: crp}\n", "crp", "parallel1",
         ["parallel key 'fit' must be one of 'none', 'crop', 'pad', not 'crp'"], ["did you mean 'crop'?"]),
    Case("choice-merge", H + "  - parallel: {branches: {a: relu, b: sigmoid}, merge: ad}\n", ("merge: ad", "ad"),
         "parallel1", ["parallel key 'merge' must be one of 'add', ", "'concat'", ", not 'ad'"], ["did you mean 'add'?"]),
    # --- constructs and reserved keys: on the item the user wrote ---
    Case("parallel-unknown-key", H + "  - parallel: {branches: {a: relu}, fitt: crop}\n", "fitt", "parallel1",
         ["parallel has no key 'fitt'"], ["did you mean 'fit'?"]),
    Case("parallel-without-branches", H + "  - parallel: {merge: concat}\n", ("- parallel", "parallel"), "parallel1",
         ["parallel needs `branches`: a mapping of branch name -> layers"]),
    Case("seq-unknown-key", H + "  - seq: {layerz: [relu]}\n", "layerz", "seq1", ["seq has no key 'layerz'"],
         ["did you mean 'layers'?"]),
    Case("seq-index-names-not-a-boolean", H + "  - seq: {layers: [relu], index_names: 3}\n", ("index_names: 3", "3"),
         "seq1", ["seq key 'index_names' is true or false, not 3"]),
    Case("reuse-unknown-key", H + "  - conv: {out: 8, kernel: 3}\n  - reuse: {nod: conv1}\n", "nod", "reuse1",
         ["reuse has no key 'nod'"], ["did you mean 'node'?"]),
    Case("trainable-not-a-boolean", H + "  - relu: {trainable: 3}\n", ("trainable: 3", "3"), None,
         ["`trainable` is true or false, not 3"]),
    Case("when-not-a-boolean", H + "  - relu: {when: 3}\n", ("when: 3", "3"), "relu1",
         ["`when` must be true or false, got 3"], ["when: stride == 1"]),
    Case("repeat-a-list", H + "  - relu: {repeat: [2]}\n", "[2]", "relu1", ["repeat must be a whole number, got [2]"]),
    Case("from-empty", H + "  - relu: {from: []}\n", "[]", None, ["`from` is empty"]),
    Case("from-not-a-name", H + "  - relu: {from: [x, {a: 1}]}\n", "[x, {a: 1}]", "relu1",
         ["a reference is a node name, not {'a': 1}"]),
]


def write_case(case: Case, root: Path) -> Path:
    folder = root / "case"
    folder.mkdir(parents=True)
    spec = folder / "spec.yaml"
    if isinstance(case.text, bytes):
        spec.write_bytes(case.text)
    else:
        spec.write_text(case.text)
    for name, text in case.files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return spec


def expected_location(case: Case, spec: Path) -> Location:
    if isinstance(case.at, tuple) and isinstance(case.at[0], int):
        line, column = case.at
    else:
        text = case.text.decode("utf-8", "replace") if isinstance(case.text, bytes) else case.text
        text = case.files.get(case.in_file, text)  # the location is in an included file
        line, column = position(text, *((case.at,) if isinstance(case.at, str) else case.at))
    return Location(str(spec.parent / case.in_file), line, column)


def compile_error(spec: Path, case: Case) -> SpecError:
    start = time.perf_counter()
    with pytest.raises(SpecError) as info:
        archspec.compile_spec(spec)
    assert time.perf_counter() - start < case.seconds
    return info.value


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_error_is_located_and_clear(case, tmp_path):
    spec = write_case(case, tmp_path)
    err = compile_error(spec, case)
    assert err.loc == expected_location(case, spec), str(err)
    assert err.node == case.node, str(err)
    for part in case.message:
        assert part in err.message, str(err)
    if case.hint is None:
        assert err.hint is None, str(err)
    else:
        assert err.hint is not None, str(err)
        for part in case.hint:
            assert part in err.hint, str(err)
    # the one-line form the CLI prints: `file:line:col node 'path': message` then `  hint: ...`
    first, *rest = str(err).split("\n")
    assert first == f"{err.loc} " + (f"node '{err.node}': " if err.node else "") + err.message
    assert rest == ([f"  hint: {err.hint}"] if err.hint else [])
    assert "Traceback" not in str(err) and "SourceMap" not in str(err) and "SourceList" not in str(err)

    # `validate` prints exactly that text on stderr, once, and exits 1
    result = CliRunner().invoke(app, ["validate", str(spec)])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    assert result.stderr == f"error: {err}\n"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_validate_prints_the_one_error(case, tmp_path):
    """`validate` on its own (it checks every item before it builds): the case's one error."""
    spec = write_case(case, tmp_path)
    result = CliRunner().invoke(app, ["validate", str(spec)])
    assert result.exit_code == 1 and result.stdout == ""
    first, *rest = result.stderr.rstrip("\n").split("\n")
    where = f"error: {expected_location(case, spec)} " + (f"node '{case.node}': " if case.node else "")
    assert first.startswith(where), result.stderr
    assert all(part in first for part in case.message), result.stderr
    if case.hint is None:
        assert rest == [], result.stderr
    else:
        assert len(rest) == 1 and rest[0].startswith("  hint: "), result.stderr
        assert all(part in rest[0] for part in case.hint), result.stderr


def test_validate_reports_all_bad_specs_in_one_process(tmp_path):
    """As a real process: every case's message on stderr, exit 1, no traceback, nothing on stdout."""
    paths = []
    for index, case in enumerate(CASES):
        paths.append(write_case(case, tmp_path / f"{index:02d}"))
    result = run_cli("validate", *map(str, paths))
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == len(CASES)
    for path in paths:
        assert f"error: {path.parent}" in result.stderr


def test_included_files_are_named_as_the_user_wrote_them(tmp_path, monkeypatch):
    """A file included by an included file is shown by its relative path, like the first one."""
    case = next(c for c in CASES if c.id == "use-cycle")
    spec = write_case(case, tmp_path)
    monkeypatch.chdir(spec.parent)
    result = CliRunner().invoke(app, ["validate", "spec.yaml"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: blocks/b.yaml:1:7 `use` forms a cycle")
    (spec.parent / "blocks/b.yaml").write_text("blocks:\n  unit:\n    layers:\n      - relu: {from: nothere}\n")
    spec.write_text(spec.read_text().replace("layers: [relu]", "layers: [unit]"))
    result = CliRunner().invoke(app, ["validate", "spec.yaml"])
    assert result.stderr.startswith("error: blocks/b.yaml:4:22 node 'unit1.relu1': unknown reference 'nothere'")


def test_expressions_never_run_python(tmp_path):
    marker = tmp_path / "pwned"
    spec = tmp_path / "spec.yaml"
    spec.write_text(H + f"  - conv: {{out: \"__import__('os').system('touch {marker}')\", kernel: 3}}\n")
    with pytest.raises(SpecError, match="is not a known function"):
        archspec.compile_spec(spec)
    assert not marker.exists()


def test_yaml_merge_keys_may_be_overridden(tmp_path):
    """`<<: *base` then a key of its own is YAML's override, not a duplicate key."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: t\ninputs: {x: [3, 32, 32]}\nblocks:\n  unit:\n    params: {width: null}\n"
        "    layers:\n      - conv: &base {out: width, kernel: 3, padding: 1}\n"
        "      - conv: {<<: *base, out: 4}\nlayers: [{unit: {width: 8}}]\n"
    )
    ir = archspec.compile_spec(spec)
    assert ir.shapes["unit1.conv2"] == (4, 32, 32)
    spec.write_text(spec.read_text().replace("out: 4}", "out: 4, out: 5}"))
    with pytest.raises(SpecError, match="duplicate key 'out'") as info:
        archspec.compile_spec(spec)
    assert (info.value.loc.line, info.value.loc.column) == position(spec.read_text(), "out: 4, out", "out") == (8, 35)
    # merging a scalar (found by `make fuzz`: `<<: :`) is a located error, not PyYAML's exception
    spec.write_text(spec.read_text().replace("{<<: *base, out: 4, out: 5}", "{<<: 3, out: 4}"))
    with pytest.raises(SpecError, match="YAML merge key: expected a mapping") as info:
        archspec.compile_spec(spec)
    assert (info.value.loc.line, info.value.loc.column) == position(spec.read_text(), "<<: 3", "3") == (8, 20)


def test_expression_syntax_warnings_stay_quiet(tmp_path, capfd):
    """`1if` is a SyntaxWarning in Python 3.12+ (and 'invalid decimal literal' in 3.11): the
    spec gets archspec's own error, stderr nothing from Python's parser."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(H + "  - conv: {out: '1if', kernel: 3}\n")
    with pytest.raises(SpecError, match="is not a valid expression"):
        archspec.compile_spec(spec)
    assert "Warning" not in capfd.readouterr().err


# --- --set and --input ----------------------------------------------------------------------------
def test_set_unknown_parameter():
    with pytest.raises(SpecError) as info:
        archspec.compile_spec(SPECS / "lenet5.yaml", params={"num_clases": 10})
    err = info.value
    assert err.message == "--set names 'num_clases', which is not a parameter of lenet5"
    assert err.hint == "did you mean 'num_classes'?"
    result = CliRunner().invoke(app, ["validate", str(SPECS / "lenet5.yaml"), "--set", "num_clases=10"])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == f"error: {err}\n"


def test_set_bad_value_points_at_its_use():
    result = CliRunner().invoke(app, ["validate", str(SPECS / "lenet5.yaml"), "--set", "num_classes=0"])
    assert result.exit_code == 1
    text = (SPECS / "lenet5.yaml").read_text()
    line, column = position(text, "out: num_classes", "num_classes")
    assert result.stderr.startswith(f"error: {SPECS / 'lenet5.yaml'}:{line}:{column} node 'fc5': linear argument 'out'")


def test_input_for_an_unknown_input_name():
    with pytest.raises(SpecError) as info:
        archspec.compile_spec(SPECS / "lenet5.yaml", inputs={"img": (3, 32, 32)})
    assert info.value.message == "--input names 'img', which is not an input of the spec"
    assert info.value.hint == "did you mean 'image'?"


@pytest.mark.parametrize(
    "value, message",
    [
        ("abc", "error: --input expects CxHxW like 3x224x224, got 'abc'\n"),
        ("3x32x", "error: --input expects CxHxW like 3x224x224, got '3x32x'\n"),
        ("3x0x32", "error: --input sizes must be positive, got '3x0x32'\n"),
        ("3x-2x32", "error: --input sizes must be positive, got '3x-2x32'\n"),
        ("img=3x32x32", "error: --input names 'img', which is not an input of the spec\n  hint: did you mean 'image'?\n"),
    ],
)
def test_bad_input_option(value, message):
    result = CliRunner().invoke(app, ["report", str(SPECS / "lenet5.yaml"), "--input", value])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == message


def test_input_too_small_is_located_in_the_spec():
    """An input that the spec cannot take is reported where the spec breaks, with the producer's shape."""
    spec = SPECS / "lenet5.yaml"
    result = run_cli("report", str(spec), "--input", "3x8x8")
    assert result.returncode == 1 and result.stdout == ""
    line, column = position(spec.read_text(), "conv: {name: conv2")
    assert result.stderr.startswith(f"error: {spec}:{line}:{column} node 'conv2': ")
    assert "kernel 5 is larger than the padded input 2+2*0=2 along height" in result.stderr
    assert "'pool1': 6x2x2" in result.stderr
    assert "Traceback" not in result.stderr


LOADERS = [pytest.param(yaml.SafeLoader, id="pure-python")] + (
    [pytest.param(yaml.CSafeLoader, id="libyaml")] if hasattr(yaml, "CSafeLoader") else [])
NESTED = [  # (text, line, column of the list or mapping that opens level 101; the root mapping is level 1)
    ("a: " + "[" * 20_000 + "]" * 20_000 + "\n", 1, 103),  # past libyaml 0.2.6's own 1,000-level limit
    ("a: " + "[" * 150 + "]" * 150 + "\n", 1, 103),
    ("a: " + "{b: " * 2_000 + "1" + "}" * 2_000 + "\n", 1, 3 + 4 * 99 + 1),
    # block style: each level one more space of indentation; the mapping of `k100` is level 101
    ("".join(" " * depth + f"k{depth}:\n" for depth in range(120)) + " " * 120 + "v\n", 101, 101),
]


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("text, line, column", NESTED, ids=["flow-20000", "flow-150", "flow-maps", "block"])
def test_nesting_limit_is_archspec_s_whatever_the_yaml_library(loader, text, line, column, monkeypatch):
    """The 100-level limit is ours, with its own located message, with the C loader and with the
    pure-Python one, however deep the input goes (libyaml gives up at 1,000 levels by itself)."""
    from archspec.spec import yaml_source

    monkeypatch.setattr(yaml_source, "_Loader", loader)
    start = time.perf_counter()
    with pytest.raises(SpecError) as info:
        yaml_source.parse_yaml(text, "spec.yaml")
    # a ceiling against runaway parsing of the 20,000 levels (not a speed target: CI is shared)
    assert time.perf_counter() - start < 10.0
    assert info.value.message == "lists and mappings are nested more than 100 levels deep"
    assert (info.value.loc.line, info.value.loc.column) == (line, column)


@pytest.mark.parametrize("loader", LOADERS)
def test_nesting_at_the_limit_and_syntax_errors_still_read_as_before(loader, monkeypatch):
    from archspec.spec import yaml_source

    monkeypatch.setattr(yaml_source, "_Loader", loader)
    assert yaml_source.parse_yaml("a: " + "[" * 99 + "]" * 99 + "\n", "spec.yaml") is not None  # level 100: fine
    with pytest.raises(SpecError) as info:
        yaml_source.parse_yaml("a: [1, 2\nb: 3\n", "spec.yaml")
    assert info.value.message.startswith("YAML syntax error")
