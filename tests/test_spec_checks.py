"""The spec checks: short-circuit `and`/`or`, `extends` with a base that has `use:`, the op-argument
errors of fixed-choice values (archspec.spec.arguments), and the checker that reports every
independent error of a file (archspec.spec.lint) for `validate`.

Expected messages are written out here from the op's own schema (its Literal words), not copied
from archspec's output; locations are read off the spec text.
"""
from __future__ import annotations

import textwrap

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

import archspec
from archspec.errors import Location, SpecError
from archspec.ops.catalog import lookup
from archspec.spec.arguments import argument_error, argument_errors, choices
from archspec.spec.document import load_spec
from archspec.spec.expressions import ExpressionError, evaluate
from archspec.spec.lint import lint
from archspec.spec.yaml_source import parse_yaml
from conftest import LIBRARY


def position(text: str, needle: str, sub: str | None = None) -> tuple[int, int]:
    start = text.index(needle) + (needle.rindex(sub) if sub else 0)
    return text.count("\n", 0, start) + 1, start - (text.rfind("\n", 0, start) + 1) + 1


# --- bug: `and` / `or` evaluated both sides -------------------------------------------------------
@pytest.mark.parametrize("text, x, expected", [
    ("x != 0 and 10 / x > 1", 0, False),  # the right side would divide by zero
    ("x != 0 and 10 / x > 1", 5, True),
    ("x != 0 and 10 / x > 1", 20, False),
    ("x == 0 or 10 / x > 1", 0, True),
    ("x == 0 or 10 / x > 1", 20, False),
    ("x > 1 and x > 2 and 10 // (x - 3) > 0", 2, False),  # a chain stops at its first false value
])
def test_and_or_short_circuit_like_python(text, x, expected):
    assert evaluate(text, {"x": x}) is expected
    assert eval(text, {}, {"x": x}) == expected  # Python's own answer


def test_the_side_that_is_needed_is_still_evaluated():
    with pytest.raises(ExpressionError, match="division by zero"):
        evaluate("x == 1 or 10 / x > 1", {"x": 0})
    with pytest.raises(ExpressionError, match="unknown name 'y'"):
        evaluate("x == 0 and y", {"x": 0})


def test_a_condition_guarding_a_division_in_a_spec(write_spec):
    path = write_spec("""
        name: t
        params: {d: 0}
        inputs: {x: [3, 8, 8]}
        layers:
          - conv: {out: 4, kernel: 1, when: "d != 0 and 8 // d > 1"}
          - relu
    """)
    assert [n for n in archspec.compile_spec(path).order] == ["x", "relu1"]
    assert "conv1" in archspec.compile_spec(path, params={"d": 2}).order


# --- bug: `extends: sub/base.yaml` read the base's `use:` from the extending file's folder -------
def test_extends_reads_the_base_s_use_from_the_base_s_folder(write_spec):
    write_spec("blocks:\n  unit:\n    layers: [relu]\n", "sub/blocks.yaml")
    # a decoy next to the variant: the base's `use: [blocks.yaml]` must not find this one
    write_spec("blocks:\n  unit:\n    layers: [sigmoid]\n", "blocks.yaml")
    write_spec("name: base\nuse: [blocks.yaml]\ninputs: {x: [3, 8, 8]}\nlayers: [unit]\n", "sub/base.yaml")
    variant = write_spec("name: variant\nextends: sub/base.yaml\n", "variant.yaml")
    ir = archspec.compile_spec(variant)
    assert [ir.node(n).op for n in ir.order] == ["input", "relu"]
    # the variant's own `use:` replaces the base's and is read from the variant's folder
    own = write_spec("name: own\nextends: sub/base.yaml\nuse: [blocks.yaml]\n", "own.yaml")
    ir = archspec.compile_spec(own)
    assert [ir.node(n).op for n in ir.order] == ["input", "sigmoid"]


def test_an_error_in_the_base_s_block_file_names_it_by_its_relative_path(write_spec, monkeypatch):
    text = "blocks:\n  unit:\n    layers:\n      - relu: {from: nothere}\n"
    write_spec(text, "sub/blocks.yaml")
    write_spec("name: base\nuse: [blocks.yaml]\ninputs: {x: [3, 8, 8]}\nlayers: [unit]\n", "sub/base.yaml")
    variant = write_spec("name: variant\nextends: sub/base.yaml\n", "variant.yaml")
    monkeypatch.chdir(variant.parent)
    with pytest.raises(SpecError) as info:
        archspec.compile_spec("variant.yaml")
    assert info.value.loc == Location("sub/blocks.yaml", *position(text, "nothere"))


# --- fixed-choice arguments -----------------------------------------------------------------------
def written(text: str):
    """(op entry, its arguments as read from YAML) for `op: {args}`."""
    item = parse_yaml(text, "spec.yaml")
    (name, args), = item.items()
    return lookup(name), args


def errors_of(text: str, names: dict | None = None, **options) -> list[SpecError]:
    op, args = written(text)
    with pytest.raises(ValidationError) as info:
        op.args.model_validate(dict(args), context={"names": names or {}})
    return argument_errors(info.value, op, args, Location("spec.yaml", 1, 1), "n1", **options)


def test_the_words_a_field_takes_come_from_its_annotation():
    upsample, conv = lookup("upsample").args, lookup("conv").args
    assert choices(upsample.model_fields["mode"].annotation) == ("nearest", "bilinear", "bicubic")
    # a union of numbers, pairs and words: only the words are choices
    assert choices(conv.model_fields["padding"].annotation) == ("same", "valid")
    assert choices(conv.model_fields["out"].annotation) == ()


@pytest.mark.parametrize("text, message, hint", [
    ("upsample: {scale: 2, mode: bilinar}",
     "upsample argument 'mode' must be one of 'nearest', 'bilinear', 'bicubic', not 'bilinar'", "did you mean 'bilinear'?"),
    ("gelu: {approximate: tahn}", "gelu argument 'approximate' must be one of 'none', 'tanh', not 'tahn'",
     "did you mean 'tanh'?"),
    ("conv: {out: 8, kernel: 3, padding: sme}",
     "conv argument 'padding' must be one of 'same', 'valid' (or a whole number or a pair [a, b]), not 'sme'",
     "did you mean 'same'?"),
    ("concat: {fit: crp}", "concat argument 'fit' must be one of 'none', 'crop', 'pad', not 'crp'", "did you mean 'crop'?"),
    ("upsample: {scale: 2, mode: 3}", "upsample argument 'mode' must be one of 'nearest', 'bilinear', 'bicubic', not 3", None),
    ("upsample: {scale: 2, mode: zzz}", "upsample argument 'mode' must be one of 'nearest', 'bilinear', 'bicubic', not 'zzz'", None),
])
def test_a_fixed_choice_says_the_choices_and_the_closest(text, message, hint):
    (error,) = errors_of(text)
    assert (error.message, error.hint, error.node) == (message, hint, "n1")
    value = text.rsplit(": ", 1)[1].rstrip("}")
    assert (error.loc.line, error.loc.column) == position(text, f": {value}", value)


def test_a_word_that_names_a_parameter_is_read_as_its_value():
    # `padding: p` with p = "sme": the value is the parameter's, the location the argument's
    (error,) = errors_of("conv: {out: 8, kernel: 3, padding: p}", {"p": "sme"})
    assert error.message.endswith("not 'sme'") and error.hint == "did you mean 'same'?"
    # a misspelt parameter: no choice is close, the parameter is
    (error,) = errors_of("conv: {out: 8, kernel: 3, padding: pda}", {"pad": 1})
    assert error.hint == "did you mean 'pad'?"


def test_an_expression_keeps_its_own_error():
    (error,) = errors_of("conv: {out: 8, kernel: 3, padding: 'q + 1'}")
    assert error.message.startswith("conv argument 'padding': unknown name 'q'")


def test_every_argument_error_unknown_ones_first_and_the_first_is_the_builder_s():
    text = "conv: {out: 0, kernal: 3, padding: sme, bias: 2}"
    found = errors_of(text)
    assert [e.message.split(":")[0].split(" must")[0] for e in found] == [
        "conv has no argument 'kernal'",  # it explains the missing `kernel`, which is not reported
        "conv argument 'out'",
        "conv argument 'padding'",
        "conv argument 'bias'",
    ]
    op, args = written(text)
    with pytest.raises(ValidationError) as info:
        op.args.model_validate(dict(args), context={"names": {}})
    first = argument_error(info.value, op, args, Location("spec.yaml", 1, 1), "n1")
    assert str(first) == str(found[0])
    assert first.hint == "did you mean 'kernel'?"
    # without the misspelt one, the missing argument is reported
    assert any(e.message == "conv needs argument 'kernel'" for e in errors_of("conv: {out: 8}"))


def test_values_over_unknown_names_are_left_alone():
    assert errors_of("upsample: {scale: 2, mode: m, size: [s, 3]}", unknown={"m", "s"}) == []
    # a misspelt argument is still one, whatever is known
    (error,) = errors_of("upsample: {scale: 2, mode: m, sise: 3}", unknown={"m"})
    assert error.message == "upsample has no argument 'sise'"
    # keys only: the values are not looked at (an item left out by `when`)
    assert [e.message for e in errors_of("upsample: {scale: 0, mode: bilinar, sise: 3}", keys_only=True)] == [
        "upsample has no argument 'sise'"]


# --- every independent error of a file ------------------------------------------------------------
MULTI = textwrap.dedent("""\
    name: multi
    params: {width: 8}
    inputs: {x: [3, 32, 32]}
    blocks:
      unit:
        params: {c: null, m: nearest}
        layers:
          - conv: {out: c, kernel: 3, padingg: 1}
          - upsample: {scale: 2, mode: m}
          - upsample: {scale: 2, mode: bilinar}
    layers:
      - cnov: {out: 8, kernel: 3}
      - conv: {out: widht, kernel: 3, padding: sme}
      - unit: {c: 8, cc: 3}
      - parallel:
          branches: {a: relu, b: [relu, {gelu: {approximate: tahn}}]}
          fit: crp
      - seq: {layerz: [relu]}
      - reuse: {nod: conv1}
      - relu: {trainable: 3, repeat: 2.5}
    """)

# (needle, sub) where each error points, the node and the start of the message, in file order
MULTI_ERRORS = [
    (("cnov", None), "cnov1", "unknown op or block 'cnov'"),
    (("widht", None), "conv1", "conv argument 'out': unknown name 'widht'"),
    (("sme", None), "conv1", "conv argument 'padding' must be one of 'same', 'valid'"),
    (("cc: 3", "cc"), "unit1", "block 'unit' has no parameter 'cc'"),
    (("padingg", None), "unit1.conv1", "conv has no argument 'padingg'"),  # the block, where it is first called
    (("mode: bilinar", "bilinar"), "unit1.upsample2", "upsample argument 'mode' must be one of"),
    (("crp", None), "parallel1", "parallel key 'fit' must be one of 'none', 'crop', 'pad', not 'crp'"),
    (("tahn", None), "parallel1.b.gelu1", "gelu argument 'approximate' must be one of 'none', 'tanh'"),
    (("layerz", None), "seq1", "seq has no key 'layerz'"),
    (("nod:", "nod"), "reuse1", "reuse has no key 'nod'"),
    (("trainable: 3", "3"), None, "`trainable` is true or false, not 3"),
    (("repeat: 2.5", "2.5"), "relu1", "repeat must be a whole number, got 2.5"),
]


def test_lint_reports_every_independent_error_located(write_spec):
    path = write_spec(MULTI)
    found = lint(load_spec(path))
    assert len(found) == len(MULTI_ERRORS), "\n".join(map(str, found))
    for error, ((needle, sub), node, message) in zip(found, MULTI_ERRORS):
        assert error.loc == Location(str(path), *position(MULTI, needle, sub)), str(error)
        assert error.node == node and error.message.startswith(message), str(error)
    # the IR builder stops at the first, and it is the same
    with pytest.raises(SpecError) as info:
        archspec.compile_spec(path)
    assert str(info.value) == str(found[0])


def test_validate_prints_every_error_and_exits_1(write_spec):
    from archspec.cli import app

    path = write_spec(MULTI)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 1 and result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert lines == [f"error: {e}".split("\n")[0] for e in lint(load_spec(path))]
    assert len(lines) == len(MULTI_ERRORS)


def test_the_library_has_nothing_to_report():
    for path in LIBRARY:
        assert lint(load_spec(path)) == [], path


def test_block_parameters_and_the_repeat_index_are_not_guessed(write_spec):
    path = write_spec("""
        name: t
        inputs: {x: [3, 8, 8]}
        blocks:
          unit:
            params: {c: null, m: nearest, p: 1}
            layers:
              - conv: {out: c * 2, kernel: 3, padding: p}
              - upsample: {scale: 2, mode: m}
        layers:
          - unit: {c: 4, m: bilinear}
          - conv: {name: "c{i}", out: "4 + i", kernel: 1, repeat: 2}
    """)
    assert lint(load_spec(path)) == []
    archspec.compile_spec(path)


def test_an_item_left_out_by_when_has_its_keys_checked_not_its_values(write_spec):
    text = textwrap.dedent("""\
        name: t
        params: {d: 0}
        inputs: {x: [3, 8, 8]}
        layers:
          - conv: {out: 8 // d, kernel: 1, when: "d != 0"}
          - relu: {when: "d != 0", inplace: true}
        """)
    path = write_spec(text)
    (error,) = lint(load_spec(path))
    assert error.message == "relu has no argument 'inplace'"
    assert error.loc == Location(str(path), *position(text, "inplace"))


def test_a_block_nothing_calls_is_checked_too(write_spec):
    text = "name: t\ninputs: {x: [3, 8, 8]}\nblocks:\n  spare:\n    layers: [relu, {sigmoyd: {}}]\nlayers: [relu]\n"
    path = write_spec(text)
    (error,) = lint(load_spec(path))
    assert error.message == "unknown op or block 'sigmoyd'" and error.hint.startswith("did you mean 'sigmoid'")
    assert error.node == "spare.sigmoyd1"
    assert error.loc == Location(str(path), *position(text, "sigmoyd"))


def test_the_same_name_twice_is_found_where_the_builder_finds_it(write_spec):
    path = write_spec("name: t\ninputs: {x: [3, 8, 8]}\nlayers:\n  - relu: {name: a}\n  - sigmoid: {name: a}\n  - tanh\n")
    (error,) = lint(load_spec(path))
    with pytest.raises(SpecError) as info:
        archspec.compile_spec(path)
    assert str(error) == str(info.value)
    assert error.message == "the name 'a' is used twice in this scope"


def test_a_when_that_depends_on_a_block_parameter_guards_the_values(write_spec):
    """`when: s != 1` cannot be known in the block's definition: the builder may never read the
    division, so it is not reported (it is left out at the call, s = 1)."""
    path = write_spec("""
        name: t
        params: {d: 0}
        inputs: {x: [3, 8, 8]}
        blocks:
          unit:
            params: {s: 1}
            layers:
              - conv: {out: 8 // d, kernel: 1, when: "s != 1"}
              - parallel: {when: "s != 1", branches: {a: {conv: {out: 8 // d, kernel: 1}}}}
              - relu
        layers: [unit]
    """)
    assert lint(load_spec(path)) == []
    assert archspec.compile_spec(path).order == ["x", "unit1.relu1"]


def test_construct_keys_for_the_builder():
    from archspec.spec.arguments import construct_keys

    item = parse_yaml("parallel: {branches: {a: relu, b: relu}, fit: crp}", "spec.yaml")
    args = item["parallel"]
    with pytest.raises(SpecError) as info:
        construct_keys("parallel", dict(args), args, Location("spec.yaml", 1, 1), "parallel1")
    assert info.value.message == "parallel key 'fit' must be one of 'none', 'crop', 'pad', not 'crp'"
    assert (info.value.node, info.value.hint) == ("parallel1", "did you mean 'crop'?")
    assert info.value.loc == Location("spec.yaml", 1, 47)
    args["fit"] = "crop"
    keys = construct_keys("parallel", dict(args), args, Location("spec.yaml", 1, 1), "parallel1")
    assert (keys.fit, list(keys.branches)) == ("crop", ["a", "b"])
