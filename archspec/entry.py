"""The `archspec` command: a report already computed from the same files is answered from the
cache (archspec.cache) before the command line and the pipeline are imported; every other
command line goes to the typer app in archspec.cli."""
from __future__ import annotations

import sys


def main() -> None:
    from archspec import cache

    argv = sys.argv[1:]
    if cache.replay(argv):
        return
    cache.command_line = argv
    from archspec.cli import app

    app()
