"""`archspec export SPEC --format onnx|pt2|torchscript|python --out PATH`: the lowered module
(with a run's weights) as a file another runtime loads, loaded back and checked against torch."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from archspec.commands.common import InputOption, SetOption, compile_options, handles_errors, spec_file
from archspec.errors import ArchspecError
from archspec.export import EXAMPLE_BATCH, FORMATS, MIN_EXAMPLE_BATCH, ExportJob, lookup


@handles_errors
def command(
    spec: Path = typer.Argument(..., help="The spec file."),
    format_name: str = typer.Option(..., "--format", help="One of: " + ", ".join(
        f"{name} ({entry.summary})" for name, entry in FORMATS.items()) + "."),
    out: Path = typer.Option(..., "--out", help="The file to write."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="A run folder, a .safetensors checkpoint or a torch state_dict file, loaded strictly (default: the spec's initialisation)."),
    sets: Optional[List[str]] = SetOption,
    inputs: Optional[List[str]] = InputOption,
    batch: int = typer.Option(EXAMPLE_BATCH, "--batch", min=MIN_EXAMPLE_BATCH, help="Batch of the example the exporter traces; the file takes any batch (torch.export fixes a batch of 1)."),
) -> None:
    """Export the lowered module (eval mode) to a file, load it back and compare its outputs with torch's."""
    from archspec.files import check_output_folder

    export_format = lookup(format_name)  # a bad name costs nothing
    if out.is_dir():
        example = out / f"model{export_format.suffix}"
        raise ArchspecError(f"--out {out} is a folder; give the file to write, e.g. {example}")
    check_output_folder(out.parent)
    compiled, module = exported_model(spec, weights, sets, inputs, export_format.runs_module)
    job = ExportJob(compiled, module, out, batch)
    result = export_format.export(job)
    typer.echo(summary(job, export_format.name, result))
    if weights is not None and not export_format.runs_module:
        typer.echo(f"note: the file holds no weights: load {weights} into its module (load_state_dict, strict)")
    if result.check is not None and not result.check.ok:
        reason = result.check.problem or "over the tolerance"
        raise ArchspecError(f"{result.path}: the exported file's outputs differ from torch's ({reason}); "
                            "the file is kept for inspection")


def exported_model(spec: Path, weights: Optional[Path], sets, inputs, build: bool = True):
    """(compiled spec, its lowered module in eval mode, or None unless `build`); with --weights,
    compiled with the checkpoint's build parameters and loaded strictly, as `archspec evaluate` does."""
    if weights is None:
        compiled = compile_options(spec, sets, inputs)
        return compiled, compiled.module().eval() if build else None
    from archspec.commands.train import checkpoint_plan, trained_model
    from archspec.train.setup import plan

    spec_plan, checkpoint = checkpoint_plan(weights, sets, inputs, lambda params, shapes: plan(spec_file(spec), params, shapes))
    return spec_plan.compiled, trained_model(spec_plan, weights, checkpoint).eval() if build else None


def summary(job: ExportJob, format_name: str, result) -> str:
    from archspec.render.figures import human_bytes

    def shapes(named: dict) -> str:
        return ", ".join(f"{name} [N, {', '.join(map(str, shape))}]" for name, shape in named.items())

    rows = [("format", format_name), ("file", f"{result.path} ({human_bytes(result.path.stat().st_size)})"),
            ("inputs", shapes(job.input_shapes)), ("outputs", shapes(job.output_shapes)), *result.facts,
            ("check", result.check.text(job.example_batch) if result.check else "none (source text)")]
    width = max(len(label) for label, _ in rows)
    lines = [f"  {label:<{width}}  {value}" for label, value in rows]
    return "\n".join([f"exported {job.compiled.analysis.name}", *lines])
