"""`archspec rewrite`: apply graph rewrites (archspec.rewrite) to a spec and write the result as a
flat spec. Never imports torch: the trained weights of the rewritten graph come from
`archspec.rewrite.transfer_weights` (see the README, "Graph rewrites")."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from archspec.commands.common import REPORTS_FOLDER, InputOption, SetOption, compile_options, handles_errors
from archspec.errors import ArchspecError

NAMES_SHOWN = 6  # node names listed per rule before "+N more"
MAX_GROWTH = 64  # input growth tried when looking for the stride of a convolutionalized graph


@handles_errors
def command(
    spec: Path = typer.Argument(..., help="The spec file."),
    fold_bn: bool = typer.Option(False, "--fold-bn", help="Fold each BatchNorm into the conv (or linear) before it (inference)."),
    convolutionalize: bool = typer.Option(
        False, "--convolutionalize", help="Turn the FC layers after a flatten into convolutions (runs on larger inputs, one output per window)."
    ),
    strip_dropout: bool = typer.Option(False, "--strip-dropout", help="Remove dropout and identity nodes (inference)."),
    out: Optional[Path] = typer.Option(None, "--out", help="The rewritten spec to write (default reports/<name>/<name>.rewritten.yaml)."),
    sets: Optional[List[str]] = SetOption,
    inputs: Optional[List[str]] = InputOption,
) -> None:
    """Rewrite the graph (fold BN, convolutionalize, strip dropout), print what changed and write a flat spec."""
    from archspec.files import safe_folder, write_atomic
    from archspec.passes.counts import analyze
    from archspec.rewrite import PASSES

    wanted = {"strip_dropout": strip_dropout, "fold_bn": fold_bn, "convolutionalize": convolutionalize}
    chosen = [name for name in PASSES if wanted[name]]  # in the order PASSES applies them
    _check_request(chosen, spec, out)
    compiled = compile_options(spec, sets, inputs)
    ir, analysis = compiled.ir, compiled.analysis
    shapes = ", ".join(f"{name} {_shape(shape)}" for name, shape in analysis.inputs.items())
    typer.echo(f"{ir.name} at {shapes}: {_figures(analysis.totals, len(analysis.layers))}")
    current, convolutionalized = _rewrite(ir, chosen)
    final = analyze(current)
    outputs = ", ".join(f"{name} {_shape(shape)}" for name, shape in final.outputs.items())
    typer.echo(f"result: {_figures(final.totals, len(final.layers))}; output {outputs}")

    target = out or safe_folder(REPORTS_FOLDER, ir.name) / f"{ir.name}.rewritten.yaml"
    text = _flat_spec(current, ir.name, spec, chosen)
    loaded = _check_round_trip(text, final)
    if "convolutionalize" in chosen:
        typer.echo("  " + _larger_input_note(loaded, final, current, convolutionalized))
    try:
        write_atomic(target, text)
    except OSError as err:
        raise ArchspecError(f"cannot write {target}: {err.strerror or err}") from None
    typer.echo(f"wrote {target} ({len(final.layers)} layers); it loads again with the same shapes, params and MACs")


def _check_request(chosen: list[str], spec: Path, out: Path | None) -> None:
    if not chosen:
        raise ArchspecError("choose at least one rewrite: --fold-bn, --convolutionalize or --strip-dropout")
    if out is not None and out.is_dir():
        raise ArchspecError(f"--out {out} is a folder; give the file to write, e.g. {out / 'rewritten.yaml'}")
    if out is not None and spec.exists() and out.resolve() == spec.resolve():
        raise ArchspecError(f"--out {out} is the spec being rewritten; write the rewritten spec to another file")


def _rewrite(ir, chosen: list[str]):
    """Apply the chosen passes in order, printing what each changed: (the IR, whether any FC
    layer became a conv)."""
    from archspec.rewrite import PASSES, apply_rewrites

    current, convolutionalized = ir, False
    for pass_name in chosen:
        current, report = apply_rewrites(current, PASSES[pass_name])
        convolutionalized = convolutionalized or (pass_name == "convolutionalize" and report.changed)
        typer.echo(f"{pass_name}: " + (f"{len(report.changes)} change(s)" if report.changed else "nothing to rewrite"))
        for summary in report.by_rule().values():
            if summary.applied:
                parts = [f"{label} {len(ids)} ({_names(ids)})" for label, ids in (
                    ("removed", summary.removed), ("replaced", summary.replaced), ("moved", summary.moved), ("added", summary.added)
                ) if ids]
                parts.append(f"params {summary.params:+,}, MACs {summary.macs:+,}")
                typer.echo(f"  {summary.rule} x{summary.applied}: " + "; ".join(parts))
        if report.changed:
            before, after = report.before, report.after
            typer.echo(
                f"  params {before.params:,} -> {after.params:,} · MACs {before.macs:,} -> {after.macs:,}"
                f" · buffers {before.buffers:,} -> {after.buffers:,} · ops {report.nodes_before} -> {report.nodes_after}"
            )
    return current, convolutionalized


def _flat_spec(ir, name: str, spec: Path, chosen: list[str]) -> str:
    from archspec.rewrite import ir_to_spec_yaml

    applied = ", ".join(chosen)
    return ir_to_spec_yaml(
        ir,
        summary=f"{name} after archspec rewrite ({applied}), as a flat spec",
        comment=(
            f"Written by `archspec rewrite` from {spec} ({applied}).\n"
            "A flat spec: one layer per node, blocks expanded, every value fixed; a module path\n"
            "`a.b.c` of the original is the name `a_b_c` here. Trained weights: archspec.rewrite.transfer_weights\n"
            "(then archspec.rewrite.flat_state_dict for a module built from this file)."
        ),
    )


def _check_round_trip(text: str, expected):
    """The spec about to be written must give the rewritten graph's analysis (else archspec has a
    bug, and nothing is written). Returns the loaded spec."""
    import tempfile

    from archspec import pipeline

    with tempfile.TemporaryDirectory(prefix="archspec-rewrite-") as folder:
        path = Path(folder) / "rewritten.yaml"
        path.write_text(text, encoding="utf-8")
        again = pipeline.compile(path)
        analysis = again.analysis
    if analysis.totals != expected.totals or list(analysis.outputs.values()) != list(expected.outputs.values()):
        raise ArchspecError("the rewritten spec does not reload to the rewritten graph (a bug in archspec: please report it)")
    return again.loaded


def _larger_input_note(loaded, final, ir, changed: bool) -> str:
    """Whether the convolutionalized graph gives a grid on larger inputs: the smallest growth of the
    input (up to MAX_GROWTH pixels a side) that adds output positions is the windows' stride."""
    from archspec.errors import SpecError
    from archspec import pipeline

    if not changed:
        return "nothing to convolutionalize: no linear layer reads a flattened map"
    left = [node for node in ir.nodes() if not node.is_input and node.entry.is_("flattens")]
    if left:
        reader = ", ".join(f"{ir.node(c).op} '{c}'" for c in ir.consumers(left[0].id)) or "the output"
        return f"'{left[0].id}' still flattens before {reader}, so the graph does not run on larger inputs"
    images = {name: shape for name, shape in final.inputs.items() if len(shape) == 3}
    outputs = list(final.outputs.values())
    for growth in range(1, MAX_GROWTH + 1):
        larger = {name: (c, h + growth, w + growth) for name, (c, h, w) in images.items()}
        try:
            grown = pipeline.compile(loaded, None, larger).ir
        except SpecError:
            continue
        shapes = [grown.shapes[node] for node in grown.outputs.values()]
        if shapes != outputs:
            window = ", ".join(f"{h}x{w}" for _, h, w in images.values())
            return (
                f"fully convolutional: at --input {', '.join(_shape(s) for s in larger.values())} the output is "
                f"{', '.join(_shape(s) for s in shapes)}, one cell per {window} window, {growth} pixel(s) apart"
            )
    return (
        f"the output stays {', '.join(_shape(s) for s in outputs)} on inputs up to {MAX_GROWTH} pixels larger: "
        "a pooling to a fixed size (adaptive) comes before the FC layers"
    )


def _figures(totals, layers: int) -> str:
    return f"{layers} ops, {totals.params:,} params, {totals.macs:,} MACs"


def _shape(shape) -> str:
    return "x".join(map(str, shape))


def _names(ids: list[str]) -> str:
    shown = ", ".join(ids[:NAMES_SHOWN])
    return shown + (f", +{len(ids) - NAMES_SHOWN} more" if len(ids) > NAMES_SHOWN else "")
