"""Swin's two ops on a channels-last map (H, W, C): `window_attention` and `patch_merging`.

Both lower to torchvision's own modules (torchvision.models.swin_transformer), so their outputs,
tensors and state_dict keys are torchvision's by construction:
- `window_attention` is ShiftedWindowAttention: the map is padded on the bottom and right to a
  multiple of the window M, rolled by -shift, cut into M×M windows of N = M² tokens, and each
  window gets multi-head self-attention with a learned relative-position bias; then the windows
  are put back, rolled by +shift and the padding cut off. Tensors: qkv.weight (3C, C), qkv.bias,
  proj.weight (C, C), proj.bias, relative_position_bias_table ((2M-1)², heads), and the buffer
  relative_position_index (N²,) (int64). Params 4C² + 4C + (2M-1)²·heads.
- `patch_merging` is PatchMerging: each 2×2 group of positions (padded to even H, W) is
  concatenated to 4C channels, LayerNorm(4C), then Linear(4C -> 2C, no bias): (⌈H/2⌉, ⌈W/2⌉, 2C).

Counting, per sample. With the padded map Hp×Wp (Tp = Hp·Wp tokens) window attention's MACs are
4·Tp·C² (the qkv and proj linears) + 2·Tp·N·C (Q·Kᵀ and A·V, N·C per token and head group);
FlopCounterMode counts torchvision's plain matmuls directly, 2 per MAC. The bias table lookup,
the shift, the mask and the softmax are not counted (`all_ops` estimates them). Patch merging's
MACs are ⌈H/2⌉·⌈W/2⌉·4C·2C.
Receptive field (channels-last positions, archspec.ops.field): window attention reads the window
each position falls in, as the shift and torchvision's mask cut them (`window_cells`); patch
merging reads its 2×2 group.
"""
from __future__ import annotations

import math

from archspec.ops.common import IntPair, NonNegativePair, PositiveInt, Probability, factor_text, format_shape, pair, pair_text
from archspec.ops.field import WHOLE, window_cells
from archspec.ops.registry import Op, OpArgs, Saved, Shape, ShapeError

OPS: list[Op] = []  # this module's entries, registered by archspec.ops.catalog

CHANNELS_LAST = (0, 1)  # the layout (archspec.ops.field) of an (H, W, C) map
CHANNELS_LAST_HINT = "make a (C, H, W) map channels-last first with `permute: {dims: [1, 2, 0]}`"


def _channels_last(inputs: list[Shape], op: str) -> Shape:
    (shape,) = inputs
    if len(shape) != 3:
        raise ShapeError(f"{op} takes a channels-last map (H, W, C) but gets {format_shape(shape)}", hint=CHANNELS_LAST_HINT)
    return shape


# --- window_attention -----------------------------------------------------------------------------
class WindowAttentionArgs(OpArgs):
    heads: PositiveInt
    window: IntPair            # M, or (Mh, Mw): torchvision's window_size
    shift: NonNegativePair = 0  # torchvision's shift_size: 0, or window // 2 on every second block
    attention_dropout: Probability = 0.0
    dropout: Probability = 0.0  # on the output of proj, in training


def _geometry(args: WindowAttentionArgs, inputs: list[Shape]) -> tuple[int, int, int]:
    """(padded tokens Tp, tokens per window N, channels C), after checking the arguments fit."""
    height, width, channels = _channels_last(inputs, "window_attention")
    if channels % args.heads:
        raise ShapeError(f"heads={args.heads} must divide the channels C = {channels} (the last axis)")
    windows, shifts = pair(args.window), pair(args.shift)
    if any(s >= w for s, w in zip(shifts, windows)):
        raise ShapeError(f"shift {args.shift} must be smaller than the window {args.window}",
                         hint="Swin shifts every second block by half the window: `shift: window // 2`")
    padded = [math.ceil(size / w) * w for size, w in zip((height, width), windows)]
    return padded[0] * padded[1], windows[0] * windows[1], channels


def _attention_params(args: WindowAttentionArgs, inputs: list[Shape]) -> dict[str, Shape]:
    _, _, channels = _geometry(args, inputs)
    wh, ww = pair(args.window)
    # the state_dict order: the module's own table first, then its children qkv and proj
    return {"relative_position_bias_table": ((2 * wh - 1) * (2 * ww - 1), args.heads),
            "qkv.weight": (3 * channels, channels), "qkv.bias": (3 * channels,),
            "proj.weight": (channels, channels), "proj.bias": (channels,)}


def _attention_buffers(args: WindowAttentionArgs, inputs: list[Shape]) -> dict[str, Shape]:
    _, tokens, _ = _geometry(args, inputs)
    return {"relative_position_index": (tokens * tokens,)}


def _attention_macs(args: WindowAttentionArgs, inputs: list[Shape], output: Shape) -> int:
    padded, tokens, channels = _geometry(args, inputs)
    return 4 * padded * channels * channels + 2 * padded * tokens * channels


def _attention_extra_ops(args: WindowAttentionArgs, inputs: list[Shape], output: Shape) -> int:
    """Softmax (3 per attention weight, heads·Tp·N of them), the position bias and (shifted) the
    mask added to each weight, the q scale and the linears' biases (1 per value each)."""
    padded, tokens, channels = _geometry(args, inputs)
    weights = args.heads * padded * tokens
    shifted = any(pair(args.shift))
    return (4 + shifted) * weights + 5 * padded * channels


def _attention_saved(args: WindowAttentionArgs, inputs: list[Shape], output: Shape) -> Saved:
    """Measured with saved_tensors_hooks (tests/test_window_ops.py): not the input (the pad is a
    copy), but the windowed tokens and the attention output that the two linears read, the scaled
    q, kᵀ and v (5·Tp·C in all) and the softmax output (heads·Tp·N)."""
    padded, tokens, channels = _geometry(args, inputs)
    return Saved(inputs=(), extra=((5 * padded * channels, "act", True), (args.heads * padded * tokens, "act", True)))


def _attention_from_torch(call):
    """torchvision's ShiftedWindowAttention (Swin v1), kept whole."""
    if not call.is_("torchvision.models.swin_transformer.ShiftedWindowAttention"):
        return None
    layer = call.module
    return {"heads": layer.num_heads, "window": call.compact(layer.window_size), "shift": call.compact(layer.shift_size),
            "attention_dropout": layer.attention_dropout, "dropout": layer.dropout}


def _build_attention(args: WindowAttentionArgs, inputs: list[Shape]):
    from torchvision.models.swin_transformer import ShiftedWindowAttention

    _, _, channels = _geometry(args, inputs)
    return ShiftedWindowAttention(channels, list(pair(args.window)), list(pair(args.shift)), args.heads,
                                  attention_dropout=args.attention_dropout, dropout=args.dropout)


def _attention_source(args: WindowAttentionArgs, inputs: list[Shape], in_place: bool):
    """torchvision's ShiftedWindowAttention as `_build_attention` builds it (its source goes into the file)."""
    from torchvision.models.swin_transformer import ShiftedWindowAttention

    from archspec.ops.source import Call, Written

    _, _, channels = _geometry(args, inputs)
    dropouts = (("attention_dropout", args.attention_dropout), ("dropout", args.dropout))
    call = Call("ShiftedWindowAttention", (channels, list(pair(args.window)), list(pair(args.shift)), args.heads), dropouts,
                defaults=(("attention_dropout", 0.0), ("dropout", 0.0)))
    return Written(module=call, needs=(ShiftedWindowAttention,))


def _attention_label(args: WindowAttentionArgs) -> str:
    shift = f", shift {factor_text(args.shift)}" if any(pair(args.shift)) else ""
    return f"window_attention {args.heads} heads, {pair_text(args.window)}{shift}"


def _explain_attention(ctx) -> None:
    """(window count, heads) in words; params 4C² + 4C + (2M-1)²·heads; MACs Tp·(4C² + 2N·C)."""
    height, width, channels = ctx.in_shapes[0]
    padded, tokens, _ = _geometry(ctx.args, ctx.in_shapes)
    (wh, ww), heads = pair(ctx.args.window), ctx.args.heads
    ctx.line(ctx.msg("window_attention_windows", h=height, w=width, c=channels, wh=wh, ww=ww, n=tokens,
                     windows=padded // tokens, heads=heads, dh=channels // heads, shift=ctx.args.shift))
    if ctx.owns_weights:
        table = (2 * wh - 1) * (2 * ww - 1)
        expression = f"4·{channels}·{channels} + 4·{channels} + {table}·{heads}"
        ctx.figure_line("label.params", "4C² + 4C + (2M−1)²·heads", ctx.equation(expression, ctx.stats.figures.params))
    formula, expression = ctx.batched("Tp·(4C² + 2N·C)", f"{padded}·(4·{channels}·{channels} + 2·{tokens}·{channels})")
    ctx.figure_line("label.macs", formula, ctx.equation(expression, ctx.stats.figures.macs), tag="macs")
    per_token = 2 * (4 * channels * channels + 2 * tokens * channels)
    ctx.line(ctx.msg("window_attention_flops_token",
                     eq=ctx.equation(f"2·(4·{channels}·{channels} + 2·{tokens}·{channels})", per_token)), "macs")


OPS.append(
    Op(
        name="window_attention",
        summary="Swin's shifted-window multi-head self-attention on a channels-last map (H, W, C) "
        "(torchvision's ShiftedWindowAttention: qkv, proj, relative_position_bias_table)",
        args=WindowAttentionArgs,
        shape=lambda a, i: (_geometry(a, i), i[0])[1],
        params=_attention_params,
        buffers=_attention_buffers,
        macs=_attention_macs,
        extra_ops=_attention_extra_ops,
        module=_build_attention,
        from_torch=_attention_from_torch,
        source=_attention_source,
        saved=_attention_saved,
        fresh_output=True,
        receptive_field=lambda a, r, i, o, layouts: [
            window_cells(r, i[0][:2], pair(a.window), pair(a.shift)) if layouts[0] == CHANNELS_LAST else WHOLE
        ],
        layout=lambda a, i, layouts: CHANNELS_LAST,
        family="linear",
        label=_attention_label,
        explain=_explain_attention,
    )
)


# --- patch_merging --------------------------------------------------------------------------------
class PatchMergingArgs(OpArgs):
    pass


def _merged_shape(args: PatchMergingArgs, inputs: list[Shape]) -> Shape:
    height, width, channels = _channels_last(inputs, "patch_merging")
    return (math.ceil(height / 2), math.ceil(width / 2), 2 * channels)


def _merging_macs(args: PatchMergingArgs, inputs: list[Shape], output: Shape) -> int:
    positions = output[0] * output[1]
    return positions * 4 * inputs[0][2] * output[2]


def _merging_saved(args: PatchMergingArgs, inputs: list[Shape], output: Shape) -> Saved:
    """Measured with saved_tensors_hooks: the concatenated 4C map (LayerNorm's input) and its
    normalised copy (the linear's), and LayerNorm's mean and 1/std per position (fp32)."""
    positions = output[0] * output[1]
    grouped = positions * 4 * inputs[0][2]
    return Saved(inputs=(), extra=((2 * grouped, "act", True), (2 * positions, "fp32", True)))


def _build_merging(args: PatchMergingArgs, inputs: list[Shape]):
    from torchvision.models.swin_transformer import PatchMerging

    return PatchMerging(_channels_last(inputs, "patch_merging")[2])


def _explain_merging(ctx) -> None:
    height, width, channels = ctx.in_shapes[0]
    rows, cols, doubled = ctx.out
    ctx.line(ctx.msg("patch_merging_groups", h=height, w=width, c=channels, ho=rows, wo=cols, c4=4 * channels, c2=doubled))
    if ctx.owns_weights:
        ctx.figure_line("label.params", "4C·2C + 2·4C", ctx.equation(f"{4 * channels}·{doubled} + 2·{4 * channels}", ctx.stats.figures.params))
    formula, expression = ctx.batched("H/2·W/2·4C·2C", f"{rows}·{cols}·{4 * channels}·{doubled}")
    ctx.figure_line("label.macs", formula, ctx.equation(expression, ctx.stats.figures.macs), tag="macs")


OPS.append(
    Op(
        name="patch_merging",
        summary="Swin's downsampling on a channels-last map: each 2x2 group of positions concatenated "
        "(4C), LayerNorm, linear 4C -> 2C without bias (torchvision's PatchMerging: reduction, norm)",
        args=PatchMergingArgs,
        shape=_merged_shape,
        params=lambda a, i: {"reduction.weight": (2 * _channels_last(i, "patch_merging")[2], 4 * i[0][2]),
                             "norm.weight": (4 * i[0][2],), "norm.bias": (4 * i[0][2],)},
        macs=_merging_macs,
        extra_ops=lambda a, i, o: 5 * o[0] * o[1] * 4 * i[0][2],  # LayerNorm's ~5 per element of the 4C map
        module=_build_merging,
        from_torch=lambda c: c.plain("torchvision.models.swin_transformer.PatchMerging"),
        saved=_merging_saved,
        fresh_output=True,
        receptive_field=lambda a, r, i, o, layouts: [
            tuple((2 * lo, 2 * hi + 1) for lo, hi in r) if layouts[0] == CHANNELS_LAST else WHOLE
        ],
        layout=lambda a, i, layouts: CHANNELS_LAST,
        family="linear",
        label=lambda a: "patch_merging",
        explain=_explain_merging,
    )
)
