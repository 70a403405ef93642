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
from typing import Callable

from archspec.ir.graph import IRNode
from archspec.ops.catalog import lookup
from archspec.rewrite.engine import Pat, Replacement, Rule, View


def _own_weights(view: View, node: IRNode) -> bool:
    return not view.shared(node)


def _affine_at_inference(view: View, node: IRNode) -> bool:
    # e.g. a BatchNorm with running statistics; without them it normalises with the batch's even in eval mode
    return lookup(node.op).affine_at_inference(node.args) is not None and not view.shared(node)


def _is_map(view: View, node: IRNode) -> bool:
    return len(view.shape(node)) == 3


def _is_vector(view: View, node: IRNode) -> bool:
    return len(view.shape(node)) == 1


def _channels_first(view: View, node: IRNode) -> bool:
    """The layer's output channels are the axis a BN scales (axis 0): a conv's always; a layer on
    the last axis (linear) only on a vector. A linear on (H, W, C) or (T, C) must not fold."""
    return not lookup(node.op).is_("last_axis") or len(view.shape(node.inputs[0])) == 1


def _reads_map(view: View, node: IRNode) -> bool:
    return len(view.shape(node.inputs[0])) == 3


def _is_output_of_map(view: View, node: IRNode) -> bool:
    return _reads_map(view, node) and not view.consumers(node) and node.id in view.outputs


def _with(node: IRNode, **changes) -> IRNode:
    """The node with new argument values (validated again by the op's schema)."""
    args = node.args.model_dump()
    args.update(changes)
    return replace(node, args=type(node.args).model_validate(args))


# --- fold BatchNorm ------------------------------------------------------------------------------
def _fold(view: View, layer: IRNode, norm: IRNode) -> Replacement:
    return Replacement((_with(layer, bias=True),), layer.id, f"folded {norm.id} into {layer.id}")


def _folding(output_kind: Callable[[View, IRNode], bool]) -> Pat:
    """norm(layer(x)), the layer feeding only the norm and giving an output of `output_kind`: the
    norm is an affine map per channel at inference (`affine_at_inference`: a BatchNorm), the layer
    takes one into its weights (`fold_affine`: conv, dwconv, conv_transpose, linear)."""

    def fits(view: View, node: IRNode) -> bool:
        return output_kind(view, node) and _channels_first(view, node) and not view.shared(node)

    layer = Pat(trait="weighted", has="fold_affine", name="layer", only_use=True, where=fits)
    return Pat(has="affine_at_inference", src=(layer,), name="norm", where=_affine_at_inference)


FOLD_BN = [
    # bn(conv(x)) -> conv'(x) with a bias, the BN's scale and shift folded into its weights
    # (inference: running statistics); the conv (dwconv, conv_transpose) must feed nothing but the bn
    Rule(
        "fold_bn",
        "bn(conv(x)) -> conv'(x) with bias: W' = W·γ/√(σ²+ε), b' = (b−μ)·γ/√(σ²+ε)+β (conv feeds only the bn)",
        _folding(_is_map),
        _fold,
    ),
    # bn(linear(x)) -> linear'(x) with a bias: the same fold on a vector (BatchNorm1d)
    Rule(
        "fold_bn_linear",
        "bn(linear(x)) -> linear'(x) with bias, the same fold on a vector (linear feeds only the bn)",
        _folding(_is_vector),
        _fold,
    ),
]


# --- convolutionalize ------------------------------------------------------------------------------
def _fc_to_conv(view: View, layer: IRNode, flat: IRNode) -> Replacement:
    shape = view.shape(flat.inputs[0])
    op_name, arguments = lookup(layer.op).convolutional(layer.args, shape)
    conv = replace(layer, op=op_name, args=lookup(op_name).args.model_validate(arguments), inputs=list(flat.inputs))
    channels, height, width = shape
    kernel = f"{height}x{width}"
    return Replacement(
        (conv, replace(flat, inputs=[layer.id])),
        flat.id,
        f"{layer.id}: {layer.op} {channels * height * width} -> {layer.args.out} as {op_name} {kernel} on {channels}x{kernel}",
    )


def _flatten_later(view: View, node: IRNode, flat: IRNode) -> Replacement | None:
    op = lookup(node.op)
    if not op.is_("elementwise"):  # per channel: on a vector of C·H·W features only when H = W = 1
        if view.shape(flat.inputs[0])[1:] != (1, 1):
            return None
        node = _with(node, **op.unit_map_args(node.args)) if op.unit_map_args else node
    return Replacement(
        (replace(node, inputs=list(flat.inputs)), replace(flat, inputs=[node.id])),
        flat.id,
        f"{flat.id} moved after {node.op} {node.id}",
    )


def _output_map(view: View, flat: IRNode) -> Replacement:
    shape = "x".join(map(str, view.shape(flat.inputs[0])))
    return Replacement((), flat.inputs[0], f"removed {flat.id}: the output is the {shape} map of {flat.inputs[0]}")


# a flatten of a C×H×W map that feeds only the node above it
_FLATTENED_MAP = Pat(trait="flattens", name="flat", only_use=True, where=_reads_map)

CONVOLUTIONALIZE = [
    # linear(flatten(x)) on a C×H×W map x -> flatten(conv(x, kernel H×W)): the same numbers, and
    # the conv slides over a larger map; once the map is 1×1 (after the first FC) it is a 1×1 conv
    Rule(
        "fc_to_conv",
        "linear(flatten(x: CxHxW)) -> flatten(conv(x, kernel HxW)); weights reshaped (out, C·H·W) -> (out, C, H, W)",
        Pat(has="convolutional", src=(_FLATTENED_MAP,), name="layer", where=_own_weights),
        _fc_to_conv,
    ),
    # op(flatten(y)) -> flatten(op(y)): flatten moves down past ops that act per element (and per
    # channel ones, bn and softmax, when y is 1×1), so it reaches the next FC layer
    Rule(
        "flatten_later",
        "op(flatten(y)) -> flatten(op(y)) for elementwise ops; bn and softmax only when y is Cx1x1",
        Pat(trait=("elementwise", "per_channel"), src=(_FLATTENED_MAP,), name="node", where=_own_weights),
        _flatten_later,
    ),
    # flatten(x) as a graph output -> x: the output keeps its grid, one prediction per window
    Rule(
        "output_map",
        "flatten(x: CxHxW) giving a graph output -> x: the output stays a map (one cell per window)",
        Pat(trait="flattens", name="flat", where=_is_output_of_map),
        _output_map,
    ),
]


# --- strip dropout / identity --------------------------------------------------------------------------
def _bypass(view: View, node: IRNode) -> Replacement:
    return Replacement((), node.inputs[0], f"removed {node.op} {node.id}")


def _deterministic(view: View, node: IRNode) -> bool:
    return not lookup(node.op).is_("stochastic") and not view.shared(node)


STRIP_DROPOUT = [
    # dropout(x) -> x: dropout is the identity at inference (drop_path too)
    Rule(
        "strip_dropout",
        "dropout(x) -> x (and drop_path): the identity at inference; consumers read x",
        Pat(trait="stochastic", src=(Pat(),), name="node", where=_own_weights),
        _bypass,
    ),
    # identity(x) -> x
    Rule(
        "strip_identity",
        "identity(x) -> x; consumers read x",
        Pat(trait="removable", src=(Pat(),), name="node", where=_deterministic),
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
