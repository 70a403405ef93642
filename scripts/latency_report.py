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
from archspec.errors import ArchspecError
from archspec.lower.calibrate import device
from archspec.lower.fx import python_name
from archspec.passes.latency import estimate_latency

SPEC_FOLDER = Path(__file__).resolve().parent.parent / "specs"
# the library's image classifiers of the course and after it (the heaviest left out to keep the run short)
SPECS = ("lenet5", "resnet18", "mobilenet_v2", "efficientnet_b0", "vgg11", "densenet121", "alexnet", "googlenet",
         "resnet50", "resnext50_32x4d", "squeezenet1_1", "mobilenet_v1", "mobilenet_v3_small", "shufflenet_v2_x1_0",
         "mnasnet1_0", "regnet_y_400mf", "convnext_tiny", "swin_t")
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
    # per layer, the fastest run (a slow run was preempted on this shared machine) of: its operators'
    # CPU time (the aten ops the layer calls: the profiler's per-op times), and its whole range
    # (with the Python of the interpreter and the module call around them)
    measured: dict[str, float] = {}
    ranges: dict[str, float] = {}
    for event in prof.events():
        if event.name.startswith(PREFIX):
            layer = event.name[len(PREFIX):]
            ops = sum(child.cpu_time_total for child in event.cpu_children) * 1e-6
            measured[layer] = min(measured.get(layer, float("inf")), ops)
            ranges[layer] = min(ranges.get(layer, float("inf")), event.cpu_time_total * 1e-6)
    names = [layer.name for layer in predicted.layers]
    seconds = [layer.seconds for layer in predicted.layers]
    rho = spearmanr(seconds, [measured.get(n, 0.0) for n in names]).statistic
    rho_range = spearmanr(seconds, [ranges.get(n, 0.0) for n in names]).statistic
    return {"name": name, "shape": shape, "layers": len(names), "rho": float(rho), "rho_range": float(rho_range),
            "predicted": predicted.seconds, "measured": sum(measured.values()), "ranges": sum(ranges.values()),
            "forward": forward, "estimate": predicted, "per_layer": measured}


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


def write_report(results: list[dict], out: Path, runs: int, skipped: list[str]) -> None:
    cpu = device("cpu")
    lines = ["# Latency estimate against torch.profiler (CPU)", "",
             "Written by `scripts/latency_report.py`: batch 1, fp32, inference (eval, no_grad), "
             f"{torch.get_num_threads()} torch thread(s), torch {torch.__version__}, fastest of {runs} profiled runs per layer. The "
             "estimate is `archspec report SPEC --latency --device cpu` (archspec.passes.latency); a layer's "
             "measured time is the profiler's CPU time of the operators it calls (the aten ops inside a "
             "`record_function` range around each IR node). rho (range) ranks the whole ranges instead, "
             "which add the interpreter's and the module call's Python to every layer.", "",
             f"Device `cpu` as calibrated: fp32 {cpu.peak('fp32') / 1e9:.1f} GFLOP/s, "
             f"{cpu.bandwidth / 1e9:.1f} GB/s (ridge {cpu.peak('fp32') / cpu.bandwidth:.2f} FLOP/B); fixed cost per op: "
             + ", ".join(f"{kind} {seconds * 1e6:.1f} µs" for kind, seconds in cpu.kernel_overheads.items())
             + "; pooling windows at " + ", ".join(f"{rate / 1e9:.2f} G/s" for rate in cpu.kernel_rates.values())
             + (f"; conv weights re-laid out at {cpu.relayout_bandwidth / 1e9:.2f} GB/s per call" if cpu.relayout_bandwidth else "")
             + f". {cpu.source}.", "",
             "Targets: Spearman rho of per-layer times >= 0.8; predicted total within 2x of measured.", "",
             "| Spec | Input | Layers | rho | rho (range) | Predicted (ms) | Measured, sum of layers' ops (ms) "
             "| Sum of ranges (ms) | Plain forward (ms) | Predicted / measured | Targets |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        ratio = r["predicted"] / r["measured"]
        met = ("rho " + ("ok" if r["rho"] >= 0.8 else "MISSED") + ", total " + ("ok" if 0.5 <= ratio <= 2 else "MISSED"))
        lines.append(f"| {r['name']} | {'x'.join(map(str, r['shape']))} | {r['layers']} | {r['rho']:.3f} | "
                     f"{r['rho_range']:.3f} | {ms(r['predicted'])} | {ms(r['measured'])} | {ms(r['ranges'])} | "
                     f"{ms(r['forward'])} | {ratio:.2f} | {met} |")
    rho_met = sum(r["rho"] >= 0.8 for r in results)
    total_met = sum(0.5 <= r["predicted"] / r["measured"] <= 2 for r in results)
    under = [r["name"] for r in results if r["predicted"] < r["measured"]]
    lines += ["", f"Met: rho >= 0.8 on {rho_met} of {len(results)} specs, the total within 2x on {total_met} of "
              f"{len(results)}. Predicted below measured on {len(under)} of {len(results)} specs"
              + (f" ({', '.join(under)})" if under else "") + "."
              + (f" Not run at this size: {'; '.join(skipped)}." if skipped else ""),
              "", *_slowest(next(r for r in results if r["name"] == "resnet18")), ""]
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
    skipped = []
    for name in SPECS:
        try:
            results.append(measure(name, args.runs))
        except (ArchspecError, RuntimeError) as err:  # a spec that does not run at this input size
            skipped.append(f"{name} ({str(err).splitlines()[0]})")
            print(f"{name}: skipped: {skipped[-1]}", flush=True)
            continue
        r = results[-1]
        print(f"{name}: rho {r['rho']:.2f}, predicted {ms(r['predicted'])} ms, measured {ms(r['measured'])} ms, "
              f"forward {ms(r['forward'])} ms", flush=True)
    write_report(results, args.out, args.runs, skipped)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
