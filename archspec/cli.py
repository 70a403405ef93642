"""The `archspec` command line: thin wrappers that wire spec -> ir -> passes -> lower/render.

Results go to stdout, diagnostics to stderr. Bad input ends with a located message and exit 1,
never a traceback. `validate` and `report` never import torch. Start-up matters (`report
--format json` is often scripted): this module and the command modules import only typer and
archspec.commands.common at load time; the pipeline, rich and torch load inside the commands
that need them (benchmarks/bench_startup.py, reports/startup.md). Help is typer's plain help:
flags show no `<bool>` value, so `--flops true` is not suggested to anyone.
"""
from __future__ import annotations

import io
import json
import os
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import List, Optional

import typer

from archspec.commands.common import (
    REPORTS_FOLDER,
    BatchOption,
    ForceOption,
    InputOption,
    MemoryLimitOption,
    OptimizerOption,
    SetOption,
    check_memory_limit,
    check_memory_options,
    compile_options,
    handles_errors,
    library_specs,
    parse_inputs,
    parse_sets,
    refuse_over_limit,
    spec_file,
)
from archspec import cache
from archspec.errors import ArchspecError

app = typer.Typer(
    name="archspec",
    help="Compile, check and explain CNN architectures written as YAML specs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: no `<bool>` after flags, and no rich to import for it
    context_settings={"help_option_names": ["-h", "--help"]},  # every sub-command inherits -h
)


def _print_version(value: bool) -> None:
    if value:
        from archspec import __version__

        typer.echo(f"archspec {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="Print archspec's version and exit."),
) -> None:
    """Compile, check and explain CNN architectures written as YAML specs."""

# --- commands ---------------------------------------------------------------------------------------
@app.command()
@handles_errors
def validate(
    specs: List[Path] = typer.Argument(..., help="Spec files to check."),
    sets: Optional[List[str]] = SetOption,
) -> None:
    """Check specs (schema, references, shapes); report every bad one with its location: each
    unknown key, op, argument or value of a file, then (when there is none) its first other error."""
    from archspec import pipeline
    from archspec.spec.document import load_spec
    from archspec.spec.lint import lint

    failures = 0
    for spec in specs:
        try:
            loaded = load_spec(spec_file(spec))
            errors = lint(loaded, parse_sets(sets))
            if not errors:
                analysis = pipeline.compile(loaded, parse_sets(sets)).analysis
        except ArchspecError as err:
            errors = [err]
        if errors:
            failures += 1
            for err in errors:
                typer.echo(f"error: {err}", err=True)
            continue
        outputs = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in analysis.outputs.items())
        typer.echo(f"ok  {spec}: {len(analysis.layers)} ops, {analysis.totals.params:,} params, output {outputs}")
    if failures:
        raise typer.Exit(1)


@app.command()
@handles_errors
def report(
    specs: Optional[List[Path]] = typer.Argument(None, help="Spec files or library spec names (resnet18); none = every spec in specs/ (else the library)."),
    flops: bool = typer.Option(False, "--flops", help="Add MAC and FLOP columns per layer."),
    all_ops: bool = typer.Option(False, "--all-ops", help="Add the all-ops column (norm, activation, pooling work too)."),
    receptive_field: bool = typer.Option(False, "--receptive-field", help="Add receptive field size, jump and offset."),
    memory: bool = typer.Option(False, "--memory", help="Add the memory estimate: weights, gradients, optimizer state, saved activations, peaks."),
    dtype: str = typer.Option("fp32", "--dtype", help="fp32, bf16 or fp16 (for --memory and --latency)."),
    optimizer: Optional[str] = typer.Option(None, "--optimizer", help=OptimizerOption.help + " Default: the --run's, else sgd."),
    depth: Optional[int] = typer.Option(None, "--depth", min=0, help="Collapse blocks nested deeper than N into one row."),
    output_format: str = typer.Option("table", "--format", help="table, json, markdown or html."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write a file report (html, or markdown + SVG charts) to this folder (html default: reports/<name>/)."),
    run: Optional[Path] = typer.Option(None, "--run", help="A training run folder of this spec: the file report adds its loss and metric "
                                       "curves, at the run's build parameters, input size, batch and optimizer."),
    sets: Optional[List[str]] = SetOption,
    inputs: Optional[List[str]] = InputOption,
    batch: Optional[int] = typer.Option(None, "--batch", min=1, help=BatchOption.help + " Default: the --run's, else 1."),
    latency: bool = typer.Option(False, "--latency", help="Add a per-layer roofline latency estimate of one forward pass on --device."),
    device: str = typer.Option("cpu", "--device", help="cpu (measured once, about 2 s, then cached), a100, h100 or h200 (published figures)."),
    no_cache: bool = typer.Option(False, cache.NO_CACHE, help="Compute the report even when an unchanged spec's report is cached."),
) -> None:
    """Per-layer analysis of one spec, or a comparison of several (all of specs/ by default)."""
    from archspec.render.formats import ReportOptions

    options = ReportOptions(output_format, depth, flops, all_ops, receptive_field, memory, dtype, optimizer or "sgd", out,
                            run, REPORTS_FOLDER, latency, device)
    options.check()
    # stdout JSON or Markdown of named spec files, from their text alone: kept for the next run
    cacheable = (not no_cache and output_format in ("json", "markdown") and out is None and run is None
                 and not (latency and device == "cpu") and bool(specs) and all(os.path.lexists(p) for p in specs))
    if not cacheable:
        _report(specs, options, optimizer, sets, inputs, batch)
        return
    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        with redirect_stdout(stdout), redirect_stderr(stderr):
            results = _report(specs, options, optimizer, sets, inputs, batch)
    finally:
        sys.stderr.write(stderr.getvalue())
        sys.stdout.write(stdout.getvalue())
    cache.store([source for result in results for source in result.loaded.sources], stdout.getvalue(), stderr.getvalue())


def _report(specs: Optional[List[Path]], options, optimizer: Optional[str], sets, inputs, batch: Optional[int]) -> list:
    """Compile and render the report; the compiled specs. `optimizer` and `batch`: the command
    line's, else the --run's."""
    from dataclasses import replace

    from archspec.render.formats import render_report

    dtype, output_format, run = options.dtype, options.format, options.run
    facts = _trained_run(run, specs) if run is not None else None
    run_optimizer, run_batch = (facts.optimizer, facts.batch) if facts else (None, None)
    optimizer, batch = optimizer or run_optimizer or "sgd", batch or run_batch or 1
    options = replace(options, optimizer=check_memory_options(dtype, optimizer))
    if facts is None:
        results = [compile_options(path, sets, inputs, batch) for path in specs or library_specs()]
    else:  # the trained model: the run's build parameters and inputs under the command line's
        from archspec import pipeline

        results = [pipeline.compile(spec_file(specs[0]), {**facts.params, **parse_sets(sets)},
                                    {**facts.inputs, **parse_inputs(inputs)}, batch=batch)]
    single = len(results) == 1 and bool(specs)
    if single and output_format == "table" and not options.writes_files:
        _echo_heading(results[0])
    render_report(results, single, options)
    return results


def _trained_run(run: Path, specs: Optional[List[Path]]):
    """The facts of `report --run RUN` (archspec.runs.RunFacts), refusing a run of another spec
    (the checkpoint's SHA-256 of its spec text); a run that cannot be checked gets a warning."""
    from archspec.runs import run_of_spec
    from archspec.spec.yaml_source import read_text

    if not specs or len(specs) != 1:
        raise ArchspecError("--run goes with the report of one spec: name the spec that was trained")
    path = spec_file(specs[0])
    text = read_text(path).replace("\r\n", "\n").replace("\r", "\n")  # as train's Path.read_text reads it
    facts, notes = run_of_spec(run, path, text)
    for note in notes:
        typer.echo(note, err=True)
    return facts


def _echo_heading(compiled) -> None:
    """The spec's summary and paper above its table or explanation (README: The spec language)."""
    from archspec.render.terminal import spec_heading

    heading = spec_heading(compiled.meta, compiled.analysis.name)
    if heading:
        typer.echo(heading)


@app.command()
@handles_errors
def build(
    spec: Path = typer.Argument(..., help="The spec file."),
    sets: Optional[List[str]] = SetOption,
    inputs: Optional[List[str]] = InputOption,
    out: Optional[Path] = typer.Option(None, "--out", help="Artifact folder (default reports/<name>)."),
    depth: Optional[int] = typer.Option(None, "--depth", min=0, help="Collapse blocks deeper than N in the table."),
    force: bool = ForceOption,
    memory_limit: float = MemoryLimitOption,
) -> None:
    """Validate, analyse and lower to torch; check one forward pass against the analysis; write artifacts."""
    from archspec.files import check_output_folder, safe_folder
    from archspec.render.terminal import console, layer_table, totals_table

    check_memory_limit(memory_limit)
    if out is not None:  # what is wrong with the path, before the work
        check_output_folder(out)
    compiled = compile_options(spec, sets, inputs)
    ir, analysis = compiled.ir, compiled.analysis
    folder = out or check_output_folder(safe_folder(REPORTS_FOLDER, analysis.name), "the output folder")
    totals, size = analysis.totals, analysis.dtype_bytes
    refuse_over_limit(f"building {analysis.name}", [("weights and buffers", (totals.params + totals.buffers) * size),
                                                    ("activations at batch 1", totals.activations * size)],
                      memory_limit, force)
    from archspec.lower.cost import check_lowering_cost

    check_lowering_cost(ir)  # before torch is imported: a graph too large to lower costs nothing more
    import torch

    from archspec.lower.verify import REAL_PASS_FLOPS, verify_module

    on_meta = analysis.totals.flops > REAL_PASS_FLOPS
    with torch.device("meta" if on_meta else "cpu"):
        module = compiled.module()
    checks = verify_module(module, analysis)
    stdout = console()
    stdout.print(layer_table(analysis, depth, flops=True))
    stdout.print(totals_table(analysis))
    if on_meta:
        stdout.print(f"checked on torch's meta device (shapes and FLOPs only): over {REAL_PASS_FLOPS / 1e9:g} GFLOPs")
    for check in checks:
        mark = "[green]ok[/green]" if check.ok else "[red]MISMATCH[/red]"
        detail = "" if check.ok else f": static {check.static}, torch {check.actual}"
        stdout.print(f"{mark}  torch agrees on {check.what}{detail}")
    written, note = _write_build(folder, compiled, module, spec)
    if note:
        stdout.print(note, markup=False)
    stdout.print("wrote " + ", ".join(str(p) for p in written))
    if not all(check.ok for check in checks):
        raise ArchspecError("the lowered module disagrees with the static analysis (a bug in archspec: please report it)")


BUILD_SET = ("summary.json", "summary.md", "module.py", "diagram.dot", "diagram.svg")


def _write_build(folder: Path, compiled, module, spec: Path):
    """The artifact set, written under the folder's lock so concurrent builds into one folder end
    with one build's set; a file of the set this build did not write (diagram.svg without `dot`)
    is removed rather than left from an older build."""
    from archspec.render.diagram import build_artifacts
    from archspec.files import locked_folder, write_atomic, write_error
    from archspec.render.report import analysis_json, markdown

    analysis = compiled.analysis
    with locked_folder(folder):
        written = [
            write_atomic(folder / "summary.json", json.dumps(analysis_json(analysis, compiled.meta), indent=1) + "\n"),
            write_atomic(folder / "summary.md", markdown(analysis, flops=True, meta=compiled.meta)),
            write_atomic(folder / "module.py", _module_source(module, analysis.name, spec)),
        ]
        diagram_files, note = build_artifacts(folder, compiled.ir, analysis)  # diagram.dot, and .svg where `dot` exists
        written += diagram_files
        for name in BUILD_SET:
            if folder / name not in written:
                try:
                    (folder / name).unlink(missing_ok=True)
                except OSError as err:
                    raise write_error(err, folder / name) from None
    return written, note


def _module_source(module, name: str, spec: Path) -> str:
    structure = "\n".join("# " + line for line in str(module).splitlines())
    return (
        f"# Generated by archspec from {spec}: the forward of the lowered {name} module.\n"
        f"# Rebuild it with archspec.build_module({str(spec)!r}).\n"
        f"import torch\n\n{module.code.strip()}\n\n# Module structure:\n{structure}\n"
    )


@app.command()
@handles_errors
def explain(
    spec: Optional[Path] = typer.Argument(None, help="The spec file (not needed with --case)."),
    nodes: Optional[List[str]] = typer.Argument(None, help="Layers or blocks to explain (default: all)."),
    case: Optional[str] = typer.Option(None, "--case", help="A worked example of the course: " + ", ".join(
        ["inception-bottleneck", "depthwise-separable", "lenet5", "conv-output-size", "transposed-conv"])),
    lang: Optional[str] = typer.Option(None, "--lang", help="en or ko (default: from the locale)."),
    sets: Optional[List[str]] = SetOption,
    inputs: Optional[List[str]] = InputOption,
    device: Optional[str] = typer.Option(None, "--device", help="With --case depthwise-separable: the roofline's device, "
                                         "h100 (default), a100, h200 (published figures) or cpu (measured once, about 2 s)."),
) -> None:
    """Each layer's output size, parameters and MACs as the course's formulas, numbers filled in."""
    from archspec.explain import explain_case, explain_spec

    if case is not None:
        typer.echo(explain_case(case, lang, device).text)
        return
    if device is not None:
        raise ArchspecError("--device goes with --case depthwise-separable (the roofline estimate)")
    if spec is None:
        raise ArchspecError("give a SPEC, or --case NAME for a worked example of the course")
    compiled = compile_options(spec, sets, inputs)  # once; errors carry their locations
    if not nodes:  # the whole spec: what it is first (a NODE's explanation starts with the node)
        _echo_heading(compiled)
    typer.echo(explain_spec(compiled, nodes or None, lang))


@app.command()
def ops() -> None:
    """List the ops a spec can use, with their arguments."""
    from archspec.ops.catalog import all_ops
    from archspec.render.terminal import console

    from rich.table import Table

    table = Table(header_style="bold")
    for header in ("Op", "Arguments", "What it does"):
        table.add_column(header)
    seen = set()
    for name, op in sorted(all_ops().items()):
        if op.name in seen:
            continue
        seen.add(op.name)
        names = ", ".join([op.name, *op.aliases])
        table.add_row(names, ", ".join(op.args.model_fields) or "-", op.summary)
    console().print(table)


from archspec.commands import compare, diff, sweep  # noqa: E402

app.command("compare")(compare.command)
app.command("diff")(diff.command)
app.command("sweep")(sweep.command)

from archspec.commands import rewrite  # noqa: E402
app.command("rewrite")(rewrite.command)

from archspec.commands import diagram  # noqa: E402
app.command("diagram")(diagram.command)

from archspec.commands import train as train_commands  # noqa: E402
app.command("train")(train_commands.train)
app.command("evaluate")(train_commands.evaluate)
app.command("bench")(train_commands.bench)

from archspec.commands import style  # noqa: E402
app.command("style-transfer")(style.command)

from archspec.commands import detect  # noqa: E402

app.command("detect")(detect.command)

from archspec.commands import import_model  # noqa: E402
app.command("import")(import_model.command)

from archspec.commands import schema  # noqa: E402
app.command("schema")(schema.command)

from archspec.commands import export  # noqa: E402
app.command("export")(export.command)

from archspec.commands import view  # noqa: E402
app.command("view")(view.command)
app.command("serve")(view.serve_command)


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
