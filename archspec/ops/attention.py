"""Multi-head self-attention: `attention` on tokens (T, d), with nn.MultiheadAttention's tensors.

Tensors (torchvision's ViT `self_attention`): in_proj_weight (3d, d) and in_proj_bias (3d,) for
the query, key and value projections stacked, out_proj.weight (d, d) and out_proj.bias (d,):
4d² + 4d parameters (4d² without biases).

Counting, per sample with T tokens, h heads of d/h:
- MACs = 4·T·d² (the q, k, v and output projections) + 2·T²·d (Q·Kᵀ and A·V: T·T·d/h each, per
  head), i.e. 4d² + 2T·d per token;
- FLOPs = 2 × MACs: FlopCounterMode counts the projections as mm/addmm and scaled dot-product
  attention by torch's SDPA formula, 4·h·T²·(d/h) (archspec.lower.verify.flop_counter gives the CPU kernel
  the same formula, and never takes the fused inference path, which it does not count at all);
- softmax and the 1/√(d/h) scale are not counted (`all_ops` adds 3 per attention weight).
The output is not spatial (tokens): its receptive field is global.
"""
from __future__ import annotations

from archspec.ops.common import PositiveInt, Probability, format_shape
from archspec.ops.registry import Op, OpArgs, Saved, Shape, ShapeError

OPS: list[Op] = []  # this module's entries, registered by archspec.ops.catalog


class AttentionArgs(OpArgs):
    heads: PositiveInt
    dropout: Probability = 0.0  # on the attention weights, in training (nn.MultiheadAttention's)
    bias: bool = True


def _tokens(args: AttentionArgs, inputs: list[Shape]) -> tuple[int, int]:
    (shape,) = inputs
    if len(shape) != 2:
        raise ShapeError(
            f"attention takes tokens (T, d) but gets {format_shape(shape)}",
            hint="make tokens of a (C, H, W) map with `reshape: {shape: [C, -1]}` and `permute: {dims: [1, 0]}`",
        )
    tokens, width = shape
    if width % args.heads:
        raise ShapeError(f"heads={args.heads} must divide the token width d = {width}")
    return tokens, width


def _params(args: AttentionArgs, inputs: list[Shape]) -> dict[str, Shape]:
    _, width = _tokens(args, inputs)
    tensors = {"in_proj_weight": (3 * width, width), "in_proj_bias": (3 * width,),
               "out_proj.weight": (width, width), "out_proj.bias": (width,)}
    return tensors if args.bias else {k: v for k, v in tensors.items() if not k.endswith("bias")}


def _macs(args: AttentionArgs, inputs: list[Shape], output: Shape) -> int:
    tokens, width = _tokens(args, inputs)
    return 4 * tokens * width * width + 2 * tokens * tokens * width


def _extra_ops(args: AttentionArgs, inputs: list[Shape], output: Shape) -> int:
    """Softmax (3 per attention weight, h·T² of them) and the biases (1 per projected value)."""
    tokens, width = _tokens(args, inputs)
    return 3 * args.heads * tokens * tokens + (4 * tokens * width if args.bias else 0)


def _saved(args: AttentionArgs, inputs: list[Shape], output: Shape) -> Saved:
    """What torch's standard path keeps (measured with saved_tensors_hooks, dropout 0): the input,
    the projected q, k, v (3·T·d), the attention output the out projection reads (T·d) and SDPA's
    log-sum-exp per head and query (h·T, fp32)."""
    tokens, width = _tokens(args, inputs)
    return Saved(extra=((4 * tokens * width, "act", True), (args.heads * tokens, "fp32", True)))


def _source(args: AttentionArgs, inputs: list[Shape], in_place: bool):
    """`_build`'s SelfAttention (its source goes into the file): it keeps no `bias` to read back."""
    from archspec.lower.layers import SelfAttention
    from archspec.ops.source import Call, Written

    call = Call("SelfAttention", (_tokens(args, inputs)[1], args.heads), (("dropout", args.dropout), ("bias", args.bias)),
                defaults=(("dropout", 0.0), ("bias", True)))
    return Written(module=call, needs=(SelfAttention,))


def _from_torch(call):
    """nn.MultiheadAttention, batch first, as self-attention: query, key and value one tensor."""
    if not call.is_("nn.MultiheadAttention"):
        return None
    layer = call.module
    if not layer.batch_first or not layer._qkv_same_embed_dim or layer.bias_k is not None or layer.add_zero_attn:
        return call.refuse("MultiheadAttention batch first, with one embedding size and no bias_k / zero attention")
    extra = {k: v for k, v in call.kwargs.items() if k not in ("need_weights",) and v is not None}
    if len(call.inputs) != 3 or not call.same(0, 1, 2) or extra or call.kwargs.get("need_weights", True):
        return call.refuse("self-attention (one tensor as query, key and value) without masks or weights returned")
    call.keep(0)
    return {"heads": layer.num_heads, "dropout": layer.dropout, "bias": layer.in_proj_bias is not None}


def _build(args: AttentionArgs, inputs: list[Shape]):
    from archspec.lower.layers import SelfAttention

    _, width = _tokens(args, inputs)
    return SelfAttention(width, args.heads, dropout=args.dropout, bias=args.bias)


def _explain(ctx) -> None:
    """4d² + 4d parameters; T·(4d² + 2T·d) MACs, and FLOPs per token 2·(4d² + 2T·d)."""
    tokens, width = ctx.in_shapes[0]
    heads = ctx.args.heads
    ctx.line(ctx.msg("attention_heads", t=tokens, d=width, h=heads, dh=width // heads))
    if ctx.owns_weights:
        square = f"4·{width}·{width}"
        formula, expression = ("4d² + 4d", f"{square} + 4·{width}") if ctx.args.bias else ("4d²", square)
        ctx.figure_line("label.params", formula, ctx.equation(expression, ctx.stats.figures.params))
    formula, expression = ctx.batched("T·(4d² + 2T·d)", f"{tokens}·(4·{width}·{width} + 2·{tokens}·{width})")
    ctx.figure_line("label.macs", formula, ctx.equation(expression, ctx.stats.figures.macs), tag="macs")
    per_token = 2 * (4 * width * width + 2 * tokens * width)
    ctx.line(ctx.msg("attention_flops_token", eq=ctx.equation(f"2·(4·{width}·{width} + 2·{tokens}·{width})", per_token)), "macs")


OPS.append(
    Op(
        name="attention",
        summary="multi-head self-attention on tokens (T, d) (nn.MultiheadAttention, batch first: "
        "in_proj_weight, out_proj), 4d² + 4d parameters, FLOPs 2·(4T·d² + 2T²·d)",
        args=AttentionArgs,
        shape=lambda a, i: (_tokens(a, i), i[0])[1],
        params=_params,
        macs=_macs,
        extra_ops=_extra_ops,
        module=_build,
        source=_source,
        from_torch=_from_torch,
        saved=_saved,
        fresh_output=True,
        family="linear",
        label=lambda a: f"attention {a.heads} heads",
        explain=_explain,
    )
)
