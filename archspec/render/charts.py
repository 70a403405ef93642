"""The file reports' charts, drawn with matplotlib as SVG text: parameters and MACs per stage,
activation memory per layer, and the library's params-vs-MACs scatter plot.

matplotlib is imported inside the functions, and this module only for file reports. Stages are
archspec.passes.stages' (the stages of `compare`).
"""
from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING, Any

from archspec.render.dot_nodes import human as short
from archspec.render.figures import human
from archspec.render.palette import FAMILIES, family

if TYPE_CHECKING:
    from archspec.passes.memory import MemoryEstimate
    from archspec.pipeline import Compiled

TASK_COLOURS = {
    "classification": "#3d78b5",
    "segmentation": "#e07b00",
    "detection": "#4f8f3c",
    "embedding": "#8e44ad",
    None: "#7f7f7f",
}


def new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)  # a canvas that can measure text (label placement); no pyplot state
    return figure


def svg_text(figure, salt: str) -> str:
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": salt, "svg.fonttype": "none", "font.size": 9}):
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    return clean_svg(buffer.getvalue())


def clean_svg(svg: str) -> str:
    """SVG text fit to inline in HTML: no XML prolog, doctype or comments."""
    svg = re.sub(r"<\?xml[^>]*\?>", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>", "", svg)
    return re.sub(r"<!--.*?-->", "", svg, flags=re.DOTALL).strip()


def human_formatter():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _: short(int(value)) if value == int(value) else f"{value:g}")


# --- parameters and MACs per stage ------------------------------------------------------------------
def stages_svg(compiled: "Compiled") -> str:
    rows = compiled.stages
    names = [stage.name for stage in rows][::-1]
    figure = new_figure(9.0, min(1.2 + 0.22 * len(rows), 9.0))
    left, right = figure.subplots(1, 2, sharey=True)
    positions = list(range(len(rows)))
    for axes, values, colour, title in (
        (left, [s.params for s in rows][::-1], "#6a4fa3", "parameters"),
        (right, [s.macs for s in rows][::-1], "#3d78b5", f"MACs (batch {compiled.analysis.batch})"),
    ):
        bars = axes.barh(positions, values, color=colour, height=0.7)
        axes.set_title(title, loc="left", fontsize=10)
        axes.xaxis.set_major_formatter(human_formatter())
        axes.spines[["top", "right"]].set_visible(False)
        axes.grid(axis="x", color="#e5e5e5", linewidth=0.6)
        axes.set_axisbelow(True)
        top = max(values, default=0) or 1
        axes.set_xlim(0, top * 1.22)
        for bar, value in zip(bars, values):
            if value:
                axes.text(bar.get_width() + top * 0.01, bar.get_y() + bar.get_height() / 2, human(value),
                          va="center", fontsize=7, color="#444444")
    left.set_yticks(positions, names, fontsize=8)
    return svg_text(figure, f"{compiled.analysis.name}-stages")


# --- activation memory per layer ----------------------------------------------------------------------
def memory_svg(compiled: "Compiled", memory: "MemoryEstimate") -> str:
    layers = compiled.analysis.layers
    mib = 1 << 20
    per_layer = {m.name: m for m in memory.layers}
    outputs = [per_layer[layer.name].output / mib for layer in layers]
    saved = [per_layer[layer.name].saved / mib for layer in layers]
    families = [family(layer.op) for layer in layers]
    figure = new_figure(9.0, 3.4)
    axes = figure.subplots()
    x = list(range(len(outputs)))
    crowded = len(x) > 60
    axes.bar(x, outputs, width=1.0 if crowded else 0.8, color=[FAMILIES[f][0] for f in families],
             edgecolor=[FAMILIES[f][1] for f in families], linewidth=0.3 if crowded else 0.6)
    axes.step(x, saved, where="mid", color="#b34747", linewidth=1.1)
    axes.set_ylabel(f"MiB ({memory.dtype}, batch {memory.batch})")
    axes.set_xlabel("layer (execution order)")
    axes.set_xlim(-0.5, len(x) - 0.5)
    axes.spines[["top", "right"]].set_visible(False)
    axes.grid(axis="y", color="#e5e5e5", linewidth=0.6)
    axes.set_axisbelow(True)
    top = max(outputs + saved, default=0) or 1
    axes.set_ylim(0, top * 1.12)
    _stage_bands(axes, stage_spans(compiled), top, len(x))
    _memory_legend(figure, families)
    axes.set_title("output tensor of each layer (bars, by op family) and what autograd keeps for backward (line)",
                   loc="left", fontsize=9)
    return svg_text(figure, f"{compiled.analysis.name}-memory")


def stage_spans(compiled: "Compiled") -> list[tuple[str, int]]:
    """(stage name, layers) of consecutive layers in one stage; "" for layers in none."""
    stage_of = {name: stage.name for stage in compiled.stages for name in stage.layers}
    spans: list[list[Any]] = []
    for layer in compiled.analysis.layers:
        key = stage_of.get(layer.name, "")
        if spans and spans[-1][0] == key:
            spans[-1][1] += 1
        else:
            spans.append([key, 1])
    return [(name, size) for name, size in spans]


def _stage_bands(axes, spans: list[tuple[str, int]], top: float, layers: int) -> None:
    """Stages as alternating bands, named where there is room."""
    start, shade = 0, False
    for name, size in spans:
        if shade:
            axes.axvspan(start - 0.5, start + size - 0.5, color="#eef1f6", zorder=0)
        if name and size >= max(2, layers / 40):
            axes.text(start - 0.3, top * 1.1, name, fontsize=6.5, color="#5d6675", va="top", ha="left", clip_on=True)
        shade = not shade
        start += size


def _memory_legend(figure, families: list[str]) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    used = list(dict.fromkeys(families))
    handles = [Patch(facecolor=FAMILIES[f][0], edgecolor=FAMILIES[f][1], label=FAMILIES[f][2].split(" (")[0]) for f in used]
    handles.append(Line2D([], [], color="#b34747", label="saved for backward"))
    figure.legend(handles=handles, fontsize=7, frameon=False, ncols=len(handles), loc="outside lower center")


# --- the library's scatter plot -------------------------------------------------------------------------
def scatter_svg(results: "list[Compiled]") -> str:
    """Params vs MACs of every spec, log axes, each point labelled, coloured by task."""
    figure = new_figure(9.0, 6.2)
    axes = figure.subplots()
    axes.set_xscale("log")
    axes.set_yscale("log")
    points = [(c.analysis.totals.params, max(c.analysis.totals.macs, 1), c.analysis.name, c.meta.get("task"))
              for c in results if c.analysis.totals.params > 0]
    for task in dict.fromkeys(t for *_, t in points):
        chosen = [(p, m) for p, m, _, t in points if t == task]
        axes.scatter([p for p, _ in chosen], [m for _, m in chosen], s=28, color=TASK_COLOURS.get(task, "#7f7f7f"),
                     edgecolor="white", linewidth=0.6, zorder=3, label=task or "other")
    axes.set_xlabel("parameters")
    axes.set_ylabel("MACs (batch 1)")
    axes.xaxis.set_major_formatter(human_formatter())
    axes.yaxis.set_major_formatter(human_formatter())
    axes.grid(which="major", color="#e5e5e5", linewidth=0.6)
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(fontsize=8, frameon=False, loc="upper left")
    if points:
        xs = [p for p, *_ in points]
        ys = [m for _, m, *_ in points]
        axes.set_xlim(min(xs) / 2.5, max(xs) * 4)
        axes.set_ylim(min(ys) / 2.5, max(ys) * 3)
        _place_labels(figure, axes, points)
    axes.set_title("spec library: parameters vs MACs", loc="left", fontsize=10)
    return svg_text(figure, "library-scatter")


LABEL_OFFSETS = [(6, 3), (6, -10), (-6, 3), (-6, -10), (0, 8), (0, -15), (10, 12), (10, -18), (-10, 12), (-10, -18),
                 (14, -3), (-14, -3)]


def _place_labels(figure, axes, points) -> None:
    """Label each point where the label overlaps no earlier label and no point (greedy)."""
    figure.canvas.draw()  # fixes the layout, so display coordinates are final
    renderer = figure.canvas.get_renderer()
    to_display = axes.transData.transform
    taken = []
    for x, y, _, _ in points:
        px, py = to_display((x, y))
        taken.append((px - 3, py - 3, px + 3, py + 3))
    for x, y, name, _ in sorted(points, key=lambda p: (p[0], p[1])):
        best = None
        for dx, dy in LABEL_OFFSETS:
            text = axes.annotate(name, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=7,
                                 ha="left" if dx >= 0 else "right", va="bottom", color="#333333")
            box = text.get_window_extent(renderer)
            rect = (box.x0, box.y0, box.x1, box.y1)
            overlaps = sum(_overlap(rect, other) for other in taken)
            if best is None or overlaps < best[0]:
                if best is not None:
                    best[1].remove()
                best = (overlaps, text, rect)
            else:
                text.remove()
            if overlaps == 0:
                break
        taken.append(best[2])


def _overlap(a, b) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return width * height if width > 0 and height > 0 else 0.0
