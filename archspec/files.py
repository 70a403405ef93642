"""Writing artifacts: atomically (temporary file, then rename) and only inside the output folder.

A set of artifacts (what `build` writes) is written under an exclusive lock on its folder, so
concurrent builds into one folder end with one build's complete set. Every OSError while writing
becomes an ArchspecError naming the path (a full disk, a read-only file system, a file where a
folder should be), and the old file stays as it was."""
from __future__ import annotations

import errno
import os
import re
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from archspec.errors import ArchspecError

try:
    import fcntl
except ImportError:  # not POSIX: no locks, writes stay atomic per file
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".archspec.lock"
SYSTEM_FOLDERS = ("/proc", "/sys", "/dev")  # kernel views and devices; /dev/shm is ordinary memory
# write_atomic's temporary names: "." + the file's name + "." + mkstemp's 8 characters + ".tmp"
TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")
STALE_AFTER_S = 2.0  # and unlocked: a live writer holds a lock on its temporary file


def safe_folder(root: Path, name: str) -> Path:
    """`root/<name>` for a spec name, refusing anything that would leave `root`."""
    cleaned = re.sub(r"[^A-Za-z0-9_.\-]", "_", name).strip(".") or "spec"
    folder = (root / cleaned).resolve()
    if not folder.is_relative_to(root.resolve()):
        raise ArchspecError(f"refusing to write outside {root}: spec name '{name}'")
    return folder


def write_error(err: OSError, path: Path) -> ArchspecError:
    """A user's error for an OSError met while writing `path`."""
    reasons = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
               errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
               errno.EPERM: "operation not permitted"}
    if err.errno in reasons:
        return ArchspecError(f"{reasons[err.errno]} writing {path}")
    if err.errno in (errno.EEXIST, errno.ENOTDIR):
        return ArchspecError(f"cannot write {path}: a file stands where a folder of that path should be")
    return ArchspecError(f"cannot write {path}: {err.strerror or err}")


def check_output_folder(folder: Path, option: str = "--out") -> Path:
    """Say what is wrong with an output folder before any work is done: a file in its place or
    above it, a system folder (/proc, /sys, /dev), a parent that cannot be written."""
    resolved = Path(os.path.realpath(folder))
    for system in SYSTEM_FOLDERS:
        if resolved.is_relative_to(system) and not resolved.is_relative_to("/dev/shm"):
            raise ArchspecError(f"{option} {folder}: refusing to write artifacts under {system} (a system folder)")
    probe = resolved
    while not os.path.lexists(probe) and probe != probe.parent:
        probe = probe.parent  # the nearest part of the path that exists
    if not probe.is_dir():
        what = "exists and is not a folder" if probe == resolved else f"cannot be created: {probe} is not a folder"
        raise ArchspecError(f"{option} {folder}: {what}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ArchspecError(f"{option} {folder}: {probe} is not writable")
    return folder


def make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        if isinstance(err, FileExistsError) or err.errno == errno.ENOTDIR:
            raise ArchspecError(f"cannot create folder {folder}: a file stands in the way") from None
        raise write_error(err, folder) from None


@contextmanager
def locked_folder(folder: Path) -> Iterator[Path]:
    """Hold an exclusive lock (flock of `.archspec.lock` in it) while a set of artifacts is written:
    a second writer waits, so the set left is one writer's. Stale temporary files go first."""
    make_folder(folder)
    lock = folder / LOCK_NAME
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o666 & ~_umask())
    except OSError as err:
        raise write_error(err, lock) from None
    try:
        _lock(fd)
        remove_stale_temporaries(folder)
        yield folder
    finally:
        os.close(fd)  # releases the lock


def remove_stale_temporaries(folder: Path, name: str | None = None) -> list[Path]:
    """Remove what a killed write_atomic left (`.NAME.XXXXXXXX.tmp`, for one NAME or all): only
    regular files that no live writer holds locked and that are older than STALE_AFTER_S."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not TEMPORARY.fullmatch(entry.name):
            continue
        if name is not None and not (entry.name.startswith(f".{name}.") and len(entry.name) == len(name) + 14):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            if time.time() - entry.stat(follow_symlinks=False).st_mtime < STALE_AFTER_S or _held(entry.path):
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue  # gone already, or not ours to remove
    return removed


def _lock(fd: int) -> None:
    """An exclusive flock, waiting for it; where the file system has no locks (some network
    mounts), writing goes on unlocked rather than failing."""
    if fcntl is None:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError as err:
        if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise


def _held(path: str) -> bool:
    """Whether a live writer holds the lock write_atomic takes on its temporary file."""
    if fcntl is None:
        return False
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Write the whole file or nothing: an interrupted write leaves the old file in place, and any
    OSError (a full disk, a read-only folder) is an ArchspecError naming the path."""
    make_folder(path.parent)
    remove_stale_temporaries(path.parent, path.name)
    mode = "wb" if isinstance(data, bytes) else "w"
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise write_error(err, path) from None
    try:
        with os.fdopen(fd, mode, **({} if isinstance(data, bytes) else {"encoding": "utf-8"})) as handle:
            _lock(handle.fileno())  # marks it live for remove_stale_temporaries
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
            os.replace(temporary, path)
    except BaseException as err:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise write_error(err, path) from None
        raise
    return path
