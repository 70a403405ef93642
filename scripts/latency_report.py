"""Check the roofline latency estimate (archspec.passes.latency) against torch.profiler on this CPU.

For each spec of a small set, at 3x64x64 (or the spec's own input when it is smaller), batch 1,
fp32, inference (eval, no_grad): every IR node's forward runs inside a `record_function` range
named after its node id (a torch.fx Interpreter over the lowered module, so the module paths are
the IR node ids), and the profiler's CPU time per range is that layer's measured time. Compared:
the Spearman rank correlation of per-layer times (targets: rho >= 0.8) and the predicted total
against the measured one (target: within a factor of 2). Writes reports/latency.md.

    .venv/bin/python scripts/latency_report.py [--runs 20] [--threads 1] [--out reports/latency.md]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from scipy.stats import spearmanr
from torch import fx
from torch.profiler import ProfilerActivity, profile, record_function

from archspec import pipeline
from archspec.lower.calibrate import device
from archspec.lower.fx import python_name
from archspec.passes.latency import estimate_latency

SPEC_FOLDER = Path(__file__).resolve().parent.parent / "specs"
SPECS = ("lenet5", "resnet18", "mobilenet_v2", "efficientnet_b0", "vgg11", "densenet121")
SIDE = 64
PREFIX = "layer:"


class TimedLayers(fx.Interpreter):
    """Runs the lowered module node by node, each op node inside a profiler range of its IR id."""

    def __init__(self, module: fx.GraphModule, ids: dict[str, str]):
        super().__init__(module)
        self.ids = ids

    def run_node(self, node: fx.Node):
        if node.name not in self.ids:  # placeholders, getitem of a split, the output
            return super().run_node(node)
        with record_function(PREFIX + self.ids[node.name]):
            return super().run_node(node)


def input_shape(name: str) -> tuple[int, ...]:
    shape = next(iter(pipeline.compile(SPEC_FOLDER / f"{name}.yaml").analysis.inputs.values()))
    return shape if shape[-1] <= SIDE else (shape[0], SIDE, SIDE)


def measure(name: str, runs: int) -> dict:
    shape = input_shape(name)
    compiled = pipeline.compile(SPEC_FOLDER / f"{name}.yaml", inputs={"": shape})
    predicted = estimate_latency(compiled.ir, compiled.analysis, device("cpu"))
    module = compiled.module().eval()
    ids = {python_name(layer.name): layer.name for layer in compiled.analysis.layers}
    x = torch.randn(1, *shape)
    interpreter = TimedLayers(module, ids)
    with torch.no_grad():
        for _ in range(3):  # warm-up: allocator, oneDNN primitive caches
            interpreter.run(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(runs):
                interpreter.run(x)
        forward = _median_forward(module, x, runs)
    measured: dict[str, float] = {}  # the fastest run of each layer: a slow run was preempted (shared machine)
    for event in prof.events():
        if event.name.startswith(PREFIX):
            layer = event.name[len(PREFIX):]
            measured[layer] = min(measured.get(layer, float("inf")), event.cpu_time_total * 1e-6)
    names = [layer.name for layer in predicted.layers]
    rho = spearmanr([layer.seconds for layer in predicted.layers], [measured.get(n, 0.0) for n in names]).statistic
    return {"name": name, "shape": shape, "layers": len(names), "rho": float(rho), "predicted": predicted.seconds,
            "measured": sum(measured.values()), "forward": forward, "estimate": predicted, "per_layer": measured}


def _median_forward(module, x, runs: int) -> float:
    """The plain module's forward (no interpreter, no profiler): what a user's call takes (median)."""
    times = []
    for _ in range(max(runs, 5)):
        start = time.perf_counter()
        module(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g}"


def write_report(results: list[dict], out: Path, runs: int) -> None:
    cpu = device("cpu")
    lines = ["# Latency estimate against torch.profiler (CPU)", "",
             "Written by `scripts/latency_report.py`: batch 1, fp32, inference (eval, no_grad), "
             f"{torch.get_num_threads()} threads, torch {torch.__version__}, fastest of {runs} profiled runs per layer. The "
             "estimate is `archspec report SPEC --latency --device cpu` (archspec.passes.latency); per-layer "
             "times are the profiler's CPU time of a `record_function` range around each IR node.", "",
             f"Device `cpu` as calibrated: fp32 {cpu.peak('fp32') / 1e9:.1f} GFLOP/s, "
             f"{cpu.bandwidth / 1e9:.1f} GB/s, {cpu.overhead * 1e6:.2f} µs fixed cost per op "
             f"(ridge {cpu.peak('fp32') / cpu.bandwidth:.2f} FLOP/B). {cpu.source}.", "",
             "Targets: Spearman rho of per-layer times >= 0.8; predicted total within 2x of measured.", "",
             "| Spec | Input | Layers | rho | Predicted (ms) | Measured, sum of layers (ms) | Plain forward (ms) "
             "| Predicted / measured | Targets |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        ratio = r["predicted"] / r["measured"]
        met = ("rho " + ("ok" if r["rho"] >= 0.8 else "MISSED") + ", total " + ("ok" if 0.5 <= ratio <= 2 else "MISSED"))
        lines.append(f"| {r['name']} | {'x'.join(map(str, r['shape']))} | {r['layers']} | {r['rho']:.3f} | "
                     f"{ms(r['predicted'])} | {ms(r['measured'])} | {ms(r['forward'])} | {ratio:.2f} | {met} |")
    rho_met = sum(r["rho"] >= 0.8 for r in results)
    total_met = sum(0.5 <= r["predicted"] / r["measured"] <= 2 for r in results)
    lines += ["", f"Met: rho >= 0.8 on {rho_met} of {len(results)} specs, the total within 2x on {total_met} of "
              f"{len(results)}. The roofline takes peak rates, so it is a lower bound: every spec runs slower than "
              "predicted. The gap is largest where eager PyTorch on a CPU is far from its peaks: convolutions on "
              "small late-stage maps (below) and networks of many small ops, where the "
              "fixed cost per call (the calibrated one-element calls) is not the whole cost of a real call.",
              "", *_slowest(results[1]), ""]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _slowest(result: dict, count: int = 8) -> list[str]:
    """The largest predicted layers of one spec, side by side with the profiler."""
    layers = sorted(result["estimate"].layers, key=lambda layer: -layer.seconds)[:count]
    lines = [f"Largest predicted layers of {result['name']}:", "",
             "| Layer | Op | FLOP/B | Bound | Predicted (µs) | Measured (µs) |", "|---|---|---:|---|---:|---:|"]
    for layer in layers:
        lines.append(f"| {layer.name} | {layer.op} | {layer.intensity:.3g} | {layer.bound} | "
                     f"{layer.seconds * 1e6:.1f} | {result['per_layer'].get(layer.name, 0.0) * 1e6:.1f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the calibration is per thread count)")
    parser.add_argument("--out", type=Path, default=Path("reports/latency.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    for name in SPECS:
        results.append(measure(name, args.runs))
        r = results[-1]
        print(f"{name}: rho {r['rho']:.2f}, predicted {ms(r['predicted'])} ms, measured {ms(r['measured'])} ms, "
              f"forward {ms(r['forward'])} ms", flush=True)
    write_report(results, args.out, args.runs)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
