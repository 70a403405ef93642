"""`archspec explain` goes through the one compile pipeline, and says what each op entry's
`explain` rule says: the case specs load like any spec file (`use:` works), the command compiles
once, and an op without a rule still gets a sentence."""
from __future__ import annotations

import dataclasses
import sys
import textwrap

from typer.testing import CliRunner

import archspec
from archspec.explain import explain_case, explain_layers
from archspec.ops.catalog import lookup
from archspec.passes.counts import analyze
from conftest import SPECS


def test_a_case_spec_may_use_block_files(monkeypatch, tmp_path):
    """The case specs are loaded like any spec file; they used to bypass load_spec, so a
    block from a `use:` file was an unknown op there."""
    from archspec.explain import cases

    (tmp_path / "blocks.yaml").write_text(
        textwrap.dedent(
            """\
            blocks:
              conv3:
                params: {stride: 1}
                layers:
                  - conv: {name: conv, out: 1, kernel: 3, stride: stride}
            """
        )
    )
    (tmp_path / "conv-output-size.yaml").write_text(
        textwrap.dedent(
            """\
            name: sizes_from_blocks
            use: [blocks.yaml]
            inputs: {a: [1, 6, 6]}
            outputs: {valid: valid, dropped: dropped}
            layers:
              - conv3: {name: valid, from: a}
              - conv3: {name: dropped, from: a, stride: 2}
            """
        )
    )
    monkeypatch.setattr(cases, "CASE_SPECS", tmp_path)
    case = explain_case("conv-output-size", "en")
    # floor((n + 2p - f) / s) + 1 with n = 6, f = 3, p = 0: 4 for s = 1; 2 for s = 2, where
    # n - f = 3 leaves one row and one column that no window covers
    assert case.figures == {"valid.conv": 4, "dropped.conv": 2, "dropped.conv.dropped": 1}
    assert "2 = floor((6 + 2·0 - 3) / 2) + 1" in case.text


def test_the_explain_command_compiles_once():
    """It used to compile the spec twice: to check it, then again to explain it."""
    from archspec.cli import app
    from archspec.ir.build import build_ir

    # calls are counted by code object, whatever name a caller imported build_ir under
    built = []
    sys.setprofile(lambda frame, event, arg: event == "call" and frame.f_code is build_ir.__code__ and built.append(1))
    try:
        result = CliRunner().invoke(app, ["explain", str(SPECS / "lenet5.yaml"), "conv1", "--lang", "en", "--input", "3x36x36"])
    finally:
        sys.setprofile(None)
    assert result.exit_code == 0, result.output
    # the unnamed --input is the first input: (36 - 5) / 1 + 1 = 32
    assert result.stdout.startswith("conv1 (conv): 3x36x36 → 6x32x32")
    assert len(built) == 1


def test_an_op_without_a_rule_is_described_by_its_summary(monkeypatch, write_spec):
    from archspec.explain import context

    shuffle = dataclasses.replace(lookup("channel_shuffle"), explain=None)
    monkeypatch.setattr(context, "lookup", lambda name: shuffle if name == shuffle.name else lookup(name))
    spec = write_spec(
        """\
        name: shuffled
        inputs: {x: [8, 4, 4]}
        layers:
          - channel_shuffle: {name: shuffle, groups: 2}
        """
    )
    ir = archspec.compile_spec(spec)
    (explanation,) = explain_layers(ir, analyze(ir), None, "en")
    assert explanation.lines == [f"{shuffle.summary}: 8x4x4 → 8x4x4"]


def test_a_node_with_several_outputs_shows_each(write_spec):
    spec = write_spec(
        """\
        name: halves
        inputs: {x: [6, 4, 4]}
        layers:
          - split: {name: halves, sizes: [2, 4]}
          - concat: {name: joined, from: [halves.1, halves.0]}
        """
    )
    ir = archspec.compile_spec(spec)
    halves, joined = explain_layers(ir, analyze(ir), None, "en")
    # 6 channels cut into 2 + 4, each keeping the 4x4 map; joined back as 4 + 2 = 6
    assert halves.header == "halves (split): 6x4x4 → 2x4x4, 4x4x4"
    assert "4 + 2 = 6" in joined.equations
