"""Shared test helpers: paths, spec writing, and running the CLI in-process or as a process."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
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


def pytest_configure(config):
    """The tests' caches (report results, the cpu calibration) in a folder of their own, never the
    user's ~/.cache: a test run neither reads nor leaves entries there."""
    config._archspec_cache = tempfile.mkdtemp(prefix="archspec-tests-cache-")
    os.environ["XDG_CACHE_HOME"] = config._archspec_cache


def pytest_unconfigure(config):
    shutil.rmtree(getattr(config, "_archspec_cache", ""), ignore_errors=True)


def _torchvision_imports() -> bool:
    try:
        import torchvision  # noqa: F401
    except Exception:
        return False
    return True


def pytest_sessionfinish(session, exitstatus):
    """The README's "equal to torchvision" claims are checked, not skipped: a torchvision-equivalence
    test that skips while torchvision imports fails the run."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or hasattr(session.config, "workerinput"):  # xdist workers: the controller decides
        return
    skipped = [report.nodeid for report in reporter.stats.get("skipped", [])
               if "test_torchvision_equivalence" in report.nodeid]
    if skipped and _torchvision_imports():
        reporter.write_line(f"error: {len(skipped)} torchvision-equivalence tests skipped although torchvision "
                            "imports: " + ", ".join(skipped[:3]), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run `python -m archspec ARGS` as a separate process (exit codes, stderr, imports)."""
    return subprocess.run([sys.executable, "-m", "archspec", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


# --- memory between tests ------------------------------------------------------------------------------
RESIDENT_LIMIT = 3 * 2**30  # bytes: above this, a worker gives freed memory back after a test


def _resident_bytes() -> int:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * 4096
    except (OSError, ValueError, IndexError):
        return 0


@pytest.fixture(autouse=True)
def _give_memory_back():
    """The library's big models (vit_l_16's 304M parameters, built twice beside torchvision's)
    leave glibc's heap fragmented: one xdist worker grew past 18 GiB and was killed for memory.
    After a test that leaves the worker large, collect and hand the free pages back to the OS."""
    yield
    if _resident_bytes() > RESIDENT_LIMIT:
        import ctypes
        import gc

        gc.collect()
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass  # not glibc: nothing to trim
