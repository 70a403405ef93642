"""MaxViT's `partition_attention` on a (C, H, W) map: torchvision's PartitionAttentionLayer.

It lowers to torchvision.models.maxvit.PartitionAttentionLayer itself, so outputs, tensors and
state_dict keys are torchvision's by construction. The map is cut into groups of N = size²
tokens: `window` groups are size×size blocks of neighbours (block attention), `grid` groups take
every (H/size)-th position (a dilated grid spanning the whole map). Each group gets a pre-norm
transformer layer: LayerNorm, multi-head self-attention with a learned relative-position bias
(heads = C / head_dim), stochastic depth, added back; LayerNorm, MLP C -> ratio·C -> C (GELU),
stochastic depth, added back. Then the groups are put back into (C, H, W).
Tensors: attn_layer.0 (LayerNorm C), attn_layer.1.relative_position_bias_table ((2s-1)², heads),
buffer attn_layer.1.relative_position_index (N, N) int64, attn_layer.1.to_qkv (3C, C) + bias,
attn_layer.1.merge (C, C) + bias, mlp_layer.0 (LayerNorm C), mlp_layer.1 (rC, C) + bias,
mlp_layer.3 (C, rC) + bias. Params (4 + 2r)·C² + (9 + r)·C + (2s-1)²·heads.

Counting, per sample, T = H·W tokens: MACs = 4·T·C² (to_qkv, merge) + 2r·T·C² (the MLP) +
2·T·N·C (Q·Kᵀ and A·V, as einsums that FlopCounterMode counts as bmm); FLOPs are 2 × MACs. The
bias lookup, k's scale, softmax, the norms and GELU are not counted (`all_ops` estimates them).
Receptive field: a `window` group reads its size×size block (archspec.ops.field.window_cells);
a `grid` group spans the whole map, a global field.
"""
from __future__ import annotations

from typing import Literal

from archspec.ops.common import PositiveInt, Probability, format_shape
from archspec.ops.field import WHOLE, window_cells
from archspec.ops.registry import Op, OpArgs, Saved, Shape, ShapeError

OPS: list[Op] = []  # this module's entries, registered by archspec.ops.catalog


class PartitionAttentionArgs(OpArgs):
    head_dim: PositiveInt            # torchvision's head_dim: heads = C / head_dim
    partition: Literal["window", "grid"]
    size: PositiveInt = 7            # torchvision's partition_size: N = size² tokens per group
    mlp_ratio: PositiveInt = 4
    attention_dropout: Probability = 0.0  # on the attention's output (after merge), in training
    mlp_dropout: Probability = 0.0        # on the MLP's output, in training
    p: Probability = 0.0             # stochastic depth, per sample, on both branches


def _geometry(args: PartitionAttentionArgs, inputs: list[Shape]) -> tuple[int, int, int]:
    """(tokens T, tokens per group N, channels C), after checking the map splits into groups."""
    (shape,) = inputs
    if len(shape) != 3:
        raise ShapeError(f"partition_attention takes a (C, H, W) map but gets {format_shape(shape)}")
    channels, height, width = shape
    if channels % args.head_dim:
        raise ShapeError(f"head_dim={args.head_dim} must divide the channels C = {channels}")
    if height % args.size or width % args.size:
        raise ShapeError(f"the {height}x{width} map must split into whole {args.size}x{args.size} partitions",
                         hint="MaxViT needs H and W divisible by the partition size in every stage (224 with size 7)")
    # torchvision's grid partition: its stride is H / size on both axes, so each group has size² tokens only if H = W
    if args.partition == "grid" and height != width:
        raise ShapeError(f"grid partition_attention needs a square map, not {height}x{width} (torchvision's grid stride is H / size on both axes)")
    return height * width, args.size * args.size, channels


def _params(args: PartitionAttentionArgs, inputs: list[Shape]) -> dict[str, Shape]:
    _, _, channels = _geometry(args, inputs)
    heads, hidden = channels // args.head_dim, args.mlp_ratio * channels
    # named_parameters' order: the attention module's own table before its children to_qkv and merge
    return {"attn_layer.0.weight": (channels,), "attn_layer.0.bias": (channels,),
            "attn_layer.1.relative_position_bias_table": ((2 * args.size - 1) ** 2, heads),
            "attn_layer.1.to_qkv.weight": (3 * channels, channels), "attn_layer.1.to_qkv.bias": (3 * channels,),
            "attn_layer.1.merge.weight": (channels, channels), "attn_layer.1.merge.bias": (channels,),
            "mlp_layer.0.weight": (channels,), "mlp_layer.0.bias": (channels,),
            "mlp_layer.1.weight": (hidden, channels), "mlp_layer.1.bias": (hidden,),
            "mlp_layer.3.weight": (channels, hidden), "mlp_layer.3.bias": (channels,)}


def _buffers(args: PartitionAttentionArgs, inputs: list[Shape]) -> dict[str, Shape]:
    _, tokens, _ = _geometry(args, inputs)
    return {"attn_layer.1.relative_position_index": (tokens, tokens)}


def _macs(args: PartitionAttentionArgs, inputs: list[Shape], output: Shape) -> int:
    tokens, group, channels = _geometry(args, inputs)
    return (4 + 2 * args.mlp_ratio) * tokens * channels * channels + 2 * tokens * group * channels


def _extra_ops(args: PartitionAttentionArgs, inputs: list[Shape], output: Shape) -> int:
    """Softmax (3 per attention weight, heads·T·N of them) and the bias added to each; two
    LayerNorms (~5 per value each), k's scale, the biases and the two residual adds (1 per value
    each), GELU (~8 per hidden value)."""
    tokens, group, channels = _geometry(args, inputs)
    weights = channels // args.head_dim * tokens * group
    return 4 * weights + 16 * tokens * channels + (1 + 8) * args.mlp_ratio * tokens * channels


def _saved(args: PartitionAttentionArgs, inputs: list[Shape], output: Shape) -> Saved:
    """Measured with saved_tensors_hooks (tests/test_maxvit.py): not the input (partitioning
    copies it) but 8 token maps of T·C (both norms' inputs and outputs, q, kᵀ, v, the attention
    output), the MLP's hidden map before and after GELU (2·r·T·C), the softmax (heads·T·N), the
    norms' mean and 1/std per token (4·T, fp32), a dropout mask per nonzero dropout (T·C) and,
    with stochastic depth, its per-sample factor on both branches."""
    tokens, group, channels = _geometry(args, inputs)
    heads = channels // args.head_dim
    masks = sum(1 for rate in (args.attention_dropout, args.mlp_dropout) if rate > 0)
    extra = [((8 + 2 * args.mlp_ratio) * tokens * channels, "act", True), (heads * tokens * group, "act", True),
             (4 * tokens, "fp32", True)]
    if masks:
        extra.append((masks * tokens * channels, "bool", True))
    if args.p > 0:
        extra.append((2, "act", True))
    return Saved(inputs=(), extra=tuple(extra))


def _from_torch(call):
    """torchvision's PartitionAttentionLayer with its default GELU MLP, kept whole."""
    if not call.is_("torchvision.models.maxvit.PartitionAttentionLayer"):
        return None
    layer = call.module
    if type(layer.mlp_layer[2]).__name__ != "GELU":
        return call.refuse("a PartitionAttentionLayer whose MLP activation is not GELU")
    return {"head_dim": layer.head_dim, "partition": layer.partition_type,
            "size": layer.p if layer.partition_type == "window" else layer.g,
            "mlp_ratio": layer.mlp_layer[1].out_features // layer.mlp_layer[1].in_features,
            "attention_dropout": layer.attn_layer[2].p, "mlp_dropout": layer.mlp_layer[4].p, "p": layer.stochastic_dropout.p}


def _build(args: PartitionAttentionArgs, inputs: list[Shape]):
    from torch import nn
    from torchvision.models.maxvit import PartitionAttentionLayer

    _geometry(args, inputs)
    channels, height, width = inputs[0]
    return PartitionAttentionLayer(channels, args.head_dim, args.size, args.partition, (height, width), args.mlp_ratio,
                                   nn.GELU, nn.LayerNorm, args.attention_dropout, args.mlp_dropout, args.p)


def _source(args: PartitionAttentionArgs, inputs: list[Shape], in_place: bool):
    """torchvision's PartitionAttentionLayer as `_build` builds it (its source goes into the file)."""
    from torchvision.models.maxvit import PartitionAttentionLayer

    from archspec.ops.source import Call, Name, Written

    channels, height, width = inputs[0]
    values = (channels, args.head_dim, args.size, args.partition, (height, width), args.mlp_ratio, Name("nn.GELU"),
              Name("nn.LayerNorm"), args.attention_dropout, args.mlp_dropout, args.p)
    return Written(module=Call("PartitionAttentionLayer", values), needs=(PartitionAttentionLayer,))


def _explain(ctx) -> None:
    """Groups in words; params (4 + 2r)·C² + (9 + r)·C + (2s−1)²·heads; MACs T·((4 + 2r)·C² + 2N·C)."""
    channels, height, width = ctx.in_shapes[0]
    args = ctx.args
    tokens, group, _ = _geometry(args, ctx.in_shapes)
    heads, ratio = channels // args.head_dim, args.mlp_ratio
    spacing = 1 if args.partition == "window" else height // args.size  # window: neighbours; grid: spread over the map
    ctx.line(ctx.msg("partition_attention_groups", partition=args.partition, h=height, w=width, c=channels, s=args.size, n=group,
                     groups=tokens // group, spacing=spacing, heads=heads, dh=args.head_dim, hidden=ratio * channels))
    if ctx.owns_weights:
        table = (2 * args.size - 1) ** 2
        expression = f"{4 + 2 * ratio}·{channels}·{channels} + {9 + ratio}·{channels} + {table}·{heads}"
        ctx.figure_line("label.params", "(4 + 2r)·C² + (9 + r)·C + (2s−1)²·heads", ctx.equation(expression, ctx.stats.figures.params))
    formula, expression = ctx.batched("T·((4 + 2r)·C² + 2N·C)", f"{tokens}·({4 + 2 * ratio}·{channels}·{channels} + 2·{group}·{channels})")
    ctx.figure_line("label.macs", formula, ctx.equation(expression, ctx.stats.figures.macs), tag="macs")


OPS.append(
    Op(
        name="partition_attention",
        summary="MaxViT's block (window) or grid attention + MLP on a (C, H, W) map, a pre-norm transformer "
        "layer over groups of size² tokens (torchvision's PartitionAttentionLayer: attn_layer, mlp_layer)",
        args=PartitionAttentionArgs,
        shape=lambda a, i: (_geometry(a, i), i[0])[1],
        params=_params,
        buffers=_buffers,
        macs=_macs,
        extra_ops=_extra_ops,
        module=_build,
        from_torch=_from_torch,
        source=_source,
        saved=_saved,
        fresh_output=True,
        receptive_field=lambda a, r, i, o: [
            window_cells(r, i[0][1:], (a.size, a.size), (0, 0)) if a.partition == "window" else WHOLE
        ],
        family="linear",
        label=lambda a: f"partition_attention {a.partition} {a.size}x{a.size}, head_dim {a.head_dim}",
        explain=_explain,
    )
)
