"""The rewrite rules, as data: three passes, each a list of small pattern -> replacement rules.

- FOLD_BN (inference): a BatchNorm right after a convolution (or a linear layer) becomes part of
  it, W' = W·γ/√(σ²+ε), b' = (b−μ)·γ/√(σ²+ε)+β. The weights come from
  `archspec.rewrite.weights.fold_bn_weights`.
- CONVOLUTIONALIZE: a classifier's fully connected layers become convolutions, so that it runs
  on larger inputs and gives one prediction per window (the course's convolutional
  implementation of sliding windows, OverFeat). The flatten before the first FC layer moves down
  the graph one op at a time, and each FC layer it passes becomes a conv whose kernel covers the
  whole map it reads (H×W for the first, 1×1 for the others); at the end it is dropped, so the
  output keeps its spatial grid. Weights: `convolutionalize_weights` (a reshape).
- STRIP_DROPOUT (inference): dropout and identity nodes go; their consumers read their input.

Every rule leaves nodes whose weights are shared with another call site (`reuse`) alone.
"""
from __future__ import annotations

from dataclasses import replace

from archspec.ir.graph import IRNode
from archspec.ops.catalog import lookup
from archspec.rewrite.engine import Pat, Replacement, Rule, View


def _own_weights(view: View, node: IRNode) -> bool:
    return not view.shared(node)


def _running_stats(view: View, node: IRNode) -> bool:
    # without running statistics, BatchNorm normalises with the batch's even in eval mode
    return node.args.track_running_stats and not view.shared(node)


def _is_map(view: View, node: IRNode) -> bool:
    return len(view.shape(node)) == 3


def _output_only(view: View, node: IRNode) -> bool:
    return not view.consumers(node) and node.id in view.outputs


def _with(node: IRNode, **changes) -> IRNode:
    """The node with new argument values (validated again by the op's schema)."""
    args = node.args.model_dump()
    args.update(changes)
    return replace(node, args=type(node.args).model_validate(args))


# --- fold BatchNorm ------------------------------------------------------------------------------
def _fold(view: View, layer: IRNode, bn: IRNode) -> Replacement:
    return Replacement((_with(layer, bias=True),), layer.id, f"folded {bn.id} into {layer.id}")


FOLD_BN = [
    # bn(conv(x)) -> conv'(x) with a bias, the BN's scale and shift folded into its weights
    # (inference: running statistics); the conv must feed nothing but the bn
    Rule(
        "fold_bn",
        "bn(conv(x)) -> conv'(x) with bias: W' = W·γ/√(σ²+ε), b' = (b−μ)·γ/√(σ²+ε)+β (conv feeds only the bn)",
        Pat("bn", (Pat(("conv", "dwconv"), name="layer", only_use=True, where=_own_weights),), name="bn", where=_running_stats),
        _fold,
    ),
    # bn(linear(x)) -> linear'(x) with a bias: the same fold on a vector (BatchNorm1d)
    Rule(
        "fold_bn_linear",
        "bn(linear(x)) -> linear'(x) with bias, the same fold on a vector (linear feeds only the bn)",
        Pat("bn", (Pat("linear", name="layer", only_use=True, where=_own_weights),), name="bn", where=_running_stats),
        _fold,
    ),
]


# --- convolutionalize ------------------------------------------------------------------------------
# ops that act on each element alone, so they commute with flatten on a map of any size
ELEMENTWISE = ("relu", "relu6", "leaky_relu", "sigmoid", "tanh", "gelu", "silu", "hardswish", "hardsigmoid", "dropout", "identity")
# ops that act per feature of a vector and per channel of a map: the same only on a 1×1 map
PER_CHANNEL = ("bn", "softmax")


def _fc_to_conv(view: View, fc: IRNode, flat: IRNode, x: IRNode) -> Replacement:
    channels, height, width = view.shape(x)
    conv_args = lookup("conv").args.model_validate(
        {"out": fc.args.out, "kernel": height if height == width else (height, width), "bias": fc.args.bias}
    )
    conv = IRNode(fc.id, "conv", conv_args, [x.id], fc.id, fc.loc, fc.scopes, fc.trainable, fc.scope_kinds)
    kernel = f"{height}x{width}"
    return Replacement(
        (conv, replace(flat, inputs=[fc.id])),
        flat.id,
        f"{fc.id}: linear {channels * height * width} -> {fc.args.out} as conv {kernel} on {channels}x{kernel}",
    )


def _flatten_later(view: View, node: IRNode, flat: IRNode, y: IRNode) -> Replacement | None:
    if node.op in PER_CHANNEL:
        if view.shape(y)[1:] != (1, 1):
            return None  # per feature of C·H·W features is not per channel of C
        if node.op == "softmax" and node.args.dim not in (0, -1):
            return None
    moved = _with(node, dim=0) if node.op == "softmax" else node
    return Replacement(
        (replace(moved, inputs=[y.id]), replace(flat, inputs=[node.id])),
        flat.id,
        f"{flat.id} moved after {node.op} {node.id}",
    )


def _output_map(view: View, flat: IRNode, x: IRNode) -> Replacement:
    shape = "x".join(map(str, view.shape(x)))
    return Replacement((), x.id, f"removed {flat.id}: the output is the {shape} map of {x.id}")


_FLATTENED_MAP = Pat("flatten", (Pat(name="x", where=_is_map),), name="flat", only_use=True)

CONVOLUTIONALIZE = [
    # linear(flatten(x)) on a C×H×W map x -> flatten(conv(x, kernel H×W)): the same numbers, and
    # the conv slides over a larger map; once the map is 1×1 (after the first FC) it is a 1×1 conv
    Rule(
        "fc_to_conv",
        "linear(flatten(x: CxHxW)) -> flatten(conv(x, kernel HxW)); weights reshaped (out, C·H·W) -> (out, C, H, W)",
        Pat("linear", (_FLATTENED_MAP,), name="fc", where=_own_weights),
        lambda view, fc, flat, x: _fc_to_conv(view, fc, flat, x),
    ),
    # op(flatten(y)) -> flatten(op(y)): flatten moves down past ops that act per element (and per
    # channel ones, bn and softmax, when y is 1×1), so it reaches the next FC layer
    Rule(
        "flatten_later",
        "op(flatten(y)) -> flatten(op(y)) for elementwise ops; bn and softmax only when y is Cx1x1",
        Pat(ELEMENTWISE + PER_CHANNEL, (Pat("flatten", (Pat(name="y", where=_is_map),), name="flat", only_use=True),), name="node", where=_own_weights),
        _flatten_later,
    ),
    # flatten(x) as a graph output -> x: the output keeps its grid, one prediction per window
    Rule(
        "output_map",
        "flatten(x: CxHxW) giving a graph output -> x: the output stays a map (one cell per window)",
        Pat("flatten", (Pat(name="x", where=_is_map),), name="flat", where=_output_only),
        _output_map,
    ),
]


# --- strip dropout / identity --------------------------------------------------------------------------
def _bypass(view: View, node: IRNode, x: IRNode) -> Replacement:
    return Replacement((), x.id, f"removed {node.op} {node.id}")


STRIP_DROPOUT = [
    # dropout(x) -> x: dropout is the identity at inference (drop_path too)
    Rule(
        "strip_dropout",
        "dropout(x) -> x (and drop_path): the identity at inference; consumers read x",
        Pat(("dropout", "drop_path"), (Pat(name="x"),), name="node", where=_own_weights),
        _bypass,
    ),
    # identity(x) -> x
    Rule(
        "strip_identity",
        "identity(x) -> x; consumers read x",
        Pat("identity", (Pat(name="x"),), name="node", where=_own_weights),
        _bypass,
    ),
]

# the passes by name, in the order `archspec rewrite` applies them: dropout first (it may sit
# between a layer and its BN or flatten), folding before convolutionalizing
PASSES: dict[str, list[Rule]] = {
    "strip_dropout": STRIP_DROPOUT,
    "fold_bn": FOLD_BN,
    "convolutionalize": CONVOLUTIONALIZE,
}
RULES: list[Rule] = [rule for rules in PASSES.values() for rule in rules]
