"""`archspec report`'s outputs: one renderer per `--format`, in one table (`RENDERERS`).

A renderer takes the compiled specs, whether the report is of one spec (`single`: a per-layer
report) or of several (the library table), and the options, and writes the result to stdout
(file reports write files and say which). Receptive fields and memory are asked of each
`Compiled` only where the options show them. A new output format is one function and one entry.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from archspec.errors import ArchspecError

if TYPE_CHECKING:
    from archspec.pipeline import Compiled


@dataclass(frozen=True)
class ReportOptions:
    format: str = "table"
    depth: int | None = None
    flops: bool = False
    all_ops: bool = False
    fields: bool = False
    memory: bool = False
    dtype: str = "fp32"
    optimizer: str = "sgd"
    out: Path | None = None  # a folder for a file report (html, or markdown + SVG charts)
    run: Path | None = None  # a training run whose curves a file report shows
    root: Path = Path("reports")  # where a file report goes without --out
    latency: bool = False  # the roofline estimate (archspec.passes.latency) on `device`
    device: str = "cpu"

    def check(self) -> None:
        """The format and the file-report options, before any spec is compiled (a bad --run folder
        too); --dtype and --optimizer are the commands' (archspec.commands.common)."""
        if self.format not in RENDERERS:
            raise ArchspecError(f"--format must be table, json or markdown, not '{self.format}' (or html, a file report)")
        if self.run is not None and self.format not in ("html", "markdown"):
            raise ArchspecError("--run adds training curves to a file report: use it with --format html (or markdown --out DIR)")
        if self.latency:
            from archspec.passes.devices import check_device

            check_device(self.device)
            if self.writes_files:
                raise ArchspecError("--latency goes with --format table, json or markdown (not a file report)")
        if self.out is not None:
            from archspec.files import check_output_folder

            check_output_folder(self.out)
        if self.run is not None:
            from archspec.render.curves import read_run

            read_run(self.run)

    @property
    def writes_files(self) -> bool:
        return self.format == "html" or self.out is not None

    def extras(self, compiled: "Compiled") -> dict:
        """The receptive fields and memory estimate this report shows, as renderer keywords."""
        from archspec.render.report import report_fields

        return {"fields": report_fields(compiled.ir, compiled.fields) if self.fields else None,
                "memory": compiled.memory(self.dtype, self.optimizer) if self.memory else None}

    def latency_of(self, compiled: "Compiled"):
        """The roofline estimate this report shows, or None; `cpu` may calibrate (imports torch)."""
        if not self.latency:
            return None
        from archspec.lower.calibrate import device
        from archspec.passes.latency import estimate_latency
        from archspec.passes.memory import DTYPE_BYTES

        return estimate_latency(compiled.ir, compiled.analysis, device(self.device), DTYPE_BYTES[self.dtype], self.dtype)


def _one_spec_latency(single: bool, options: ReportOptions) -> None:
    if options.latency and not single:
        raise ArchspecError("--latency gives a per-layer table: name one spec (or use --format json for several)")


def render_report(results: "list[Compiled]", single: bool, options: ReportOptions) -> None:
    renderer = RENDERERS["html" if options.writes_files else options.format]
    renderer(results, single, options)


def report_json(results: "list[Compiled]", single: bool, options: ReportOptions) -> None:
    from archspec.render.report import analysis_json

    data = [analysis_json(c.analysis, c.meta, latency=options.latency_of(c), **options.extras(c)) for c in results]
    sys.stdout.write(json.dumps(data[0] if single else data, indent=1) + "\n")


def report_markdown(results: "list[Compiled]", single: bool, options: ReportOptions) -> None:
    from archspec.render.report import library_markdown, markdown

    _one_spec_latency(single, options)
    if not single:
        sys.stdout.write(library_markdown(results))
        return
    compiled = results[0]
    sys.stdout.write(markdown(compiled.analysis, options.depth, flops=options.flops, all_ops=options.all_ops,
                              meta=compiled.meta, **options.extras(compiled)))
    latency = options.latency_of(compiled)
    if latency is not None:
        from archspec.render.report import latency_rows, md_code, md_text

        headers, rows, notes = latency_rows(latency)
        lines = ["", "## Latency estimate (roofline)", "", "| " + " | ".join(headers) + " |",
                 "|---|---|" + "---:|" * (len(headers) - 2)]
        lines += [f"| {md_code(row[0])} | " + " | ".join(md_text(cell) for cell in row[1:]) + " |" for row in rows]
        sys.stdout.write("\n".join(lines + [""] + [f"- {md_text(note)}" for note in notes]) + "\n")


def report_table(results: "list[Compiled]", single: bool, options: ReportOptions) -> None:
    from archspec.render.terminal import console, layer_table, library_table, totals_table

    _one_spec_latency(single, options)
    out = console()
    if not single:
        out.print(library_table(results))
        return
    compiled = results[0]
    extras = options.extras(compiled)
    out.print(layer_table(compiled.analysis, options.depth, options.flops, options.all_ops, **extras))
    out.print(totals_table(compiled.analysis, extras["memory"]))
    latency = options.latency_of(compiled)
    if latency is not None:
        out.print(_latency_table(latency))


def _latency_table(latency):
    from rich.table import Table

    from archspec.render.report import latency_rows

    headers, rows, notes = latency_rows(latency)
    table = Table(title=f"latency estimate on {latency.device.name} (roofline)", title_justify="left",
                  header_style="bold", caption="\n".join(notes), caption_justify="left")
    for index, header in enumerate(headers):
        table.add_column(header, justify="left" if index < 2 else "right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    return table


def report_files(results: "list[Compiled]", single: bool, options: ReportOptions) -> None:
    """The file report (html, or markdown with --out): its files, and notes on stderr."""
    from archspec.render.html import write_reports

    files, notes = write_reports(results, single, options.format, options.out, options.dtype, options.optimizer,
                                 options.root, options.run)
    for line in notes:
        sys.stderr.write(line + "\n")
    sys.stdout.write("wrote " + ", ".join(str(f) for f in files) + "\n")


RENDERERS: dict[str, Callable[["list[Compiled]", bool, ReportOptions], None]] = {
    "json": report_json,
    "markdown": report_markdown,
    "table": report_table,
    "html": report_files,
}
