"""The HTML pages of the file reports: one spec's page (figure cards, diagram, charts, the
layer table, and the interactive viewer of archspec.render.viewer after the diagram) and the library
overview. Self-contained: CSS, SVG and the viewer's scripts inline, no network reference. The layer table's columns are archspec.render.figures' `COLUMNS`; it scrolls in a box
of its own (both scrollbars on screen, the header row stuck to its top). `spec_sections` lists a
spec page's sections in order: a new section is one entry there.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from archspec.ir.graph import producer_of
from archspec.render.charts import TASK_COLOURS
from archspec.render.figures import columns, count, field_text, format_shape, human, human_bytes, shapes_text
from archspec.render.palette import FAMILIES, family
from archspec.render.report import LIBRARY_COLUMNS, LIBRARY_HEADERS, fractional_jump, jump_note, layer_rows, library_rows

if TYPE_CHECKING:
    from archspec.passes.memory import MemoryEstimate
    from archspec.pipeline import Compiled


@dataclass
class SpecReport:
    """Everything one spec's report shows, computed once for the HTML and Markdown writers."""

    compiled: "Compiled"
    memory: "MemoryEstimate"
    fields: dict[str, Any] | None
    diagram_svg: str | None
    diagram_note: str | None
    charts: dict[str, tuple[str, str]] = field(default_factory=dict)  # file stem -> (title, svg)


RF_COLUMN = next(c.title for c in columns(fields=True) if c.option == "fields")  # the column a jump note explains


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
.scroll { overflow: auto; max-height: 78vh; border: 1px solid var(--line); border-radius: 8px; }
.scroll th { z-index: 1; }
td.jump { text-decoration: underline dotted var(--muted); cursor: help; }
td.text { white-space: normal; min-width: 220px; color: var(--muted); }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
"""


def page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def _card(key: str, value: str, sub: str = "") -> str:
    sub_html = f'<div class="s">{html.escape(sub)}</div>' if sub else ""
    return f'<div class="card"><div class="k">{html.escape(key)}</div><div class="v">{html.escape(value)}</div>{sub_html}</div>'


def _cards(report: SpecReport) -> str:
    a, m = report.compiled.analysis, report.memory
    t = a.totals
    flow = " · ".join(format_shape(v) for v in a.inputs.values()) + " → " + " · ".join(format_shape(v) for v in a.outputs.values())
    cards = [
        _card("parameters", human(t.params), f"{count(t.params)} ({count(t.trainable)} trainable)"),
        _card("MACs", human(t.macs), f"{count(t.macs)}, batch {a.batch}"),
        _card("FLOPs", human(t.flops), f"{count(t.flops)} (FlopCounterMode)"),
        _card("activations", human_bytes(t.activations * a.dtype_bytes), f"{count(t.activations)} elements"),
        _card("inference peak", human_bytes(m.inference_peak), f"{m.dtype}, batch {m.batch}"),
        _card("training step peak", human_bytes(m.training_peak), f"{m.optimizer}, weights + grads + state + saved"),
        _card("weighted layers", str(a.depth), f"{len(a.layers)} ops"),
        _card("input → output", flow, shapes_text(a.inputs) + " → " + shapes_text(a.outputs)),
    ]
    deepest = _headline_field(report)
    if deepest:
        cards.append(_card("receptive field", deepest[0], deepest[1]))
    return '<section class="cards">' + "".join(cards) + "</section>"


def _headline_field(report: SpecReport) -> tuple[str, str] | None:
    """The receptive field on the cards: the last layer, in execution order, on the way to the
    spec's first output (its main one: GoogLeNet's `logits`, not `aux2`) that still has positions,
    i.e. the largest field the main path builds before it pools or flattens (the whole input, past
    a squeeze-excitation gate)."""
    if not report.fields:
        return None
    ir = report.compiled.ir
    main, feeds = next(iter(ir.outputs.items()))
    on_path, stack = set(), [producer_of(feeds)]
    while stack:
        node_id = stack.pop()
        if node_id not in on_path:
            on_path.add(node_id)
            stack.extend(producer_of(value) for value in ir.node(node_id).inputs)
    positional = report.compiled.fields  # the pass's: global there = no positions left
    for layer in reversed(report.compiled.analysis.layers):
        field = positional.get(layer.name)
        if layer.name in on_path and field is not None and not field.is_global:
            where = f"at {layer.name}" + (f", on the way to {main}" if len(ir.outputs) > 1 else "")
            return field_text(report.fields[layer.name]), where
    return None


def _layer_table(report: SpecReport) -> str:
    shown = columns(flops=True, fields=True, memory=True)
    head = ("<tr><th class=\"n\">#</th><th>Layer</th><th>Op</th><th class=\"n\">Output</th>"
            + "".join(f"<th class=\"n\">{html.escape(c.title)}</th>" for c in shown) + "</tr>")
    rows, html_rows = layer_rows(report.compiled.analysis, None, report.fields or {}, report.memory), []
    note = jump_note(rows)
    for index, row in enumerate(rows, start=1):
        fill, border, _ = FAMILIES[family(row.op)]
        html_rows.append(
            f"<tr><td class=\"n\">{index}</td>"
            f"<td class=\"name\" style=\"padding-left:{8 + 14 * row.level}px\">{html.escape(row.name)}</td>"
            f"<td><span class=\"dot\" style=\"background:{fill};border-color:{border}\"></span>{html.escape(row.op)}</td>"
            f"<td class=\"n\">{html.escape(row.output_shape)}</td>"
            + "".join(_cell(c, row, note) for c in shown) + "</tr>"
        )
    # a box of its own height: both scrollbars on screen and the header row stuck to its top
    table = (f'<div class="scroll" id="layers"><table class="layers">\n<thead>{head}</thead>\n<tbody>\n'
             + "\n".join(html_rows) + "\n</tbody></table></div>")
    return table + (f'\n<p class="lead" id="jump-note">{html.escape(note)}</p>' if note else "")


def _cell(column, row, note: str | None) -> str:
    """A figure cell; a fractional jump's carries the footnote as its tooltip."""
    text = html.escape(column.text(row))
    if note and column.title == RF_COLUMN and fractional_jump(row.field):
        return f'<td class="n jump" title="{html.escape(note)}">{text}</td>'
    return f'<td class="n">{text}</td>'


DIAGRAM_CAPTION = ("ops with their key arguments, tensor shapes (C x H x W) on the edges, blocks as boxes; "
                   "dashed blue: shortcuts, dashed orange: encoder-decoder bridges")


def spec_sections(report: SpecReport) -> list[tuple[str, str]]:
    """The page's sections in order, as (key, HTML): title, cards, diagram, viewer, charts,
    layers, footer. The one place a section is added."""
    from archspec.render.viewer import viewer_section

    a, meta = report.compiled.analysis, report.compiled.meta
    head = [f"<h1>{html.escape(a.name)}</h1>"]
    head += [f'<p class="lead">{html.escape(str(meta[key]))}</p>' for key in ("summary", "paper") if meta.get(key)]
    if report.diagram_svg:
        diagram = (f'<figure><div class="diagram" id="diagram">{report.diagram_svg}</div>'
                   f"<figcaption>{DIAGRAM_CAPTION}</figcaption></figure>")
    else:
        diagram = f'<p class="note" id="diagram">{html.escape(report.diagram_note or "no diagram")}</p>'
    charts = [f'<figure class="chart" id="chart-{stem}">{svg}<figcaption>{html.escape(title)}</figcaption></figure>'
              for stem, (title, svg) in report.charts.items()]
    source = meta.get("path")
    footer = (f"<footer>archspec report of {html.escape(str(source or a.name))}; counts for batch {a.batch}; memory in "
              f"{report.memory.dtype} with {report.memory.optimizer}; receptive fields in input pixels.</footer>")
    return [
        ("title", "\n".join(head)),
        ("cards", _cards(report)),
        ("diagram", "<h2>Diagram</h2>\n" + diagram),
        ("viewer", "<h2>Explore</h2>\n" + viewer_section(report.compiled)),
        ("charts", "\n".join(["<h2>Charts</h2>", *charts])),
        ("layers", "<h2>Layers</h2>\n" + _layer_table(report)),
        ("footer", footer),
    ]


def spec_html(report: SpecReport) -> str:
    return page(f"{report.compiled.analysis.name} · archspec report", "\n".join(section for _, section in spec_sections(report)))


NUMERIC_HEADER = '<th class="n">'


def library_html(results: "list[Compiled]", scatter: str) -> str:
    """The overview: the scatter plot and the library table (archspec.render.report's rows, plus the task)."""
    numeric = {title for _, title in LIBRARY_COLUMNS} | {"Input", "Output"}
    headers = [LIBRARY_HEADERS[0], "Task", *LIBRARY_HEADERS[1:]]
    head = "<tr>" + "".join((NUMERIC_HEADER if h in numeric else "<th>") + f"{h}</th>" for h in headers) + "</tr>"
    rows = [_library_row(compiled, cells) for compiled, cells in zip(results, library_rows(results))]
    body = [
        "<h1>archspec spec library</h1>",
        f'<p class="lead">{len(results)} specs; counts at each spec\'s own input size, batch 1.</p>',
        f'<figure class="chart" id="chart-scatter">{scatter}<figcaption>parameters vs MACs, log axes</figcaption></figure>',
        "<h2>Specs</h2>",
        f'<div class="wrap"><table class="library">\n<thead>{head}</thead>\n<tbody>\n' + "\n".join(rows) + "\n</tbody></table></div>",
    ]
    return page("archspec spec library", "\n".join(body))


def _library_row(compiled: "Compiled", cells: list[str]) -> str:
    name, *figures, paper = (html.escape(cell) for cell in cells)
    summary, task = compiled.meta.get("summary") or "", compiled.meta.get("task")
    colour = TASK_COLOURS.get(task, "#7f7f7f")
    return (
        f"<tr><td class=\"name\" title=\"{html.escape(summary)}\">{name}</td>"
        f"<td><span class=\"dot\" style=\"background:{colour};border-color:{colour}\"></span>{html.escape(task or '-')}</td>"
        + "".join(f"<td class=\"n\">{cell}</td>" for cell in figures) + f"<td class=\"text\">{paper}</td></tr>"
    )
