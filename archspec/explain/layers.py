"""Per-layer explanations: each layer's formulas with the numbers filled in, the way the course
writes them.

Every number comes from the IR and the analysis: output sizes from `LayerStats.output_shape`
(the op's shape rule), parameters and MACs from `LayerStats.figures` (the op's rules), and the
comparisons (a plain convolution against a depthwise-separable pair, a direct convolution against
a 1x1 bottleneck) from the `conv` op's own shape and MAC rules. The formula's terms (n, p, f, s,
channels) come from the node's arguments and input shapes, so every equation printed is plain
arithmetic that can be checked (`Explanation.equations`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from archspec.errors import SpecError, did_you_mean
from archspec.explain.messages import Messages, num
from archspec.ir.graph import IRGraph, IRNode, Shape
from archspec.ops.common import format_shape, pair
from archspec.ops.conv import ConvArgs
from archspec.ops.merge import fitted_spatial
from archspec.ops.catalog import lookup
from archspec.ops.registry import numel
from archspec.passes.counts import Analysis, LayerStats

# ops that keep the shape and sit between a conv and the next one (conv -> bn -> relu -> conv)
PASS_THROUGH = frozenset(
    {
        "bn", "groupnorm", "layernorm", "lrn", "relu", "relu6", "leaky_relu", "sigmoid", "tanh", "gelu",
        "silu", "hardswish", "hardsigmoid", "dropout", "drop_path", "identity",
    }
)
ACTIVATIONS = frozenset({"relu", "relu6", "leaky_relu", "sigmoid", "tanh", "gelu", "silu", "hardswish", "hardsigmoid"})
AXES = ("height", "width")


@dataclass
class Explanation:
    """The explanation of one layer (call site).

    `lines` are the sentences shown under `header`; `tags` says what each line is about
    (`shape`, `params`, `macs`, `pair`). `equations` are the arithmetic identities quoted in the
    lines, e.g. `56 = floor((112 + 2·1 - 3) / 2) + 1` or `(5·5·3 + 1)·6 = 456` (`·` is
    multiplication, `,` a thousands separator). `figures` holds the numbers shown (`params`,
    `macs`, `out.height`, `dropped.width`, `separable.ratio`, `bottleneck.direct_macs`...)."""

    node: str
    op: str
    header: str
    lines: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    equations: list[str] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)

    def lines_of(self, *tags: str) -> list[str]:
        return [line for line, tag in zip(self.lines, self.tags) if tag in tags]

    def text(self, indent: str = "  ") -> str:
        return "\n".join([self.header, *(indent + line for line in self.lines)])

    def __str__(self) -> str:
        return self.text()


def format_explanations(explanations: list[Explanation]) -> str:
    """The text `archspec explain` prints: one block per layer, separated by blank lines."""
    return "\n\n".join(e.text() for e in explanations)


def explain_layers(
    ir: IRGraph, analysis: Analysis, nodes: list[str] | None = None, lang: str | None = None
) -> list[Explanation]:
    """Explain the layers of `ir` (analysed as `analysis`) in graph order. `nodes` picks layers by
    name; a block's name (`layer1`, `layer1.0`) picks every layer inside it. Unknown names raise
    SpecError (an ArchspecError) with the closest names as a hint."""
    msg = Messages(lang)
    stats = {layer.name: layer for layer in analysis.layers}
    context = _Context(ir, analysis, stats, msg)
    return [_Writer(context, ir.node(name), stats[name]).explain() for name in _select(ir, analysis, nodes)]


def _select(ir: IRGraph, analysis: Analysis, nodes: list[str] | None) -> list[str]:
    names = [layer.name for layer in analysis.layers]
    if not nodes:
        return names
    wanted: set[str] = set()
    for name in nodes:
        hits = [n for n in names if n == name or n.startswith(name + ".")]
        if not hits:
            known = set(names) | {scope for layer in analysis.layers for scope in layer.scopes}
            raise SpecError(
                f"'{name}' is not a layer or block of {ir.name}",
                hint=did_you_mean(name, known) or "`archspec report SPEC` lists the layers",
            )
        wanted.update(hits)
    return [n for n in names if n in wanted]


@dataclass
class _Context:
    ir: IRGraph
    analysis: Analysis
    stats: dict[str, LayerStats]
    msg: Messages


def _trace_back(ir: IRGraph, node_id: str) -> IRNode:
    """The first node before `node_id` (itself included) that is not a shape-keeping op like BN
    or an activation: what a conv really reads from in conv -> bn -> relu -> conv."""
    node = ir.node(node_id)
    while node.op in PASS_THROUGH and len(node.inputs) == 1:
        node = ir.node(node.inputs[0])
    return node


def _is_depthwise(node: IRNode, in_shape: Shape) -> bool:
    if node.op == "dwconv":
        return True
    return node.op == "conv" and len(in_shape) == 3 and in_shape[0] > 1 and node.args.groups == in_shape[0]


def _is_pointwise(node: IRNode) -> bool:
    return (
        node.op == "conv"
        and pair(node.args.kernel) == (1, 1)
        and node.args.groups == 1
        and node.args.padding in (0, (0, 0), "valid", "same")
    )


def _plain_conv(args, out_channels: int) -> ConvArgs:
    """A plain convolution (groups 1, no bias) with `args`' window, for the comparisons."""
    return ConvArgs.model_construct(
        out=out_channels,
        kernel=args.kernel,
        stride=args.stride,
        padding=args.padding,
        dilation=args.dilation,
        groups=1,
        bias=False,
    )


class _Writer:
    """Builds the Explanation of one node."""

    def __init__(self, context: _Context, node: IRNode, stats: LayerStats):
        self.context = context
        self.msg = context.msg
        self.node = node
        self.stats = stats
        self.ir = context.ir
        self.batch = context.analysis.batch
        self.in_shapes = [self.ir.shapes[i] for i in node.inputs]
        self.out = stats.output_shape
        if len(self.in_shapes) == 1:
            inputs = format_shape(self.in_shapes[0])
        else:
            inputs = ", ".join(f"{format_shape(s)} ({name})" for s, name in zip(self.in_shapes, node.inputs))
        header = self.msg("header", node=node.id, op=node.op, inputs=inputs, output=format_shape(self.out))
        self.exp = Explanation(node.id, node.op, header)

    # --- helpers ------------------------------------------------------------------------------
    def line(self, text: str, tag: str = "shape") -> None:
        self.exp.lines.append(text)
        self.exp.tags.append(tag)

    def identity(self, text: str) -> str:
        """Record an arithmetic identity shown in the text (both sides evaluate equal)."""
        self.exp.equations.append(text)
        return text

    def equation(self, expression: str, value: int) -> str:
        return self.identity(f"{expression} = {num(value)}")

    def batched(self, formula: str, expression: str) -> tuple[str, str]:
        """Counts are for the whole batch: add the factor B when it is not 1."""
        if self.batch == 1:
            return formula, expression
        return f"{formula}·B", f"{expression}·{self.batch}"

    def figure_line(self, label: str, formula: str, eq: str, note: str | None = None, tag: str = "params") -> None:
        text = self.msg("figure_line", label=self.msg(label), formula=formula, eq=eq)
        if note:
            text += self.msg("note", text=note)
        self.line(text, tag)

    def per_axis(self, values: list[tuple]) -> list[tuple[str, tuple]]:
        """[(axis key, values)]: one `both` entry when height and width have the same numbers."""
        if len(values) == 2 and values[0] == values[1]:
            return [("both", values[0])]
        return list(zip(AXES, values))

    def set_axis_figure(self, name: str, axis: str, value: int) -> None:
        for key in AXES if axis == "both" else (axis,):
            self.exp.figures[f"{name}.{key}"] = value

    # --- the explanation --------------------------------------------------------------------
    def explain(self) -> Explanation:
        figures = self.stats.figures
        self.exp.figures.update(params=figures.params, macs=figures.macs, buffers=figures.buffers)
        EXPLAINERS.get(self.node.op, _generic)(self)
        if self.node.module != self.node.id:
            self.line(self.msg("shared", module=self.node.module), "params")
        elif not self.node.trainable and figures.params:
            self.line(self.msg("frozen", n=num(figures.params)), "params")
        if self.node.op == "conv":
            _pairs(self)
        return self.exp

    # --- sliding windows (conv, pooling) -------------------------------------------------------
    def window_sizes(self, kernel, stride, padding, dilation, ceil_mode: bool, same_total=None) -> None:
        _, height, width = self.in_shapes[0]
        totals = same_total or (None, None)
        values = [
            (n, k, s, p, d, o, t)
            for n, k, s, p, d, o, t in zip((height, width), kernel, stride, padding, dilation, self.out[1:], totals)
        ]
        for axis, (n, f, s, p, d, out, total) in self.per_axis(values):
            self.window_axis(axis, n, f, s, p, d, out, ceil_mode, total)

    def window_axis(self, axis: str, n: int, f: int, s: int, p: int, d: int, out: int, ceil_mode: bool, total) -> None:
        msg = self.msg
        span = d * (f - 1) + 1
        if d > 1:
            self.line(msg("dilated", d=d, eq=self.equation(f"{d}·({f} - 1) + 1", span)))
        if total is not None and total % 2:
            pad_expr, padded = f"{total // 2} + {total - total // 2}", total
            formula = "{r}((n + p_before + p_after - f) / s) + 1"
        else:
            pad_expr, padded = f"2·{p if total is None else total // 2}", 2 * p if total is None else total
            formula = "{r}((n + 2p - f) / s) + 1"
        numerator = n + padded - span
        rounding = "ceil" if ceil_mode else "floor"
        expression = f"{rounding}(({n} + {pad_expr} - {span}) / {s}) + 1"
        remainder = numerator % s
        undone = ceil_mode and -(-numerator // s) + 1 != out  # PyTorch's last-window rule
        if undone:
            expression += " - 1"
        eq = self.identity(f"{out} = {expression}")
        self.line(msg("formula_line", label=msg("label.size"), axes=msg(f"axis.{axis}"), formula=formula.format(r=rounding), eq=eq))
        self.set_axis_figure("out", axis, out)
        if undone:
            self.line(msg("ceil_undone"))
        elif remainder and ceil_mode:
            self.line(msg("ceil_partial", over=s - remainder))
        elif remainder:
            self.line(msg("dropped", num=numerator, s=s, r=remainder, unit=msg(f"unit.{axis}")))
            self.set_axis_figure("dropped", axis, remainder)
        elif ceil_mode:
            self.line(msg("ceil_exact"))

    def padding_note(self, padding_arg, kernel, dilation) -> tuple[int, int] | None:
        """Notes for 'same' / 'valid'; the total padding per axis for 'same'."""
        if padding_arg == "valid":
            self.line(self.msg("valid_padding"))
            return None
        if padding_arg != "same":
            return None
        totals = tuple(d * (k - 1) for k, d in zip(kernel, dilation))
        for axis, (total,) in self.per_axis([(t,) for t in totals]):
            if total % 2:
                self.line(self.msg("same_padding_even", total=total, left=total // 2, right=total - total // 2))
            else:
                self.line(self.msg("same_padding", p=total // 2))
        return totals

    # --- weighted layers ------------------------------------------------------------------------
    def conv_params(self, kh: int, kw: int, cin: int, cout: int, groups: int, bias: bool, depthwise: bool) -> None:
        if self.node.module != self.node.id:
            return
        notes = []
        if depthwise and groups == cin:
            inner, numbers = "f·f", f"{kh}·{kw}"
            notes.append(self.msg("depthwise_params"))
        elif groups > 1:
            inner, numbers = "f·f·(n_c_prev/groups)", f"{kh}·{kw}·({cin}/{groups})"
        else:
            inner, numbers = "f·f·n_c_prev", f"{kh}·{kw}·{cin}"
        if bias:
            formula, expression = f"({inner} + 1)·n_c", f"({numbers} + 1)·{cout}"
        else:
            formula, expression = f"{inner}·n_c", f"{numbers}·{cout}"
            notes.append(self.msg("no_bias"))
        eq = self.equation(expression, self.stats.figures.params)
        self.figure_line("label.params", formula, eq, ", ".join(notes) or None)

    def conv_macs(self, kh: int, kw: int, cin: int, groups: int) -> None:
        cout, ho, wo = self.out
        if groups == cin and groups > 1:
            formula, expression = "H_out·W_out·n_c·f·f", f"{ho}·{wo}·{cout}·{kh}·{kw}"
        elif groups > 1:
            formula, expression = "H_out·W_out·n_c·(n_c_prev/groups)·f·f", f"{ho}·{wo}·{cout}·({cin}/{groups})·{kh}·{kw}"
        else:
            formula, expression = "H_out·W_out·n_c·n_c_prev·f·f", f"{ho}·{wo}·{cout}·{cin}·{kh}·{kw}"
        formula, expression = self.batched(formula, expression)
        self.figure_line("label.macs", formula, self.equation(expression, self.stats.figures.macs), tag="macs")


# --- one function per kind of op ----------------------------------------------------------------
def _conv(w: _Writer) -> None:
    node, args = w.node, w.node.args
    op = lookup(node.op)
    cin = w.in_shapes[0][0]
    cout = w.out[0]
    kernel, stride, padding, dilation = op.window(args, w.in_shapes)
    depthwise = _is_depthwise(node, w.in_shapes[0])
    groups = cin if node.op == "dwconv" else args.groups
    same_total = w.padding_note(args.padding, kernel, dilation)
    w.window_sizes(kernel, stride, padding, dilation, False, same_total)
    if depthwise:
        mult = w.msg("multiplier", m=cout // cin) if cout != cin else ""
        w.line(w.msg("channels_depthwise", kh=kernel[0], kw=kernel[1], cin=cin, mult=mult, c=cout))
    elif groups > 1:
        w.line(w.msg("channels_groups", c=cout, g=groups, per=cin // groups))
    else:
        w.line(w.msg("channels_filters", c=cout))
    w.conv_params(kernel[0], kernel[1], cin, cout, groups, args.bias, depthwise)
    w.conv_macs(kernel[0], kernel[1], cin, groups)


def _conv_transpose(w: _Writer) -> None:
    args = w.node.args
    cin, height, width = w.in_shapes[0]
    cout = w.out[0]
    w.line(w.msg("transposed_intro"))
    values = list(
        zip(
            (height, width),
            pair(args.kernel),
            pair(args.stride),
            pair(args.padding),
            pair(args.output_padding),
            pair(args.dilation),
            w.out[1:],
        )
    )
    for axis, (n, f, s, p, extra, d, out) in w.per_axis(values):
        if d == 1:
            formula = "(n - 1)·s - 2p + f + output_padding"
            expression = f"({n} - 1)·{s} - 2·{p} + {f} + {extra}"
        else:
            formula = "(n - 1)·s - 2p + d·(f - 1) + 1 + output_padding"
            expression = f"({n} - 1)·{s} - 2·{p} + {d}·({f} - 1) + 1 + {extra}"
        eq = w.identity(f"{out} = {expression}")
        w.line(w.msg("formula_line", label=w.msg("label.size"), axes=w.msg(f"axis.{axis}"), formula=formula, eq=eq))
        w.set_axis_figure("out", axis, out)
        target = s * n
        need = target - out
        if s > 1 and extra == 0 and 0 < need < max(s, d):
            w.line(w.msg("transposed_output_padding", out=out, target=target, need=need))
            w.set_axis_figure("output_padding_needed", axis, need)
        elif extra:
            w.line(w.msg("transposed_op_used", op=extra))
        if extra and out == target:
            w.line(w.msg("transposed_exact", target=target))
    w.line(w.msg("channels_filters", c=cout))
    kh, kw = pair(args.kernel)
    groups = args.groups
    w.conv_params(kh, kw, cin, cout, groups, args.bias, False)
    if groups > 1:
        formula, expression = "H_in·W_in·n_c_prev·(n_c/groups)·f·f", f"{height}·{width}·{cin}·({cout}/{groups})·{kh}·{kw}"
    else:
        formula, expression = "H_in·W_in·n_c_prev·n_c·f·f", f"{height}·{width}·{cin}·{cout}·{kh}·{kw}"
    formula, expression = w.batched(formula, expression)
    eq = w.equation(expression, w.stats.figures.macs)
    w.figure_line("label.macs", formula, eq, w.msg("transposed_macs_note"), tag="macs")


def _pool(w: _Writer) -> None:
    args = w.node.args
    kernel, stride, padding, dilation = lookup(w.node.op).window(args, w.in_shapes)
    if args.stride is None:
        s = stride[0] if stride[0] == stride[1] else f"{stride[0]}x{stride[1]}"
        w.line(w.msg("pool_stride_default", s=s))
    w.window_sizes(kernel, stride, padding, dilation, args.ceil_mode)
    w.line(w.msg("channels_pool", c=w.out[0]))
    w.line(w.msg("params_pool"), "params")


def _linear(w: _Writer) -> None:
    args = w.node.args
    n_in, n_out = w.in_shapes[0][-1], w.out[-1]
    w.line(w.msg("linear_shape", nin=n_in, nout=n_out))
    if w.node.module == w.node.id:
        if args.bias:
            w.figure_line("label.params", "n_in·n_out + n_out", w.equation(f"{n_in}·{n_out} + {n_out}", w.stats.figures.params))
        else:
            eq = w.equation(f"{n_in}·{n_out}", w.stats.figures.params)
            w.figure_line("label.params", "n_in·n_out", eq, w.msg("no_bias"))
    formula, expression = w.batched("n_in·n_out", f"{n_in}·{n_out}")
    w.figure_line("label.macs", formula, w.equation(expression, w.stats.figures.macs), tag="macs")


def _bn(w: _Writer) -> None:
    channels = w.in_shapes[0][0]
    w.line(w.msg("bn_shape", shape=format_shape(w.out)))
    if w.node.module != w.node.id:
        return
    if w.stats.tensors:
        w.line(w.msg("bn_params", eq=w.equation(f"2·{channels}", w.stats.figures.params)), "params")
    if w.stats.buffer_tensors:
        w.line(w.msg("bn_buffers", eq=w.equation(f"2·{channels} + 1", w.stats.figures.buffers)), "params")


def _tensor_params(w: _Writer) -> None:
    """Parameters of any other op with tensors: the sum of the tensors' sizes."""
    tensors = w.stats.tensors
    if not tensors or w.node.module != w.node.id:
        return
    names = " + ".join(tensors)
    expression = " + ".join("·".join(str(s) for s in shape) or "1" for shape in tensors.values())
    w.line(w.msg("params_tensors", names=names, eq=w.equation(expression, w.stats.figures.params)), "params")


def _flatten(w: _Writer) -> None:
    expression = "·".join(str(s) for s in w.in_shapes[0])
    w.line(w.msg("flatten", eq=w.equation(expression, w.out[0])))


def _fit_note(w: _Writer) -> None:
    fit = getattr(w.node.args, "fit", "none")
    target = fitted_spatial(fit, w.in_shapes)
    if target is not None:
        w.line(w.msg(f"fit_{fit}", hw="x".join(str(s) for s in target)))


def _concat(w: _Writer) -> None:
    _fit_note(w)
    rank = len(w.out)
    dim = w.node.args.dim if w.node.args.dim >= 0 else rank + w.node.args.dim
    expression = " + ".join(str(shape[dim]) for shape in w.in_shapes)
    eq = w.equation(expression, w.out[dim])
    if rank == 3 and dim == 0:
        w.line(w.msg("concat_channels", k=len(w.in_shapes), eq=eq))
        w.line(w.msg("concat_spatial", hw=f"{w.out[1]}x{w.out[2]}"))
    else:
        w.line(w.msg("concat_dim", k=len(w.in_shapes), dim=w.node.args.dim, eq=eq))


def _add(w: _Writer) -> None:
    _fit_note(w)
    w.line(w.msg("add", k=len(w.in_shapes), shape=format_shape(w.out)))


def _mul(w: _Writer) -> None:
    w.line(w.msg("mul", inputs=" × ".join(format_shape(s) for s in w.in_shapes), shape=format_shape(w.out)))


def _global_pool(w: _Writer) -> None:
    _, height, width = w.in_shapes[0]
    eq = w.equation(f"{height}·{width}", height * width)
    w.line(w.msg("global_pool", eq=eq, cin=format_shape(w.in_shapes[0]), cout=format_shape(w.out)))


def _adaptive(w: _Writer) -> None:
    kind = w.msg("kind.max" if "max" in w.node.op else "kind.avg")
    size = f"{w.out[1]}x{w.out[2]}"
    w.line(w.msg("adaptive", kind=kind, size=size, cin=format_shape(w.in_shapes[0]), cout=format_shape(w.out)))


def _activation(w: _Writer) -> None:
    w.line(w.msg("activation", op=w.node.op, shape=format_shape(w.out)))


def _softmax(w: _Writer) -> None:
    w.line(w.msg("softmax", dim=w.node.args.dim, shape=format_shape(w.out)))


def _dropout(w: _Writer) -> None:
    w.line(w.msg(w.node.op, p=w.node.args.p, shape=format_shape(w.out)))


def _identity(w: _Writer) -> None:
    w.line(w.msg("identity", shape=format_shape(w.out)))


def _lrn(w: _Writer) -> None:
    w.line(w.msg("lrn", size=w.node.args.size, shape=format_shape(w.out)))


def _channel_shuffle(w: _Writer) -> None:
    channels, groups = w.out[0], w.node.args.groups
    w.line(w.msg("channel_shuffle", c=channels, g=groups, per=channels // groups))


def _reshape(w: _Writer) -> None:
    w.line(w.msg("reshape", n=num(numel(w.in_shapes[0])), shape=format_shape(w.out)))


def _upsample(w: _Writer) -> None:
    args = w.node.args
    cin, cout = format_shape(w.in_shapes[0]), format_shape(w.out)
    hw = f"{w.out[1]}x{w.out[2]}"
    if args.scale is not None:
        values = list(zip(w.in_shapes[0][1:], w.out[1:]))
        for axis, (n, out) in w.per_axis(values):
            eq = w.identity(f"{out} = floor({n}·{args.scale})")
            w.line(w.msg("upsample_scale", mode=args.mode, scale=args.scale, axes=w.msg(f"axis.{axis}"), eq=eq))
            w.set_axis_figure("out", axis, out)
    elif args.size is not None:
        w.line(w.msg("upsample_size", mode=args.mode, hw=hw, cin=cin, cout=cout))
    else:
        w.line(w.msg("upsample_match", mode=args.mode, other=w.node.inputs[1], hw=hw, cin=cin, cout=cout))


def _crop(w: _Writer) -> None:
    cin, cout = format_shape(w.in_shapes[0]), format_shape(w.out)
    if w.node.args.size is None:
        w.line(w.msg("crop_match", other=w.node.inputs[1], cin=cin, cout=cout))
    else:
        w.line(w.msg("crop", cin=cin, cout=cout))


def _pad(w: _Writer) -> None:
    _, height, width = w.in_shapes[0]
    _, out_h, out_w = w.out
    # the op's amounts are (left, right, top, bottom); the output shape already holds their sums
    from archspec.ops.reshape import _pad_amounts

    left, right, top, bottom = _pad_amounts(w.node.args, w.in_shapes)
    values = [(height, top, bottom, out_h), (width, left, right, out_w)]
    for axis, (n, before, after, out) in w.per_axis(values):
        eq = w.identity(f"{out} = {n} + {before} + {after}")
        w.line(w.msg("pad_size", axes=w.msg(f"axis.{axis}"), eq=eq))
        w.set_axis_figure("out", axis, out)


def _generic(w: _Writer) -> None:
    op = lookup(w.node.op)
    cin = ", ".join(format_shape(s) for s in w.in_shapes)
    w.line(w.msg("generic", summary=op.summary if op else w.node.op, op=w.node.op, cin=cin, cout=format_shape(w.out)))
    _tensor_params(w)


def _norm(w: _Writer) -> None:
    args = w.node.args
    shape = format_shape(w.out)
    if w.node.op == "groupnorm":
        w.line(w.msg("groupnorm", g=args.groups, shape=shape))
    else:
        w.line(w.msg("layernorm", dims=args.dims, shape=shape))
    _tensor_params(w)


EXPLAINERS: dict[str, Callable[[_Writer], None]] = {
    "conv": _conv,
    "dwconv": _conv,
    "conv_transpose": _conv_transpose,
    "maxpool": _pool,
    "avgpool": _pool,
    "linear": _linear,
    "bn": _bn,
    "groupnorm": _norm,
    "layernorm": _norm,
    "lrn": _lrn,
    "flatten": _flatten,
    "reshape": _reshape,
    "concat": _concat,
    "add": _add,
    "mul": _mul,
    "global_avgpool": _global_pool,
    "adaptive_avgpool": _adaptive,
    "adaptive_maxpool": _adaptive,
    "softmax": _softmax,
    "dropout": _dropout,
    "drop_path": _dropout,
    "identity": _identity,
    "channel_shuffle": _channel_shuffle,
    "upsample": _upsample,
    "crop": _crop,
    "pad": _pad,
    **{name: _activation for name in ACTIVATIONS},
}


# --- pairs: depthwise-separable and 1x1 bottleneck ---------------------------------------------
def _pairs(w: _Writer) -> None:
    node = w.node
    if node.args.groups != 1 or len(w.out) != 3:
        return
    source = _trace_back(w.ir, node.inputs[0])
    if source.op not in ("conv", "dwconv"):
        return
    source_in = w.ir.shapes[source.inputs[0]]
    kernel = pair(node.args.kernel)
    if _is_pointwise(node) and pair(node.args.stride) == (1, 1) and _is_depthwise(source, source_in):
        _separable(w, source, source_in)
    elif kernel != (1, 1) and _is_pointwise(source) and w.ir.shapes[source.id][0] < source_in[0]:
        _bottleneck(w, source, source_in)


def _separable(w: _Writer, dw: IRNode, dw_in: Shape) -> None:
    msg, stats, conv = w.msg, w.context.stats, lookup("conv")
    cin, cout = dw_in[0], w.out[0]
    multiplier = w.ir.shapes[dw.id][0] // cin
    kh, kw = pair(dw.args.kernel)
    plain_args = _plain_conv(dw.args, cout)
    plain_out = conv.shape(plain_args, [dw_in])
    plain = conv.macs(plain_args, [dw_in], plain_out) * w.batch
    dw_macs, pw_macs = stats[dw.id].figures.macs, stats[w.node.id].figures.macs
    separable = dw_macs + pw_macs
    w.line(msg("sep_title", dw=dw.id, pw=w.node.id), "pair")
    w.line(msg("sep_cost", eq=w.equation(f"{num(dw_macs)} + {num(pw_macs)}", separable)), "pair")
    _, expression = w.batched("", f"{plain_out[1]}·{plain_out[2]}·{cout}·{cin}·{kh}·{kw}")
    w.line(msg("sep_plain", kh=kh, kw=kw, cin=cin, cout=cout, eq=w.equation(expression, plain)), "pair")
    ratio = separable / plain
    m = "1" if multiplier == 1 else str(multiplier)
    course = "1/n_c' + 1/f²" if multiplier == 1 else f"{m}/n_c' + {m}/f²"
    value = multiplier / cout + multiplier / (kh * kw)
    formula = f"{m}/{cout} + {m}/{kh * kw}"
    w.line(
        msg(
            "sep_ratio",
            sep=num(separable),
            plain=num(plain),
            ratio=f"{ratio:.3f}",
            course=course,
            formula=formula,
            value=f"{value:.3f}",
            times=f"{plain / separable:.2f}",
        ),
        "pair",
    )
    w.exp.figures.update(
        {
            "separable.depthwise_macs": dw_macs,
            "separable.pointwise_macs": pw_macs,
            "separable.macs": separable,
            "separable.plain_macs": plain,
            "separable.ratio": ratio,
            "separable.formula": value,
        }
    )


def _bottleneck(w: _Writer, bottleneck: IRNode, bottleneck_in: Shape) -> None:
    msg, stats, conv = w.msg, w.context.stats, lookup("conv")
    cin, cmid, cout = bottleneck_in[0], w.ir.shapes[bottleneck.id][0], w.out[0]
    kh, kw = pair(w.node.args.kernel)
    # the direct convolution reads the bottleneck's input channels at this conv's input size
    direct_in = (cin, *w.in_shapes[0][1:])
    direct_args = _plain_conv(w.node.args, w.node.args.out)
    direct_out = conv.shape(direct_args, [direct_in])
    direct = conv.macs(direct_args, [direct_in], direct_out) * w.batch
    bottleneck_macs, conv_macs = stats[bottleneck.id].figures.macs, w.stats.figures.macs
    total = bottleneck_macs + conv_macs
    w.line(msg("bottleneck_title", b=bottleneck.id, cin=cin, cmid=cmid, kh=kh, kw=kw), "pair")
    _, expression = w.batched("", f"{direct_out[1]}·{direct_out[2]}·{cout}·{cin}·{kh}·{kw}")
    w.line(msg("bottleneck_direct", kh=kh, kw=kw, cin=cin, eq=w.equation(expression, direct)), "pair")
    eq = w.equation(f"{num(bottleneck_macs)} + {num(conv_macs)}", total)
    w.line(msg("bottleneck_with", b=bottleneck.id, node=w.node.id, eq=eq), "pair")
    ratio = direct / total
    w.line(msg("bottleneck_ratio", direct=num(direct), total=num(total), ratio=f"{ratio:.2f}"), "pair")
    w.exp.figures.update(
        {
            "bottleneck.direct_macs": direct,
            "bottleneck.reduce_macs": bottleneck_macs,
            "bottleneck.conv_macs": conv_macs,
            "bottleneck.macs": total,
            "bottleneck.ratio": ratio,
        }
    )
