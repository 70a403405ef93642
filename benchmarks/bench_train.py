#!/usr/bin/env python3
"""`archspec train` against the loop a user would write by hand, in one process, on CPU.

    .venv/bin/python benchmarks/bench_train.py [--quick] [--no-compile] [--out reports/benchmarks.md]

Per case (lenet5 on `digits`; resnet18 at 3x64x64 on `fake`): the same lowered module, the same
in-memory tensors, batch, optimizer (AdamW at archspec's defaults, with its warm-up + cosine
schedule) and no augmentation. The two take turns step by step in one run: each step of `archspec train` (its Trainer,
progress bar and per-step bookkeeping included; its end-of-epoch evaluation and checkpoint are
not training and are left out) is paired with one step of the hand-written loop, after it or
before it in turn, so a change of the machine's load, and whatever going first costs or gains,
hits both alike. Images/s: the fastest epoch of each; the ratio (archspec / hand, in images/s)
is the median over the epochs of the ratio of one epoch's paired steps, the first epoch dropped
(warm-up).

`--compile`: the same with `torch.compile` on both sides; the first epoch's extra time over a
steady epoch is reported as the compile time. Then a profile of archspec's step: the wall time
of its phases (data: batch gather, augmentation and copy; forward and loss; backward, optimizer
and schedule; the rest of the loop), and torch.profiler's operators by self CPU time.

Writes its section of reports/benchmarks.md (between the BEGIN/END markers; bench_speed.py keeps
it when it rewrites that file) and prints it.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# a compile from scratch: Inductor's kernels from an earlier run (its on-disk cache) would hide it
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="archspec-bench-inductor-"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archspec.train import loop  # noqa: E402
from archspec.train.config import TrainConfig  # noqa: E402
from archspec.train.state import RunState  # noqa: E402

BEGIN, END = "<!-- BEGIN bench_train.py -->", "<!-- END bench_train.py -->"
TARGET = 0.97


@dataclass(frozen=True)
class Case:
    spec: str
    data: str
    inputs: dict
    batch: int
    epochs: int  # interleaved rounds, the first one dropped


CASES = (Case("lenet5", "digits", {}, 64, 31), Case("resnet18", "fake", {"image": [3, 64, 64]}, 32, 9))


class HandLoop:
    """The loop of a PyTorch tutorial: shuffle, slice, forward, cross-entropy, backward, step, and
    the running loss and accuracy a user prints (`.item()`, as archspec's bar shows them)."""

    def __init__(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, config: TrainConfig, steps: int):
        self.model, self.x, self.y, self.batch = model, x, y, config.batch_size
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.decay)
        total, warmup = config.epochs * steps, min(config.warmup_steps, config.epochs * steps // 5 + 1)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: (s + 1) / warmup if s < warmup else
            0.5 * (1 + math.cos(math.pi * min(1.0, (s - warmup) / max(1, total - warmup)))))
        self.generator = torch.Generator().manual_seed(1)
        self.order, self.position = torch.empty(0, dtype=torch.long), 0
        self.running, self.correct, self.seen = 0.0, 0, 0
        self.model.train()

    def step(self) -> None:
        if self.position >= len(self.order):  # a new epoch: a new order
            self.order, self.position = torch.randperm(len(self.x), generator=self.generator), 0
        index = self.order[self.position:self.position + self.batch]
        self.position += self.batch
        x, y = self.x[index], self.y[index]
        out = self.model(x)
        loss = F.cross_entropy(out, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.running += loss.item() * len(x)
        self.correct += int((out.argmax(1) == y).sum())
        self.seen += len(x)


@contextmanager
def patched(cls, name: str, wrapper):
    original = getattr(cls, name)
    setattr(cls, name, wrapper(original))
    try:
        yield
    finally:
        setattr(cls, name, original)


def config_of(case: Case, folder: Path, compiled: bool, epochs: int | None = None) -> TrainConfig:
    return TrainConfig(spec=str(ROOT / "specs" / f"{case.spec}.yaml"), data=case.data, epochs=epochs or case.epochs,
                       batch_size=case.batch, inputs=case.inputs, out=str(folder), augment="none", compile=compiled)


def interleaved(case: Case, compiled: bool, scratch: Path) -> dict:
    """Per epoch, the seconds of archspec's steps and of the hand loop's, the two taking turns step
    by step in one training run. archspec's time is its `_step` plus its loop between one `_step`
    and the next (the bar, the running figures); its end-of-epoch evaluation and checkpoint are
    not counted."""
    times: dict[str, dict[int, float]] = {"archspec": defaultdict(float), "hand": defaultdict(float)}
    hand: list[HandLoop] = []
    last: dict[str, float] = {}

    def timed(side: str, epoch: int, call) -> None:
        began = time.perf_counter()
        call()
        times[side][epoch] += time.perf_counter() - began

    def paired(original):
        def step(self, epoch, index, order):
            if index > 0:  # archspec's loop between its previous step and this one
                times["archspec"][epoch] += time.perf_counter() - last["end"]
            if not hand:
                torch.manual_seed(self.config.seed)  # the same initial weights as archspec's run
                model = self.plan.build()
                hand.append(HandLoop(torch.compile(model) if compiled else model, self.data.x_train,
                                     self.data.y_train, self.config, self.state.steps_per_epoch))
            turns = [("archspec", lambda: original(self, epoch, index, order)), ("hand", hand[0].step)]
            for side, call in turns if index % 2 == 0 else turns[::-1]:  # who goes first alternates
                timed(side, epoch, call)
            last["end"] = time.perf_counter()
            times["images"] = len(self.data.x_train)
        return step

    config = config_of(case, scratch / f"{case.spec}-{compiled}", compiled)
    with patched(loop.Trainer, "_step", paired):
        loop.train(config, progress=True, echo=lambda line: None)
    return {"images": times["images"], "archspec": [times["archspec"][e] for e in sorted(times["archspec"])],
            "hand": [times["hand"][e] for e in sorted(times["hand"])]}


def phases(case: Case, scratch: Path) -> tuple[dict[str, float], list[tuple[str, float]]]:
    """Where archspec's step time goes (ms per step, by phase), and torch.profiler's top operators."""
    spent: dict[str, float] = defaultdict(float)
    steps = {"n": 0}

    def timer(phase):
        def wrap(original):
            def timed(*args, **kwargs):
                began = time.perf_counter()
                try:
                    return original(*args, **kwargs)
                finally:
                    spent[phase] += time.perf_counter() - began
            return timed
        return wrap

    def counted(original):
        def step(self, *args):
            steps["n"] += 1
            return timer("step (all)")(original)(self, *args)
        return step

    from archspec.train import tasks

    config = config_of(case, scratch / f"{case.spec}-profile", False, epochs=2)
    with (patched(loop, "augment", timer("data: augment (off)")), patched(loop.Runtime, "to", timer("data: copy to device")),
          patched(tasks.Classification, "train_loss", timer("forward + loss")),
          patched(RunState, "step", timer("backward + optimizer + schedule")), patched(loop.Trainer, "_step", counted)):
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            loop.train(config, progress=True, echo=lambda line: None)
    per_step = {phase: 1000 * seconds / steps["n"] for phase, seconds in spent.items()}
    per_step["rest of the step (batch gather, indices, generator, loss check, running figures, progress bar)"] = (
        per_step.pop("step (all)") - sum(v for k, v in per_step.items() if k != "step (all)"))
    top = sorted(((e.key, e.self_cpu_time_total / 1000) for e in prof.key_averages()), key=lambda kv: -kv[1])[:8]
    return per_step, top


def summary(times: dict) -> dict:
    images = times["images"]
    archspec, hand = times["archspec"][1:], times["hand"][1:]
    ratios = [h / a for a, h in zip(archspec, hand)]  # images/s ratio = inverse time ratio
    return {"archspec": images / min(archspec), "hand": images / min(hand),
            "ratio": statistics.median(ratios), "low": min(ratios), "high": max(ratios), "epochs": len(ratios),
            "first": (times["archspec"][0], times["hand"][0]),
            "steady": (statistics.median(archspec), statistics.median(hand))}


def markdown(results: list, profiles: dict, args, loads) -> str:
    lines = [BEGIN, "## Training: `archspec train` against a hand-written loop (issue 18)", "",
             f"`benchmarks/bench_train.py{' --quick' if args.quick else ''}`, {_dt.date.today()}, "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
             f"{torch.get_num_threads()} torch thread(s) (archspec's choice on this machine, used by both); load average "
             f"{loads[0]:.1f} at the start, {loads[1]:.1f} at the end. CPU, in-memory data, augmentation off, AdamW.",
             "", "| case | batch | mode | archspec img/s | hand loop img/s | ratio: median of the epochs (range) | target | compile s: archspec (hand loop, cache-warm) |",
             "|---|---:|---|---:|---:|---|---|---|"]
    for case, compiled, s in results:
        met = "met" if s["ratio"] >= TARGET else "not met"
        compile_s = "" if not compiled else (f"{s['first'][0] - s['steady'][0]:.1f} ({s['first'][1] - s['steady'][1]:.1f})")
        lines.append(f"| {case.spec} on {case.data}{' ' + 'x'.join(map(str, case.inputs['image'])) if case.inputs else ''} "
                     f"| {case.batch} | {'torch.compile' if compiled else 'eager'} | {s['archspec']:.0f} | {s['hand']:.0f} | "
                     f"{s['ratio']:.3f} ({s['low']:.3f}-{s['high']:.3f}, {s['epochs']} epochs) | >= {TARGET} {met} | {compile_s} |")
    lines += ["", "Compile time: the first epoch's time over a steady epoch's (the first epoch is dropped from the "
              "images/s). archspec compiles first; the hand loop's model is the same graph, so its compile finds "
              "Inductor's kernels already built in this process, and its figure is not a compile from scratch. Where the step time goes in archspec's loop (eager; ms per step, wrapped phases):", ""]
    for name, (per_step, top) in profiles.items():
        total = sum(per_step.values())
        lines.append(f"- **{name}**: " + "; ".join(f"{phase} {ms:.2f} ms ({100 * ms / total:.0f}%)" for phase, ms in per_step.items()))
        lines.append("  - torch.profiler, top operators by self CPU time over the run: "
                     + ", ".join(f"`{key}` {ms:.0f} ms" for key, ms in top))
    lines += ["", "Data is gathered from tensors already in memory (no DataLoader workers): the data phases, with the gather "
              "counted in the rest of the step, are a few percent of a step, never the bottleneck.", END]
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + section.rstrip("\n") + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 epochs per case (a smoke run)")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks.md")
    args = parser.parse_args()
    cases = [Case(c.spec, c.data, c.inputs, c.batch, 3) if args.quick else c for c in CASES]
    loads = [os.getloadavg()[0]]
    results, profiles = [], {}
    with tempfile.TemporaryDirectory(prefix="archspec-bench-train-") as scratch:
        for compiled in (False,) if args.no_compile else (False, True):
            for case in cases:
                print(f"{case.spec}: {'compiled' if compiled else 'eager'} ...", file=sys.stderr, flush=True)
                results.append((case, compiled, summary(interleaved(case, compiled, Path(scratch)))))
        for case in cases:
            profiles[case.spec] = phases(case, Path(scratch))
    loads.append(os.getloadavg()[0])
    section = markdown(results, profiles, args, loads)
    write_section(args.out, section)
    print(section)


if __name__ == "__main__":
    main()
