"""Per-layer explanations: each layer's formulas with the numbers filled in, the way the course
writes them.

Every number comes from the IR and the analysis: output sizes from `LayerStats.output_shape`
(the op's shape rule), parameters and MACs from `LayerStats.figures` (the op's rules). What is
said about a layer is its op entry's `explain` rule (archspec.ops), given an `ExplainContext`
(archspec.explain.context); an op without one gets its summary and shapes. The formula's terms
(n, p, f, s, channels) come from the node's arguments and input shapes, so every equation
printed is plain arithmetic that can be checked (`Explanation.equations`).
"""
from __future__ import annotations

from archspec.errors import SpecError, did_you_mean
from archspec.explain.context import ExplainContext, rule_of
from archspec.explain.explanation import Explanation, format_explanations
from archspec.explain.messages import Messages, num
from archspec.ir.graph import IRGraph
from archspec.passes.counts import Analysis

__all__ = ["Explanation", "explain_layers", "format_explanations"]


def explain_layers(
    ir: IRGraph, analysis: Analysis, nodes: list[str] | None = None, lang: str | None = None
) -> list[Explanation]:
    """Explain the layers of `ir` (analysed as `analysis`) in graph order. `nodes` picks layers by
    name; a block's name (`layer1`, `layer1.0`) picks every layer inside it. Unknown names raise
    SpecError (an ArchspecError) with the closest names as a hint."""
    msg = Messages(lang)
    layers = {layer.name: layer for layer in analysis.layers}
    return [
        _explain(ExplainContext(ir, layers, analysis.batch, msg, ir.node(name))) for name in _select(ir, analysis, nodes)
    ]


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


def _explain(ctx: ExplainContext) -> Explanation:
    """The op's rule, then the notes on shared or frozen weights, then what the rule asked to
    come last (a comparison with the layers before it)."""
    figures = ctx.stats.figures
    ctx.figures.update(params=figures.params, macs=figures.macs, buffers=figures.buffers)
    rule_of(ctx)(ctx)
    if not ctx.owns_weights:
        ctx.line(ctx.msg("shared", module=ctx.node.module), "params")
    elif not ctx.node.trainable and figures.params:
        ctx.line(ctx.msg("frozen", n=num(figures.params)), "params")
    for rule in ctx.afterwards:
        rule(ctx)
    return ctx.explanation
