"""`archspec view SPEC`: the architecture as one self-contained, offline HTML page to explore:
blocks that open and close, pan and zoom, search, and every figure of the clicked node. And
`archspec serve DIR`: the same page per spec of a folder, reloaded as its files change.

Never imports torch; the page's layout is done in the browser by the vendored ELK library.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from archspec.commands.common import REPORTS_FOLDER, InputOption, SetOption, compile_options, handles_errors
from archspec.errors import ArchspecError

PAGE_NAME = "view.html"
SUFFIXES = (".html", ".htm")


@handles_errors
def command(
    spec: Path = typer.Argument(..., help="The spec file."),
    out: Optional[Path] = typer.Option(None, "--out", help=f"The HTML file to write, or an existing folder for {PAGE_NAME} (default reports/<name>/{PAGE_NAME})."),
    open_page: bool = typer.Option(False, "--open", help="Open the page in the default browser."),
    depth: Optional[int] = typer.Option(None, "--depth", min=0, help="Open blocks nested up to depth N (default: as deep as stays small)."),
    sets: Optional[List[str]] = SetOption,
    inputs: Optional[List[str]] = InputOption,
) -> None:
    """Write an interactive viewer of the architecture: one HTML file that works offline."""
    from archspec.files import safe_folder, write_atomic
    from archspec.render.viewer import view_page

    if out is not None:  # what is wrong with the path, before the work
        page_path(out)
    compiled = compile_options(spec, sets, inputs)
    path = page_path(out) if out is not None else safe_folder(REPORTS_FOLDER, compiled.analysis.name) / PAGE_NAME
    written = write_atomic(path, view_page(compiled, depth))
    typer.echo(f"wrote {written}")
    if open_page:
        import webbrowser

        webbrowser.open(written.resolve().as_uri())


def page_path(out: Path) -> Path:
    """`--out`: an existing folder gets view.html; a file must be .html and go in an existing folder."""
    if out.is_dir():
        return out / PAGE_NAME
    if out.suffix.lower() not in SUFFIXES:
        raise ArchspecError(f"--out {out}: the viewer is an HTML page; give a name ending in .html or an existing folder")
    parent = out.parent
    if not parent.is_dir():
        what = "is not a folder" if parent.exists() else "does not exist"
        raise ArchspecError(f"--out {out}: the folder {parent} {what}")
    return out


@handles_errors
def serve_command(
    folder: Path = typer.Argument(Path("."), help="The folder of specs to serve."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port to listen on (0: any free one)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (default: this machine only)."),
    open_page: bool = typer.Option(False, "--open", help="Open the index page in the default browser."),
) -> None:
    """Serve a viewer per spec in FOLDER that reloads when a YAML file changes and shows errors in place."""
    from archspec.render.viewer.serve import make_server

    server = make_server(folder, host, port)
    url = f"http://{host}:{server.server_address[1]}/"
    typer.echo(f"serving {folder} at {url} (Ctrl-C stops)")
    if open_page:
        import webbrowser

        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        typer.echo("stopped", err=True)
    finally:
        server.server_close()
