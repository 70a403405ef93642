"""`archspec import TARGET --out SPEC.yaml`: a PyTorch model as a spec (archspec.importer).

TARGET is the user's own code, named on the user's command line: `package.module:factory`
(`torchvision.models:resnet50`, `timm:resnet50d`) or `path/to/model.py:build`. Every node the
registry cannot express is listed at once, one line each, and nothing is written; a written
spec is then checked against the model (build, strict state_dict load, outputs, FLOPs).
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from archspec.commands.common import handles_errors, parse_inputs
from archspec.errors import check_choice
from archspec.errors import ArchspecError, SpecError

BLOCK_MODES = ("auto", "none")


@handles_errors
def command(
    target: str = typer.Argument(..., help="MODULE:FACTORY (torchvision.models:resnet50, timm:resnet50d) or FILE.py:FACTORY."),
    out: Path = typer.Option(..., "--out", help="The spec file to write."),
    input_shape: str = typer.Option("3x224x224", "--input", help="The input shape CxHxW the model is traced at."),
    blocks: str = typer.Option("auto", "--blocks", help="auto: fold equal modules into blocks and repeats; none: a flat spec."),
    args: Optional[List[str]] = typer.Option(None, "--arg", help="A keyword of the factory, NAME=VALUE as a Python literal (repeatable)."),
    check: bool = typer.Option(True, "--check/--no-check", help="Check the written spec against the model."),
) -> None:
    """Import a PyTorch model as a spec, checked: build, strict state_dict load, outputs, FLOPs."""
    from archspec.files import write_atomic
    from archspec.importer.check import verify
    from archspec.importer.convert import import_model
    from archspec.importer.target import load_model, parse_kwargs

    check_choice("--blocks", blocks, BLOCK_MODES)
    shape = parse_inputs([input_shape])[""]
    model = load_model(target, parse_kwargs(args))
    name = target.rpartition(":")[2]
    summary = f"{target}, imported by `archspec import` at {input_shape}"
    result = import_model(model, shape, name, summary, blocks)
    if result.problems:
        for problem in result.problems:
            typer.echo(problem.line(), err=True)
        raise SpecError(f"{len(result.problems)} node(s) of {target} have no op in the registry; nothing was written",
                            hint="each line above is the fx node, its target, the module path and why")
    write_atomic(out, result.text)
    typer.echo(f"wrote {out} ({len(result.text.splitlines())} lines)")
    if not check:
        return
    chain = verify(model, out, shape, keep_model=False)  # the model was loaded for this command only
    for line in chain.lines():
        typer.echo(f"  {line}")
    if not chain.exact:
        raise ArchspecError(f"{out} is written but does not reproduce {target} exactly (see the checks above)")
