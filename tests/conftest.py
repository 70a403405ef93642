"""Shared test helpers: paths, spec writing, and running the CLI in-process or as a process."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
LIBRARY = sorted(SPECS.glob("*.yaml"))


@pytest.fixture
def write_spec(tmp_path):
    """write_spec("name: x ...", filename="spec.yaml") -> Path; dedents the text."""

    def write(text: str, filename: str = "spec.yaml") -> Path:
        path = tmp_path / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    return write


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run `python -m archspec ARGS` as a separate process (exit codes, stderr, imports)."""
    return subprocess.run([sys.executable, "-m", "archspec", *args], cwd=cwd, capture_output=True, text=True, timeout=300)
