"""The file reports' charts, drawn with matplotlib as SVG text: parameters and MACs per stage,
activation memory per layer, and the library's params-vs-MACs scatter plot.

matplotlib is imported inside the functions, and this module only for file reports. Stages, and
which layers are in which (the memory chart's bands), are archspec.passes.stages' (as `compare`'s).
Byte figures use archspec.render.figures' unit rule. Charts give their parts SVG ids (`label-NAME`,
`stage-band-NAME`, `saved-for-backward`) that tests and pages can find.
"""
from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING

from archspec.render.dot_nodes import human as short
from archspec.passes.stages import stage_runs
from archspec.render.figures import byte_unit, human
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
SAVED_COLOUR = "#b34747"
BAND_COLOUR = "#eef1f6"


def memory_svg(compiled: "Compiled", memory: "MemoryEstimate") -> str:
    """Two panels over the same layers: each layer's output tensor (bars, by op family) and, below,
    what autograd keeps of it for backward (a filled step line), so the two never hide each other
    however many layers there are. Bytes in one unit, the one human_bytes picks for the largest."""
    layers = compiled.analysis.layers
    per_layer = {m.name: m for m in memory.layers}
    unit, size = byte_unit(max([max(m.output, m.saved) for m in memory.layers], default=0))
    outputs = [per_layer[layer.name].output / size for layer in layers]
    saved = [per_layer[layer.name].saved / size for layer in layers]
    families = [family(layer.op) for layer in layers]
    figure = new_figure(9.0, 4.8)
    bars, kept = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    x = list(range(len(layers)))
    solid = len(x) > 60
    if solid:  # bars a few pixels wide: in the family's strong colour, no outline
        bars.bar(x, outputs, width=1.0, color=[FAMILIES[f][1] for f in families], linewidth=0)
    else:
        bars.bar(x, outputs, width=0.8, color=[FAMILIES[f][0] for f in families],
                 edgecolor=[FAMILIES[f][1] for f in families], linewidth=0.6)
    kept.fill_between(x, saved, step="mid", color=SAVED_COLOUR, alpha=0.25, linewidth=0)
    kept.step(x, saved, where="mid", color=SAVED_COLOUR, linewidth=0.9, gid="saved-for-backward")
    runs = stage_runs(compiled.analysis, compiled.stages)
    for axes, values, label in ((bars, outputs, "output"), (kept, saved, "saved")):
        _memory_axes(axes, values, f"{label}, {unit}")
        _stage_bands(axes, runs, named=axes is bars)
    bars.set_title(f"output tensor of each layer, by op family ({memory.dtype}, batch {memory.batch})", loc="left", fontsize=9)
    kept.set_title("saved for backward: what autograd keeps of each layer until its backward", loc="left", fontsize=9)
    kept.set_xlim(-0.5, len(x) - 0.5)
    kept.set_xlabel("layer (execution order)")
    _memory_legend(figure, families, solid)
    _name_bands(figure, bars, runs)
    return svg_text(figure, f"{compiled.analysis.name}-memory")


def _memory_axes(axes, values: list[float], ylabel: str) -> None:
    axes.set_ylabel(ylabel)
    axes.spines[["top", "right"]].set_visible(False)
    axes.grid(axis="y", color="#e5e5e5", linewidth=0.6)
    axes.set_axisbelow(True)
    axes.set_ylim(0, (max(values, default=0) or 1) * 1.15)


def _stage_bands(axes, runs: list[tuple[str | None, int]], named: bool) -> None:
    """Every other stage (archspec.passes.stages) as a shaded band; layers in no stage unshaded."""
    start, shade = 0, False
    for name, size in runs:
        if name is not None:
            if shade:
                axes.axvspan(start - 0.5, start + size - 0.5, color=BAND_COLOUR, zorder=0,
                             gid=f"stage-band-{name}" if named else None)
            shade = not shade
        start += size


def _name_bands(figure, axes, runs: list[tuple[str | None, int]]) -> None:
    """Stage names along the top of the bars, each where it fits its band and clears the last one named."""
    figure.canvas.draw()  # final layout, then frozen: the names are measured where they will be drawn
    figure.set_layout_engine("none")
    renderer, ceiling = figure.canvas.get_renderer(), axes.get_ylim()[1]
    start, free_from = 0, float("-inf")
    for name, size in runs:
        band_end = axes.transData.transform((start + size - 0.5, 0))[0]
        for label in dict.fromkeys((name, name.rsplit(".", 1)[-1])) if name else ():  # `features.denseblock1`, else `denseblock1`
            text = axes.text(start - 0.3, ceiling * 0.99, label, fontsize=6.5, color="#5d6675", va="top", ha="left")
            box = text.get_window_extent(renderer)
            if box.x0 >= free_from and box.x1 <= band_end + 2:  # inside its band, clear of the last name
                free_from = box.x1 + 4
                break
            text.remove()
        start += size


def _memory_legend(figure, families: list[str], solid: bool) -> None:
    from matplotlib.patches import Patch

    used = list(dict.fromkeys(families))
    handles = [Patch(facecolor=FAMILIES[f][1 if solid else 0], edgecolor=FAMILIES[f][1], label=FAMILIES[f][2].split(" (")[0])
               for f in used]
    handles.append(Patch(facecolor=SAVED_COLOUR, alpha=0.5, label="saved for backward (lower panel)"))
    figure.legend(handles=handles, fontsize=7, frameon=False, ncols=min(len(handles), 6), loc="outside lower center")


# --- the library's scatter plot -------------------------------------------------------------------------
def scatter_svg(results: "list[Compiled]") -> str:
    """Params vs MACs of every spec, log axes, coloured by task, each point labelled where its
    label meets no other label, point or the legend (`_place_labels`)."""
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
    axes.set_title("spec library: parameters vs MACs", loc="left", fontsize=10)
    if points:
        xs = [p for p, *_ in points]
        ys = [m for _, m, *_ in points]
        axes.set_xlim(min(xs) / 2.5, max(xs) * 4)
        axes.set_ylim(min(ys) / 2.5, max(ys) * 3)
        _place_labels(figure, axes, points)
    return svg_text(figure, "library-scatter")


# label spots: rings around the point (radius in points, nearest first), each at evenly spaced
# angles from the right; a label beyond LEADER_FROM points gets a thin line back to its point
LABEL_RINGS = (3, 7, 12, 18, 25, 33, 42, 52, 64, 78)
LABEL_ANGLES = 16
LEADER_FROM = 10
LABEL_SIZE = 7

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in display pixels


def _place_labels(figure, axes, points) -> None:
    """Label each point where the label's box meets no other label, no point and not the legend,
    inside the axes: the nearest free spot on the rings (greedy, most crowded points first)."""
    import math

    figure.canvas.draw()  # lays out the axes; then frozen, or the labels would shrink them and move the points
    figure.set_layout_engine("none")
    renderer, scale = figure.canvas.get_renderer(), figure.dpi / 72
    centres = [tuple(axes.transData.transform((x, y))) for x, y, *_ in points]
    taken: list[Box] = [(px - 3 * scale, py - 3 * scale, px + 3 * scale, py + 3 * scale) for px, py in centres]
    legend = axes.get_legend()
    if legend is not None:
        box = legend.get_window_extent(renderer)
        taken.append((box.x0, box.y0, box.x1, box.y1))
    frame = axes.get_window_extent(renderer)
    crowd = [sum(math.dist(c, other) < 40 * scale for other in centres) for c in centres]
    for index in sorted(range(len(points)), key=lambda i: (-crowd[i], centres[i])):
        (px, py), name = centres[index], points[index][2]
        width, height = _text_size(axes, renderer, name)
        spots = [(r, _spot(px, py, width, height, r * scale, 2 * math.pi * k / LABEL_ANGLES))
                 for r in LABEL_RINGS for k in range(LABEL_ANGLES)]
        inside = [(r, b) for r, b in spots if b[0] >= frame.x0 and b[1] >= frame.y0 and b[2] <= frame.x1 and b[3] <= frame.y1]
        free = ((r, b) for r, b in inside if not any(_overlap(b, t) for t in taken))
        radius, box = next(free, None) or min(inside or spots, key=lambda rb: sum(_overlap(rb[1], t) for t in taken))
        taken.append(box)
        leader = {"arrowstyle": "-", "color": "#9aa3ad", "linewidth": 0.5, "shrinkA": 1, "shrinkB": 3} if radius > LEADER_FROM else None
        axes.annotate(name, points[index][:2], xytext=((box[0] - px) / scale, (box[1] - py) / scale),
                      textcoords="offset points", fontsize=LABEL_SIZE, ha="left", va="bottom", color="#333333",
                      arrowprops=leader, gid=f"label-{name}")


def _text_size(axes, renderer, name: str) -> tuple[float, float]:
    text = axes.text(0, 0, name, fontsize=LABEL_SIZE, transform=None)
    box = text.get_window_extent(renderer)
    text.remove()
    return box.width, box.height


def _spot(px: float, py: float, width: float, height: float, radius: float, angle: float) -> Box:
    """The box of a label whose side nearest the point lies `radius` from it, towards `angle`."""
    import math

    ax, ay = px + radius * math.cos(angle), py + radius * math.sin(angle)
    x0 = ax if math.cos(angle) > 0.3 else ax - width if math.cos(angle) < -0.3 else ax - width / 2
    y0 = ay if math.sin(angle) > 0.3 else ay - height if math.sin(angle) < -0.3 else ay - height / 2
    return (x0, y0, x0 + width, y0 + height)


def _overlap(a: Box, b: Box) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return width * height if width > 0 and height > 0 else 0.0
