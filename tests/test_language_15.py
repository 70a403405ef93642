"""Issue 15, point 2 (the language): a block reads its inputs' shapes; `use`/`extends` reach the
installed library (`archspec:PATH`); expressions build lists (`log`, `len`, `sum`, `range`,
comprehensions); `from:` may be an expression that chooses among names. Every misuse is a
located error that says what to do.

Numbers come from torch (modules built by hand), torchvision (RegNet's BlockParams) or Python's
own arithmetic, never from archspec's output.
"""
from __future__ import annotations

import math
import textwrap

import pytest
import torch
from typer.testing import CliRunner

import archspec
from archspec import SpecError
from archspec.cli import app
from archspec.pipeline import compile
from archspec.spec import document, includes
from archspec.spec.expressions import MAX_ITEMS, ExpressionError, evaluate, free_names
from conftest import SPECS


def params_of(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def refused(text: str, tmp_path, **compile_options) -> SpecError:
    spec = tmp_path / "spec.yaml"
    spec.write_text(textwrap.dedent(text))
    with pytest.raises(SpecError) as caught:
        compile(spec, **compile_options)
    return caught.value


def at(err: SpecError) -> tuple[int, int]:
    return err.loc.line, err.loc.column


# --- 1. a block reads its inputs' shapes ------------------------------------------------------------
GROW = """\
name: grow
inputs: {image: [3, 16, 24]}
blocks:
  grow:
    summary: a 1x1 conv that adds 4 channels to whatever it is given
    layers:
      - conv: {out: in_channels + 4, kernel: 1}
layers:
  - grow: {repeat: 3}
"""


def test_each_copy_of_a_repeated_block_reads_its_own_input(write_spec):
    module = archspec.build_module(write_spec(GROW))
    # 3 -> 7 -> 11 -> 15 channels, as torch counts three 1x1 convs with bias
    by_hand = torch.nn.Sequential(torch.nn.Conv2d(3, 7, 1), torch.nn.Conv2d(7, 11, 1), torch.nn.Conv2d(11, 15, 1))
    assert params_of(module) == params_of(by_hand)
    assert module(torch.randn(1, 3, 16, 24)).shape == (1, 15, 16, 24)


GLOBAL_DW = """\
name: global_dw
inputs: {image: [8, 7, 5]}
blocks:
  global_depthwise:
    summary: a depthwise conv whose kernel covers the whole map, whatever its size
    layers:
      - conv: {out: in_channels, kernel: [in_h, in_w], groups: in_channels, bias: false}
layers:
  - global_depthwise
"""


@pytest.mark.parametrize("size", [(8, 7, 5), (8, 11, 13)])
def test_in_h_and_in_w_follow_the_input_given_at_compile_time(write_spec, size):
    module = archspec.build_module(write_spec(GLOBAL_DW), inputs={"image": size})
    channels, height, width = size
    by_hand = torch.nn.Conv2d(channels, channels, (height, width), groups=channels, bias=False)
    assert params_of(module) == params_of(by_hand)
    assert module(torch.randn(2, *size)).shape == (2, channels, 1, 1)


TWO_INPUTS = """\
name: two
inputs: {image: [3, 8, 8], extra: [5, 4, 4]}
blocks:
  fuse:
    inputs: [x, skip]
    layers:
      - conv: {name: widen, from: x, out: "skip.shape[0] * 2 + x.shape[2]", kernel: 1}
layers:
  - fuse: {from: [image, extra]}
  - conv: {name: top, out: "extra.shape[1] + image.shape[0]", kernel: 1}
"""


def test_named_inputs_and_the_spec_inputs_have_readable_shapes(write_spec):
    spec = write_spec(TWO_INPUTS)
    ir = compile(spec).ir
    assert ir.shapes[ir.node("fuse1.widen").values[0]][0] == 5 * 2 + 8  # skip C * 2 + x W
    assert ir.shapes[ir.node("top").values[0]][0] == 4 + 3                # extra H + image C
    ir = compile(spec, inputs={"extra": (6, 9, 9)}).ir                   # --input extra=6x9x9
    assert ir.shapes[ir.node("fuse1.widen").values[0]][0] == 6 * 2 + 8
    assert ir.shapes[ir.node("top").values[0]][0] == 9 + 3


def test_shape_names_shadow_spec_parameters_and_block_parameters_shadow_them(write_spec):
    spec = write_spec("""\
        name: shadow
        params: {in_channels: 100}
        inputs: {image: [3, 8, 8]}
        blocks:
          reads_input:
            layers: [{conv: {out: in_channels, kernel: 1}}]
          own_parameter:
            params: {in_channels: 2}
            layers: [{conv: {out: in_channels, kernel: 1}}]
        layers:
          - conv: {name: top, out: in_channels, kernel: 1}
          - reads_input
          - own_parameter
    """)
    ir = compile(spec).ir
    assert ir.shapes[ir.node("top").values[0]][0] == 100                 # the spec's parameter
    assert ir.shapes[ir.node("reads_input1.conv1").values[0]][0] == 100  # its input's channels
    assert ir.shapes[ir.node("own_parameter1.conv1").values[0]][0] == 2


def test_validate_leaves_shape_names_to_the_builder(write_spec):
    result = CliRunner().invoke(app, ["validate", str(write_spec(TWO_INPUTS)), str(write_spec(GLOBAL_DW, "g.yaml"))])
    assert result.exit_code == 0, result.output


SHAPE_ERRORS = {
    # what a block's linear layer reads -> words of the message
    "in_h": ["in_h", "has no height and width", "read input.shape[k]", "[48]"],
    "skip.shape[0]": ["'skip' is not an input here", "the shapes readable here: input.shape"],
    "input.size": ["'input.size' is not allowed", "NAME.shape"],
    "input.shape[3]": ["index 3 is out of range"],
}


@pytest.mark.parametrize("value", list(SHAPE_ERRORS))
def test_reading_a_shape_wrongly_is_a_located_error(value, tmp_path):
    text = f"""\
name: bad
inputs: {{image: [3, 4, 4]}}
blocks:
  vector:
    layers:
      - linear: {{out: "{value}"}}
layers: [flatten, vector]
"""
    err = refused(text, tmp_path)
    assert at(err) == (6, text.splitlines()[5].index('"') + 1), str(err)
    for word in SHAPE_ERRORS[value]:
        assert word in str(err), str(err)


def test_in_channels_of_a_token_matrix_says_which_size_to_read(tmp_path):
    text = 'name: tokens\ninputs: {x: [16, 32]}\nblocks:\n  head:\n    inputs: [x]\n    layers: [{relu: {name: "r{in_channels}"}}]\nlayers: [head]\n'
    err = refused(text, tmp_path)
    assert at(err) == (6, text.splitlines()[5].index('"') + 1)
    assert "in_channels" in err.message and "16x32" in err.message and "x.shape[k]" in err.message


def test_in_channels_outside_a_block_is_unknown(tmp_path):
    err = refused("name: top\ninputs: {image: [3, 4, 4]}\nlayers:\n  - conv: {out: in_channels, kernel: 1}\n", tmp_path)
    assert at(err) == (4, 17) and "unknown name 'in_channels'" in err.message


# --- 2. `use` and `extends` reach the library --------------------------------------------------------
def test_the_library_is_the_source_trees_specs_folder():
    assert includes.library_root() == SPECS.resolve()


def test_a_spec_in_any_folder_extends_and_uses_the_library(tmp_path):
    import torchvision

    elsewhere = tmp_path / "my" / "models"
    elsewhere.mkdir(parents=True)
    (elsewhere / "r18.yaml").write_text("extends: archspec:resnet18.yaml\nname: r18\nparams: {num_classes: 10}\n")
    assert archspec.analyze_spec(elsewhere / "r18.yaml").totals.params == \
        params_of(torchvision.models.resnet18(num_classes=10))
    (elsewhere / "one.yaml").write_text(
        "name: one\nuse: [archspec:blocks/resnet.yaml]\ninputs: {image: [64, 8, 8]}\nlayers:\n  - basic: {out: 64}\n")
    block = torchvision.models.resnet.BasicBlock(64, 64)
    assert archspec.analyze_spec(elsewhere / "one.yaml").totals.params == params_of(block)


def test_densenet201_and_vgg13_bn_are_three_lines_of_the_library():
    for name in ("densenet201", "vgg13_bn"):
        lines = [line for line in (SPECS / f"{name}.yaml").read_text().splitlines() if not line.startswith("#")]
        assert len(lines) <= 4 and lines[0].startswith("extends: archspec:")


LIBRARY_ERRORS = {
    "archspec:../pyproject.toml": ["outside archspec's library folder", "archspec:blocks/resnet.yaml"],
    "archspec:/etc/hostname": ["outside archspec's library folder"],
    "archspec:blocks/resnt.yaml": ["does not exist", "did you mean 'archspec:blocks/resnet.yaml'"],
    "archspec:blocks": ["is not a regular file (a folder)"],
    "../specs/blocks/resnet.yaml": ["outside the spec's folder", "archspec:PATH"],
}


@pytest.mark.parametrize("path", list(LIBRARY_ERRORS))
@pytest.mark.parametrize("key", ["use", "extends"])
def test_library_paths_keep_the_safety_rules(path, key, tmp_path):
    entry = f"use: ['{path}']" if key == "use" else f"extends: '{path}'"
    err = refused(f"name: x\n{entry}\ninputs: {{image: [3, 8, 8]}}\nlayers: [relu]\n", tmp_path)
    assert at(err) == (2, len(key) + 3 + (key == "use")), str(err)
    for word in LIBRARY_ERRORS[path]:
        assert word in str(err), str(err)


def test_a_library_symlink_out_of_the_library_is_refused(tmp_path, monkeypatch):
    library, outside = tmp_path / "library", tmp_path / "outside.yaml"
    library.mkdir()
    outside.write_text("blocks: {}\n")
    (library / "link.yaml").symlink_to(outside)
    monkeypatch.setattr(includes, "LIBRARY_CANDIDATES", (library,))
    err = refused("name: x\nuse: [archspec:link.yaml]\ninputs: {image: [3, 8, 8]}\nlayers: [relu]\n", tmp_path)
    assert "outside archspec's library folder" in err.message and at(err) == (2, 7)


def test_library_files_count_towards_the_limits(tmp_path, monkeypatch):
    monkeypatch.setattr(document, "MAX_FILES", 2)
    err = refused("name: x\nuse: [archspec:blocks/resnet.yaml, archspec:blocks/vgg.yaml]\n"
                  "inputs: {image: [3, 8, 8]}\nlayers: [relu]\n", tmp_path)
    assert err.message == "the spec reads more than 2 files (its own, `extends` and `use`)"


def test_no_library_is_a_located_error(tmp_path, monkeypatch):
    monkeypatch.setattr(includes, "LIBRARY_CANDIDATES", (tmp_path / "none",))
    err = refused("name: x\nextends: archspec:resnet18.yaml\n", tmp_path)
    assert at(err) == (2, 10) and "this installation has none" in err.message and "looked in" in err.hint


# --- 3. expressions build lists -------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("log(8, 2) + log2(1024) + log(math_e)", math.log(8, 2) + math.log2(1024) + 1.0),
    ("len(widths) + sum(widths)", 3 + 8 + 16 + 32),
    ("[w * 2 for w in widths if w > 8]", [32, 64]),
    ("[a * b for a, b in zip(widths, range(1, 4))]", [8, 32, 96]),
    ("sum(w for w in widths) / len(widths)", (8 + 16 + 32) / 3),
    ("[0] * 2 + widths", [0, 0, 8, 16, 32]),
    ("max([round(w / 3) for w in widths]) + min(widths)", max(round(8 / 3), round(16 / 3), round(32 / 3)) + 8),
    ("[[k, j] for k in range(2) for j in range(k, 2)]", [[0, 0], [0, 1], [1, 1]]),
    ("[int(w * 1.5) for w in range(10, 0, -4)]", [15, 9, 3]),
])
def test_list_building(text, expected):
    assert evaluate(text, {"widths": [8, 16, 32], "math_e": math.e}) == expected


@pytest.mark.parametrize("text, words", [
    ("range(10 ** 6)", f"1,000,000 items; the limit is {MAX_ITEMS:,}"),
    ("[0] * 10 ** 6", "the limit is"),
    ("[[0] * 1000 for k in range(1000)]", "steps to evaluate"),
    ("[[0] * 9999] * 9999", "steps to evaluate"),
    ("[widths for k in range(9999)]", "steps to evaluate"),
    ("[k for k in 3]", "goes over a list"),
    ("len(3)", "len() takes a list"),
    ("log(0)", "needs a positive number"),
    ("sum([[1]])", "is not a number"),
    ("zip(1, 2)", "zip() takes lists"),
    ("range(1.5)", "whole numbers"),
    ("[0] * 1.5", "lists join with +"),
    ("[k for k.real in range(3)]", "the variable is a name"),
])
def test_list_building_is_bounded_and_checked(text, words):
    with pytest.raises(ExpressionError) as caught:
        evaluate(text, {"widths": list(range(MAX_ITEMS))})
    assert words in str(caught.value)


def test_a_refused_list_in_a_spec_is_located(tmp_path):
    err = refused("name: x\nparams:\n  big: range(10 ** 7)\ninputs: {image: [3, 8, 8]}\nlayers: [relu]\n", tmp_path)
    assert at(err) == (3, 8) and "parameter 'big'" in err.message and "the limit is" in err.message


def test_comprehension_variables_are_not_free_names():
    assert free_names("[k * n for k in range(m) if k > j]") == {"n", "m", "j"}
    assert free_names("[k for k in range(3)] + [k]") == {"k"}  # the last k is outside


# torchvision's RegNet configurations (regnet.py): depth, w_0, w_a, w_m, group_width
REGNETS = {
    "y_400mf": (16, 48, 27.89, 2.09, 8),
    "y_800mf": (14, 56, 38.84, 2.4, 16),
    "y_1_6gf": (27, 48, 20.71, 2.65, 24),
    "x_400mf": (22, 24, 24.48, 2.54, 16),
    "x_800mf": (16, 56, 35.73, 2.28, 16),
    "x_3_2gf": (25, 88, 26.31, 2.25, 48),
}


@pytest.mark.parametrize("name", list(REGNETS))
def test_the_regnet_width_rule_gives_torchvisions_stages(name):
    from torchvision.models.regnet import BlockParams

    depth, w_0, w_a, w_m, group_width = REGNETS[name]
    theirs = BlockParams.from_init_params(depth=depth, w_0=w_0, w_a=w_a, w_m=w_m, group_width=group_width)
    sets = {"depth": depth, "w_0": w_0, "w_a": w_a, "w_m": w_m, "group_width": group_width}
    ours = compile(SPECS / "regnet_y_400mf.yaml", sets).ir.params
    assert ours["depths"] == theirs.depths
    assert ours["widths"] == theirs.widths
    assert ours["group_widths"] == theirs.group_widths


# --- 4. `from:` chooses among names ---------------------------------------------------------------
CHOOSE = """\
name: choose
inputs: {image: [8, 8, 8]}
blocks:
  unit:
    params: {out: null, project: in_channels != out}
    layers:
      - conv: {name: proj, out: out, kernel: 1, when: project}
      - conv: {name: f, from: input, out: out, kernel: 3, padding: 1}
      - add: {from: [proj if project else input, f]}
layers:
  - unit: {out: 8}
  - unit: {out: 16}
"""


def test_from_chooses_the_input_where_when_left_an_item_out(write_spec):
    compiled = compile(write_spec(CHOOSE))
    ir = compiled.ir
    assert ir.node("unit1.add1").inputs == ["image", "unit1.f"]          # 8 -> 8: x + f(x)
    assert ir.node("unit2.add1").inputs == ["unit2.proj", "unit2.f"]     # 8 -> 16: proj(x) + f(x)
    module = compiled.module().eval()
    x = torch.randn(1, 8, 8, 8)
    with torch.no_grad():
        first = x + module.unit1.f(x)
        expected = module.unit2.proj(first) + module.unit2.f(first)
        torch.testing.assert_close(module(image=x), expected)


def test_from_expressions_give_lists_and_quoted_dotted_names(write_spec):
    spec = write_spec("""\
        name: lists
        params: {both: true, second: false}
        inputs: {image: [4, 8, 8]}
        layers:
          - split: {sizes: [2, 2]}
          - relu: {name: picked, from: "'split1.1' if second else 'split1.0'"}
          - concat: {from: "[picked, image] if both else [picked, picked]"}
    """)
    ir = compile(spec).ir
    assert ir.node("picked").inputs == ["split1:0"]  # the split's first output
    assert ir.shapes[ir.node("concat1").values[0]] == (2 + 4, 8, 8)
    ir = compile(spec, {"both": False, "second": True}).ir
    assert ir.shapes[ir.node("concat1").values[0]] == (2 + 2, 8, 8)
    assert ir.node("picked").inputs == ["split1:1"]


def test_validate_counts_no_inputs_for_a_from_expression(write_spec):
    result = CliRunner().invoke(app, ["validate", str(write_spec(CHOOSE))])
    assert result.exit_code == 0, result.output


FROM_ERRORS = {
    # the `from` value -> words of the message (located at the value, line 6 column 31)
    '"width if flag else image"': ["gives 4, not a node name", "quote a node name"],
    '"nowhere if flag else image"': ["unknown reference 'nowhere'"],
    '"later if flag else image"': ["defined later", "cycle"],
    '"image if flag else"': ["is not a valid expression"],
    '"[image, 3] if flag else image"': ["not a node name or a list of them"],
}


@pytest.mark.parametrize("value", list(FROM_ERRORS))
def test_a_wrong_from_expression_is_located(value, tmp_path):
    err = refused(f"""\
        name: bad
        params: {{width: 4, flag: true}}
        inputs: {{image: [3, 8, 8]}}
        layers:
          - relu
          - conv: {{out: 4, kernel: 1, from: {value}}}
          - relu: {{name: later}}
    """, tmp_path)
    assert at(err) == (6, 37), str(err)
    for word in FROM_ERRORS[value]:
        assert word in str(err), str(err)
