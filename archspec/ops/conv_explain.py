"""The explanations of the convolutions (`conv`, `dwconv`, `conv_transpose`; their entries'
`explain` rules, kept apart from archspec.ops.conv for its length).

The course's way: output size, channels, parameters and MACs as formulas with the numbers
filled in; and after a `conv`, the pair it closes: a depthwise-separable pair against a plain
convolution, or a 1x1 bottleneck against a direct convolution. The plain and direct
convolutions are worked out by the `conv` entry's own shape and MAC rules (`ctx.lookup`).

Each rule takes the explain context (archspec.explain.context.ExplainContext). Nothing here
imports archspec.explain or archspec.ops.conv, so no import comes back to the op modules.
"""
from __future__ import annotations

from archspec.ops.common import pair, transposed_axes


def explain_conv(ctx) -> None:
    """conv: window, channels, parameters and MACs; last, the pair it closes (if any)."""
    _window_conv(ctx, ctx.args.groups)
    ctx.then(_compare_with_pair)


def explain_depthwise(ctx) -> None:
    """dwconv: a conv with one filter per input channel (groups = C_in)."""
    _window_conv(ctx, ctx.in_shapes[0][0])


def _window_conv(ctx, groups: int) -> None:
    args = ctx.args
    cin, cout = ctx.in_shapes[0][0], ctx.out[0]
    kernel, stride, padding, dilation = ctx.entry.window(args, ctx.in_shapes)
    depthwise = _is_depthwise(ctx.node, ctx.in_shapes[0])
    same_total = ctx.padding_note(args.padding, kernel, dilation)
    ctx.window_sizes(kernel, stride, padding, dilation, False, same_total)
    if depthwise:
        mult = ctx.msg("multiplier", m=cout // cin) if cout != cin else ""
        ctx.line(ctx.msg("channels_depthwise", kh=kernel[0], kw=kernel[1], cin=cin, mult=mult, c=cout))
    elif groups > 1:
        ctx.line(ctx.msg("channels_groups", c=cout, g=groups, per=cin // groups))
    else:
        ctx.line(ctx.msg("channels_filters", c=cout))
    _params(ctx, kernel[0], kernel[1], cin, cout, groups, args.bias, depthwise)
    _macs(ctx, kernel[0], kernel[1], cin, groups)


def _params(ctx, kh: int, kw: int, cin: int, cout: int, groups: int, bias: bool, depthwise: bool) -> None:
    if not ctx.owns_weights:
        return
    notes = []
    if depthwise and groups == cin:
        inner, numbers = "f·f", f"{kh}·{kw}"
        notes.append(ctx.msg("depthwise_params"))
    elif groups > 1:
        inner, numbers = "f·f·(n_c_prev/groups)", f"{kh}·{kw}·({cin}/{groups})"
    else:
        inner, numbers = "f·f·n_c_prev", f"{kh}·{kw}·{cin}"
    if bias:
        formula, expression = f"({inner} + 1)·n_c", f"({numbers} + 1)·{cout}"
    else:
        formula, expression = f"{inner}·n_c", f"{numbers}·{cout}"
        notes.append(ctx.msg("no_bias"))
    eq = ctx.equation(expression, ctx.stats.figures.params)
    ctx.figure_line("label.params", formula, eq, ", ".join(notes) or None)


def _macs(ctx, kh: int, kw: int, cin: int, groups: int) -> None:
    cout, ho, wo = ctx.out
    if groups == cin and groups > 1:
        formula, expression = "H_out·W_out·n_c·f·f", f"{ho}·{wo}·{cout}·{kh}·{kw}"
    elif groups > 1:
        formula, expression = "H_out·W_out·n_c·(n_c_prev/groups)·f·f", f"{ho}·{wo}·{cout}·({cin}/{groups})·{kh}·{kw}"
    else:
        formula, expression = "H_out·W_out·n_c·n_c_prev·f·f", f"{ho}·{wo}·{cout}·{cin}·{kh}·{kw}"
    formula, expression = ctx.batched(formula, expression)
    ctx.figure_line("label.macs", formula, ctx.equation(expression, ctx.stats.figures.macs), tag="macs")


# --- transposed convolution ----------------------------------------------------------------------
def explain_conv_transpose(ctx) -> None:
    """conv_transpose: (n - 1)·s - 2p + f + output_padding per axis, and PyTorch's output_padding."""
    args = ctx.args
    cin, height, width = ctx.in_shapes[0]
    ctx.line(ctx.msg("transposed_intro"))
    values = [(n, *axis, out) for n, axis, out in zip((height, width), transposed_axes(args), ctx.out[1:])]
    for axis, (n, f, s, p, extra, d, out) in ctx.per_axis(values):
        _transposed_axis(ctx, axis, n, f, s, p, extra, d, out)
    ctx.line(ctx.msg("channels_filters", c=ctx.out[0]))
    kh, kw = pair(args.kernel)
    _params(ctx, kh, kw, cin, ctx.out[0], args.groups, args.bias, False)
    _transposed_macs(ctx, kh, kw)


def _transposed_axis(ctx, axis: str, n: int, f: int, s: int, p: int, extra: int, d: int, out: int) -> None:
    if d == 1:
        formula = "(n - 1)·s - 2p + f + output_padding"
        expression = f"({n} - 1)·{s} - 2·{p} + {f} + {extra}"
    else:
        formula = "(n - 1)·s - 2p + d·(f - 1) + 1 + output_padding"
        expression = f"({n} - 1)·{s} - 2·{p} + {d}·({f} - 1) + 1 + {extra}"
    eq = ctx.identity(f"{out} = {expression}")
    ctx.line(ctx.msg("formula_line", label=ctx.msg("label.size"), axes=ctx.msg(f"axis.{axis}"), formula=formula, eq=eq))
    ctx.set_axis_figure("out", axis, out)
    target = s * n
    need = target - out
    if s > 1 and extra == 0 and 0 < need < max(s, d):
        ctx.line(ctx.msg("transposed_output_padding", out=out, target=target, need=need))
        ctx.set_axis_figure("output_padding_needed", axis, need)
    elif extra:
        ctx.line(ctx.msg("transposed_op_used", op=extra))
    if extra and out == target:
        ctx.line(ctx.msg("transposed_exact", target=target))


def _transposed_macs(ctx, kh: int, kw: int) -> None:
    cin, height, width = ctx.in_shapes[0]
    cout, groups = ctx.out[0], ctx.args.groups
    if groups > 1:
        formula, expression = "H_in·W_in·n_c_prev·(n_c/groups)·f·f", f"{height}·{width}·{cin}·({cout}/{groups})·{kh}·{kw}"
    else:
        formula, expression = "H_in·W_in·n_c_prev·n_c·f·f", f"{height}·{width}·{cin}·{cout}·{kh}·{kw}"
    formula, expression = ctx.batched(formula, expression)
    eq = ctx.equation(expression, ctx.stats.figures.macs)
    ctx.figure_line("label.macs", formula, eq, ctx.msg("transposed_macs_note"), tag="macs")


# --- pairs: depthwise-separable and 1x1 bottleneck -----------------------------------------------
def _is_depthwise(node, in_shape) -> bool:
    if node.op == "dwconv":
        return True
    return node.op == "conv" and len(in_shape) == 3 and in_shape[0] > 1 and node.args.groups == in_shape[0]


def _is_pointwise(node) -> bool:
    return (
        node.op == "conv"
        and pair(node.args.kernel) == (1, 1)
        and node.args.groups == 1
        and node.args.padding in (0, (0, 0), "valid", "same")
    )


def _plain_conv(ctx, window_args, out_channels: int):
    """The `conv` entry and the args of a plain convolution (groups 1, no bias) with
    `window_args`' window, for the comparisons."""
    conv = ctx.lookup("conv")
    args = conv.args.model_construct(
        out=out_channels,
        kernel=window_args.kernel,
        stride=window_args.stride,
        padding=window_args.padding,
        dilation=window_args.dilation,
        groups=1,
        bias=False,
    )
    return conv, args


def _compare_with_pair(ctx) -> None:
    """A 1x1 conv after a depthwise one (through BN and activations): a separable pair; a
    conv after a 1x1 that reduces the channels: a bottleneck."""
    node = ctx.node
    if node.args.groups != 1 or len(ctx.out) != 3:
        return
    source = ctx.source(node.inputs[0])
    if source.op not in ("conv", "dwconv"):
        return
    source_in = ctx.shape(source.inputs[0])
    kernel = pair(node.args.kernel)
    if _is_pointwise(node) and pair(node.args.stride) == (1, 1) and _is_depthwise(source, source_in):
        _separable(ctx, source, source_in)
    elif kernel != (1, 1) and _is_pointwise(source) and ctx.shape(source.id)[0] < source_in[0]:
        _bottleneck(ctx, source, source_in)


def _separable(ctx, dw, dw_in) -> None:
    msg, num = ctx.msg, ctx.num
    cin, cout = dw_in[0], ctx.out[0]
    multiplier = ctx.shape(dw.id)[0] // cin
    kh, kw = pair(dw.args.kernel)
    conv, plain_args = _plain_conv(ctx, dw.args, cout)
    plain_out = conv.shape(plain_args, [dw_in])
    plain = conv.macs(plain_args, [dw_in], plain_out) * ctx.batch
    dw_macs, pw_macs = ctx.layer(dw.id).figures.macs, ctx.stats.figures.macs
    separable = dw_macs + pw_macs
    ctx.line(msg("sep_title", dw=dw.id, pw=ctx.node.id), "pair")
    ctx.line(msg("sep_cost", eq=ctx.equation(f"{num(dw_macs)} + {num(pw_macs)}", separable)), "pair")
    _, expression = ctx.batched("", f"{plain_out[1]}·{plain_out[2]}·{cout}·{cin}·{kh}·{kw}")
    ctx.line(msg("sep_plain", kh=kh, kw=kw, cin=cin, cout=cout, eq=ctx.equation(expression, plain)), "pair")
    ratio = separable / plain
    m = "1" if multiplier == 1 else str(multiplier)
    course = "1/n_c' + 1/f²" if multiplier == 1 else f"{m}/n_c' + {m}/f²"
    value = multiplier / cout + multiplier / (kh * kw)
    formula = f"{m}/{cout} + {m}/{kh * kw}"
    times = f"{plain / separable:.2f}"
    ratio_text = msg(
        "sep_ratio", sep=num(separable), plain=num(plain), ratio=f"{ratio:.3f}", course=course, formula=formula,
        value=f"{value:.3f}", times=times,
    )
    ctx.line(ratio_text, "pair")
    ctx.figures.update(
        {
            "separable.depthwise_macs": dw_macs,
            "separable.pointwise_macs": pw_macs,
            "separable.macs": separable,
            "separable.plain_macs": plain,
            "separable.ratio": ratio,
            "separable.formula": value,
        }
    )


def _bottleneck(ctx, bottleneck, bottleneck_in) -> None:
    msg, num = ctx.msg, ctx.num
    cin, cmid, cout = bottleneck_in[0], ctx.shape(bottleneck.id)[0], ctx.out[0]
    kh, kw = pair(ctx.args.kernel)
    # the direct convolution reads the bottleneck's input channels at this conv's input size
    direct_in = (cin, *ctx.in_shapes[0][1:])
    conv, direct_args = _plain_conv(ctx, ctx.args, ctx.args.out)
    direct_out = conv.shape(direct_args, [direct_in])
    direct = conv.macs(direct_args, [direct_in], direct_out) * ctx.batch
    bottleneck_macs, conv_macs = ctx.layer(bottleneck.id).figures.macs, ctx.stats.figures.macs
    total = bottleneck_macs + conv_macs
    ctx.line(msg("bottleneck_title", b=bottleneck.id, cin=cin, cmid=cmid, kh=kh, kw=kw), "pair")
    _, expression = ctx.batched("", f"{direct_out[1]}·{direct_out[2]}·{cout}·{cin}·{kh}·{kw}")
    ctx.line(msg("bottleneck_direct", kh=kh, kw=kw, cin=cin, eq=ctx.equation(expression, direct)), "pair")
    eq = ctx.equation(f"{num(bottleneck_macs)} + {num(conv_macs)}", total)
    ctx.line(msg("bottleneck_with", b=bottleneck.id, node=ctx.node.id, eq=eq), "pair")
    ratio = direct / total
    ctx.line(msg("bottleneck_ratio", direct=num(direct), total=num(total), ratio=f"{ratio:.2f}"), "pair")
    ctx.figures.update(
        {
            "bottleneck.direct_macs": direct,
            "bottleneck.reduce_macs": bottleneck_macs,
            "bottleneck.conv_macs": conv_macs,
            "bottleneck.macs": total,
            "bottleneck.ratio": ratio,
        }
    )
