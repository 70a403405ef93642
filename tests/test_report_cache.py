"""The report cache (archspec.cache): a second `archspec report` of unchanged files is
replayed byte for byte without loading the pipeline; any change to a file the spec reads, to the
command line or to archspec's code computes it again; what cannot be judged is never stored."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from archspec import cache as report_cache

# a process that runs the `archspec` command, then says which heavy modules it imported
PROBE = textwrap.dedent("""
    import json, sys
    sys.argv = ["archspec", *json.loads(sys.argv[1])]
    from archspec.entry import main
    try:
        main()
    except SystemExit as exit:
        code = exit.code
    else:
        code = 0
    loaded = [name for name in ("typer", "yaml", "pydantic", "networkx", "archspec.cli") if name in sys.modules]
    sys.stderr.write("LOADED " + json.dumps(loaded) + "\\n")
    sys.exit(code)
""")

BASE = """\
name: tiny
inputs: {image: [3, 16, 16]}
layers:
  - conv: {name: conv1, out: 4, kernel: 3}
  - relu
"""


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    return folder / "archspec" / "reports"


def run(cwd: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], cwd=cwd, capture_output=True, text=True, timeout=300)
    lines = done.stderr.splitlines()
    loaded = json.loads(lines[-1].removeprefix("LOADED "))
    done.stderr = "\n".join(lines[:-1])
    return done, loaded


def params_of(done: subprocess.CompletedProcess) -> int:
    return json.loads(done.stdout)["params"]["total"]


def test_second_run_replays_the_same_bytes_without_the_pipeline(tmp_path, cache):
    (tmp_path / "spec.yaml").write_text(BASE)
    first, first_loaded = run(tmp_path, "report", "spec.yaml", "--format", "json")
    second, second_loaded = run(tmp_path, "report", "spec.yaml", "--format", "json")
    assert first.returncode == second.returncode == 0, first.stderr
    assert "networkx" in first_loaded and "typer" in first_loaded  # the first run computed it
    assert second.stdout == first.stdout and second.stderr == first.stderr
    assert second_loaded == []  # replayed before typer, yaml, pydantic or networkx
    assert params_of(first) == (3 * 3 * 3 + 1) * 4  # the stored figure is the computed one
    assert len(list(cache.glob("*.json"))) == 1


def test_a_changed_included_file_is_computed_again(tmp_path, cache):
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "spec.yaml").write_text("extends: base.yaml\nname: child\n")
    first, _ = run(tmp_path, "report", "spec.yaml", "--format", "json")
    (tmp_path / "base.yaml").write_text(BASE.replace("out: 4", "out: 8"))
    second, loaded = run(tmp_path, "report", "spec.yaml", "--format", "json")
    assert "networkx" in loaded
    assert (params_of(first), params_of(second)) == ((27 + 1) * 4, (27 + 1) * 8)
    third, loaded = run(tmp_path, "report", "spec.yaml", "--format", "json")
    assert loaded == [] and third.stdout == second.stdout  # the new text's entry


def test_the_command_line_is_part_of_the_key(tmp_path, cache):
    (tmp_path / "spec.yaml").write_text(BASE)
    run(tmp_path, "report", "spec.yaml", "--format", "json")
    other, loaded = run(tmp_path, "report", "spec.yaml", "--format", "json", "--input", "image=3x32x32")
    assert "networkx" in loaded and other.returncode == 0
    assert json.loads(other.stdout)["params"]["total"] == (27 + 1) * 4
    markdown, loaded = run(tmp_path, "report", "spec.yaml", "--format", "markdown")
    assert "networkx" in loaded and markdown.stdout.lstrip().startswith("#")


@pytest.mark.parametrize("args", [
    ("report", "spec.yaml", "--format", "json", "--no-cache"),
    ("report", "spec.yaml"),  # a rich table: its width is the terminal's
    ("report", "spec.yaml", "--format", "markdown", "--out", "out"),  # writes files
    ("report", "lenet5", "--format", "json"),  # a library name: resolved where it runs
])
def test_what_is_never_stored(tmp_path, cache, args):
    (tmp_path / "spec.yaml").write_text(BASE)
    for _ in range(2):
        done, loaded = run(tmp_path, *args)
        assert done.returncode == 0, done.stderr
        assert "networkx" in loaded
    assert not cache.exists() or not list(cache.glob("*.json"))


def test_errors_are_not_stored(tmp_path, cache):
    (tmp_path / "spec.yaml").write_text(BASE.replace("kernel: 3", "kernel: 30"))
    for _ in range(2):
        done, loaded = run(tmp_path, "report", "spec.yaml", "--format", "json")
        assert done.returncode != 0 and "spec.yaml" in done.stderr and "Traceback" not in done.stderr
        assert "networkx" in loaded
    assert not cache.exists() or not list(cache.glob("*.json"))


def test_an_unreadable_entry_is_computed_again(tmp_path, cache):
    (tmp_path / "spec.yaml").write_text(BASE)
    first, _ = run(tmp_path, "report", "spec.yaml", "--format", "json")
    (entry,) = cache.glob("*.json")
    entry.write_text("{not json")
    second, loaded = run(tmp_path, "report", "spec.yaml", "--format", "json")
    assert "networkx" in loaded and second.stdout == first.stdout
    assert json.loads(entry.read_text())["stdout"] == first.stdout  # stored again


def test_the_code_fingerprint_follows_every_file(tmp_path):
    package = tmp_path / "package"
    (package / "sub").mkdir(parents=True)
    (package / "a.py").write_text("x = 1\n")
    (package / "sub" / "b.yaml").write_text("y: 1\n")
    before = report_cache.code_fingerprint(package)
    assert report_cache.code_fingerprint(package) == before
    (package / "sub" / "b.yaml").write_text("y: 22\n")  # another size
    assert report_cache.code_fingerprint(package) != before


def test_prune_removes_the_oldest_entries_first(tmp_path):
    for age, name in enumerate(["old", "middle", "new"]):
        path = tmp_path / f"{name}.json"
        path.write_bytes(b"x" * 100)
        os.utime(path, ns=(age * 10**9, age * 10**9))
    report_cache.prune(tmp_path, limit=250)
    assert sorted(p.stem for p in tmp_path.glob("*.json")) == ["middle", "new"]


def test_in_process_callers_never_store(tmp_path, cache, monkeypatch):
    from typer.testing import CliRunner

    from archspec.cli import app

    monkeypatch.setattr(report_cache, "command_line", None)
    (tmp_path / "spec.yaml").write_text(BASE)
    result = CliRunner().invoke(app, ["report", str(tmp_path / "spec.yaml"), "--format", "json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["params"]["total"] == (27 + 1) * 4
    assert not cache.exists()
