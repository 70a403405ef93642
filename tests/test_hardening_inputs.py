"""Issue 12 (hardening), the input side: every input is bounded and every failure is a located
user error, fast. Each test replays one of the issue's repros: files that are not regular files or
are huge (finding 2), `--set` values (3), the expression evaluator and the YAML loader (7), huge
integer literals (6), totals over `extends` / `use` chains (8) and NUL bytes in paths (10).
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import pytest
from typer.testing import CliRunner

import archspec
from archspec.cli import app
from archspec.commands.common import parse_sets
from archspec.errors import ArchspecError, Location, SpecError
from archspec.spec import document, reading, yaml_source
from archspec.spec.expressions import ExpressionError, evaluate
from conftest import ROOT, SPECS

H = "name: t\ninputs: {x: [3, 8, 8]}\n"
LAYERS = "layers: [relu]\n"
SECONDS = 10.0  # generous, for a busy CI machine: each takes well under a second (benchmarks/bench_hardening.py measures it)
MEGABYTES = 200

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
needs_dev_zero = pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero here")


def refused(call, error=SpecError, seconds: float = SECONDS, megabytes: float | None = MEGABYTES):
    """Run `call`, which must raise `error` within `seconds` (and under `megabytes` of Python
    allocations, traced unless None); the error."""
    if megabytes is not None:
        tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(error) as info:
            call()
    finally:
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] / 2**20 if megabytes is not None else 0.0
        if megabytes is not None:
            tracemalloc.stop()
    assert elapsed < seconds, f"took {elapsed:.1f} s"
    if megabytes is not None:
        assert peak < megabytes, f"peak {peak:.0f} MB"
    assert "Traceback" not in str(info.value)
    return info.value


def position(text: str, needle: str, sub: str | None = None) -> tuple[int, int]:
    start = text.index(needle) + (needle.rindex(sub) if sub else 0)
    return text.count("\n", 0, start) + 1, start - (text.rfind("\n", 0, start) + 1) + 1


def at(err: SpecError) -> tuple[str, int, int]:
    assert err.loc is not None, str(err)
    return err.loc.file, err.loc.line, err.loc.column


def validate(*args: str):
    """`archspec validate ARGS` in-process: (exit code, stderr)."""
    result = CliRunner().invoke(app, ["validate", *args])
    assert result.stdout == ""
    return result.exit_code, result.stderr


# --- finding 2: not regular files, huge files ---------------------------------------------------
@needs_dev_zero
def test_dev_zero_is_refused_before_reading():
    err = refused(lambda: archspec.compile_spec("/dev/zero"))
    assert err.message == "/dev/zero is not a regular file (a character device)"
    assert "regular file" in err.hint
    code, stderr = validate("/dev/zero")
    assert code == 1 and stderr == f"error: {err}\n"


def test_sparse_20_gib_file_is_refused_by_its_size(tmp_path):
    spec = tmp_path / "huge.yaml"
    with open(spec, "wb") as handle:
        handle.truncate(20 << 30)  # sparse: no disk used, but 20 GiB to a reader
    err = refused(lambda: archspec.compile_spec(spec))
    assert err.message == "file is 21,474,836,480 bytes; specs are limited to 1,048,576 bytes"
    assert err.loc == Location(str(spec), 1, 1)


def _never_blocks(call, seconds: float = SECONDS):
    """Run `call` in a thread: a read that blocks (a FIFO with no writer) fails the test instead
    of hanging it. Returns what it raised."""
    outcome: list[BaseException] = []

    def target():
        try:
            call()
        except BaseException as err:  # noqa: BLE001 - handed to the test
            outcome.append(err)

    thread = threading.Thread(target=target, daemon=True)
    start = time.perf_counter()
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "blocked on a FIFO"
    assert time.perf_counter() - start < seconds
    assert outcome, "no error raised"
    return outcome[0]


@needs_fifo
def test_fifo_spec_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "f.yaml"
    os.mkfifo(fifo)
    err = _never_blocks(lambda: archspec.compile_spec(fifo))
    assert isinstance(err, SpecError) and err.message == f"{fifo} is not a regular file (a named pipe)"


@needs_fifo
def test_fifo_included_with_use_is_refused_at_the_entry(tmp_path):
    os.mkfifo(tmp_path / "blocks.yaml")
    text = H + "use: [blocks.yaml]\n" + LAYERS
    (tmp_path / "spec.yaml").write_text(text)
    err = _never_blocks(lambda: archspec.compile_spec(tmp_path / "spec.yaml"))
    assert isinstance(err, SpecError), repr(err)
    assert err.message == "included file 'blocks.yaml' is not a regular file (a named pipe)"
    assert at(err) == (str(tmp_path / "spec.yaml"), *position(text, "blocks.yaml"))


def test_reading_stops_one_byte_past_the_limit(tmp_path, monkeypatch):
    """A file whose size `stat` does not know (or that grows): at most limit + 1 bytes are read."""
    path = tmp_path / "grows.yaml"
    path.write_bytes(b"a" * 5000)
    real_stat, real_read, asked = os.stat, os.read, []

    def stat_without_size(name, *args, **kwargs):
        info = real_stat(name, *args, **kwargs)
        return os.stat_result((info.st_mode, *info[1:6], 0, *info[7:]))  # st_size 0, like /proc

    def counting_read(fd, size):
        asked.append(size)
        return real_read(fd, size)

    monkeypatch.setattr(reading.os, "stat", stat_without_size)
    monkeypatch.setattr(reading.os, "read", counting_read)
    with pytest.raises(reading.FileRefused, match="the file is more than 1,000 bytes; the limit is 1,000 bytes"):
        reading.read_bounded(path, 1000)
    assert sum(asked) == 1001
    assert reading.read_bounded(path, 5000) == b"a" * 5000


@needs_dev_zero
def test_run_folder_metrics_linked_to_dev_zero(tmp_path):
    from archspec.render.curves import read_run

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").symlink_to("/dev/zero")
    err = refused(lambda: read_run(run), ArchspecError)
    assert str(err) == f"--run {run}: cannot read {run / 'metrics.jsonl'}: not a regular file (a character device)"
    result = CliRunner().invoke(app, ["report", str(SPECS / "lenet5.yaml"), "--run", str(run), "--format", "html",
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and result.stderr == f"error: {err}\n"


@needs_fifo
def test_run_folder_metrics_fifo_does_not_block(tmp_path):
    from archspec.render.curves import read_run

    os.mkfifo(tmp_path / "metrics.jsonl")
    err = _never_blocks(lambda: read_run(tmp_path))
    assert isinstance(err, ArchspecError) and str(err).endswith("not a regular file (a named pipe)")


def test_run_folder_metrics_nested_too_deep(tmp_path):
    """A metrics line of 100,000 `[`: json.loads recurses, and that is a clean error too."""
    from archspec.render.curves import read_run

    (tmp_path / "metrics.jsonl").write_text("[" * 100_000 + "\n")
    err = refused(lambda: read_run(tmp_path), ArchspecError)
    assert str(err).endswith("a line is nested too deeply to be a metrics row")


def test_run_folder_huge_config_is_refused_by_its_size(tmp_path):
    from archspec.train.config import load_config

    with open(tmp_path / "config.json", "wb") as handle:
        handle.truncate(20 << 30)
    err = refused(lambda: load_config(tmp_path), ArchspecError)
    assert str(err) == (f"--resume {tmp_path}: cannot read {tmp_path / 'config.json'}: "
                        "the file is 21,474,836,480 bytes; the limit is 16,777,216 bytes")


# --- finding 3: --set goes through the spec loader and its limits -------------------------------
def _bomb(levels: int) -> str:
    """The issue's `--set "stages=[&a [1,...], &b [*a x10], ...]"`: 10**levels values."""
    parts = ["&a [" + ", ".join(["1"] * 10) + "]"]
    for level in range(1, levels):
        previous, name = "abcdefghij"[level - 1], "abcdefghij"[level]
        parts.append(f"&{name} [" + ", ".join([f"*{previous}"] * 10) + "]")
    return "stages=[" + ", ".join(parts) + "]"


SET_CASES = [
    ("num_classes=&a [*a]", "--set num_classes: this list contains an alias of itself, so it never ends (at character 1)"),
    ("num_classes=" + "[" * 5000 + "]" * 5000,
     "--set num_classes: lists and mappings are nested more than 100 levels deep (at character 101)"),
    (_bomb(8), "--set stages: the document expands to more than 50,000 values (an alias bomb?)"),
    (_bomb(9), "--set stages: the document expands to more than 50,000 values (an alias bomb?)"),
    ("num_classes=0x" + "f" * 10_000, "--set num_classes: the value is 10,002 characters; the limit is 10,000"),
    ("num_classes=0x" + "f" * 100, "--set num_classes: integer 0xffffffffffffffffff… (102 characters) is larger "
                                   "than the limit 1e+18 (at character 1)"),
    ("num_classes=!!python/name:os.system",
     "--set num_classes: YAML tag 'tag:yaml.org,2002:python/name:os.system' is not allowed"),
    ("stages=[1, 2", "--set stages: YAML syntax error: did not find expected ',' or ']'"),
]


@pytest.mark.parametrize("item, message", SET_CASES, ids=["self-alias", "5000-brackets", "bomb-8", "bomb-9", "too-long",
                                                          "hex", "tag", "syntax"])
def test_set_values_have_the_spec_limits(item, message):
    err = refused(lambda: parse_sets([item]), megabytes=None)  # memory: see the alias bomb test below
    assert str(err).split("\n")[0].startswith(message), str(err)
    code, stderr = validate(str(SPECS / "resnet18.yaml"), "--set", item)
    assert code == 1 and stderr == f"error: {err}\n"


def test_set_alias_bomb_points_at_the_alias_that_multiplies():
    """33 s and 2.4 GB before (9 levels: a MemoryError); now refused from the node graph."""
    refused(lambda: parse_sets([_bomb(9)]), seconds=1.0, megabytes=20)
    err = refused(lambda: parse_sets([_bomb(8)]), seconds=1.0, megabytes=20)
    column = _bomb(8).index("&e") - len("stages=") + 1  # &e: 10**5 values, the first list over the limit
    assert str(err).startswith(f"--set stages: the document expands to more than 50,000 values (an alias bomb?) "
                               f"(at character {column})")
    assert err.hint == "avoid deeply nested YAML aliases"


def test_set_values_stay_plain_python_values():
    values = parse_sets(["a=10", "b=0.5", "c=[1, [2, 3]]", "d=", "e=abc", "f={x: 1}", "g=yes", "h= 7 "])
    assert values == {"a": 10, "b": 0.5, "c": [1, [2, 3]], "d": "", "e": "abc", "f": {"x": 1}, "g": True, "h": 7}
    assert type(values["c"]) is list and type(values["c"][1]) is list and type(values["f"]) is dict
    assert not hasattr(values["c"], "loc")
    with pytest.raises(ArchspecError, match="--set expects NAME=VALUE"):
        parse_sets(["stages"])


def test_set_of_a_list_still_builds():
    small = archspec.analyze_spec(SPECS / "resnet18.yaml", parse_sets(["stages=[1, 1, 1, 1]", "num_classes=10"]))
    full = archspec.analyze_spec(SPECS / "resnet18.yaml")
    assert 0 < small.totals.params < full.totals.params


# --- finding 7: expressions and the YAML loader -------------------------------------------------
EXPRESSIONS = [
    ("999999**64", "'999999 ** 64' would be too large (the limit is 1e+15)"),
    ("(10**15)**64", "'(10 ** 15) ** 64' would be too large (the limit is 1e+15)"),
    ("1e15**64", "'1000000000000000.0 ** 64' would be too large (the limit is 1e+15)"),
    ("1e-300 ** -64", "'1e-300 ** (-64)' would be too large (the limit is 1e+15)"),
    ("(-8) ** 0.5", "'(-8) ** 0.5' is not a real number"),
]


@pytest.mark.parametrize("expression, message", EXPRESSIONS, ids=[e for e, _ in EXPRESSIONS])
def test_power_overflow_is_a_located_error(expression, message, tmp_path):
    text = H + "layers:\n  - conv: {out: '" + expression + "', kernel: 3}\n"
    (tmp_path / "spec.yaml").write_text(text)
    err = refused(lambda: archspec.compile_spec(tmp_path / "spec.yaml"))
    assert err.message == f"conv argument 'out': {message} (got '{expression}')", str(err)
    assert at(err) == (str(tmp_path / "spec.yaml"), *position(text, "'" + expression))
    assert err.node == "conv1"


def test_power_is_refused_before_it_is_computed():
    start = time.perf_counter()
    for expression in ("9 ** 9 ** 9", "2 ** 10 ** 15", "999999 ** 64"):
        with pytest.raises(ExpressionError, match="would be too large"):
            evaluate(expression, {})
    assert time.perf_counter() - start < 1.0
    assert evaluate("10 ** 15", {}) == 10**15 and evaluate("(-1) ** 10 ** 15", {}) == 1


COMPARISONS = [
    ("L < 1", "params: {L: [1, 2]}\n", "a list of 2 and the number 1"),
    ("[1] < 1", "", "a list of 1 and the number 1"),
    ("mode < 1", "params: {mode: bilinear}\n", "the word 'bilinear' and the number 1"),
]


@pytest.mark.parametrize("condition, params, got", COMPARISONS, ids=[c for c, _, _ in COMPARISONS])
def test_ordering_a_list_or_a_word_is_a_located_error(condition, params, got, tmp_path):
    text = H + params + "layers:\n  - relu: {when: '" + condition + "'}\n"
    (tmp_path / "spec.yaml").write_text(text)
    err = refused(lambda: archspec.compile_spec(tmp_path / "spec.yaml"))
    assert err.message == f"when: '{condition}': <, <=, > and >= compare numbers (or two words), not {got}", str(err)
    assert at(err) == (str(tmp_path / "spec.yaml"), *position(text, "'" + condition))


@pytest.mark.parametrize(
    "line, kind",
    [("summary: &a [*a]\n", "list"), ("params: &a {<<: *a}\n", "mapping"), ("blocks: &a {b: {layers: *a}}\n", "mapping")],
    ids=["alias", "merge", "nested"],
)
def test_self_referencing_alias_is_a_located_error(line, kind, tmp_path):
    text = H + line + LAYERS
    (tmp_path / "spec.yaml").write_text(text)
    err = refused(lambda: archspec.compile_spec(tmp_path / "spec.yaml"))
    assert err.message == f"this {kind} contains an alias of itself, so it never ends"
    assert at(err) == (str(tmp_path / "spec.yaml"), *position(text, "&a"))
    assert "alias" in err.hint


@pytest.mark.parametrize("loader", ["CSafeLoader", "SafeLoader"])
def test_alias_chains_deeper_than_the_nesting_limit(loader, monkeypatch):
    """1,000 aliases of aliases nest 1,000 levels once expanded: refused without recursion."""
    if not hasattr(__import__("yaml"), loader):
        pytest.skip(f"no {loader}")
    monkeypatch.setattr(yaml_source, "_Loader", getattr(__import__("yaml"), loader))
    text = "a0: &a0 [1]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 1000))
    # the pure-Python loader (only used where libyaml is missing) takes ~4 s under tracemalloc here
    seconds = SECONDS if loader == "CSafeLoader" else 30.0
    err = refused(lambda: yaml_source.parse_yaml(text, "spec.yaml"), seconds=seconds)
    assert err.message == "lists and mappings are nested more than 100 levels deep (counting what aliases stand for)"
    assert at(err) == ("spec.yaml", 101, 7)
    merges = "a0: &a0 {x: 1}\n" + "".join(f"a{i}: &a{i} {{<<: *a{i - 1}, y{i}: 1}}\n" for i in range(1, 1000))
    assert at(refused(lambda: yaml_source.parse_yaml(merges, "spec.yaml"), seconds=seconds)) == ("spec.yaml", 101, 7)


# --- finding 6 (the literal part): huge integer literals ----------------------------------------
def test_hex_stride_of_10000_digits_is_refused_at_load(tmp_path):
    hexa = "0x" + "f" * 10_000
    text = H + "layers:\n" + f"  - conv_transpose: {{out: 4, kernel: 1, stride: {hexa}}}\n" * 100
    assert len(text) < yaml_source.MAX_FILE_BYTES
    (tmp_path / "spec.yaml").write_text(text)
    err = refused(lambda: archspec.compile_spec(tmp_path / "spec.yaml"))
    assert err.message == "integer 0xffffffffffffffffff… (10,002 characters) is larger than the limit 1e+18"
    assert at(err) == (str(tmp_path / "spec.yaml"), *position(text, "0xf"))


@pytest.mark.parametrize(
    "literal, message",
    [
        ("100000000000000000000", "integer 100000000000000000000 is larger than the limit 1e+18"),
        ("-1000000000000000001", "integer -1000000000000000001 is larger than the limit 1e+18"),
        ("9" * 5000, "integer 99999999999999999999… (5,000 characters) is larger than the limit 1e+18"),
        ("0b" + "1" * 62, f"integer 0b{'1' * 62} is larger than the limit 1e+18"),
        ("0b" + "1" * 63, "integer 0b111111111111111111… (65 characters) is larger than the limit 1e+18"),
        ("0o" + "7" * 100, None),  # YAML 1.1 has no 0o: a word, not an integer
    ],
    ids=["20-digits", "negative", "5000-digits", "binary", "binary-long", "0o"],
)
def test_integer_literals_are_bounded_at_load(literal, message):
    text = f"a: {literal}\n"
    if message is None:
        assert yaml_source.parse_yaml(text, "spec.yaml") == {"a": literal}
        return
    err = refused(lambda: yaml_source.parse_yaml(text, "spec.yaml"))
    assert err.message == message and at(err) == ("spec.yaml", 1, 4)


def test_integers_up_to_the_limit_still_load():
    text = "a: 1000000000000000000\nb: -0x_ff\nc: 0b101\nd: 1_000\ne: 017\nf: 190:20:30\ng: -1000000000000000000\n"
    assert yaml_source.parse_yaml(text, "f") == {"a": 10**18, "b": -255, "c": 5, "d": 1000, "e": 15, "f": 685230,
                                                 "g": -(10**18)}


# --- finding 8 (the first part): totals over extends / use --------------------------------------
def test_extends_chain_of_1000_files(tmp_path):
    for index in range(1000):
        head = "" if index == 999 else f"extends: f{index + 1}.yaml\n"
        (tmp_path / f"f{index}.yaml").write_text(head + H + LAYERS)
    err = refused(lambda: archspec.compile_spec(tmp_path / "f0.yaml"))
    assert err.message == "the `extends` chain is longer than 32 files"
    assert at(err) == (str((tmp_path / "f31.yaml").resolve()), 1, 10)


def test_use_chain_of_1000_files(tmp_path):
    for index in range(1000):
        head = "" if index == 999 else f"use: [f{index + 1}.yaml]\n"
        (tmp_path / f"f{index}.yaml").write_text(head + (H + LAYERS if index == 0 else "blocks: {}\n"))
    err = refused(lambda: archspec.compile_spec(tmp_path / "f0.yaml"))
    assert err.message == "the `use` chain is longer than 32 files"
    assert at(err) == (str(tmp_path / "f31.yaml"), 1, 7)


def test_41_files_of_398_kb_are_refused_by_the_first(tmp_path):
    """The issue's repro: 41 files of ~398 KB and 199,000 values each (58.8 s and 1.49 GB before).
    One file may hold 50,000 values, so reading stops inside the first one."""
    for index in range(41):
        head = "" if index == 40 else f"extends: f{index + 1}.yaml\n"
        (tmp_path / f"f{index}.yaml").write_text(head + H + LAYERS + f"params: {{p{index}: [" + "1," * 199_000 + "1]}\n")
    assert 390_000 < (tmp_path / "f0.yaml").stat().st_size < 400_000
    err = refused(lambda: archspec.compile_spec(tmp_path / "f0.yaml"), megabytes=None)
    assert err.message == "the document expands to more than 50,000 values (an alias bomb?)"
    assert err.loc.file == str(tmp_path / "f0.yaml")


def test_files_under_the_per_file_limit_are_refused_by_the_total(tmp_path):
    """41 files of 40,000 values each: every one is within the per-file limit, the chain is not;
    reading stops at the second file, at the `extends:` that pulls it in."""
    for index in range(41):
        head = "" if index == 40 else f"extends: f{index + 1}.yaml\n"
        (tmp_path / f"f{index}.yaml").write_text(head + H + LAYERS + f"params: {{p{index}: [" + "1," * 39_999 + "1]}\n")
    err = refused(lambda: archspec.compile_spec(tmp_path / "f0.yaml"), megabytes=None)
    assert err.message == "the spec and the files it includes hold more than 50,000 values together"
    assert at(err) == (str(tmp_path / "f0.yaml"), 1, 10)


def test_total_bytes_over_extends(tmp_path):
    """Five files of 900 KB (one long `summary` each, a few values): 4.5 MB in all."""
    for index in range(5):
        head = "" if index == 4 else f"extends: f{index + 1}.yaml\n"
        (tmp_path / f"f{index}.yaml").write_text(head + H + LAYERS + "summary: " + "x" * 900_000 + "\n")
    err = refused(lambda: archspec.compile_spec(tmp_path / "f0.yaml"))
    assert err.message == "the spec and the files it includes hold more than 4,194,304 bytes together"
    assert at(err) == (str((tmp_path / "f3.yaml").resolve()), 1, 10)


def test_files_read_for_one_spec_are_bounded(tmp_path):
    """A diamond of `use`: each level uses both files of the next, 2**20 reads unbounded."""
    for level in range(20):
        for side in "ab":
            uses = f"use: [a{level + 1}.yaml, b{level + 1}.yaml]\n" if level < 19 else ""
            (tmp_path / f"{side}{level}.yaml").write_text(uses + "blocks: {}\n")
    (tmp_path / "spec.yaml").write_text("use: [a0.yaml, b0.yaml]\n" + H + LAYERS)
    err = refused(lambda: archspec.compile_spec(tmp_path / "spec.yaml"))
    assert err.message == "the spec reads more than 256 files (its own, `extends` and `use`)"
    assert err.loc is not None and Path(err.loc.file).parent == tmp_path and err.loc.line == 1
    assert document.MAX_FILES == 256


def test_library_specs_are_far_below_the_totals():
    counted = []
    real = document._Reading

    class Counting(real):
        def __init__(self):
            super().__init__()
            counted.append(self)

    document._Reading = Counting
    try:
        for path in sorted(SPECS.glob("*.yaml")):
            document.load_spec(path)
    finally:
        document._Reading = real
    # inception_v3, the largest, is about 1,000 values: 50 times below the total stays the bar
    # within a margin (40 times below), so the limits never bind a hand-written spec
    assert counted and max(r.values for r in counted) < document.MAX_TOTAL_VALUES // 40
    assert max(r.bytes for r in counted) < document.MAX_TOTAL_BYTES // 100
    assert max(r.files for r in counted) < 10


# --- finding 10 (the path part): NUL bytes in included paths -------------------------------------
@pytest.mark.parametrize("key, entry", [("use", 'use: ["blocks\\0.yaml"]\n'), ("extends", 'extends: "base\\0.yaml"\n')])
def test_nul_byte_in_an_included_path(key, entry, tmp_path):
    text = H + entry + LAYERS
    (tmp_path / "spec.yaml").write_text(text)
    err = refused(lambda: archspec.compile_spec(tmp_path / "spec.yaml"))
    name = "blocks\x00.yaml" if key == "use" else "base\x00.yaml"
    assert err.message == f"`{key}` path {name!r} contains a NUL byte"
    assert at(err) == (str(tmp_path / "spec.yaml"), *position(text, '"'))


# --- the CLI, as a process ------------------------------------------------------------------------
def test_validate_as_a_process_prints_one_located_line_per_spec(tmp_path):
    hexa = tmp_path / "hex.yaml"
    hexa.write_text(H + "layers:\n  - conv_transpose: {out: 4, kernel: 1, stride: 0x" + "f" * 10_000 + "}\n")
    alias = tmp_path / "alias.yaml"
    alias.write_text(H + "summary: &a [*a]\n" + LAYERS)
    power = tmp_path / "power.yaml"
    power.write_text(H + "layers:\n  - conv: {out: '999999**64', kernel: 3}\n")
    paths = [hexa, alias, power]
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo.yaml")
        paths.append(tmp_path / "fifo.yaml")
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "archspec", "validate", *map(str, paths)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert time.perf_counter() - start < 30
    assert result.returncode == 1 and result.stdout == ""
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == len(paths)
    assert f"error: {hexa}:4:49 integer 0xffffffffffffffffff… (10,002 characters)" in result.stderr
    assert f"error: {alias}:3:10 this list contains an alias of itself" in result.stderr
    assert f"error: {power}:4:17 node 'conv1': conv argument 'out': '999999 ** 64' would be too large" in result.stderr
    if len(paths) == 4:
        assert f"error: {tmp_path / 'fifo.yaml'} is not a regular file (a named pipe)" in result.stderr
