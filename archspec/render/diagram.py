"""IR (+ analysis) -> a Graphviz diagram (DOT), and rendering it with the system `dot`.

What the diagram shows:
- one node per op, labelled by its op entry (`conv 3x3/2, 128`, `maxpool 3x3/2`, `linear 1000`),
  coloured by the entry's family (legend in the corner); with `params=True` also its parameters
  and MACs;
- one edge per tensor, labelled with its shape (no batch);
- blocks and stages as nested clusters labelled with the block's name; `depth=N` draws every
  block at nesting depth N as one node (the same folding as `report --depth N`);
- merges as their own shapes (a one-symbol label, add's + or mul's x, in a circle; concat a
  trapezium); shortcut edges (residuals, dense connections, projection shortcuts, SE gates)
  dashed; bridges (a concat input that comes around a part of the network working at a lower
  resolution: U-Net's encoder -> decoder copies) dashed, thick and orange; size references (the
  second input of `upsample`, `crop`, `pad`) dotted;
- an encoder-decoder is drawn as a U: the decoder runs back up next to the encoder, each bridge
  joins two nodes placed on the same rank, without a label (the encoder's edge beside it carries
  the same shape; the bridge's tooltip says it);
- a drawing longer than `WRAP_RANKS` ranks is cut into side-by-side columns at block
  boundaries (a block cut in two is drawn as two boxes, the second "continued"); the edges
  between columns end and start again at connectors (`to column 2`, `from column 1`);
- parallel branches left to right in spec order (the order their concat takes them in); a name
  under an op's label where the user gave it, not the automatic `conv1`.

Three steps, each in its own module: layout (`archspec.render.layout` and `.wrap`:
pure graph analysis), DOT emission (`archspec.render.dot`) and the graphviz subprocess
(`archspec.render.dot_command`).
`diagram_source` gives the DOT text (no system tool needed); `render` runs `dot` on it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from archspec.errors import ArchspecError
from archspec.ir.graph import IRGraph
from archspec.render.dot import emit
from archspec.render.dot_command import render, render_svg_text
from archspec.render.dot_nodes import NodeLabels, human
from archspec.render.layout import auto_depth, classify_edges, cluster_tree, fitted_layout, layout
from archspec.render.palette import FAMILIES, family
from archspec.render.wrap import columns, wrapped

__all__ = [  # what the commands, the HTML report and the tests use, wherever it lives
    "FAMILIES", "FORMATS", "RANKDIRS", "WRAP_RANKS", "auto_depth", "build_artifacts", "classify_edges", "columns",
    "diagram", "diagram_source", "family", "human", "layout", "render", "render_svg_text",
]

FORMATS = ("svg", "png", "pdf", "dot")
RANKDIRS = ("TB", "LR")
WRAP_RANKS = 110  # a drawing longer than this many ranks is laid out in side-by-side columns


def diagram(
    ir: IRGraph,
    analysis: Any = None,
    depth: int | None = None,
    rankdir: str = "TB",
    params: bool = False,
    title: str | None = None,
    wrap: int | None = WRAP_RANKS,
):
    """The diagram as a `graphviz.Digraph` (its `.source` is the DOT text).

    `wrap`: cut a drawing longer than this many ranks into columns (None: one long column)."""
    rankdir = rankdir.upper()
    if rankdir not in RANKDIRS:
        raise ArchspecError(f"--rankdir must be TB or LR, not '{rankdir}'")
    if params and analysis is None:
        from archspec.passes.counts import analyze

        analysis = analyze(ir)
    plan, column = wrapped(fitted_layout(ir, depth or None), wrap)
    clusters = cluster_tree(ir, plan, column)
    labels = NodeLabels(ir, repeats=clusters.repeats)
    if params:
        labels.layer_figures = {layer.name: layer.figures for layer in analysis.layers}
        labels.block_figures = {block.name: block.figures for block in analysis.blocks}
    if title is None and analysis is not None:
        totals = analysis.totals
        title = f"{ir.name}: {human(totals.params)} params, {human(totals.macs)} MACs"
    return emit(ir, plan, clusters, labels, rankdir=rankdir, title=title)


def diagram_source(ir: IRGraph, analysis: Any = None, **options: Any) -> str:
    return diagram(ir, analysis, **options).source


def build_artifacts(folder: Path, ir: IRGraph, analysis: Any) -> tuple[list[Path], str | None]:
    """For `archspec build`: diagram.dot always, diagram.svg when `dot` exists; never fails.

    Returns the files written and a one-line note when the SVG was left out."""
    from archspec.files import write_atomic

    source = diagram_source(ir, analysis, depth=auto_depth(ir))
    written = [write_atomic(folder / "diagram.dot", source)]
    try:
        written.append(write_atomic(folder / "diagram.svg", render(source, "svg")))
    except ArchspecError as err:
        return written, f"diagram.svg not written: {err}"
    return written, None
