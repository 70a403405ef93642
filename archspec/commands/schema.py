"""`archspec schema [--out FILE]`: the JSON Schema of the spec language (archspec.spec.schema),
for an editor's completion and errors. Printed, or written to FILE; the library's copy is
schema/archspec.schema.json, named by the first line of each library spec."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from archspec.commands.common import handles_errors
from archspec.errors import ArchspecError


@handles_errors
def command(
    out: Optional[Path] = typer.Option(None, "--out", help="Write the schema to this file instead of printing it."),
) -> None:
    """Print the JSON Schema (Draft 7) of specs and block files: every op with its arguments."""
    from archspec.spec.schema import schema_text

    text = schema_text()
    if out is None:
        typer.echo(text, nl=False)
        return
    if out.is_dir():
        raise ArchspecError(f"--out {out} is a folder; give a file name such as {out / 'archspec.schema.json'}")
    from archspec.files import write_atomic

    typer.echo(f"wrote {write_atomic(out, text)}")
