#!/usr/bin/env python3
"""Speed benchmarks: archspec vs torchvision + torchinfo, side by side in one run.

    python benchmarks/bench_speed.py [--repeat N] [--out reports/benchmarks.md]

Run from anywhere; spec paths are resolved against the repository root (the parent of this
folder), and the subprocess measurements run with the repository root as working directory.

Measures, for each model that has both a spec in specs/ and a torchvision builder
(ResNet-18, and ResNet-152 where specs/resnet152.yaml exists):

  a. whole process: `archspec report SPEC --format json` vs `python -c "torchvision + torchinfo"`:
     median wall time and peak RSS of fresh processes (per-child rusage from os.wait4), plus
     archspec at --input 3x1024x1024 --batch 64 (static analysis must not grow with input size);
  b. in process: `archspec.analyze_spec(SPEC)` (YAML load included) vs
     `torchinfo.summary(torchvision.models.NAME(), ...)` (construction included), and the
     analysis time per node for synthetic conv/bn/relu chains of 100..800 layers;
  c. `archspec.build_module(SPEC)` vs `torchvision.models.NAME()` construction time;
  d. forward+backward, batch 8, 3x224x224, float32, contiguous, train mode, CPU, interleaved
     repetitions of the lowered module and torchvision's after warm-up.

Only the standard library, torch, torchvision, torchinfo and archspec are used.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT  # where archspec/ and specs/ are taken from: ROOT, or a snapshot of them (--snapshot)
THREADS = 2
MODELS = ("resnet18", "resnet152")
CHAIN_SIZES = (100, 200, 400, 800)

# Targets (ratio archspec / reference; lower is better for archspec).
TARGET_BUILD = 1.3  # build_module vs torchvision construction: at most 1.3x
TARGET_TRAIN = 1.03  # forward+backward: within 3%


# --- small helpers ------------------------------------------------------------------------------------
def median(xs):
    return statistics.median(xs)


def ratio_ci(pair_ratios: list[float], rounds: int = 2000) -> tuple[float, float]:
    """95% bootstrap interval of the median of per-pair ratios (seeded, so reruns agree)."""
    import random

    rng = random.Random(0)
    meds = sorted(median(rng.choices(pair_ratios, k=len(pair_ratios))) for _ in range(rounds))
    return meds[int(0.025 * rounds)], meds[int(0.975 * rounds) - 1]


def paired_verdict(ratio: float, ci: tuple[float, float], target: float) -> str:
    """"met" / "MISSED" when the ratio of medians and the whole 95% interval of the per-pair ratio
    agree on the side of the target; otherwise the noise decides, and the row says so."""
    if ratio <= target and ci[1] <= target:
        return "met"
    if ratio > target and ci[0] > target:
        return "MISSED"
    return ("met?" if ratio <= target else "MISSED?") + " (inconclusive: the 95% interval straddles the target)"


def fmt_s(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.1f} µs"


def fmt_mib(kib: float) -> str:
    return f"{kib / 1024:.0f} MiB"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- other load on the machine --------------------------------------------------------------------------
def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def _own_cpu() -> float:
    """CPU seconds of this process and of its children that have been waited for."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Contention:
    """How many cores *other* processes kept busy while a block ran (machine busy time from
    /proc/stat minus this process's and its children's CPU time). 0 means a quiet machine."""

    def __enter__(self) -> "Contention":
        self.busy0, self.total0 = _machine_jiffies()
        self.own0 = _own_cpu()
        self.wall0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        busy1, total1 = _machine_jiffies()
        hz = os.sysconf("SC_CLK_TCK")
        wall = time.perf_counter() - self.wall0
        others = (busy1 - self.busy0) / hz - (_own_cpu() - self.own0)
        self.cores = max(0.0, others / wall) if wall > 0 else 0.0

    def note(self) -> str:
        return f"other processes used {self.cores:.2f} of {os.cpu_count()} cores meanwhile"


def machine_busy(seconds: float = 1.0) -> float:
    """Cores busy on the whole machine over the next `seconds` (this process sleeps meanwhile)."""
    busy0, total0 = _machine_jiffies()
    time.sleep(seconds)
    busy1, total1 = _machine_jiffies()
    return (busy1 - busy0) / max(1, total1 - total0) * (os.cpu_count() or 1)


WAITS: list[str] = []


def wait_quiet(section: str, max_busy: float, timeout: float) -> None:
    """Wait (at most `timeout` s) until other processes keep fewer than `max_busy` cores busy."""
    if timeout <= 0:
        return
    start = time.perf_counter()
    busy = machine_busy()
    while busy > max_busy and time.perf_counter() - start < timeout:
        log(f"   machine busy ({busy:.2f} cores used by others); waiting before {section}")
        time.sleep(4)
        busy = machine_busy()
    waited = time.perf_counter() - start
    state = "quiet" if busy <= max_busy else "STILL BUSY (gave up waiting)"
    WAITS.append(f"{section}: waited {waited:.0f} s, then {busy:.2f} cores busy ({state})")


@dataclass
class Row:
    section: str
    what: str
    archspec: str
    reference: str
    ratio: str  # archspec / reference
    target: str = ""
    verdict: str = ""  # "met", "MISSED", or "" where there is no target
    note: str = ""


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)  # markdown lines for details / skipped

    def add(self, *args, **kwargs) -> Row:
        row = Row(*args, **kwargs)
        self.rows.append(row)
        return row


def take_snapshot() -> Path:
    """Copy archspec/ and specs/ to a temporary folder and run everything from there, so edits
    made to the working tree while the benchmark runs cannot change (or break) it halfway.
    Children find the copy first through PYTHONPATH, this process through sys.path."""
    import shutil

    global BASE
    import atexit

    folder = Path(tempfile.mkdtemp(prefix="archspec-bench-snapshot-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    for part in ("archspec", "specs"):
        shutil.copytree(ROOT / part, folder / part, ignore=shutil.ignore_patterns("__pycache__"))
    BASE = folder
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)
    sys.path.insert(0, str(folder))
    return folder


def snapshot_works(models: list[str]) -> bool:
    for name in models:
        spec = f"specs/{name}.yaml"
        if (BASE / spec).exists():
            done = subprocess.run([sys.executable, "-m", "archspec", "report", spec, "--format", "json"],
                                  cwd=BASE, capture_output=True, text=True)
            if done.returncode != 0:
                log(done.stderr[-1000:])
                return False
    done = subprocess.run([sys.executable, "-c", "import archspec; archspec.build_module('specs/lenet5.yaml')"],
                          cwd=BASE, capture_output=True, text=True)
    if done.returncode != 0:
        log(done.stderr[-1000:])
    return done.returncode == 0


# --- a. whole process ---------------------------------------------------------------------------------
def archspec_command() -> list[str]:
    script = Path(sys.executable).parent / "archspec"
    return [str(script)] if script.exists() else [sys.executable, "-m", "archspec"]


def run_process(argv: list[str]) -> tuple[float, int, float]:
    """Run a fresh process to completion: (wall seconds, peak RSS in KiB of that child alone,
    its CPU seconds). Call it from a small parent: on Linux a child's peak RSS starts from the
    parent's RSS at fork, so this is measured before this script imports torch."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=BASE, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{shlex.join(argv)} exited {proc.returncode}:\n{err.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss, usage.ru_utime + usage.ru_stime  # ru_maxrss: KiB on Linux


@dataclass
class ProcessStats:
    wall: float  # median
    rss: int  # max, KiB
    cpu: float  # median CPU seconds
    contention: Contention


def measure_process(argv: list[str], repeat: int) -> ProcessStats:
    run_process(argv)  # warm-up: page cache
    walls, rss, cpus = [], [], []
    with Contention() as busy:
        for _ in range(repeat):
            wall, peak, cpu = run_process(argv)
            walls.append(wall)
            rss.append(peak)
            cpus.append(cpu)
    return ProcessStats(median(walls), max(rss), median(cpus), busy)


def measure_pair(argv_a: list[str], argv_b: list[str], repeat: int) -> tuple[ProcessStats, ProcessStats]:
    """Interleaved (A B, B A, ...) so both commands meet the same machine load."""
    run_process(argv_a)
    run_process(argv_b)
    runs: dict[int, list[tuple[float, int, float]]] = {0: [], 1: []}
    with Contention() as busy:
        for i in range(repeat):
            for which in ((0, 1) if i % 2 == 0 else (1, 0)):
                runs[which].append(run_process(argv_a if which == 0 else argv_b))
    stats = []
    for which in (0, 1):
        walls, rss, cpus = zip(*runs[which])
        stats.append(ProcessStats(median(walls), max(rss), median(cpus), busy))
    return stats[0], stats[1]


def torchinfo_snippet(name: str, batch: int, size: int) -> str:
    return (
        f"import torchvision, torchinfo; m = torchvision.models.{name}(); "
        f"torchinfo.summary(m, input_size=({batch},3,{size},{size}), verbose=0)"
    )


def bench_process(res: Results, name: str, spec: str, repeat: int) -> None:
    cmd = archspec_command()
    report = [*cmd, "report", spec, "--format", "json"]
    big = [*report, "--input", "3x1024x1024", "--batch", "64"]
    reference = [sys.executable, "-c", torchinfo_snippet(name, 1, 224)]

    # sanity: the archspec report really is the analysis, and never imports torch
    out = subprocess.run(report, cwd=BASE, capture_output=True, text=True, check=True).stdout
    parsed = json.loads(out)
    assert parsed["name"] == name, parsed["name"]
    probe = (
        "import sys, runpy; sys.argv = ['archspec', 'report', %r, '--format', 'json']\n"
        "try:\n    runpy.run_module('archspec', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "sys.stderr.write('TORCH_IMPORTED=%%s ARCHSPEC=%%s' %% ('torch' in sys.modules, sys.modules['archspec'].__file__))" % spec
    )
    probe_out = subprocess.run([sys.executable, "-c", probe], cwd=BASE, capture_output=True, text=True).stderr
    torch_free = "TORCH_IMPORTED=False" in probe_out
    assert f"ARCHSPEC={BASE / 'archspec' / '__init__.py'}" in probe_out, probe_out[-2000:]

    log(f"[a] {name}: whole process, {repeat} interleaved runs each")
    ours, theirs = measure_pair(report, reference, repeat)
    res.add("a. whole process", f"{name}: wall time, median of {repeat}", fmt_s(ours.wall), fmt_s(theirs.wall),
            f"{ours.wall / theirs.wall:.3f}x",
            note=f"CPU time {fmt_s(ours.cpu)} vs {fmt_s(theirs.cpu)} ({ours.cpu / theirs.cpu:.3f}x); "
                 + ours.contention.note())
    res.add("a. whole process", f"{name}: peak RSS, max of {repeat}", fmt_mib(ours.rss), fmt_mib(theirs.rss),
            f"{ours.rss / theirs.rss:.3f}x",
            note="the report process imports torch: %s" % ("no" if torch_free else "YES"))

    log(f"[a] {name}: archspec at batch 64, 3x1024x1024 vs batch 1, 3x224x224, {repeat} interleaved runs each")
    large, small = measure_pair(big, report, repeat)
    growth = large.wall / small.wall
    res.add("a. whole process", f"{name}: archspec at --input 3x1024x1024 --batch 64 vs at 3x224x224 batch 1",
            fmt_s(large.wall), fmt_s(small.wall), f"{growth:.3f}x", target="<= 1.10x (size-independent)",
            verdict="met" if growth <= 1.10 else "MISSED",
            note=f"CPU time {fmt_s(large.cpu)} vs {fmt_s(small.cpu)}; peak RSS {fmt_mib(large.rss)} vs "
                 f"{fmt_mib(small.rss)}; " + large.contention.note())


def bench_process_baselines(res: Results, repeat: int) -> None:
    """Context: a bare interpreter, and `import torch` alone."""
    log("[a] baselines: bare interpreter, `import torch`")
    bare = measure_process([sys.executable, "-c", "pass"], repeat)
    torch_only = measure_process([sys.executable, "-c", "import torch"], repeat)
    res.extra.append(
        f"- Context (whole process, median of {repeat}): a bare `python -c pass` takes {fmt_s(bare.wall)} "
        f"(peak RSS {fmt_mib(bare.rss)}); `python -c 'import torch'` takes {fmt_s(torch_only.wall)} "
        f"(CPU {fmt_s(torch_only.cpu)}, peak RSS {fmt_mib(torch_only.rss)}); {torch_only.contention.note()}."
    )


def bench_torchinfo_scaling(res: Results, name: str, repeat: int) -> None:
    """torchinfo runs a real forward pass, so its time grows with batch and resolution."""
    n = max(3, repeat // 3)
    log(f"[a] {name}: torchinfo at batch 8, 3x448x448, {n} runs")
    big = measure_process([sys.executable, "-c", torchinfo_snippet(name, 8, 448)], n)
    res.extra.append(
        f"- For contrast, the torchinfo process for {name} at batch 8, 3x448x448 (32x the pixels of batch 1 at 224) "
        f"takes {fmt_s(big.wall)} (median of {n}; CPU {fmt_s(big.cpu)}), peak RSS {fmt_mib(big.rss)}; "
        f"{big.contention.note()}. At batch 64, 3x1024x1024 torchinfo would need tens of GiB of activations, "
        "which this benchmark does not try."
    )


# --- b. in-process analysis ---------------------------------------------------------------------------
def timed(fn, repeat: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def interleaved(fn_a, fn_b, repeat: int, warmup: int = 1) -> tuple[list[float], list[float]]:
    """Time fn_a and fn_b alternately (A B, B A, A B, ...) after `warmup` calls of each."""
    for _ in range(warmup):
        fn_a()
        fn_b()
    times: tuple[list[float], list[float]] = ([], [])
    for i in range(repeat):
        for which in ((0, 1) if i % 2 == 0 else (1, 0)):
            fn = fn_a if which == 0 else fn_b
            gc.collect()
            start = time.perf_counter()
            fn()
            times[which].append(time.perf_counter() - start)
    return times


def bench_analysis(res: Results, name: str, spec: str, repeat: int) -> None:
    import archspec
    import torchinfo
    import torchvision

    assert Path(archspec.__file__).is_relative_to(BASE), archspec.__file__
    log(f"[b] {name}: analyze_spec vs torchinfo.summary, {repeat} interleaved calls each")
    builder = getattr(torchvision.models, name)
    path = BASE / spec
    with Contention() as busy:
        a_times, r_times = interleaved(
            lambda: archspec.analyze_spec(path),
            lambda: torchinfo.summary(builder(), (1, 3, 224, 224), verbose=0),
            repeat,
        )
    nodes = len(archspec.analyze_spec(path).layers)
    a_t, r_t = median(a_times), median(r_times)
    res.add("b. in process", f"{name}: analyze_spec vs torchinfo.summary({name}(), ...), median of {repeat}",
            fmt_s(a_t), fmt_s(r_t), f"{a_t / r_t:.4f}x",
            note=f"{nodes} nodes, {fmt_s(a_t / nodes)}/node; " + busy.note())


def bench_analysis_cold(res: Results, spec: str) -> None:
    """The first analyze_spec call in a process pays for archspec's lazy imports (pydantic models, ...)."""
    code = (
        "import time; t0 = time.perf_counter(); import archspec; t1 = time.perf_counter(); "
        f"archspec.analyze_spec({spec!r}); t2 = time.perf_counter(); "
        "archspec.analyze_spec(%r); t3 = time.perf_counter(); print(t1 - t0, t2 - t1, t3 - t2)" % spec
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=BASE, capture_output=True, text=True, check=True).stdout
    imp, first, second = (float(v) for v in out.split())
    res.extra.append(
        f"- In a fresh process, `import archspec` takes {fmt_s(imp)}, the first `analyze_spec({spec!r})` "
        f"{fmt_s(first)} and the second {fmt_s(second)} (one sample each; the b. figures are warm calls)."
    )


def chain_yaml(layers: int) -> str:
    """A straight conv/bn/relu chain with exactly `layers` layer items."""
    cycle = ("  - conv: {out: 16, kernel: 3, padding: 1, bias: false}", "  - bn", "  - relu")
    items = [cycle[i % 3] for i in range(layers)]
    return (
        f"name: chain{layers}\nsummary: synthetic conv/bn/relu chain for benchmarks\n"
        "inputs: {image: [16, 32, 32]}\nlayers:\n" + "\n".join(items) + "\n"
    )


def bench_linearity(res: Results, repeat: int) -> None:
    import archspec

    log(f"[b] synthetic chains {CHAIN_SIZES}: analyze_spec, {repeat} calls each")
    per_node = {}
    with tempfile.TemporaryDirectory(prefix="archspec-bench-") as folder, Contention() as busy:
        for n in CHAIN_SIZES:
            path = Path(folder) / f"chain{n}.yaml"
            path.write_text(chain_yaml(n))
            nodes = len(archspec.analyze_spec(path).layers)
            per_node[n] = (median(timed(lambda: archspec.analyze_spec(path), repeat)), nodes)
    first, last = CHAIN_SIZES[0], CHAIN_SIZES[-1]
    for n, (t, nodes) in per_node.items():
        res.add("b. linearity", f"chain of {n} layers ({nodes} nodes): analyze_spec, median of {repeat}",
                fmt_s(t), "", "", note=f"{fmt_s(t / nodes)}/node")
    growth = (per_node[last][0] / per_node[last][1]) / (per_node[first][0] / per_node[first][1])
    res.add("b. linearity", f"time per node at {last} vs at {first} layers", "", "", f"{growth:.3f}x",
            target="<= 1.5x (linear)", verdict="met" if growth <= 1.5 else "MISSED", note=busy.note())


# --- c. construction ----------------------------------------------------------------------------------
def bench_build(res: Results, name: str, spec: str, repeat: int) -> None:
    import archspec
    import torchvision

    log(f"[c] {name}: build_module vs torchvision construction, {repeat} interleaved each")
    builder = getattr(torchvision.models, name)
    path = BASE / spec
    with Contention() as busy:
        a_times, r_times = interleaved(lambda: archspec.build_module(path), builder, repeat)
    a_t, r_t = median(a_times), median(r_times)
    ratio = a_t / r_t
    pairs = [a / r for a, r in zip(a_times, r_times)]
    low, high = ratio_ci(pairs)
    res.add("c. construction", f"{name}: build_module vs torchvision.models.{name}(), median of {repeat}",
            fmt_s(a_t), fmt_s(r_t), f"{ratio:.3f}x", target=f"<= {TARGET_BUILD}x",
            verdict=paired_verdict(ratio, (low, high), TARGET_BUILD),
            note=f"median per-pair ratio {median(pairs):.3f}x (95% CI {low:.3f}-{high:.3f}); " + busy.note())


# --- d. forward + backward ----------------------------------------------------------------------------
def bench_train(res: Results, name: str, spec: str, repeat: int, batch: int = 8) -> None:
    import archspec
    import torch
    import torchvision

    torch.manual_seed(0)
    ours = archspec.build_module(BASE / spec).train()
    theirs = getattr(torchvision.models, name)().train()
    x = torch.randn(batch, 3, 224, 224, dtype=torch.float32).contiguous()
    assert ours(x).shape == theirs(x).shape
    p_ours = sum(p.numel() for p in ours.parameters())
    p_theirs = sum(p.numel() for p in theirs.parameters())
    assert p_ours == p_theirs, (p_ours, p_theirs)
    assert all(p.dtype == torch.float32 for p in [*ours.parameters(), *theirs.parameters()])

    def step(model):
        model.zero_grad(set_to_none=True)
        gc.collect()
        start = time.perf_counter()
        model(x).sum().backward()
        return time.perf_counter() - start

    warmup = 3
    log(f"[d] {name}: forward+backward batch {batch}, {warmup} warm-up + {repeat} interleaved pairs")
    for _ in range(warmup):
        step(ours)
        step(theirs)
    a_times, r_times, pair_ratios = [], [], []
    with Contention() as busy:
        for i in range(repeat):
            if i % 2 == 0:  # A B, then B A: neither model always runs first
                a, r = step(ours), step(theirs)
            else:
                r, a = step(theirs), step(ours)
            a_times.append(a)
            r_times.append(r)
            pair_ratios.append(a / r)
    a_t, r_t = median(a_times), median(r_times)
    ratio = a_t / r_t
    ci = ratio_ci(pair_ratios)
    res.add("d. forward+backward", f"{name}: batch {batch}, 3x224x224, fp32, train, {THREADS} threads, median of {repeat}",
            fmt_s(a_t), fmt_s(r_t), f"{ratio:.3f}x", target=f"<= {TARGET_TRAIN}x",
            verdict=paired_verdict(ratio, ci, TARGET_TRAIN),
            note=f"median per-pair ratio {median(pair_ratios):.3f}x (95% CI {ci[0]:.3f}-{ci[1]:.3f}); "
                 f"ranges {fmt_s(min(a_times))}-{fmt_s(max(a_times))} vs {fmt_s(min(r_times))}-{fmt_s(max(r_times))}; "
                 + busy.note())


# --- report -------------------------------------------------------------------------------------------
def machine_info() -> dict[str, str]:
    import torch
    import torchinfo
    import torchvision

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "archspec", "specs"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        git = git + (" (archspec/ or specs/ modified)" if dirty else "")
    except OSError:
        git = "unknown"
    return {
        "date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "machine": f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu}, {platform.machine()}",
        "os": platform.platform(),
        "python": f"{platform.python_version()} ({sys.executable})",
        "torch": f"{torch.__version__} (threads set to {torch.get_num_threads()}, mkldnn {torch.backends.mkldnn.is_available()})",
        "torchvision": torchvision.__version__,
        "torchinfo": getattr(torchinfo, "__version__", "unknown"),
        "archspec": f"{__import__('archspec').__version__} at git {git}"
                    + ("" if BASE == ROOT else "; run from a copy of archspec/ and specs/ taken at the start"),
        "environment": "PYTHONDONTWRITEBYTECODE=%s, OMP_NUM_THREADS=%s" % (
            os.environ.get("PYTHONDONTWRITEBYTECODE", "unset"), os.environ.get("OMP_NUM_THREADS", "unset")),
    }


def table_text(rows: list[Row]) -> str:
    headers = ("section", "what", "archspec", "reference", "ratio", "target", "verdict")
    data = [(r.section, r.what, r.archspec, r.reference, r.ratio, r.target, r.verdict) for r in rows]
    widths = [max(len(h), *(len(d[i]) for d in data)) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(d) for d in data)])


def markdown(info: dict[str, str], command: str, res: Results, args) -> str:
    out = ["# archspec speed benchmarks", ""]
    out.append("Generated by `benchmarks/bench_speed.py`; see `benchmarks/README.md` for the setup. "
               "Ratios are archspec / reference, so below 1 means archspec is faster.")
    out.append("")
    out.append("## Setup")
    out.append("")
    for key, value in info.items():
        out.append(f"- **{key}**: {value}")
    out.append(f"- **command**: `{command}` (from the repository root)")
    out.append(f"- **repeat**: {args.repeat} samples per measurement, {args.train_repeat} pairs for forward+backward "
               "(medians; warm-up runs are discarded)")
    out.append("")
    out.append("## Results")
    out.append("")
    out.append("| section | what | archspec | reference | ratio | target | verdict | note |")
    out.append("|---|---|---|---|---|---|---|---|")
    for r in res.rows:
        out.append(f"| {r.section} | {r.what} | {r.archspec} | {r.reference} | {r.ratio} | {r.target} | "
                   f"{'**' + r.verdict + '**' if r.verdict.startswith('MISSED') else r.verdict} | {r.note} |")
    out.append("")
    missed = [r for r in res.rows if r.verdict == "MISSED"]
    unsure = [r for r in res.rows if "inconclusive" in r.verdict]
    out.append("## Targets")
    out.append("")
    if missed:
        for r in missed:
            out.append(f"- MISSED: {r.section}, {r.what}: {r.ratio} against a target of {r.target}.")
    for r in unsure:
        out.append(f"- Inconclusive: {r.section}, {r.what}: {r.ratio} against a target of {r.target}, but the "
                   "per-pair interval in the note crosses the target; rerun on a quieter machine.")
    if not missed and not unsure:
        out.append("- Every target with a stated bound was met in this run.")
    out.append("")
    if res.extra:
        out.append("## Notes")
        out.append("")
        out.extend(res.extra)
        out.append("")
    out.append("## What is measured")
    out.append("")
    out.append(
        "- **a. whole process**: fresh processes started from the repository root (from the snapshot of archspec/ and specs/ unless `--no-snapshot`), measured first, while the "
        "benchmark's own process is still small (on Linux a child's peak RSS includes its parent's RSS at fork). "
        "Wall time from spawn to exit, CPU time and peak RSS of that child alone (`os.wait4` rusage). archspec: the "
        "`archspec` console script of the running interpreter's environment, `report specs/NAME.yaml --format json` "
        "(stdout discarded). Reference: `python -c \"import torchvision, torchinfo; m = torchvision.models.NAME(); "
        "torchinfo.summary(m, input_size=(1,3,224,224), verbose=0)\"`. The two commands alternate (A B, B A, ...) "
        "after one warm-up run each; the size-independence row alternates the large and the default input the same way.\n"
        "- **b. in process**: `archspec.analyze_spec(path)` (YAML load, validation, IR, counts) vs "
        "`torchinfo.summary(torchvision.models.NAME(), (1,3,224,224), verbose=0)` (construction with weight "
        "initialisation, then a hooked forward), alternating after one warm-up call each. Linearity: synthetic specs "
        "of N conv/bn/relu items written to a temporary folder, time per analysed node.\n"
        "- **c. construction**: `archspec.build_module(path)` (YAML load, IR, module construction with weight "
        "initialisation, torch.fx code generation) vs `torchvision.models.NAME()`, alternating after one warm-up each. torchvision's ResNet constructor initialises every layer with torch's defaults and then initialises again (conv weights with `kaiming_normal_(mode=\"fan_out\")`, BatchNorm with constants); archspec keeps torch's default initialisation, so it does less work here (and its initial weights follow a different distribution).\n"
        f"- **d. forward+backward**: `model(x).sum().backward()` with `x` a contiguous float32 batch of 8 x 3x224x224, "
        f"train mode, `torch.set_num_threads({THREADS})`, gradients set to None before each step (outside the "
        "timing); 3 warm-up steps each, then alternating pairs (A B, B A, A B, ...). Weights are not shared; "
        "both models are the same architecture (parameter counts asserted equal).\n"
        "- **load**: this machine may be shared. Before each section the script waits (up to `--wait` s) until "
        "other processes keep fewer than `--max-busy` cores busy, and each row's note says how many cores other "
        "processes used while it was measured (machine busy time from `/proc/stat` minus this process's and its "
        "children's CPU time). Ratios come from alternating runs, so both sides meet the same load; absolute times "
        "taken under load are inflated, and CPU times are given where they help."
    )
    out.append("")
    return "\n".join(out)


def kept_sections(path: Path) -> str:
    """The sections other benchmarks write into the same file (bench_train.py's), between their
    `<!-- BEGIN name -->` and `<!-- END name -->` markers: kept as they are."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    blocks = re.findall(r"<!-- BEGIN (\S+) -->.*?<!-- END \1 -->", old, flags=re.S)
    spans = [re.search(rf"<!-- BEGIN {re.escape(name)} -->.*?<!-- END {re.escape(name)} -->", old, flags=re.S).group(0)
             for name in blocks]
    return "".join("\n" + span + "\n" for span in spans)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15, help="samples per measurement (default 15)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks.md", help="Markdown report to write")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated torchvision names (default %(default)s)")
    parser.add_argument("--train-models", default="resnet18",
                        help="models for d. (forward+backward), comma-separated (default %(default)s)")
    parser.add_argument("--train-repeat", type=int, default=None,
                        help="forward+backward pairs for d. (default: --repeat, at least 20)")
    parser.add_argument("--skip-train", action="store_true", help="skip d. (forward+backward)")
    parser.add_argument("--no-snapshot", action="store_true",
                        help="run archspec from the working tree itself, not from a copy taken at the start")
    parser.add_argument("--max-busy", type=float, default=0.3,
                        help="before each section, wait until other processes use fewer cores than this (default 0.3)")
    parser.add_argument("--wait", type=float, default=300,
                        help="most seconds to wait for that before each section; 0 = never wait (default 300)")
    args = parser.parse_args()
    args.train_repeat = args.train_repeat or max(20, args.repeat)

    res = Results()
    if not args.no_snapshot:
        for attempt in range(10):  # the working tree may be mid-edit: take a copy that works
            folder = take_snapshot()
            if snapshot_works(args.models.split(",")):
                break
            log(f"   archspec in the working tree does not run right now; trying again in 30 s")
            time.sleep(30)
        else:
            raise SystemExit("archspec in the working tree kept failing; not benchmarking a broken tree")
        log(f"running archspec from a snapshot of archspec/ and specs/ in {folder}")
    present = []
    for name in args.models.split(","):
        spec = f"specs/{name}.yaml"
        if (BASE / spec).exists():
            present.append((name, spec))
        else:
            res.extra.append(f"- {name}: skipped, `{spec}` does not exist.")
            log(f"skip {name}: no {spec}")
    quiet = lambda section: wait_quiet(section, args.max_busy, args.wait)

    # a. first, while this parent is small: a child's peak RSS counts the parent's RSS at fork
    assert "torch" not in sys.modules
    quiet("a. baselines")
    bench_process_baselines(res, args.repeat)
    for name, spec in present:
        quiet(f"a. {name}")
        bench_process(res, name, spec, args.repeat)
    if present:
        quiet("a. torchinfo scaling")
        bench_torchinfo_scaling(res, present[0][0], args.repeat)
        bench_analysis_cold(res, present[0][1])

    import torch

    torch.set_num_threads(THREADS)
    for name, spec in present:
        quiet(f"b. {name}")
        bench_analysis(res, name, spec, args.repeat)
    quiet("b. linearity")
    bench_linearity(res, args.repeat)
    for name, spec in present:
        quiet(f"c. {name}")
        bench_build(res, name, spec, args.repeat)
    if not args.skip_train:
        for name, spec in [(n, s) for n, s in present if n in args.train_models.split(",")]:
            quiet(f"d. {name}")
            bench_train(res, name, spec, args.train_repeat)

    if WAITS:
        res.extra.append("- Machine load before each section (cores busy over 1 s, from `/proc/stat`): "
                         + "; ".join(WAITS) + ".")
    else:
        res.extra.append("- The script did not wait for a quiet machine (`--wait 0`).")
    print(table_text(res.rows))
    for line in res.extra:
        print(line)
    try:
        shown = args.out.resolve().relative_to(ROOT)
    except ValueError:
        shown = args.out
    command = shlex.join([sys.executable, "benchmarks/bench_speed.py", *sys.argv[1:]]).replace(str(args.out), str(shown))
    text = markdown(machine_info(), command, res, args) + kept_sections(args.out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
