"""Writing artifacts: atomically (temporary file, then rename) and only inside the output folder."""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from archspec.errors import ArchspecError


def safe_folder(root: Path, name: str) -> Path:
    """`root/<name>` for a spec name, refusing anything that would leave `root`."""
    cleaned = re.sub(r"[^A-Za-z0-9_.\-]", "_", name).strip(".") or "spec"
    folder = (root / cleaned).resolve()
    if not folder.is_relative_to(root.resolve()):
        raise ArchspecError(f"refusing to write outside {root}: spec name '{name}'")
    return folder


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Write the whole file or nothing: an interrupted write leaves the old file in place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if isinstance(data, bytes) else {"encoding": "utf-8"})) as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
