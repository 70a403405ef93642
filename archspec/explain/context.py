"""What an op's explain rule is given: an `ExplainContext`, one per explained layer.

An op entry's `explain` rule (`archspec.ops.registry.Op.explain`) takes the context and adds
sentences to the layer's explanation through it. The sentences are templates of the language's
catalogue (`ctx.msg(key, ...)`, archspec.explain.messages); every arithmetic identity quoted is
recorded (`ctx.equation`, `ctx.identity`) so it can be checked; the numbers are the analysis'
(`ctx.stats`). Rules never import archspec.explain: the context brings all they need, so the op
modules that hold them import nothing that imports them back.
"""
from __future__ import annotations

from typing import Any, Callable

from archspec.explain.explanation import Explanation
from archspec.explain.messages import Messages, num
from archspec.explain.windows import WindowEquations
from archspec.ir.graph import IRGraph, IRNode, Shape
from archspec.ops.catalog import lookup
from archspec.ops.common import format_shape
from archspec.ops.registry import Op
from archspec.passes.counts import LayerStats

AXES = ("height", "width")


class ExplainContext(WindowEquations):
    """One layer being explained: its node (`node`, `args`) and op entry (`entry`), its input
    and output shapes (`in_shapes`; `out`, the first output's, and `outputs`, every output's;
    without the batch), the analysis' figures (`stats`, `batch`), the language (`msg`), and the
    `explanation` the rule adds to."""

    def __init__(self, ir: IRGraph, layers: dict[str, LayerStats], batch: int, msg: Messages, node: IRNode):
        self.ir = ir
        self.node = node
        self.args = node.args
        self.entry: Op | None = lookup(node.op)
        self.stats = layers[node.id]
        self.batch = batch
        self.msg = msg
        self.in_shapes = [ir.shapes[value] for value in node.inputs]
        self.out = self.stats.output_shape
        self.outputs = self.stats.output_shapes or (self.out,)
        self._layers = layers
        self.afterwards: list[Callable[[ExplainContext], None]] = []
        self.explanation = Explanation(node.id, node.op, self._header())

    def _header(self) -> str:
        if len(self.in_shapes) == 1:
            inputs = format_shape(self.in_shapes[0])
        else:
            inputs = ", ".join(f"{format_shape(s)} ({name})" for s, name in zip(self.in_shapes, self.node.inputs))
        return self.msg("header", node=self.node.id, op=self.node.op, inputs=inputs, output=self.outputs_text())

    def outputs_text(self) -> str:
        """`58x28x28`, or every output of an op with several: `58x28x28, 58x28x28`."""
        return ", ".join(format_shape(s) for s in self.outputs)

    # --- the graph around the layer -------------------------------------------------------------
    @property
    def owns_weights(self) -> bool:
        """False for a node that reuses another's weights (shared weights count once, there)."""
        return self.node.module == self.node.id

    def shape(self, value: str) -> Shape:
        return self.ir.shapes[value]

    def layer(self, node_id: str) -> LayerStats:
        """The analysis of another layer (a comparison with the layers before this one)."""
        return self._layers[node_id]

    def source(self, value: str) -> IRNode:
        """The node that computes `value`, looking through the shape-keeping ops in between
        (trait `pass_through`: BN, activations, dropout): what a conv really reads from in
        conv -> bn -> relu -> conv."""
        node = self.ir.node(self.ir.producer(value))
        while len(node.inputs) == 1 and (entry := lookup(node.op)) is not None and entry.is_("pass_through"):
            node = self.ir.node(self.ir.producer(node.inputs[0]))
        return node

    @staticmethod
    def lookup(name: str) -> Op | None:
        """Another op's entry, for a rule that works out a layer the spec does not have (the
        plain convolution a depthwise-separable pair is compared with)."""
        return lookup(name)

    def then(self, rule: Callable[[ExplainContext], None]) -> None:
        """Run `rule` after the layer's own lines and the notes on shared or frozen weights."""
        self.afterwards.append(rule)

    # --- writing ------------------------------------------------------------------------------
    @property
    def figures(self) -> dict[str, float]:
        return self.explanation.figures

    @staticmethod
    def num(n: int | float) -> str:
        return num(n)

    def line(self, text: str, tag: str = "shape") -> None:
        self.explanation.lines.append(text)
        self.explanation.tags.append(tag)

    def identity(self, text: str) -> str:
        """Record an arithmetic identity shown in the text (both sides evaluate equal)."""
        self.explanation.equations.append(text)
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
            self.figures[f"{name}.{key}"] = value

    def tensor_params(self) -> None:
        """The parameters of an op with tensors: the sum of the tensors' sizes."""
        tensors = self.stats.tensors
        if not tensors or not self.owns_weights:
            return
        names = " + ".join(tensors)
        expression = " + ".join("·".join(str(s) for s in shape) or "1" for shape in tensors.values())
        self.line(self.msg("params_tensors", names=names, eq=self.equation(expression, self.stats.figures.params)), "params")


def generic(ctx: ExplainContext) -> None:
    """The explanation of an op whose entry has no `explain` rule: its summary and shapes."""
    summary = ctx.entry.summary if ctx.entry else ctx.node.op
    cin = ", ".join(format_shape(s) for s in ctx.in_shapes)
    ctx.line(ctx.msg("generic", summary=summary, op=ctx.node.op, cin=cin, cout=ctx.outputs_text()))
    ctx.tensor_params()


def rule_of(ctx: ExplainContext) -> Callable[[Any], None]:
    return ctx.entry.explain if ctx.entry is not None and ctx.entry.explain is not None else generic
