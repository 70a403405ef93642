"""The files a spec includes (`extends` and `use`): where a path leads, and how messages name it.

A path is relative to the including file's folder and may not leave it (`../x.yaml`, `/etc/x` are
refused). A path that starts with `archspec:` names a file of archspec's own library instead,
relative to the library folder and within it (`use: [archspec:blocks/resnet.yaml]`,
`extends: archspec:resnet18.yaml`): a spec in any folder can build on the library. Either way the
target must be a regular file; the limits on files, bytes and values (archspec.spec.document)
count library files like any other.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from archspec.errors import Location, SpecError, did_you_mean
from archspec.spec.reading import file_kind
from archspec.spec.yaml_source import SourceList, SourceMap

LIBRARY_PREFIX = "archspec:"
_PACKAGE = Path(__file__).resolve().parents[1]
# the library's specs: inside the package where an installation carries them, else the source
# tree's specs/ folder next to the package (an editable install, as `make` sets up)
LIBRARY_CANDIDATES = (_PACKAGE / "specs", _PACKAGE.parent / "specs")


def library_root() -> Path | None:
    """The folder `archspec:` paths are relative to; None when no candidate exists."""
    return next((folder.resolve() for folder in LIBRARY_CANDIDATES if folder.is_dir()), None)


def included_path(base: Path, text: Any, loc: Location, what: str) -> Path:
    """The file that `base` names as `text` in its `what` (`use` or `extends`), checked."""
    if not isinstance(text, str) or not text:
        raise SpecError(f"`{what}` entries are file paths (strings)", loc)
    if "\0" in text:  # the OS refuses it with an unlocated ValueError ("embedded null byte")
        raise SpecError(f"`{what}` path {text!r} contains a NUL byte", loc, hint="file names cannot contain \\0")
    library = text.startswith(LIBRARY_PREFIX)
    try:
        folder = _library_folder(text, loc) if library else base.parent.resolve()
        target = (folder / text.removeprefix(LIBRARY_PREFIX)).resolve()
    except (OSError, RuntimeError) as err:  # a symlink loop, a name too long
        raise SpecError(f"cannot follow `{what}` path '{text}': {getattr(err, 'strerror', None) or err}", loc) from None
    if not target.is_relative_to(folder):
        if library:
            raise SpecError(f"'{text}' is outside archspec's library folder {folder}", loc,
                            hint="a library path names a file in that folder or below it, e.g. archspec:blocks/resnet.yaml")
        raise SpecError(f"'{text}' is outside the spec's folder {folder}", loc,
                        hint="included files must live in the spec's folder or below it; "
                             f"archspec's own library files are named {LIBRARY_PREFIX}PATH")
    _check_regular(text, target, folder if library else None, loc)
    return target


def _library_folder(text: str, loc: Location) -> Path:
    folder = library_root()
    if folder is None:
        raise SpecError(f"'{text}' names archspec's library, and this installation has none", loc,
                        hint="looked in " + " and ".join(str(c) for c in LIBRARY_CANDIDATES))
    return folder


def _check_regular(text: str, target: Path, library: Path | None, loc: Location) -> None:
    try:
        mode = target.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        hint = f"looked for {target}"
        if library is not None:  # say what the library does hold
            known = sorted(LIBRARY_PREFIX + str(p.relative_to(library)) for p in library.rglob("*.yaml"))
            hint = did_you_mean(text, known) or \
                f"{hint}; the library holds {len(known)} files, its blocks under {LIBRARY_PREFIX}blocks/"
        raise SpecError(f"included file '{text}' does not exist", loc, hint=hint) from None
    except OSError as err:
        raise SpecError(f"cannot read included file '{text}': {err.strerror or err}", loc) from None
    if not stat.S_ISREG(mode):  # a FIFO would block the read, a device never end
        kind = "a folder" if stat.S_ISDIR(mode) else file_kind(mode)
        raise SpecError(f"included file '{text}' is not a regular file ({kind})", loc, hint=f"looked at {target}")


def shown_path(including: str, text: str, target: Path) -> str:
    """How messages name a file that `including` names as `text`: relative, as the user wrote it;
    a library file by its real path (relative to the working folder when it is below it)."""
    if text.startswith(LIBRARY_PREFIX):
        return os.path.relpath(target) if target.is_relative_to(Path.cwd()) else str(target)
    return str(Path(including).parent / text) if not Path(text).is_absolute() else text


def relocate(value: Any, file: str) -> None:
    """Show locations of an included file by the path the user wrote (relative, readable)."""
    if hasattr(value, "loc"):
        old = value.loc
        value.loc = Location(file, old.line, old.column)
    if isinstance(value, SourceMap):
        value.key_locs = {k: Location(file, v.line, v.column) for k, v in value.key_locs.items()}
        value.value_locs = {k: Location(file, v.line, v.column) for k, v in value.value_locs.items()}
        for item in value.values():
            relocate(item, file)
    elif isinstance(value, SourceList):
        value.item_locs = [Location(file, v.line, v.column) for v in value.item_locs]
        for item in value:
            relocate(item, file)
