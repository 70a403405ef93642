"""The README's example commands, run, and their output compared with what the README shows.

Every line `$ archspec ...` inside a fenced block of README.md is an example. The lines under it,
up to the next `$ ` line or the end of the block, are its output as the README shows it.

Which examples run is decided by a rule on the command, never by a list of README lines:
- RUN: the static commands (`STATIC`: validate, report, explain, compare, diff, sweep, rewrite,
  ops, schema). They never import torch and take seconds;
- SKIP, each as a pytest skip that says why: the commands that import torch, train for minutes,
  or read run folders and model files the README does not ship (`SLOW`: train, evaluate, bench,
  build, import, export, detect, style-transfer), and file reports (`--format html`, or `report
  --out`), which test_html.py checks.

A run example must exit as the README implies (0, or 1 when its output is an `error:` line), and
every output line the README shows must appear in the command's output (stdout, then stderr), in
the same order, with runs of whitespace counted as one space. The README may leave lines out (a
`...` line, table borders, rows); it may not show a line the command does not print. An example
runs in a scratch folder that links the repository's specs/, so what it writes stays there and a
later example of the same block can read it (`rewrite --out x.yaml`, then `report x.yaml`).
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

import pytest
from typer.testing import CliRunner

from archspec.cli import app
from conftest import ROOT

STATIC = {"validate", "report", "explain", "compare", "diff", "sweep", "rewrite", "ops", "schema"}
SLOW = {"train", "evaluate", "bench", "build", "import", "export", "detect", "style-transfer"}


@dataclass
class Example:
    line: int  # where the README shows it
    block: int  # the fenced block it is in
    args: list[str]
    shown: list[str] = field(default_factory=list)  # its output lines, whitespace-normalised

    @property
    def id(self) -> str:
        return f"L{self.line}:" + " ".join(self.args)[:70]


def normalise(line: str) -> str:
    return re.sub(r"\s+", " ", line).strip()


def readme_examples() -> list[Example]:
    examples: list[Example] = []
    in_block, block, current, pending = False, 0, None, ""
    for number, text in enumerate((ROOT / "README.md").read_text(encoding="utf-8").splitlines(), 1):
        if text.lstrip().startswith("```"):
            in_block, current, block = not in_block, None, block + 1
            continue
        if not in_block:
            continue
        if pending or text.startswith("$ "):
            command = pending + text.removeprefix("$ ").strip()
            if command.endswith("\\"):  # continued on the next line
                pending = command[:-1] + " "
                continue
            pending, current = "", None
            if command.startswith("archspec "):  # other prompts (`$ python ...`) are not examples
                current = Example(number, block, shlex.split(command, comments=True)[1:])
                examples.append(current)
        elif current is not None and normalise(text) not in ("", "..."):
            current.shown.append(normalise(text))
    return examples


EXAMPLES = readme_examples()


def skip_reason(example: Example) -> str | None:
    command = example.args[0] if example.args else ""
    if command in SLOW:
        return f"`archspec {command}` imports torch, trains or reads files the README does not ship (rule: SLOW)"
    if command not in STATIC:
        return f"`archspec {command}` is not one of the static commands this test runs"
    if "html" in example.args or (command == "report" and "--out" in example.args):
        return "a file report: tests/test_html.py checks those"
    return None


def test_the_readme_has_examples_to_run():
    runnable = [e for e in EXAMPLES if skip_reason(e) is None]
    assert len(runnable) >= 6 and sum(len(e.shown) for e in runnable) >= 30
    assert {e.args[0] for e in runnable} >= {"compare", "diff", "sweep", "explain", "rewrite"}


def subsequence_gap(shown: list[str], printed: list[str]) -> str | None:
    """The first README line that is not found (in order) in the printed lines, else None."""
    position = 0
    for line in shown:
        while position < len(printed) and printed[position] != line:
            position += 1
        if position == len(printed):
            return line
        position += 1
    return None


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """One scratch folder per README block (examples of one block share files)."""
    folders = {}

    def folder(block: int):
        if block not in folders:
            folders[block] = tmp_path_factory.mktemp(f"readme_block{block}")
            (folders[block] / "specs").symlink_to(ROOT / "specs")
        return folders[block]

    return folder


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.id for e in EXAMPLES])
def test_readme_example(example, scratch, monkeypatch):
    reason = skip_reason(example)
    if reason:
        pytest.skip(reason)
    monkeypatch.chdir(scratch(example.block))
    result = CliRunner().invoke(app, example.args)
    printed = [normalise(line) for line in (result.stdout + result.stderr).splitlines()]
    expects_error = any(line.startswith("error:") for line in example.shown)
    assert result.exit_code == (1 if expects_error else 0), result.output
    missing = subsequence_gap(example.shown, printed)
    assert missing is None, f"README line {example.line}: `{missing}` is not printed (in order) by " \
                            f"`archspec {' '.join(example.args)}`:\n" + "\n".join(printed)
