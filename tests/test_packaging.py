"""The installed package carries the library that `archspec:` paths name.

A wheel holds the files under archspec/ that pyproject's package-data globs match; specs/ reaches
the package through the archspec/specs link. Every library spec and block file must be matched,
or `use: [archspec:blocks/...]` would work in a clone and fail once installed."""
from __future__ import annotations

import tomllib
from pathlib import Path

import archspec
from archspec.spec.includes import library_root

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(archspec.__file__).resolve().parent


def _shipped() -> set[Path]:
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["archspec"]
    return {path.resolve() for pattern in globs for path in PACKAGE.glob(pattern)}


def test_every_library_file_ships_in_the_package():
    library = sorted((ROOT / "specs").rglob("*.yaml"))
    assert len(library) > 60
    missing = [str(path.relative_to(ROOT)) for path in library if path.resolve() not in _shipped()]
    assert missing == []


def test_library_paths_resolve_inside_the_package():
    assert (PACKAGE / "specs").is_symlink() or (PACKAGE / "specs").is_dir()
    assert library_root() == (PACKAGE / "specs").resolve() == (ROOT / "specs").resolve()
