#!/usr/bin/env python3
"""Worst cases of the hardening issue: every hostile input is refused fast and small.

    python benchmarks/bench_hardening.py [--out reports/hardening.md]

Each case is one `archspec ...` process on a crafted input (the repros of the issue, built in a
temporary folder). For each it records the exit code, the first `error:` line, the wall time and
the peak RSS of that process (per-child rusage from os.wait4). A command that imports torch
(build, train, evaluate, bench) pays for that import whatever its input, so each case is also
shown against a baseline process of its kind on a small valid input: the cost of refusing the
hostile input is the difference. Target: under 1 s and 200 MB above the baseline; exit 1 with an
`error:` line and no "internal error".
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
LENET = str(ROOT / "specs" / "lenet5.yaml")
HEAD = "name: t\ninputs: {image: [3, 8, 8]}\n"


@dataclass
class Case:
    finding: str
    name: str
    make: Callable[[Path], list[str]]  # writes its files into the folder, returns the archspec arguments
    torch: bool = False  # the command imports torch: compared with the torch baseline
    expect: int = 1  # 1: refused; 0: a legal input that must now be handled fast


def write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text)
    return str(path)


def empty_nested(folder: Path) -> list[str]:
    blocks = "".join(f"  e{i}: {{layers: [{{e{i - 1}: {{repeat: 1000}}}}]}}\n" for i in range(1, 4))
    return ["validate", write(folder, "s.yaml", HEAD + "blocks:\n  e0: {layers: []}\n" + blocks
                              + "layers: [relu, {e3: {repeat: 1000}}]\n")]


def fifo(folder: Path) -> list[str]:
    os.mkfifo(folder / "f.yaml")
    return ["validate", str(folder / "f.yaml")]


def sparse(folder: Path) -> list[str]:
    with open(folder / "big.yaml", "wb") as handle:
        handle.truncate(20 << 30)
    return ["validate", str(folder / "big.yaml")]


def run_folder_to_dev_zero(folder: Path) -> list[str]:
    run = folder / "run"
    run.mkdir()
    (run / "metrics.jsonl").symlink_to("/dev/zero")
    (run / "config.json").write_text("{}")
    return ["report", LENET, "--run", str(run), "--format", "html", "--out", str(folder / "out")]


def set_alias_bomb(folder: Path) -> list[str]:
    levels = ["&a [1,1,1,1,1,1,1,1,1,1]"] + [f"&{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]"
                                               for i in range(8)]
    return ["validate", LENET, "--set", f"stages=[{', '.join(levels)}]"]


def extends_chain(folder: Path, files: int, size: int) -> list[str]:
    filler = "".join(f"# {'x' * 70}\n" for _ in range(size // 73))
    write(folder, "f0.yaml", HEAD + "layers: [relu]\n" + filler)
    for index in range(1, files):
        write(folder, f"f{index}.yaml", f"extends: f{index - 1}.yaml\nname: t\n" + filler)
    return ["validate", str(folder / f"f{files - 1}.yaml")]


def flat(folder: Path, count: int, op: str) -> str:
    return write(folder, "flat.yaml", HEAD + "layers:\n" + f"  - {op}\n" * count)


CHECKPOINT = """
import json, sys
from safetensors.torch import save
sys.path.insert(0, {root!r})
import archspec
tensors = {{k: v.contiguous() for k, v in archspec.build_module({lenet!r}).state_dict().items()}}
data = save(tensors, metadata={{"format": "archspec-checkpoint-1", "build": json.dumps({build})}})
if {relabel}:  # F32 -> I32 in the header: the same length, so the offsets stay right
    length = int.from_bytes(data[:8], "little")
    data = data[:8] + data[8:8 + length].replace(b'"dtype":"F32"', b'"dtype":"I32"') + data[8 + length:]
open({path!r}, "wb").write(data)
"""


def checkpoint(folder: Path, build: dict, relabel: bool) -> list[str]:
    """lenet5's weights as a safetensors file with the given `build` metadata, written by a child
    process (torch in this process would count in every later child's peak RSS)."""
    path = str(folder / "w.safetensors")
    script = CHECKPOINT.format(root=str(ROOT), lenet=LENET, build=repr(build), relabel=relabel, path=path)
    subprocess.run([sys.executable, "-c", script], check=True)
    return ["evaluate", LENET, "--weights", path, "--data", "digits"]


def many_convs(folder: Path) -> list[str]:
    """40,000 1x1 convs by repeats (a flat file would pass the 1 MiB limit first)."""
    convs = "".join("      - conv: {out: 3, kernel: 1}\n" for _ in range(40))
    return ["build", write(folder, "s.yaml", HEAD + f"blocks:\n  b:\n    layers:\n{convs}layers:\n  - b: {{repeat: 1000}}\n"),
            "--out", str(folder / "out")]


def values_chain(folder: Path) -> list[str]:
    """41 files of ~398 KB, each with 199,000 values (under the old per-file limits)."""
    for index in range(41):
        head = "" if index == 40 else f"extends: f{index + 1}.yaml\n"
        write(folder, f"f{index}.yaml", head + HEAD + "layers: [relu]\n" + f"params: {{p{index}: [" + "1," * 199_000 + "1]}\n")
    return ["validate", str(folder / "f0.yaml")]


def concat_of(folder: Path, count: int) -> list[str]:
    refs = ", ".join(["a", "b", "c"] * (count // 3) + ["a"] * (count % 3))
    text = HEAD + f"layers:\n  - relu: {{name: a}}\n  - relu: {{name: b}}\n  - relu: {{name: c}}\n  - concat: {{from: [{refs}]}}\n"
    return ["diagram", write(folder, "c.yaml", text), "--format", "dot", "--out", str(folder / "c.dot")]


CASES = [
    Case("1", "nested repeats of empty blocks (4 levels of 1000)", empty_nested),
    Case("2", "validate /dev/zero", lambda f: ["validate", "/dev/zero"]),
    Case("2", "validate a sparse 20 GiB file", sparse),
    Case("2", "validate a FIFO", fifo),
    Case("2", "report --run whose metrics.jsonl links to /dev/zero", run_folder_to_dev_zero),
    Case("3", "--set 9-level alias bomb", set_alias_bomb),
    Case("3", "--set self-referencing alias", lambda f: ["validate", LENET, "--set", "num_classes=&a [*a]"]),
    Case("3", "--set 5,000 nested brackets", lambda f: ["validate", LENET, "--set", "num_classes=" + "[" * 5000 + "]" * 5000]),
    Case("4", "evaluate with metadata image [3, 1000, 1000]",
         lambda f: checkpoint(f, {"params": {}, "inputs": {"image": [3, 1000, 1000]}}, False), torch=True),
    Case("4", "evaluate with metadata build = \"not json\"", lambda f: checkpoint(f, "not json", False), torch=True),
    Case("5", "evaluate with F32 tensors relabelled I32", lambda f: checkpoint(f, {}, True), torch=True),
    Case("6", "upsample scale 1e12", lambda f: ["validate", write(f, "s.yaml", HEAD + "layers:\n  - upsample: {scale: 1000000000000}\n")]),
    Case("6", "conv out 10**24", lambda f: ["validate", write(f, "s.yaml", HEAD + "layers:\n  - conv: {out: 10**24, kernel: 3}\n")]),
    Case("6", "10,000-digit hex stride, 100 times", lambda f: ["validate", write(
        f, "s.yaml", HEAD + "layers:\n" + f"  - conv_transpose: {{out: 3, kernel: 2, stride: 0x{'f' * 10_000}}}\n" * 100)]),
    Case("7", "expression (10**15)**64", lambda f: ["validate", write(f, "s.yaml", HEAD + 'layers:\n  - conv: {out: "(10**15)**64", kernel: 3}\n')]),
    Case("7", "self-referencing YAML alias", lambda f: ["validate", write(f, "s.yaml", "summary: &a [*a]\n" + HEAD + "layers: [relu]\n")]),
    Case("8", "extends chain of 41 files of 398 KB and 199,000 values", values_chain),
    Case("8", "extends chain of 41 files of 398 KB of comments", lambda f: extends_chain(f, 41, 398_000)),
    Case("8", "extends chain of 1,000 files", lambda f: extends_chain(f, 1000, 100)),
    Case("8", "build of 40,000 1x1 convs", many_convs, torch=True),
    Case("8", "diagram (svg) of a flat spec of 5,000 ops: folded", lambda f: ["diagram", flat(f, 5000, "relu"), "--out", str(f / "d.svg")], expect=0),
    Case("8", "diagram --format dot of one concat of 10,000 references", lambda f: concat_of(f, 10_000), expect=0),
    Case("8", "diagram --format dot of one concat of 150,000 references", lambda f: concat_of(f, 150_000)),
    Case("8", "build --memory-limit nan", lambda f: ["build", "specs/unet.yaml", "--memory-limit", "nan", "--out", str(f / "o")], torch=True),
    Case("10", "bench --batch 1000000000000", lambda f: ["bench", LENET, "--batch", "1000000000000"], torch=True),
]
# the cost of starting: a valid small spec validated; torch and the CLI imported (what every torch command pays first)
BASELINES = {False: ["-m", "archspec", "validate", LENET], True: ["-c", "import torch, archspec.cli, archspec.lower.fx"]}


def measure(args: list[str], cwd: Path) -> tuple[int, float, float, str]:
    """(exit code, wall seconds, peak RSS in MB, the first error line) of one Python process."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, *args], cwd=cwd, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    first = next((line for line in stderr.splitlines() if line.startswith(("error", "internal error"))), stderr[-200:])
    return process.returncode, seconds, usage.ru_maxrss / 1024, first


def median_of(repeat: int, run: Callable[[], tuple[int, float, float, str]]) -> tuple[int, float, float, str]:
    """The run with the median wall time of `repeat` (time and memory of a fresh process vary)."""
    runs = sorted((run() for _ in range(repeat)), key=lambda result: result[1])
    return runs[len(runs) // 2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "reports" / "hardening.md"))
    parser.add_argument("--repeat", type=int, default=3, help="runs of each case and baseline; the median is kept")
    options = parser.parse_args()
    rows, failures = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        base = {kind: median_of(options.repeat, lambda: measure(args, ROOT)) for kind, args in BASELINES.items()}
        for index, case in enumerate(CASES):
            folder = Path(tmp) / f"case{index}"
            folder.mkdir()
            args = ["-m", "archspec", *case.make(folder)]
            code, seconds, rss, first = median_of(options.repeat, lambda: measure(args, ROOT))
            _, base_seconds, base_rss, _ = base[case.torch]
            extra_seconds, extra_rss = seconds - base_seconds, rss - base_rss
            refused_cleanly = first.startswith("error") if case.expect == 1 else True
            ok = code == case.expect and refused_cleanly and extra_seconds < 1.0 and extra_rss < 200
            failures += not ok
            rows.append(f"| {case.finding} | {case.name} | {code} | {seconds:.2f} | {extra_seconds:+.2f} | {rss:.0f} | "
                        f"{extra_rss:+.0f} | {'ok' if ok else 'MISSED'} | {first[:150].replace('|', '/')} |")
            print(rows[-1], flush=True)
    lines = [
        "# Hardening: worst cases refused fast and small",
        "",
        f"`python benchmarks/bench_hardening.py` (median of {options.repeat} runs each) on {platform.node() or 'this machine'}, "
        f"{_dt.date.today().isoformat()}, Python {platform.python_version()}, {os.cpu_count()} cores.",
        "",
        f"Baselines: `archspec validate specs/lenet5.yaml` {base[False][1]:.2f} s, {base[False][2]:.0f} MB; "
        f"`python -c 'import torch, archspec.cli, archspec.lower.fx'` {base[True][1]:.2f} s, {base[True][2]:.0f} MB "
        "(what every torch command pays first). Δ is the case minus the baseline of its kind; the target is "
        "Δ < 1 s and Δ < 200 MB, and exit 1 with an `error:` line (exit 0 for the two legal inputs that must be fast).",
        "",
        "| finding | case | exit | s | Δ s | peak MB | Δ MB | | first error line |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
        *rows,
        "",
        f"{len(CASES) - failures} of {len(CASES)} cases within the target.",
        "",
    ]
    Path(options.out).write_text("\n".join(lines))
    print(f"wrote {options.out}; {failures} missed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
