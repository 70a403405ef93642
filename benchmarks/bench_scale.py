#!/usr/bin/env python3
"""Scale benchmark: analysis, memory and receptive fields grow linearly with the number of nodes.

    .venv/bin/python benchmarks/bench_scale.py [--repeat 3] [--out reports/scale.md]

Generated chain specs (a chain of ReLUs, and a ResNet-like chain of conv / bn / relu residual
blocks) of about 1,000, 10,000 and up to the 50,000-node limit (the builder's 50,000 items allow
49,950 ReLUs, and 43,700 nodes of residual blocks, whose block calls count as items too). For each:
  a. in process: `archspec.pipeline.compile(spec)` (YAML load and IR), then `.analysis`;
  b. in process: `.memory()` and `.fields` on the same compiled spec;
  c. whole process: `archspec report SPEC` (the table) and `archspec report SPEC --receptive-field`.
Each measurement runs in a fresh child process (a: one warm-up compile of a small spec first, so
imports are not counted); medians of `--repeat` runs, wall time and CPU time (the children's
rusage: what the work cost, even on a busy machine). "per node" is the CPU time over the number
of nodes: flat across sizes means linear. Targets: 10,000 nodes analysed in process in under 1 s,
under 2 s with memory and receptive fields; `report` linear up to the limit. Where compile takes
most of the time, the report lists the builder functions that take it (cProfile, 10,000 nodes).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SIZES = {"relu chain": (1_000, 10_000, 49_950), "residual chain": (1_000, 10_000, 43_700)}
TARGET_ANALYSIS, TARGET_ALL = 1.0, 2.0  # seconds at 10,000 nodes, in process


def relu_chain(nodes: int) -> str:
    count = nodes - 1  # and the input
    return ("name: relu_chain\ninputs: {x: [3, 8, 8]}\nlayers:\n" + "  - relu: {repeat: 1000}\n" * (count // 1000)
            + (f"  - relu: {{repeat: {count % 1000}}}\n" if count % 1000 else ""))


def residual_chain(nodes: int) -> str:
    """A stem conv, then basic blocks (conv, bn, relu, conv, bn, add, relu) and relus to make up the count."""
    blocks, rest = divmod(nodes - 2, 7)
    block = ("blocks:\n  basic:\n    layers:\n"
             "      - conv: {name: conv1, out: 16, kernel: 3, padding: 1, bias: false}\n      - bn: {name: bn1}\n"
             "      - relu: {name: relu1}\n      - conv: {name: conv2, out: 16, kernel: 3, padding: 1, bias: false}\n"
             "      - bn: {name: bn2}\n      - add: {name: sum, from: [bn2, input]}\n      - relu: {name: relu2}\n")
    return ("name: residual_chain\ninputs: {x: [16, 16, 16]}\n" + block
            + "layers:\n  - conv: {name: stem, out: 16, kernel: 3, padding: 1}\n"
            + "  - basic: {repeat: 1000}\n" * (blocks // 1000)
            + (f"  - basic: {{repeat: {blocks % 1000}}}\n" if blocks % 1000 else "")
            + (f"  - relu: {{repeat: {rest}}}\n" if rest else ""))


MAKERS = {"relu chain": relu_chain, "residual chain": residual_chain}

# run in a child: times each stage of one compile (CPU and wall), after a warm-up compile
IN_PROCESS = """
import json, sys, time
from archspec.pipeline import compile
compile(sys.argv[2])  # warm-up: imports and op schemas
def clock():
    return time.perf_counter(), time.process_time()
stages = {}
start = clock()
compiled = compile(sys.argv[1])
stages["compile"] = clock()
compiled.analysis
stages["analysis"] = clock()
compiled.memory()
stages["memory"] = clock()
compiled.fields
stages["fields"] = clock()
last, result = start, {"nodes": len(compiled.ir.order)}
for name, now in stages.items():
    result[name] = (now[0] - last[0], now[1] - last[1])
    last = now
print(json.dumps(result))
"""

PROFILE = """
import cProfile, pstats, sys
from archspec.pipeline import compile
compile(sys.argv[2])
profile = cProfile.Profile()
profile.runcall(lambda: compile(sys.argv[1]).analysis)
pstats.Stats(profile).sort_stats("tottime").print_stats(12)
"""

# the whole `report` command in one process, its table sent to /dev/null: where the time goes
PROFILE_REPORT = """
import cProfile, os, pstats, sys
from archspec.cli import main
sys.argv = ["archspec", "report", sys.argv[1]]
profile, stdout = cProfile.Profile(), sys.stdout
sys.stdout = open(os.devnull, "w")
try:
    profile.runcall(main)
except SystemExit:
    pass
sys.stdout = stdout
pstats.Stats(profile).sort_stats("cumulative").print_stats("archspec/|rich/(console|table)", 14)
"""


def run_child(argv: list[str]) -> tuple[float, float, str]:
    """(wall s, CPU s of the child, stdout) of one process run from the repository root."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = process.communicate()
    wall = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed:\n{err[-2000:]}")
    return wall, _children_cpu(), out


_cpu_seen = 0.0


def _children_cpu() -> float:
    """CPU time of the children finished since the last call (user + system)."""
    global _cpu_seen
    times = os.times()
    total = times.children_user + times.children_system
    spent, _cpu_seen = total - _cpu_seen, total
    return spent


def in_process(spec: Path, small: Path, repeat: int) -> dict:
    runs = [json.loads(run_child([PYTHON, "-c", IN_PROCESS, str(spec), str(small)])[2]) for _ in range(repeat)]
    result = {"nodes": runs[0]["nodes"]}
    for stage in ("compile", "analysis", "memory", "fields"):
        result[stage] = tuple(statistics.median(run[stage][k] for run in runs) for k in (0, 1))
    return result


def whole_process(spec: Path, extra: list[str], repeat: int) -> tuple[float, float]:
    argv = [PYTHON, "-m", "archspec", "report", str(spec), *extra]
    runs = [run_child(argv)[:2] for _ in range(repeat)]
    return statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)


def measure(folder: Path, repeat: int) -> list[dict]:
    small = folder / "small.yaml"
    small.write_text(relu_chain(10))
    rows = []
    for kind, sizes in SIZES.items():
        for nodes in sizes:
            spec = folder / f"{kind.replace(' ', '_')}_{nodes}.yaml"
            spec.write_text(MAKERS[kind](nodes))
            row = {"kind": kind, **in_process(spec, small, repeat)}
            row["report"] = whole_process(spec, [], repeat)
            row["report_fields"] = whole_process(spec, ["--receptive-field"], repeat)
            rows.append(row)
            print(f"{kind} {row['nodes']:,}: " + ", ".join(f"{k} {_cpu(row, k):.2f} s" for k in
                  ("compile", "analysis", "memory", "fields", "report", "report_fields")), file=sys.stderr, flush=True)
    return rows


def _cpu(row: dict, key: str) -> float:
    return row[key][1]


def profile(folder: Path, script: str) -> str:
    """The top of a cProfile listing for a residual chain of 10,000 nodes."""
    spec = folder / "profiled.yaml"
    spec.write_text(residual_chain(10_000))
    out = run_child([PYTHON, "-c", script, str(spec), str(folder / "small.yaml")])[2]
    lines = [line.rstrip() for line in out.splitlines() if line.strip()]
    lines = [line for i, line in enumerate(lines) if i == 0 or line != lines[i - 1]]  # pstats repeats its header
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return "\n".join(lines[max(start - 3, 0):])


def in_process_table(rows: list[dict]) -> list[str]:
    lines = ["| chain | nodes | compile | analysis | compile + analysis | + memory + fields | per node (all) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        analysed = _cpu(row, "compile") + _cpu(row, "analysis")
        everything = analysed + _cpu(row, "memory") + _cpu(row, "fields")
        lines.append(f"| {row['kind']} | {row['nodes']:,} | {_cell(row, 'compile')} | {_cell(row, 'analysis')} | "
                     f"{analysed:.2f} s | {everything:.2f} s (memory {_cpu(row, 'memory'):.2f}, fields {_cpu(row, 'fields'):.2f}) | "
                     f"{everything / row['nodes'] * 1e6:.0f} µs |")
    return lines


def _cell(row: dict, key: str) -> str:
    wall, cpu = row[key]
    return f"{cpu:.2f} s ({wall:.2f})"


def process_table(rows: list[dict]) -> list[str]:
    lines = ["| chain | nodes | `report` | per node | `report --receptive-field` | per node |", "|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['kind']} | {row['nodes']:,} | {_cell(row, 'report')} | {_cpu(row, 'report') / row['nodes'] * 1e6:.0f} µs | "
                     f"{_cell(row, 'report_fields')} | {_cpu(row, 'report_fields') / row['nodes'] * 1e6:.0f} µs |")
    return lines


def verdicts(rows: list[dict]) -> list[str]:
    lines = []
    for row in (r for r in rows if r["nodes"] == 10_000):
        analysed = _cpu(row, "compile") + _cpu(row, "analysis")
        everything = analysed + _cpu(row, "memory") + _cpu(row, "fields")
        passes = everything - _cpu(row, "compile")
        share = _cpu(row, "compile") / everything
        lines.append(f"- {row['kind']}, 10,000 nodes: compile + analysis {analysed:.2f} s (target < {TARGET_ANALYSIS:.0f} s: "
                     f"{_verdict(analysed, TARGET_ANALYSIS)}), with memory and fields {everything:.2f} s (target < "
                     f"{TARGET_ALL:.0f} s: {_verdict(everything, TARGET_ALL)}); the passes alone (analysis, memory, "
                     f"fields, without the YAML load and IR build) {passes:.2f} s; compile is {share:.0%} of the whole.")
    for kind in SIZES:
        mine = [r for r in rows if r["kind"] == kind]
        for key, name in (("report", "`report`"), ("report_fields", "`report --receptive-field`")):
            per_node = [_cpu(r, key) / r["nodes"] for r in mine]
            lines.append(f"- {kind}: {name} CPU time per node from {mine[0]['nodes']:,} to {mine[-1]['nodes']:,} nodes: "
                         + " → ".join(f"{p * 1e6:.0f} µs" for p in per_node)
                         + f" ({per_node[-1] / per_node[1]:.2f}x from 10,000 to {mine[-1]['nodes']:,}; 1.00x is linear)")
    return lines


def _verdict(seconds: float, target: float) -> str:
    return "met" if seconds < target else "missed"


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{os.cpu_count()} cores, {cpu}; Python {platform.python_version()}; load average {load:.1f} at the start"


def markdown(rows: list[dict], profiles: tuple[str, str], command: str, started: str, host: str) -> str:
    return "\n".join([
        "# Scale: analysis, memory and receptive fields against the number of nodes", "",
        f"Produced by `{command}` on {started} ({host}).", "",
        "Times are CPU seconds of the measuring process (wall seconds in brackets; the machine is shared, so",
        "wall time includes waiting for a core). Medians of the runs; each run is a fresh process.", "",
        "## In process: `archspec.pipeline.compile(spec)`, `.analysis`, `.memory()`, `.fields`", "",
        *in_process_table(rows), "",
        "## Whole process: `archspec report SPEC` (the table) and with `--receptive-field`", "",
        *process_table(rows), "",
        "## Targets", "", *verdicts(rows), "",
        "## Where the time goes (cProfile, residual chain of 10,000 nodes)", "",
        "In process, `compile(spec).analysis`, by own time:", "", "```", profiles[0], "```", "",
        "The `report` command (table to /dev/null), by cumulative time, archspec and rich table functions:", "",
        "```", profiles[1], "```", "",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "scale.md")
    args = parser.parse_args()
    command = shlex.join([".venv/bin/python", "benchmarks/bench_scale.py", *sys.argv[1:]])
    started, host = _dt.datetime.now().strftime("%Y-%m-%d %H:%M"), machine()
    _children_cpu()  # from here on, only the children this script starts
    with tempfile.TemporaryDirectory(prefix="archspec-scale-") as folder:
        rows = measure(Path(folder), args.repeat)
        profiles = profile(Path(folder), PROFILE), profile(Path(folder), PROFILE_REPORT)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(rows, profiles, command, started, host))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
