"""archspec's cache folder, and answering a report again without computing it again.

A `report` on stdout (JSON or Markdown) depends on four things only: the command line, the
folder it runs in, the text of the spec files it reads (its own, `extends` and `use`) and
archspec's code. The first run stores its output under a key of the first two and the code's
fingerprint, with the SHA-256 of every file the spec read. A later run with the same key replays
the output when every one of those files still has the same SHA-256, before the command line
(typer) or the pipeline (yaml, pydantic, networkx) is imported: so `archspec report` of an
unchanged spec answers in about the interpreter's start-up time (benchmarks/bench_startup.py).

Anything in doubt is computed, never replayed: an entry that is unreadable, of another format,
of a changed file; what `report` does not store (reports/startup.md lists it). `--no-cache`
never hits and never stores. Stdlib only, imported by archspec.entry before anything else.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Iterable

FORMAT = 1  # the entry layout; part of the key
MAX_BYTES = 64 * 2**20  # the reports folder's size: the oldest entries go first
NO_CACHE = "--no-cache"
# what else output may depend on: the message language, archspec's own switches
ENVIRONMENT = ("LC_ALL", "LC_MESSAGES", "LANG")
_PACKAGE = Path(__file__).resolve().parent

# The command line of this process, set by archspec.entry.main; None inside a CliRunner or any
# other in-process caller, which never stores (its sys.argv is not its command line).
command_line: list[str] | None = None


def cache_home() -> Path:
    """archspec's cache folder (XDG base directory spec)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "archspec"


def code_fingerprint(package: Path = _PACKAGE) -> str:
    """The name, size and modification time of every file of the package: any edit or
    reinstallation of archspec changes it (about 1 ms for its ~190 files)."""
    digest = hashlib.sha256()
    folders = [package]
    while folders:
        folder = folders.pop()
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.is_dir(follow_symlinks=False):
                if entry.name != "__pycache__":
                    folders.append(Path(entry.path))
                continue
            stat = entry.stat()
            digest.update(f"{entry.path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def entry_path(argv: list[str]) -> Path:
    environment = {name: os.environ.get(name, "") for name in ENVIRONMENT}
    environment.update((name, value) for name, value in os.environ.items() if name.startswith("ARCHSPEC_"))
    key = json.dumps([FORMAT, sys.version, sys.executable, code_fingerprint(), os.getcwd(), sorted(environment.items()), argv])
    return cache_home() / "reports" / (hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest() + ".json")


def file_sha256(path: str | Path) -> str | None:
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except (OSError, ValueError):
        return None


def replay(argv: list[str]) -> bool:
    """Write the stored output of this command line and say True, when there is one and every
    file it was computed from is unchanged; else False and nothing is written."""
    if not argv or argv[0] != "report" or NO_CACHE in argv:
        return False
    try:
        entry = json.loads(entry_path(argv).read_text(encoding="utf-8"))
        if entry.get("format") != FORMAT:
            return False
        sources, stdout, stderr = entry["sources"], entry["stdout"], entry["stderr"]
        if not sources or any(file_sha256(path) != sha for path, sha in sources):
            return False
    except (OSError, ValueError, TypeError, KeyError):
        return False
    sys.stderr.write(stderr)
    sys.stdout.write(stdout)
    return True


def store(sources: Iterable[tuple[str, str]], stdout: str, stderr: str) -> None:
    """Keep this process's report output for `replay`. A failure to write only costs the next
    run its shortcut, so it is silent, as a cache should be."""
    from archspec.files import write_atomic  # write_atomic: a reader never sees half an entry
    from archspec.errors import ArchspecError

    argv = command_line
    if argv is None or NO_CACHE in argv:
        return
    path = entry_path(argv)
    entry = {"format": FORMAT, "argv": argv, "sources": sorted(set(sources)), "stdout": stdout, "stderr": stderr}
    try:
        write_atomic(path, json.dumps(entry))
        prune(path.parent)
    except (OSError, ArchspecError):
        pass


def prune(folder: Path, limit: int = MAX_BYTES) -> None:
    """Remove the least recently written entries until the folder holds at most `limit` bytes."""
    entries = []
    for entry in os.scandir(folder):
        if entry.name.endswith(".json"):
            stat = entry.stat()
            entries.append((stat.st_mtime_ns, stat.st_size, entry.path))
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries):
        if total <= limit:
            break
        try:
            os.unlink(path)
        except OSError:
            pass
        total -= size
