"""File reports: one self-contained HTML page (or Markdown plus SVG files) per spec, and the
library overview.

A spec's report holds the summary figures, the diagram (inline SVG from graphviz's `dot`), two
charts (parameters and MACs per stage; activation memory per layer), with a training run (`report
--run RUN`, and the report.html that `train` writes) its loss and metric curves, and the
per-layer table (shapes, parameters, MACs, FLOPs, memory, receptive field). The overview holds the table of
every spec and a params-vs-MACs scatter plot. The HTML file needs nothing else: CSS and SVG are
inline, there is no script and no network reference.

matplotlib draws the charts; it is imported only here, and this module only for file reports.
"""
from __future__ import annotations

import html
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archspec.errors import ArchspecError
from archspec.ops.common import format_shape
from archspec.passes.counts import Analysis
from archspec.render.diagram import FAMILIES, auto_depth, diagram_source, family, render_svg_text
from archspec.render.diagram import human as short
from archspec.render.files import safe_folder, write_atomic
from archspec.render.report import count, field_text, human, human_bytes, layer_rows, markdown, md_text
from archspec.train.metrics import MAIN_METRICS

REPORT_FORMATS = ("html", "markdown")
DIAGRAM_NODES = 60  # the report draws every op up to this many, else folds blocks (table has every op)
TASK_COLOURS = {
    "classification": "#3d78b5",
    "segmentation": "#e07b00",
    "detection": "#4f8f3c",
    "embedding": "#8e44ad",
    None: "#7f7f7f",
}


@dataclass
class SpecReport:
    """Everything one spec's report shows, computed once for the HTML and Markdown writers."""

    analysis: Analysis
    meta: dict[str, Any]
    memory: Any
    fields: dict[str, Any] | None
    diagram_svg: str | None
    diagram_note: str | None
    charts: dict[str, tuple[str, str]] = field(default_factory=dict)  # file stem -> (title, svg)


# --- entry point (archspec report --format html | --out) --------------------------------------------
def write_reports(
    results: list[tuple[Any, Any, Analysis]],
    single: bool,
    fmt: str,
    out: Path | None,
    batch: int = 1,
    dtype: str = "fp32",
    optimizer: str = "sgd",
    root: Path = Path("reports"),
    run: Path | None = None,
) -> tuple[list[Path], list[str]]:
    """Write the report of one spec (`single`) or the overview of several; (files, notes).
    `run`: a training run folder whose curves the spec's report shows."""
    if fmt not in REPORT_FORMATS:
        raise ArchspecError(f"--out writes html or markdown reports, not '{fmt}'")
    if run is not None and not single:
        raise ArchspecError("--run goes with the report of one spec: name the spec that was trained")
    if single:
        loaded, ir, analysis = results[0]
        folder = out or safe_folder(root, analysis.name)
        report = spec_report(loaded, ir, analysis, batch, dtype, optimizer, markdown_files=fmt == "markdown")
        if run is not None:
            report.charts["training"] = training_chart(run)
        notes = [report.diagram_note] if report.diagram_note else []
        if fmt == "html":
            return [write_atomic(folder / "report.html", spec_html(report))], notes
        written = []
        if report.diagram_svg:
            written.append(write_atomic(folder / "diagram.svg", report.diagram_svg))
        for stem, (_, svg) in report.charts.items():
            written.append(write_atomic(folder / f"{stem}.svg", svg))
        written.insert(0, write_atomic(folder / "report.md", spec_markdown(report)))
        return written, notes
    folder = out or safe_folder(root, "library")
    entries = [(analysis, _meta(loaded)) for loaded, _, analysis in results]
    scatter = scatter_svg(entries)
    if fmt == "html":
        return [write_atomic(folder / "report.html", library_html(entries, scatter))], []
    return [write_atomic(folder / "report.md", library_md(entries)), write_atomic(folder / "library.svg", scatter)], []


def _meta(loaded) -> dict[str, Any]:
    doc = loaded.document
    return {"summary": doc.summary, "paper": doc.paper, "task": doc.task, "path": loaded.path}


def spec_report(loaded, ir, analysis: Analysis, batch: int, dtype: str, optimizer: str, markdown_files: bool = False) -> SpecReport:
    from archspec.passes.memory import estimate_memory
    from archspec.passes.receptive_field import receptive_fields

    memory = estimate_memory(ir, batch=batch, dtype=dtype, optimizer=optimizer)
    try:
        fields = receptive_fields(ir)
    except ArchspecError:
        fields = None
    analysis.memory, analysis.fields = memory, fields
    source = diagram_source(ir, analysis, depth=auto_depth(ir, DIAGRAM_NODES), params=True)
    try:
        svg, note = render_svg_text(source), None
    except ArchspecError as err:
        svg, note = None, f"diagram left out: {err}"
    report = SpecReport(analysis, _meta(loaded), memory, fields, svg, note)
    report.charts["stages"] = ("Parameters and MACs per stage", stages_svg(analysis))
    report.charts["memory"] = ("Activation memory per layer", memory_svg(analysis, memory))
    return report


# --- training curves ----------------------------------------------------------------------------------
def read_run(run: Path) -> tuple[list[dict[str, Any]], str]:
    """The epoch rows of a training run folder, and its main metric."""
    import json

    from archspec.spec.reading import read_bounded_text  # stat first, bounded: not /dev/zero or a FIFO

    path = Path(run) / "metrics.jsonl"
    try:
        rows = [json.loads(line) for line in read_bounded_text(path).splitlines() if line.strip()]
    except FileNotFoundError:
        raise ArchspecError(f"--run {run}: no metrics.jsonl there (not a training run folder)") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ArchspecError(f"--run {run}: cannot read {path}: {err}") from None
    except RecursionError:  # json.loads of a line nested thousands deep
        raise ArchspecError(f"--run {run}: cannot read {path}: a line is nested too deeply to be a metrics row") from None
    if not rows or not all(isinstance(row, dict) and "epoch" in row for row in rows):
        raise ArchspecError(f"--run {run}: {path} holds no epoch rows yet")
    metric = next((m for m in MAIN_METRICS.values() if f"test_{m}" in rows[-1]), "accuracy")
    return rows, metric


def curves_figure(rows: list[dict[str, Any]], metric: str, figure=None):
    """Loss (train, test) and the main metric per epoch, side by side."""
    figure = figure or _figure(9, 3.5)
    epochs = [row["epoch"] for row in rows]
    for axes, keys, title in zip(figure.subplots(1, 2), (("train_loss", "test_loss"), (f"train_{metric}", f"test_{metric}")),
                                 ("loss", metric)):
        for key in keys:
            if all(key in row for row in rows):
                axes.plot(epochs, [row[key] for row in rows], marker="o", label=key)
        axes.set_xlabel("epoch")
        axes.set_title(title)
        axes.legend()
    return figure


def training_chart(run: Path) -> tuple[str, str]:
    """(caption, SVG) of a run's curves, the caption giving its final test figures."""
    rows, metric = read_run(run)
    last = rows[-1]
    finals = ", ".join(f"{key.removeprefix('test_')} {value:.4f}" for key, value in last.items()
                       if key.startswith("test_") and isinstance(value, (int, float)))
    caption = f"Training run {run}: {len(rows)} epochs; final test {finals}"
    return caption, _svg(curves_figure(rows, metric), "training")


# --- charts (matplotlib -> SVG text) ------------------------------------------------------------------
def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)  # a canvas that can measure text (label placement); no pyplot state
    return figure


def _svg(figure, salt: str) -> str:
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


def stages(analysis: Analysis) -> list[tuple[str, int, int]]:
    """(name, params, MACs) per top-level block; consecutive loose layers form one group."""
    groups: list[list[Any]] = []  # [name, params, macs, block?, first, last]
    for layer in analysis.layers:
        block = layer.scopes[0] if layer.scopes else None
        if groups and groups[-1][3] == block:
            group = groups[-1]
            group[5] = layer.name
        else:
            group = [block or layer.name, 0, 0, block, layer.name, layer.name]
            groups.append(group)
        group[1] += layer.figures.params
        group[2] += layer.figures.macs
    named = []
    for name, params, macs, block, first, last in groups:
        if block is None and first != last:
            name = f"{first} … {last}"
        named.append((name, params, macs))
    return named


def stages_svg(analysis: Analysis) -> str:
    rows = stages(analysis)
    names = [name for name, _, _ in rows][::-1]
    height = min(1.2 + 0.22 * len(rows), 9.0)
    figure = _figure(9.0, height)
    left, right = figure.subplots(1, 2, sharey=True)
    positions = range(len(rows))
    for axes, values, colour, title in (
        (left, [p for _, p, _ in rows][::-1], "#6a4fa3", "parameters"),
        (right, [m for _, _, m in rows][::-1], "#3d78b5", f"MACs (batch {analysis.batch})"),
    ):
        bars = axes.barh(list(positions), values, color=colour, height=0.7)
        axes.set_title(title, loc="left", fontsize=10)
        axes.xaxis.set_major_formatter(_human_formatter())
        axes.spines[["top", "right"]].set_visible(False)
        axes.grid(axis="x", color="#e5e5e5", linewidth=0.6)
        axes.set_axisbelow(True)
        top = max(values) or 1
        axes.set_xlim(0, top * 1.22)
        for bar, value in zip(bars, values):
            if value:
                axes.text(bar.get_width() + top * 0.01, bar.get_y() + bar.get_height() / 2, human(value), va="center", fontsize=7, color="#444444")
    left.set_yticks(list(positions), names, fontsize=8)
    return _svg(figure, f"{analysis.name}-stages")


def _human_formatter():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _: short(int(value)) if value == int(value) else f"{value:g}")


def memory_svg(analysis: Analysis, memory) -> str:
    from matplotlib.patches import Patch

    mib = 1 << 20
    width = {m.name: m for m in memory.layers}
    outputs = [width[layer.name].output / mib for layer in analysis.layers]
    saved = [width[layer.name].saved / mib for layer in analysis.layers]
    families = [family(layer.op) for layer in analysis.layers]
    figure = _figure(9.0, 3.4)
    axes = figure.subplots()
    x = list(range(len(outputs)))
    axes.bar(x, outputs, width=1.0 if len(x) > 60 else 0.8, color=[FAMILIES[f][0] for f in families],
             edgecolor=[FAMILIES[f][1] for f in families], linewidth=0.3 if len(x) > 60 else 0.6)
    axes.step(x, saved, where="mid", color="#b34747", linewidth=1.1)
    axes.set_ylabel(f"MiB ({memory.dtype}, batch {memory.batch})")
    axes.set_xlabel("layer (execution order)")
    axes.set_xlim(-0.5, len(x) - 0.5)
    axes.spines[["top", "right"]].set_visible(False)
    axes.grid(axis="y", color="#e5e5e5", linewidth=0.6)
    axes.set_axisbelow(True)
    # stages as alternating bands, named where there is room
    spans = _stage_spans(analysis)
    start, shade = 0, False
    top = max(outputs + saved, default=0) or 1
    axes.set_ylim(0, top * 1.12)
    for name, count_in_stage in spans:
        if shade:
            axes.axvspan(start - 0.5, start + count_in_stage - 0.5, color="#eef1f6", zorder=0)
        if name and count_in_stage >= max(2, len(x) / 40):
            axes.text(start - 0.3, top * 1.1, name, fontsize=6.5, color="#5d6675", va="top", ha="left", clip_on=True)
        shade = not shade
        start += count_in_stage
    from matplotlib.lines import Line2D

    used = list(dict.fromkeys(families))
    handles = [Patch(facecolor=FAMILIES[f][0], edgecolor=FAMILIES[f][1], label=FAMILIES[f][2].split(" (")[0]) for f in used]
    handles.append(Line2D([], [], color="#b34747", label="saved for backward"))
    figure.legend(handles=handles, fontsize=7, frameon=False, ncols=len(handles), loc="outside lower center")
    axes.set_title("output tensor of each layer (bars, by op family) and what autograd keeps for backward (line)", loc="left", fontsize=9)
    return _svg(figure, f"{analysis.name}-memory")


def _stage_spans(analysis: Analysis) -> list[tuple[str, int]]:
    spans: list[list[Any]] = []
    for layer in analysis.layers:
        key = layer.scopes[0] if layer.scopes else None
        if spans and spans[-1][0] == key:
            spans[-1][1] += 1
        else:
            spans.append([key, 1])
    return [(k or "", n) for k, n in spans]


def scatter_svg(entries: list[tuple[Analysis, dict]]) -> str:
    """Params vs MACs of every spec, log axes, each point labelled, coloured by task."""
    figure = _figure(9.0, 6.2)
    axes = figure.subplots()
    axes.set_xscale("log")
    axes.set_yscale("log")
    points = [(a.totals.params, max(a.totals.macs, 1), a.name, m.get("task")) for a, m in entries if a.totals.params > 0]
    for task in dict.fromkeys(t for *_, t in points):
        chosen = [(p, m) for p, m, _, t in points if t == task]
        axes.scatter([p for p, _ in chosen], [m for _, m in chosen], s=28, color=TASK_COLOURS.get(task, "#7f7f7f"),
                     edgecolor="white", linewidth=0.6, zorder=3, label=task or "other")
    axes.set_xlabel("parameters")
    axes.set_ylabel("MACs (batch 1)")
    axes.xaxis.set_major_formatter(_human_formatter())
    axes.yaxis.set_major_formatter(_human_formatter())
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
    return _svg(figure, "library-scatter")


def _place_labels(figure, axes, points) -> None:
    """Label each point where the label overlaps no earlier label and no point (greedy)."""
    figure.canvas.draw()  # fixes the layout, so display coordinates are final
    renderer = figure.canvas.get_renderer()
    to_display = axes.transData.transform
    taken = []
    for x, y, _, _ in points:
        px, py = to_display((x, y))
        taken.append((px - 3, py - 3, px + 3, py + 3))
    offsets = [(6, 3), (6, -10), (-6, 3), (-6, -10), (0, 8), (0, -15), (10, 12), (10, -18), (-10, 12), (-10, -18), (14, -3), (-14, -3)]
    for x, y, name, _ in sorted(points, key=lambda p: (p[0], p[1])):
        px, py = to_display((x, y))
        best = None
        for dx, dy in offsets:
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


# --- HTML -------------------------------------------------------------------------------------------
CSS = """
:root { --ink: #1f2430; --muted: #5d6675; --line: #e3e7ee; --soft: #f5f7fa; --accent: #3d78b5; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: var(--ink); background: #fff; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 28px 60px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
.lead { color: var(--muted); margin: 0 0 2px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 10px; margin-top: 18px; }
.card { background: var(--soft); border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
.card .k { color: var(--muted); font-size: 12px; }
.card .v { font-size: 19px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .s { color: var(--muted); font-size: 12px; font-variant-numeric: tabular-nums; }
figure { margin: 0 0 18px; }
figcaption { color: var(--muted); font-size: 12px; margin-top: 4px; }
.diagram { border: 1px solid var(--line); border-radius: 8px; padding: 10px; overflow: auto; max-height: 900px; background: #fff; text-align: center; }
.diagram svg { max-width: 100%; height: auto; }
.chart svg { width: 100%; height: auto; display: block; }
.note { background: #fff7e6; border: 1px solid #f0d9a8; border-radius: 6px; padding: 8px 12px; }
table { border-collapse: collapse; width: 100%; font-size: 12.5px; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { position: sticky; top: 0; background: #fff; text-align: left; font-weight: 600; box-shadow: 0 1px 0 var(--line); }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
tr:hover td { background: #f9fbfe; }
td.name { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
.dot { display: inline-block; width: 9px; height: 9px; border-radius: 2px; margin-right: 6px; vertical-align: -1px; border: 1px solid; }
.wrap { overflow-x: auto; }
td.text { white-space: normal; min-width: 220px; color: var(--muted); }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
"""


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def _card(key: str, value: str, sub: str = "") -> str:
    sub_html = f'<div class="s">{html.escape(sub)}</div>' if sub else ""
    return f'<div class="card"><div class="k">{html.escape(key)}</div><div class="v">{html.escape(value)}</div>{sub_html}</div>'


def _shapes(shapes: dict) -> str:
    return ", ".join(f"{k} {format_shape(v)}" for k, v in shapes.items())


def _cards(report: SpecReport) -> str:
    a, m = report.analysis, report.memory
    t = a.totals
    cards = [
        _card("parameters", human(t.params), f"{count(t.params)} ({count(t.trainable)} trainable)"),
        _card("MACs", human(t.macs), f"{count(t.macs)}, batch {a.batch}"),
        _card("FLOPs", human(t.flops), f"{count(t.flops)} (FlopCounterMode)"),
        _card("activations", human_bytes(t.activations * a.dtype_bytes), f"{count(t.activations)} elements"),
        _card("inference peak", human_bytes(m.inference_peak), f"{m.dtype}, batch {m.batch}"),
        _card("training step peak", human_bytes(m.training_peak), f"{m.optimizer}, weights + grads + state + saved"),
        _card("weighted layers", str(a.depth), f"{len(a.layers)} ops"),
        _card("input → output", " · ".join(format_shape(v) for v in a.inputs.values()) + " → "
              + " · ".join(format_shape(v) for v in a.outputs.values()), _shapes(a.inputs) + " → " + _shapes(a.outputs)),
    ]
    deepest = _largest_field(report)
    if deepest:
        cards.append(_card("receptive field", deepest[0], deepest[1]))
    return '<section class="cards">' + "".join(cards) + "</section>"


def _largest_field(report: SpecReport) -> tuple[str, str] | None:
    if not report.fields:
        return None
    for layer in reversed(report.analysis.layers):
        field_ = report.fields.get(layer.name)
        if field_ is not None and not field_.is_global:
            return field_text(field_), f"at {layer.name}"
    return None


def _layer_table(report: SpecReport) -> str:
    a, m = report.analysis, report.memory
    width = {x.name: x for x in m.layers}
    head = (
        "<tr><th class=\"n\">#</th><th>layer</th><th>op</th><th class=\"n\">output</th><th class=\"n\">params</th>"
        "<th class=\"n\">MACs</th><th class=\"n\">FLOPs</th><th class=\"n\">output memory</th>"
        "<th class=\"n\">saved for backward</th><th class=\"n\">receptive field /jump</th></tr>"
    )
    rows = []
    for index, row in enumerate(layer_rows(a), start=1):
        fill, border, _ = FAMILIES[family(row.op)]
        mem = width.get(row.name)
        rows.append(
            f"<tr><td class=\"n\">{index}</td>"
            f"<td class=\"name\" style=\"padding-left:{8 + 14 * row.level}px\">{html.escape(row.name)}</td>"
            f"<td><span class=\"dot\" style=\"background:{fill};border-color:{border}\"></span>{html.escape(row.op)}</td>"
            f"<td class=\"n\">{html.escape(row.output_shape)}</td>"
            f"<td class=\"n\">{count(row.figures.params)}</td><td class=\"n\">{count(row.figures.macs)}</td>"
            f"<td class=\"n\">{count(row.figures.flops)}</td>"
            f"<td class=\"n\">{human_bytes(mem.output) if mem else '-'}</td>"
            f"<td class=\"n\">{human_bytes(mem.saved) if mem else '-'}</td>"
            f"<td class=\"n\">{html.escape(field_text(row.field))}</td></tr>"
        )
    return f'<div class="wrap"><table class="layers">\n<thead>{head}</thead>\n<tbody>\n' + "\n".join(rows) + "\n</tbody></table></div>"


def spec_html(report: SpecReport) -> str:
    a, meta = report.analysis, report.meta
    parts = [f"<h1>{html.escape(a.name)}</h1>"]
    for key in ("summary", "paper"):
        if meta.get(key):
            parts.append(f'<p class="lead">{html.escape(str(meta[key]))}</p>')
    parts.append(_cards(report))
    parts.append("<h2>Diagram</h2>")
    if report.diagram_svg:
        parts.append(f'<figure><div class="diagram" id="diagram">{report.diagram_svg}</div>'
                     "<figcaption>ops with their key arguments, tensor shapes (C x H x W) on the edges, blocks as boxes; "
                     "dashed blue: shortcuts, dashed orange: encoder-decoder bridges</figcaption></figure>")
    else:
        parts.append(f'<p class="note" id="diagram">{html.escape(report.diagram_note or "no diagram")}</p>')
    parts.append("<h2>Charts</h2>")
    for stem, (title, svg) in report.charts.items():
        parts.append(f'<figure class="chart" id="chart-{stem}">{svg}<figcaption>{html.escape(title)}</figcaption></figure>')
    parts.append("<h2>Layers</h2>")
    parts.append(_layer_table(report))
    source = meta.get("path")
    parts.append(
        f"<footer>archspec report of {html.escape(str(source or a.name))}; counts for batch {a.batch}; memory in "
        f"{report.memory.dtype} with {report.memory.optimizer}; receptive fields in input pixels.</footer>"
    )
    return _page(f"{a.name} · archspec report", "\n".join(parts))


def library_html(entries: list[tuple[Analysis, dict]], scatter: str) -> str:
    head = (
        "<tr><th>spec</th><th>task</th><th class=\"n\">input</th><th class=\"n\">output</th><th class=\"n\">params</th>"
        "<th class=\"n\">MACs</th><th class=\"n\">FLOPs</th><th class=\"n\">depth</th><th>paper</th></tr>"
    )
    rows = []
    for analysis, meta in entries:
        t = analysis.totals
        colour = TASK_COLOURS.get(meta.get("task"), "#7f7f7f")
        rows.append(
            f"<tr><td class=\"name\" title=\"{html.escape(meta.get('summary') or '')}\">{html.escape(analysis.name)}</td>"
            f"<td><span class=\"dot\" style=\"background:{colour};border-color:{colour}\"></span>{html.escape(meta.get('task') or '-')}</td>"
            f"<td class=\"n\">{html.escape(', '.join(format_shape(s) for s in analysis.inputs.values()))}</td>"
            f"<td class=\"n\">{html.escape(', '.join(format_shape(s) for s in analysis.outputs.values()))}</td>"
            f"<td class=\"n\">{count(t.params)}</td><td class=\"n\">{count(t.macs)}</td><td class=\"n\">{count(t.flops)}</td>"
            f"<td class=\"n\">{analysis.depth}</td><td class=\"text\">{html.escape(meta.get('paper') or '')}</td></tr>"
        )
    body = [
        "<h1>archspec spec library</h1>",
        f'<p class="lead">{len(entries)} specs; counts at each spec\'s own input size, batch 1.</p>',
        f'<figure class="chart" id="chart-scatter">{scatter}<figcaption>parameters vs MACs, log axes</figcaption></figure>',
        "<h2>Specs</h2>",
        f'<div class="wrap"><table class="library">\n<thead>{head}</thead>\n<tbody>\n' + "\n".join(rows) + "\n</tbody></table></div>",
    ]
    return _page("archspec spec library", "\n".join(body))


# --- Markdown -----------------------------------------------------------------------------------------
def spec_markdown(report: SpecReport) -> str:
    text = markdown(report.analysis, flops=True, fields=report.fields is not None, memory=True)
    title, _, rest = text.partition("\n")
    lines = [title, ""]
    for key in ("summary", "paper"):
        if report.meta.get(key):
            lines += [md_text(report.meta[key]), ""]  # user text: escaped, as in the HTML report
    if report.diagram_svg:
        lines += ["![diagram](diagram.svg)", ""]
    else:
        lines += [f"> {report.diagram_note}", ""]
    for stem, (caption, _) in report.charts.items():
        lines += [f"![{caption}]({stem}.svg)", ""]
    return "\n".join(lines) + rest.lstrip("\n")


def library_md(entries: list[tuple[Analysis, dict]]) -> str:
    from archspec.render.report import library_markdown

    return "# archspec spec library\n\n![parameters vs MACs](library.svg)\n\n" + library_markdown(entries)
