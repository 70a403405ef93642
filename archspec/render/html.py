"""File reports: one self-contained HTML page (or Markdown plus SVG files) per spec, and the
library overview.

A spec's report holds the summary figures, the diagram (inline SVG from graphviz's `dot`), two
charts (parameters and MACs per stage; activation memory per layer, with what is saved for
backward in a panel of its own), with a training run (`report --run RUN`, and the report.html that
`train` writes) its loss and metric curves, and the per-layer table (shapes, parameters, MACs,
FLOPs, memory, receptive field). The overview holds the table of every spec and a params-vs-MACs
scatter plot.

The pieces: archspec.render.charts (matplotlib charts), archspec.render.curves (training runs),
archspec.render.html_page (the HTML). matplotlib is imported only for file reports.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from archspec.errors import ArchspecError
from archspec.render.charts import memory_svg, scatter_svg, stages_svg
from archspec.render.curves import predictions_chart, training_chart
from archspec.files import safe_folder, write_atomic
from archspec.render.html_page import SpecReport, library_html, spec_html
from archspec.render.layout import auto_depth
from archspec.render.report import library_markdown, markdown, report_fields

if TYPE_CHECKING:
    from archspec.pipeline import Compiled

REPORT_FORMATS = ("html", "markdown")
DIAGRAM_NODES = 60  # the report draws every op up to this many, else folds blocks (table has every op)


# --- entry point (archspec report --format html | --out) --------------------------------------------
def write_reports(
    results: "list[Compiled]",
    single: bool,
    fmt: str,
    out: Path | None,
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
    if not single:
        folder = out or safe_folder(root, "library")
        scatter = scatter_svg(results)
        if fmt == "html":
            return [write_atomic(folder / "report.html", library_html(results, scatter))], []
        return [write_atomic(folder / "report.md", library_md(results)), write_atomic(folder / "library.svg", scatter)], []
    compiled = results[0]
    folder = out or safe_folder(root, compiled.analysis.name)
    report = spec_report(compiled, dtype, optimizer)
    if run is not None:
        report.charts["training"] = training_chart(run)
        predictions = predictions_chart(run)
        if predictions is not None:
            report.charts["predictions"] = predictions
    notes = [report.diagram_note] if report.diagram_note else []
    if fmt == "html":
        return [write_atomic(folder / "report.html", spec_html(report))], notes
    written = [write_atomic(folder / "report.md", spec_markdown(report))]
    if report.diagram_svg:
        written.append(write_atomic(folder / "diagram.svg", report.diagram_svg))
    for stem, (_, svg) in report.charts.items():
        written.append(write_atomic(folder / f"{stem}.svg", svg))
    return written, notes


def spec_report(compiled: "Compiled", dtype: str = "fp32", optimizer: str = "sgd") -> SpecReport:
    from archspec.render.diagram import diagram_source, render_svg_text

    memory = compiled.memory(dtype, optimizer)
    try:
        fields = report_fields(compiled.ir, compiled.fields)
    except ArchspecError:  # too large a graph for the receptive-field pass: the report goes without
        fields = None
    source = diagram_source(compiled.ir, compiled.analysis, depth=auto_depth(compiled.ir, DIAGRAM_NODES), params=True)
    try:
        svg, note = render_svg_text(source), None
    except ArchspecError as err:
        svg, note = None, f"diagram left out: {err}"
    report = SpecReport(compiled, memory, fields, svg, note)
    report.charts["stages"] = ("Parameters and MACs per stage", stages_svg(compiled))
    report.charts["memory"] = ("Activation memory per layer", memory_svg(compiled, memory))
    return report


# --- Markdown -----------------------------------------------------------------------------------------
def spec_markdown(report: SpecReport) -> str:
    text = markdown(report.compiled.analysis, flops=True, fields=report.fields, memory=report.memory,
                    meta=report.compiled.meta)
    head, _, rest = text.partition("\n| |")  # the figures go after the title, summary and paper
    lines = [head.rstrip("\n"), ""]
    if report.diagram_svg:
        lines += ["![diagram](diagram.svg)", ""]
    else:
        lines += [f"> {report.diagram_note}", ""]
    for stem, (caption, _) in report.charts.items():
        lines += [f"![{caption}]({stem}.svg)", ""]
    return "\n".join(lines) + "\n| |" + rest


def library_md(results: "list[Compiled]") -> str:
    return library_markdown(results, figure="library.svg")
