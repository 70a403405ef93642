"""The dev/test environment is the locked one: `make` installs requirements.lock exactly, so an
upstream release cannot change what the tests run against."""
from __future__ import annotations

import os
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.version import Version

from conftest import ROOT

LOCK = ROOT / "requirements.lock"


def locked() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if match:
            pins[match.group(1)] = match.group(2)
    return pins


def test_the_lock_pins_every_package_exactly():
    pins = locked()
    assert {"torch", "torchvision", "pydantic", "pyyaml", "networkx", "typer", "rich", "pytest"} <= set(pins)
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    loose = [line for line in LOCK.read_text().splitlines()
             if line and not line.startswith((" ", "#")) and "==" not in line]
    assert loose == [], "every requirement in the lock is pinned with =="


def test_the_project_venv_holds_exactly_the_locked_versions():
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve() and not os.environ.get("CI"):
        pytest.skip("not running in the project's .venv (make test runs there)")
    wrong = []
    for name, version in locked().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            wrong.append(f"{name} (not installed)")
            continue
        if Version(installed).public != Version(version).public:  # torch's +cu130 local tag is the same build
            wrong.append(f"{name} {installed} (locked {version})")
    assert wrong == [], "run `make clean setup`: " + ", ".join(wrong)
