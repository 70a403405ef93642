"""Reading a file that a user names, with a bound: the one place archspec reads such files.

Spec files, included files and the files of a run folder all go through `read_bounded`: it looks
at the file with `stat` first and refuses anything that is not a regular file (a FIFO would block
forever, /dev/zero never ends), refuses a file whose size is over the limit without reading it (a
sparse 20 GiB file), and reads at most the limit plus one byte (a file that grows while it is read,
or one whose size `stat` does not know). Torch-free: the spec loader imports it.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

MAX_RUN_FILE_BYTES = 16 << 20  # 16 MiB: a run folder's metrics.jsonl / config.json (~200 bytes an epoch)

# opening a FIFO for reading without O_NONBLOCK waits for a writer; the stat check comes first,
# this is the second guard against a file swapped for a FIFO between stat and open
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
_CHUNK = 1 << 20

_KINDS = (
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class FileRefused(OSError):
    """A file that is not read: not a regular file (`size` is None) or larger than the limit.

    An OSError, so callers that already report unreadable files report these the same way."""

    def __init__(self, message: str, kind: str | None = None, size: int | None = None, exact: bool = True):
        super().__init__(message)
        self.kind, self.size, self.exact = kind, size, exact


def file_kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _check_regular(path: str, mode: int) -> None:
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    if not stat.S_ISREG(mode):
        kind = file_kind(mode)
        raise FileRefused(f"not a regular file ({kind})", kind=kind)


def _too_large(size: int, limit: int, exact: bool) -> FileRefused:
    told = f"{size:,} bytes" if exact else f"more than {limit:,} bytes"
    return FileRefused(f"the file is {told}; the limit is {limit:,} bytes", size=size, exact=exact)


def read_bounded(path: str | os.PathLike, limit: int) -> bytes:
    """The file's bytes, at most `limit` of them. Raises FileNotFoundError, IsADirectoryError,
    FileRefused (not a regular file, or too large) or another OSError; ValueError for a path
    with a NUL byte."""
    name = os.fspath(path)
    info = os.stat(name)  # follows links: a link to /dev/zero is judged as /dev/zero
    _check_regular(name, info.st_mode)
    if info.st_size > limit:
        raise _too_large(info.st_size, limit, exact=True)
    fd = os.open(name, _OPEN_FLAGS)
    try:
        _check_regular(name, os.fstat(fd).st_mode)  # what was opened, not what was looked at
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(_CHUNK, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    finally:
        os.close(fd)
    if total > limit:
        raise _too_large(total, limit, exact=False)
    return b"".join(chunks)


def read_bounded_text(path: str | os.PathLike | Path, limit: int = MAX_RUN_FILE_BYTES) -> str:
    """`read_bounded`, decoded as UTF-8 (UnicodeDecodeError if it is not)."""
    return read_bounded(path, limit).decode("utf-8")
