"""Fuzzing: mutated library specs and random bytes give success or a clean archspec error.

Every spec in specs/ is mutated at the data level (delete / duplicate keys, change types and
numbers, insert random strings and references) and at the text level (break indentation,
truncate, splice random characters), and random bytes are fed as whole files. Each outcome must
be a successful analysis or an `ArchspecError`; any other exception is a bug. Analyses that
succeed and are small are also lowered to torch and run once, which must agree with the static
shapes.

CI runs a bounded number of cases; `FUZZ_EXAMPLES=20000 make test` (or
`python -m pytest tests/test_fuzz.py` with that variable) runs many more.
"""
from __future__ import annotations

import os
import random
import shutil
import string
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archspec
from archspec.errors import ArchspecError
from archspec.lower.fx import lower
from archspec.passes.counts import analyze
from conftest import LIBRARY, SPECS, run_cli

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("FUZZ_RANDOM") is None,  # reproducible in CI unless asked
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
SMALL_ENOUGH_TO_RUN = 2_000_000  # params + activations (elements) of a mutant we also run in torch

WORDS = ["conv", "relu", "bn", "add", "concat", "input", "image", "name", "from", "repeat", "out", "kernel",
         "stride", "-1", "0", "1e9", "nan", "null", "true", "[", "{", ":", "'", "*", "layer1.0", "i", "__import__('os')",
         "10 ** 100", "1/0", "x" * 80, "../../etc/passwd", "!!python/object:os.system", "&a", "*a", "<<"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A copy of specs/ (block files included) where mutants are written next to the originals."""
    folder = tmp_path_factory.mktemp("fuzz") / "specs"
    shutil.copytree(SPECS, folder)
    return folder


def _value(rng: random.Random):
    return rng.choice(
        [
            rng.randint(-3, 3),
            rng.choice([0, -1, 1, 2**40, 10**18]),
            rng.random() * rng.choice([1, 1000, -5]),
            rng.choice(WORDS),
            "".join(rng.choice(string.printable) for _ in range(rng.randint(0, 12))),
            [rng.randint(0, 4) for _ in range(rng.randint(0, 3))],
            {rng.choice(WORDS): rng.randint(0, 3)},
            None,
            rng.choice([True, False]),
        ]
    )


def _paths(data, prefix=()):
    """Every (container, key) position in a YAML data tree."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield data, key
            yield from _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield data, index
            yield from _paths(value, (*prefix, index))


def mutate_data(text: str, rng: random.Random) -> str:
    data = yaml.safe_load(text)
    for _ in range(rng.randint(1, 3)):
        positions = list(_paths(data))
        if not positions:
            break
        container, key = rng.choice(positions)
        action = rng.choice(["delete", "replace", "number", "string", "reference", "duplicate", "wrap"])
        if action == "delete":
            del container[key]
        elif action == "replace":
            container[key] = _value(rng)
        elif action == "number":
            container[key] = rng.choice([0, -1, 1, 3, 7, 4096, 2**31, 0.5, -0.0])
        elif action == "string":
            container[key] = rng.choice(WORDS)
        elif action == "reference":
            target = container[key] if isinstance(container[key], dict) else container
            if isinstance(target, dict):
                target["from"] = rng.choice(["input", "image", "conv1", "layer1", "layer1.0.bn2", "nope", ["a", "b"], 3])
        elif action == "duplicate" and isinstance(container, list):
            container.insert(key, container[key])
        elif action == "wrap":
            container[key] = [container[key]] if rng.random() < 0.5 else {"x": container[key]}
    return yaml.safe_dump(data, sort_keys=False) if data is not None else ""


def mutate_text(text: str, rng: random.Random) -> str:
    lines = text.splitlines(keepends=True) or [""]
    for _ in range(rng.randint(1, 3)):
        index = rng.randrange(len(lines))
        action = rng.choice(["indent", "dedent", "truncate", "splice", "drop", "duplicate"])
        if action == "indent":
            lines[index] = " " * rng.randint(1, 3) + lines[index]
        elif action == "dedent":
            lines[index] = lines[index].lstrip()
        elif action == "truncate":
            lines = lines[:index] + [lines[index][: rng.randint(0, len(lines[index]))]]
        elif action == "splice":
            position = rng.randint(0, len(lines[index]))
            lines[index] = lines[index][:position] + rng.choice(WORDS) + lines[index][position:]
        elif action == "drop":
            del lines[index]
            lines = lines or [""]
        elif action == "duplicate":
            lines.insert(index, lines[index])
    return "".join(lines)


def check_outcome(path: Path) -> str:
    """Analyse (and, when small, run) a spec file; return 'ok' or 'error'; anything else raises."""
    try:
        ir = archspec.compile_spec(path)
        analysis = analyze(ir)
    except ArchspecError:
        return "error"
    if analysis.totals.params + analysis.totals.activations <= SMALL_ENOUGH_TO_RUN:
        module = lower(ir).eval()
        inputs = {name: torch.zeros(1, *shape) for name, shape in analysis.inputs.items()}
        with torch.no_grad():
            result = module(**inputs)
        results = result if isinstance(result, dict) else {next(iter(analysis.outputs)): result}
        assert {k: tuple(v.shape[1:]) for k, v in results.items()} == analysis.outputs
    return "ok"


SPEC_TEXTS = {path.name: path.read_text() for path in LIBRARY}


@SETTINGS
@given(
    spec=st.sampled_from(sorted(SPEC_TEXTS)),
    seed=st.integers(0, 2**32 - 1),
    level=st.sampled_from(["data", "text"]),
)
def test_mutated_specs_fail_cleanly(workspace, spec, seed, level):
    rng = random.Random(seed)
    mutate = mutate_data if level == "data" else mutate_text
    try:
        text = mutate(SPEC_TEXTS[spec], rng)
    except yaml.YAMLError:  # a text mutation broke the YAML before a data mutation could run
        text = mutate_text(SPEC_TEXTS[spec], rng)
    path = workspace / f"mutant_{spec}"
    path.write_text(text)
    assert check_outcome(path) in ("ok", "error")


@SETTINGS
@given(data=st.binary(max_size=2048))
def test_random_bytes_fail_cleanly(workspace, data):
    path = workspace / "random.yaml"
    path.write_bytes(data)
    assert check_outcome(path) == "error"


@SETTINGS
@given(pieces=st.lists(st.sampled_from(list("abc:-[]{}, \n'\"&*!|>#0123456789") + WORDS), max_size=60))
def test_random_yaml_like_text_fails_cleanly(workspace, pieces):
    path = workspace / "random_text.yaml"
    path.write_text("".join(pieces))
    assert check_outcome(path) in ("ok", "error")


@pytest.mark.parametrize("seed", range(6))
def test_cli_answers_mutants_with_exit_code_and_no_traceback(workspace, seed):
    rng = random.Random(seed)
    name = sorted(SPEC_TEXTS)[seed % len(SPEC_TEXTS)]
    path = workspace / f"cli_mutant_{seed}.yaml"
    path.write_text(mutate_data(SPEC_TEXTS[name], rng))
    result = run_cli("validate", str(path))
    expected = 0 if check_outcome(path) == "ok" else 1
    assert result.returncode == expected, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    if expected:
        assert result.stderr.startswith("error: ")
