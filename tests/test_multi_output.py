"""Nodes with several outputs (split, chunk), referenced as `node.k`, through every stage; the
other ops added as single entries (permute, mish); `from:` into an `index_names` group.

Oracles: torch itself (torch.split / torch.chunk / torch.permute results and shapes, FlopCounterMode,
strict state_dict loads) and counts worked out by hand in the tests."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from archspec.lower.verify import flop_counter
from conftest import run_cli

from archspec import SpecError
from archspec.pipeline import compile

SPLIT_NET = """
name: splitnet
inputs: {x: [8, 6, 6]}
layers:
  - split: {sizes: [3, 5], name: s}
  - conv: {out: 5, kernel: 3, padding: 1, from: s.1, name: c}
  - concat: {from: [s.0, c], name: joined}
  - chunk: {chunks: 2, name: k}
  - add: {from: [k.0, k.1], name: summed}
"""


def test_split_outputs_are_referenced_by_index_and_lowered_as_getitem(write_spec):
    compiled = compile(write_spec(SPLIT_NET))
    ir = compiled.ir
    assert ir.node("s").shapes == ((3, 6, 6), (5, 6, 6))
    assert ir.node("c").inputs == ["s:1"]
    assert ir.node("joined").inputs == ["s:0", "c"]
    # an edge carries the input slot and the producer's output index
    assert ir.graph.edges["s", "joined"]["ports"] == [(0, 0)]
    assert ir.graph.edges["s", "c"]["ports"] == [(0, 1)]
    module = compiled.module().eval()
    assert module.code.count("getitem") + module.code.count("[0]") + module.code.count("[1]") >= 2
    x = torch.randn(2, 8, 6, 6)
    # the same computation written with torch by hand
    x0, x1 = torch.split(x, [3, 5], dim=1)
    joined = torch.cat([x0, module.c(x1)], dim=1)
    k0, k1 = torch.chunk(joined, 2, dim=1)
    with torch.no_grad():
        assert torch.equal(module(x), k0 + k1)


def test_multi_output_counts_match_torch(write_spec):
    compiled = compile(write_spec(SPLIT_NET))
    module = compiled.module()
    # conv 5->5, 3x3, bias: 5*5*9 + 5 = 230 parameters
    assert compiled.analysis.totals.params == 230 == sum(p.numel() for p in module.parameters())
    with flop_counter() as counter:
        module(torch.randn(1, 8, 6, 6))
    assert compiled.analysis.totals.flops == counter.get_total_flops()
    split = next(layer for layer in compiled.analysis.layers if layer.name == "s")
    assert split.output_shapes == ((3, 6, 6), (5, 6, 6))
    assert split.figures.activations == 8 * 36  # both pieces: every input element once


def test_a_missing_output_index_is_a_located_error(write_spec):
    path = write_spec(SPLIT_NET.replace("from: s.1", "from: s.2"))
    with pytest.raises(SpecError) as caught:
        compile(path)
    assert "'s' has no node '2'" in str(caught.value)
    assert caught.value.loc.line == 6  # the `from` line (the text starts with a blank line)


def test_chunk_follows_torch_when_the_channels_do_not_divide(write_spec):
    path = write_spec("""
        name: chunky
        inputs: {x: [7, 4, 4]}
        layers:
          - chunk: {chunks: 3, name: k}
          - concat: {from: [k.2, k.1, k.0]}
        """)
    compiled = compile(path)
    x = torch.randn(1, 7, 4, 4)
    pieces = torch.chunk(x, 3, dim=1)  # torch: pieces of ceil(7 / 3) = 3, 3 and 1 channels
    assert compiled.ir.node("k").shapes == tuple(tuple(p.shape[1:]) for p in pieces)
    assert torch.equal(compiled.module()(x), torch.cat(pieces[::-1], dim=1))


def test_split_refuses_sizes_that_do_not_add_up(write_spec):
    with pytest.raises(SpecError, match="add up to 7, not the 8"):
        compile(write_spec(SPLIT_NET.replace("sizes: [3, 5]", "sizes: [3, 4]")))


def test_report_json_and_diagram_handle_several_outputs(write_spec, tmp_path):
    path = write_spec(SPLIT_NET)
    result = run_cli("report", str(path), "--format", "json")
    assert result.returncode == 0, result.stderr
    layers = {layer["name"]: layer for layer in json.loads(result.stdout)["layers"]}
    assert layers["c"]["inputs"] == ["s:1"]
    drawn = run_cli("diagram", str(path), "--out", str(tmp_path / "split.svg"))
    assert drawn.returncode == 0, drawn.stderr


def test_permute_and_mish_lower_to_torch(write_spec):
    path = write_spec("""
        name: channels_last
        inputs: {x: [3, 4, 5]}
        layers:
          - mish
          - permute: {dims: [1, 2, 0]}
        """)
    compiled = compile(path)
    assert compiled.ir.outputs["output"] and compiled.analysis.outputs["output"] == (4, 5, 3)
    x = torch.randn(2, 3, 4, 5)
    assert torch.equal(compiled.module()(x), F.mish(x).permute(0, 2, 3, 1))


def test_from_reaches_a_node_of_an_index_names_group_by_its_index(write_spec):
    """`features.1` is what the report and the state_dict call the node: `from:` accepts it too."""
    path = write_spec("""
        name: indexed
        inputs: {x: [3, 8, 8]}
        layers:
          - seq:
              name: features
              index_names: true
              layers:
                - conv: {out: 4, kernel: 3, padding: 1}
                - relu
                - conv: {out: 4, kernel: 3, padding: 1}
          - add: {from: [features, features.1]}
        """)
    compiled = compile(path)
    assert compiled.ir.outputs["output"] == "add1"
    assert compiled.ir.node("add1").inputs == ["features.2", "features.1"]
    module = compiled.module()
    assert [name for name, _ in module.named_children()] == ["features"]


def test_a_cycle_is_found_and_located_through_the_graph():
    from archspec.errors import Location
    from archspec.ir.graph import INPUT, IRGraph, IRNode

    ir = IRGraph(name="loop")
    ir.add(IRNode("x", INPUT, (1,), [], "x", shapes=((1,),)))
    ir.add(IRNode("a", "relu", None, ["b"], "a", Location("loop.yaml", 3, 5), shapes=((1,),)))
    ir.add(IRNode("b", "relu", None, ["a"], "b", Location("loop.yaml", 4, 5), shapes=((1,),)))
    ir.graph.add_edge("b", "a", ports=[(0, 0)])  # the edge `add` could not draw before b existed
    ir.outputs["output"] = "b"
    with pytest.raises(SpecError) as caught:
        ir.verify()
    assert "cycle" in str(caught.value) and caught.value.loc.line in (3, 4)


def test_memory_fields_and_diff_follow_each_output(write_spec):
    """The memory estimate counts both pieces of a split as live values; the receptive field of
    the conv on piece 1 is its 3x3 window; `diff` against a spec with other split sizes names
    the changed output shapes."""
    compiled = compile(write_spec(SPLIT_NET))
    memory = compiled.memory()
    # while conv c runs, both pieces (3 and 5 channels) and its 5-channel output are alive: fp32
    assert memory.inference_peak >= 4 * 6 * 6 * (3 + 5 + 5)
    assert compiled.fields["c"].size == (3, 3)
    other = write_spec(SPLIT_NET.replace("sizes: [3, 5]", "sizes: [5, 3]").replace("out: 5, kernel", "out: 3, kernel"), "other.yaml")
    result = run_cli("diff", str(write_spec(SPLIT_NET)), str(other), "--format", "json")
    assert result.returncode == 0, result.stderr
    split = next(node for node in json.loads(result.stdout)["nodes"] if node["name"] == "s")
    change = next(c for c in split["changes"] if c["field"] == "output_shape")
    assert change["old"] == [[3, 6, 6], [5, 6, 6]] and change["new"] == [[5, 6, 6], [3, 6, 6]]
