"""`archspec diagram SPEC`: the architecture as a Graphviz diagram (svg, png, pdf or dot).

The .dot file is always written; svg/png/pdf need graphviz's `dot` program (without it the
command says how to install it and exits 1). Never imports torch.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from archspec.commands.common import REPORTS_FOLDER, InputOption, SetOption, compile_options, handles_errors
from archspec.errors import ArchspecError


@handles_errors
def command(
    spec: Path = typer.Argument(..., help="The spec file."),
    depth: Optional[int] = typer.Option(None, "--depth", min=0, help="Draw every block at nesting depth N as one node (0 or none: every op)."),
    output_format: Optional[str] = typer.Option(None, "--format", help="svg, png, pdf or dot (default: from --out's suffix, else svg); "
                                                "a --format that disagrees with --out's suffix is an error."),
    rankdir: str = typer.Option("TB", "--rankdir", help="TB (top to bottom) or LR (left to right)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output file, or a folder for diagram.<format> (default reports/<name>/diagram.<format>)."),
    params: bool = typer.Option(False, "--params", help="Show parameters and MACs on every node."),
    sets: Optional[List[str]] = SetOption,
    inputs: Optional[List[str]] = InputOption,
) -> None:
    """Draw the architecture: ops with their key arguments, tensor shapes on the edges, blocks as boxes."""
    from archspec.render.diagram import FORMATS, RANKDIRS, diagram_source, render
    from archspec.files import safe_folder, write_atomic

    fmt = diagram_format(output_format, out, FORMATS)
    if rankdir.upper() not in RANKDIRS:
        raise ArchspecError(f"--rankdir must be TB or LR, not '{rankdir}'")
    compiled = compile_options(spec, sets, inputs)
    ir, analysis = compiled.ir, compiled.analysis
    if out is None:
        path = safe_folder(REPORTS_FOLDER, analysis.name) / f"diagram.{fmt}"
    elif out.is_dir() or not out.suffix:  # a folder (existing, or a name without a suffix)
        path = out / f"diagram.{fmt}"
    else:
        path = out
    source = diagram_source(ir, analysis, depth=depth, rankdir=rankdir, params=params)
    dot_file = write_atomic(path.with_suffix(".dot"), source)  # always, even where `dot` is missing
    typer.echo(f"wrote {dot_file}")
    if fmt != "dot":
        typer.echo(f"wrote {write_atomic(path, render(source, fmt))}")


def diagram_format(output_format: Optional[str], out: Optional[Path], formats) -> str:
    """The format to draw: --format, else --out's suffix, else svg. Both given and disagreeing
    (`--out x.svg --format png`) is an error rather than a PNG in a file named .svg."""
    suffix = out.suffix.lstrip(".").lower() if out is not None and out.suffix and not out.is_dir() else ""
    fmt = (output_format or suffix or "svg").lower()
    if fmt not in formats:
        what = "--format" if output_format else f"--out {out}: the suffix"
        raise ArchspecError(f"{what} must be one of {', '.join(formats)}, not '{fmt}'")
    if output_format and suffix in formats and suffix != fmt:
        raise ArchspecError(f"--out {out} is a .{suffix} file but --format is {fmt}: drop --format (the suffix "
                            f"decides) or name the file .{fmt}")
    return fmt
