"""The rewrite engine itself (archspec.rewrite.engine): the worklist gives exactly the changes of a
plain "rewrite the first match, then start again from the first node" loop, it tries each node a
bounded number of times (linear, counted rather than timed), rules follow the op entries' traits
and hooks, and BatchNorm folds into a transposed convolution (checked against torch)."""
from __future__ import annotations

import pytest
import torch
from conftest import SPECS
from test_rewrite import TOLERANCE, agree, relative_error, rewritten, trained, write_flat

from archspec import compile_spec
from archspec.lower.fx import lower
from archspec.passes.counts import analyze
from archspec.rewrite import CONVOLUTIONALIZE, FOLD_BN, RULES, STRIP_DROPOUT, Pat, Rule, View, apply_rewrites, flat_state_dict


def restart_from_the_first_node(ir, rules):
    """The reference: after every change, scan the whole graph again from its first node."""
    view, applied = View(ir), []
    while True:
        hit = None
        for node in view.nodes():
            for rule in rules:
                bound = rule.pattern.match(view, node)
                replacement = None if bound is None else rule.rewrite(view, **bound)
                if replacement is not None:
                    hit = rule, node, bound, replacement
                    break
            if hit:
                break
        if hit is None:
            return view.to_ir(), applied
        rule, node, bound, replacement = hit
        view.apply(node, {node.id, *(n.id for n in bound.values())}, replacement.nodes, replacement.value, rule.name)
        applied.append((rule.name, node.id))


def graph(ir):
    return [(n.id, n.op, n.args, list(n.inputs), n.module) for n in ir.nodes()], dict(ir.outputs)


HEAD_SPEC = """
name: head
inputs: {image: [3, 12, 12]}
layers:
  - conv: {name: c1, out: 8, kernel: 3, bias: false}
  - bn: {name: b1}
  - dropout: {name: d1, p: 0.1}
  - maxpool: {kernel: 2}
  - flatten
  - linear: {name: fc1, out: 16, bias: false}
  - dropout: {p: 0.3}
  - bn: {name: bn1}
  - mish
  - linear: {name: fc2, out: 10}
  - softmax: {dim: -1}
"""

# removing the dead-end dropout (after the bn in order) leaves c feeding only b: the bn folds only
# if the engine comes back to b, a reader of the dropout's producer
DEAD_END_SPEC = """
name: dead_end
inputs: {image: [3, 8, 8]}
outputs: b
layers:
  - conv: {name: c, out: 4, kernel: 3}
  - bn: {name: b}
  - dropout: {name: dead, from: c, p: 0.1}
"""
SMALL_SPECS = {"head": HEAD_SPEC, "dead_end": DEAD_END_SPEC}


@pytest.mark.parametrize("name", ["resnet18", "googlenet", "vgg16_bn", "sliding_window_classifier", "two_heads", "head", "dead_end"])
def test_worklist_equals_restarting_from_the_first_node(name, write_spec):
    ir = compile_spec(write_spec(SMALL_SPECS[name]) if name in SMALL_SPECS else SPECS / f"{name}.yaml")
    rules = [STRIP_DROPOUT, FOLD_BN, CONVOLUTIONALIZE]
    flat = [rule for group in rules for rule in group]
    expected, applied = restart_from_the_first_node(ir, flat)
    new, report = apply_rewrites(ir, rules)
    assert [(change.rule, change.node) for change in report.changes] == applied
    assert graph(new) == graph(expected)
    assert report.after == analyze(new).totals and report.changed == bool(applied)


def test_each_node_is_tried_a_bounded_number_of_times(write_spec):
    """Stripping a chain of N dropouts tries O(N) roots; restarting from the first node after
    every change would try about N²/2 (a count, so machine load cannot flake it)."""
    count = 2000
    spec = write_spec(
        "name: drops\ninputs: {image: [4, 8, 8]}\nlayers:\n  - conv: {out: 4, kernel: 3, padding: 1}\n"
        f"  - seq:\n      repeat: {count // 50}\n      layers:\n        - dropout: {{p: 0.1, repeat: 50}}\n  - relu\n"
    )
    ir = compile_spec(spec)
    tried = []

    def counted(view, node):
        tried.append(node.id)
        return not view.shared(node)

    rule = Rule("strip", "dropout(x) -> x", Pat(trait="stochastic", src=(Pat(),), name="node", where=counted),
                STRIP_DROPOUT[0].rewrite)
    new, report = apply_rewrites(ir, rule)
    assert len(report.changes) == count and [n.op for n in new.nodes()] == ["input", "conv", "relu"]
    assert len(tried) <= 3 * count  # each dropout once, plus its neighbourhood after each change


def test_rules_follow_the_traits_of_the_op_entries(write_spec):
    # mish was in no list of the old rules: as an elementwise op, flatten moves past it
    ir = compile_spec(write_spec(HEAD_SPEC))
    new, report = apply_rewrites(ir, RULES)
    ops = [n.op for n in new.nodes()]
    assert "flatten" not in ops and "linear" not in ops and "dropout" not in ops and "bn" not in ops
    assert [c.note for c in report.changes if c.rule == "flatten_later"][1] == "flatten1 moved after mish mish1"
    module = trained(ir, seed=11)
    x = torch.randn(3, 3, 12, 12, generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        assert relative_error(rewritten(module, ir, new)(x).flatten(1), module(x)) < TOLERANCE


TRANSPOSED_SPEC = """
name: transposed
inputs: {z: [6, 5, 5]}
layers:
  - conv_transpose: {name: up1, out: 8, kernel: 3, stride: 2, groups: 2, bias: false}
  - bn: {name: bn1}
  - relu
  - conv_transpose: {name: up2, out: 4, kernel: 2, stride: 2}
  - bn: {name: bn2, eps: 0.001, affine: false}
  - conv: {name: c3, out: 4, kernel: 1}
  - bn: {name: bn3, track_running_stats: false}              # batch statistics even in eval: not folded
"""


def test_fold_bn_into_transposed_convolutions(write_spec):
    """A transposed conv's weight is (C_in, C_out/groups, kh, kw): the fold scales its columns,
    group by group; the outputs match torch's module with the BatchNorms (eval mode)."""
    ir = compile_spec(write_spec(TRANSPOSED_SPEC))
    folded, report = apply_rewrites(ir, FOLD_BN)
    assert report.by_rule()["fold_bn"].removed == ["bn1", "bn2"]
    assert [n.id for n in folded.nodes() if n.op == "bn"] == ["bn3"]
    # bn1 takes γ, β (2 x 8) and up1 gains a bias (8); bn2 has no γ, β; up2 had a bias
    assert analyze(folded).totals.params == analyze(ir).totals.params - 16 + 8
    module = trained(ir, seed=13)
    after = rewritten(module, ir, folded)
    assert after.up1.weight.shape == (6, 4, 3, 3) and after.up1.bias is not None
    assert agree(after, module, (2, 6, 5, 5), seed=14)


CHUNK_SPEC = """
name: halves
inputs: {image: [4, 6, 6]}
layers:
  - chunk: {name: halves, chunks: 2}
  - dropout: {name: d, from: halves.0, p: 0.5}
  - conv: {name: c, from: halves.1, out: 2, kernel: 1, bias: false}
  - bn: {name: b}
  - concat: {name: both, from: [d, b]}
"""


def test_rewrites_on_a_node_with_several_outputs(write_spec, tmp_path):
    """Consumers of `halves.0` read it after the dropout goes; the flat spec writes `from: halves.0`."""
    ir = compile_spec(write_spec(CHUNK_SPEC))
    new, report = apply_rewrites(ir, RULES)
    assert [n.op for n in new.nodes()] == ["input", "chunk", "conv", "concat"]
    assert new.node("both").inputs == ["halves:0", "c"]
    module = trained(ir, seed=15)
    state = flat_state_dict(rewritten(module, ir, new).state_dict(), new)
    again = lower(compile_spec(write_flat(new, tmp_path)))
    again.load_state_dict(state)
    assert agree(again.eval(), module, (2, 4, 6, 6), seed=16)
