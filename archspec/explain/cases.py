"""The course's worked examples (`archspec explain --case NAME`).

Each case is a tiny spec file in `case_specs/` (`<case name>.yaml`), compiled and analysed like
any other spec (archspec.pipeline.compile, so `use:` and `extends:` work in it): the numbers in
the text are the analysis' numbers, never typed in. `explain_case` returns them in `figures`
alongside the text, so tests can hold them against the course.
"""
from __future__ import annotations

import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from archspec.errors import SpecError, did_you_mean
from archspec.explain.detection_cases import DETECTION_BUILDERS, DETECTION_CASES
from archspec.explain.explanation import Explanation, format_explanations
from archspec.explain.layers import explain_layers
from archspec.explain.messages import EN, Messages, num
from archspec.ops.catalog import lookup
from archspec.ops.common import pair
from archspec.ops.registry import numel
from archspec.passes.counts import LayerStats
from archspec.passes.devices import PUBLISHED, check_device
from archspec.passes.latency import LatencyEstimate, LayerLatency, estimate_latency
from archspec.passes.memory import DTYPE_BYTES
from archspec.render.figures import duration, human
from archspec import pipeline
from archspec.pipeline import Compiled

CASE_SPECS = Path(__file__).resolve().parent / "case_specs"
CASE_NAMES = ("inception-bottleneck", "depthwise-separable", "lenet5", "conv-output-size", "transposed-conv",
              *DETECTION_CASES)
# name -> one-line description (English; `case_descriptions(lang)` for another language)
CASES: dict[str, str] = {name: EN[f"case.{name}"] for name in CASE_NAMES}
# The cases with a roofline estimate (`--device`). By default a published device, so the text is the
# same on every machine: the H100 at fp32, the dtype `report --latency` assumes by default, at
# which its ridge point (20 FLOP/B) sits between a depthwise and a full convolution at MobileNet's sizes.
DEVICE_CASES = ("depthwise-separable",)
DEFAULT_DEVICE, LATENCY_DTYPE = "h100", "fp32"


@dataclass
class CaseResult:
    """A worked example: its text and the numbers in it (`figures`)."""

    name: str
    lang: str
    text: str
    figures: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.text


def case_descriptions(lang: str | None = None) -> dict[str, str]:
    msg = Messages(lang)
    return {name: msg(f"case.{name}") for name in CASE_NAMES}


def explain_case(name: str, lang: str | None = None, device: str | None = None) -> CaseResult:
    """Compute and explain one of the course's examples (`CASES`). An unknown name raises
    SpecError (an ArchspecError) that lists the cases. `device` (cpu, a100, h100, h200) is for the
    DEVICE_CASES' roofline estimate; `cpu` is measured once (torch, about 2 s), then cached."""
    if name not in _BUILDERS:
        raise SpecError(
            f"unknown case '{name}'; the cases are: {', '.join(CASE_NAMES)}",
            hint=did_you_mean(name, CASE_NAMES),
        )
    if device is not None and name not in DEVICE_CASES:
        raise SpecError(f"--device applies to --case {', '.join(DEVICE_CASES)} only, not to '{name}'")
    msg = Messages(lang)
    if name in DEVICE_CASES:
        text, figures = _BUILDERS[name](msg, check_device(device or DEFAULT_DEVICE))
    else:
        text, figures = _BUILDERS[name](msg)
    return CaseResult(name, msg.lang, text, figures)


# --- compiling a case's spec ---------------------------------------------------------------------
def _compiled(name: str) -> Compiled:
    return pipeline.compile(CASE_SPECS / f"{name}.yaml")


def _explained(compiled: Compiled, msg: Messages) -> dict[str, Explanation]:
    return {e.node: e for e in explain_layers(compiled.ir, compiled.analysis, None, msg.lang)}


def _stats(analysis) -> dict[str, LayerStats]:
    return {layer.name: layer for layer in analysis.layers}


# --- inception-bottleneck -----------------------------------------------------------------------------
def _inception(msg: Messages) -> tuple[str, dict]:
    compiled = _compiled("inception-bottleneck")
    ir, analysis = compiled.ir, compiled.analysis
    stats, explained = _stats(analysis), _explained(compiled, msg)
    channels, height, width = analysis.inputs["x"]
    k = pair(ir.node("direct").args.kernel)[0]
    out = stats["direct"].output_shape[0]
    mid = stats["reduce"].output_shape[0]
    direct = stats["direct"].figures.macs
    reduce, conv = stats["reduce"].figures.macs, stats["conv5x5"].figures.macs
    total = reduce + conv
    ratio = direct / total
    lines = [
        msg("inc_title"),
        msg("inc_setup", h=height, w=width, c=channels, out=out, k=k),
        "",
        format_explanations(list(explained.values())),
        "",
        msg("inc_direct", k=k, macs=num(direct), approx=msg.approx(direct)),
        msg("inc_bottleneck", mid=mid, k=k, eq=f"{num(reduce)} + {num(conv)} = {num(total)}", approx=msg.approx(total)),
        msg("inc_ratio", ratio=f"{ratio:.2f}"),
    ]
    figures = {
        "direct_macs": direct,
        "reduce_macs": reduce,
        "conv_macs": conv,
        "bottleneck_macs": total,
        "ratio": ratio,
        "layer_figures": explained["conv5x5"].figures,
    }
    return "\n".join(lines), figures


# --- depthwise-separable ------------------------------------------------------------------------------
def _separable(msg: Messages, device: str = DEFAULT_DEVICE) -> tuple[str, dict]:
    compiled = _compiled("depthwise-separable")
    ir, analysis = compiled.ir, compiled.analysis
    stats, explained = _stats(analysis), _explained(compiled, msg)
    channels, height, width = analysis.inputs["x"]
    k = pair(ir.node("depthwise").args.kernel)[0]
    out, h_out, w_out = stats["plain"].output_shape
    plain = stats["plain"].figures.macs
    dw, pw = stats["depthwise"].figures.macs, stats["pointwise"].figures.macs
    separable = dw + pw
    ratio = separable / plain
    formula = 1 / out + 1 / k**2
    lines = [
        msg("sep_case_title"),
        msg("sep_case_setup", h=height, w=width, c=channels, k=k, out=out, ho=h_out, wo=w_out),
        "",
        format_explanations(list(explained.values())),
        "",
        msg("sep_case_plain", eq=f"{h_out}·{w_out}·{out}·{channels}·{k}·{k} = {num(plain)}"),
        msg("sep_case_dw", eq=f"({k}·{k})·({h_out}·{w_out}·{channels}) = {num(dw)}"),
        msg("sep_case_pw", eq=f"(1·1·{channels})·({h_out}·{w_out}·{out}) = {num(pw)}"),
        msg("sep_case_sum", eq=f"{num(dw)} + {num(pw)} = {num(separable)}"),
        msg(
            "sep_case_ratio",
            sep=num(separable),
            plain=num(plain),
            ratio=f"{ratio:.3f}",
            formula=f"1/{out} + 1/{k}² = 1/{out} + 1/{k * k} = {formula:.3f}",
        ),
    ]
    figures = {
        "plain_macs": plain,
        "depthwise_macs": dw,
        "pointwise_macs": pw,
        "separable_macs": separable,
        "ratio": ratio,
        "formula": formula,
        "layer_figures": explained["pointwise"].figures,
    }
    latency_lines, figures["latency"] = _separable_latency(compiled, msg, device)
    return "\n".join(lines + ["", *latency_lines]), figures


def _separable_latency(compiled: Compiled, msg: Messages, device_name: str) -> tuple[list[str], dict]:
    """Why the FLOP saving is not a speed-up: the roofline estimate (archspec.passes.latency) of the
    plain convolution against depthwise + pointwise, on `device_name` at LATENCY_DTYPE."""
    from archspec.lower.calibrate import device as named_device  # torch only to measure `cpu`

    device, size = named_device(device_name), DTYPE_BYTES[LATENCY_DTYPE]
    estimate = estimate_latency(compiled.ir, compiled.analysis, device, size, LATENCY_DTYPE)
    timed, stats = {layer.name: layer for layer in estimate.layers}, _stats(compiled.analysis)
    plain, dw, pw = timed["plain"], timed["depthwise"], timed["pointwise"]
    sep_flops, sep_bytes, sep_seconds = dw.flops + pw.flops, dw.bytes + pw.bytes, dw.seconds + pw.seconds
    saving, speedup = plain.flops / sep_flops, plain.seconds / sep_seconds
    ridge = f"{estimate.ridge:.3g}"
    shown = msg("lat_measured" if device.name not in PUBLISHED else "lat_published", device=device.name, dtype=LATENCY_DTYPE)
    lines = [msg("lat_title"),
             msg("lat_device", device=shown, peak=human(int(device.peak(LATENCY_DTYPE))),
                 bandwidth=human(int(device.bandwidth)), ridge=ridge),
             msg("lat_rule", size=size, dtype=LATENCY_DTYPE)]
    if not device.overhead:
        lines.append(msg("lat_no_fixed"))
    for layer in (plain, dw, pw):
        lines += _layer_roofline(compiled, stats[layer.name], layer, estimate, msg)
    lines += [msg("lat_pair", flops=num(sep_flops), bytes=num(sep_bytes),
                  eq=f"{duration(dw.seconds)} + {duration(pw.seconds)} = {duration(sep_seconds)}"),
              msg("lat_ratios", plain_flops=num(plain.flops), sep_flops=num(sep_flops), saving=f"{saving:.2f}",
                  plain_time=duration(plain.seconds), sep_time=duration(sep_seconds), speedup=f"{speedup:.2f}"),
              msg(f"lat_dw_{dw.bound}", intensity=f"{dw.intensity:.3g}", ridge=ridge),
              msg("lat_bytes", sep=num(sep_bytes), plain=num(plain.bytes),
                  shape="x".join(map(str, stats["depthwise"].output_shape))),
              msg("lat_verdict", saving=f"{saving:.2f}", speedup=f"{speedup:.2f}")]
    figures = {"device": device.name, "dtype": LATENCY_DTYPE, "dtype_bytes": size, "peak_flops": device.peak(LATENCY_DTYPE),
               "bandwidth": device.bandwidth, "overhead": device.overhead, "ridge": estimate.ridge,
               "layers": {layer.name: asdict(layer) for layer in (plain, dw, pw)},
               "separable_flops": sep_flops, "separable_bytes": sep_bytes, "separable_seconds": sep_seconds,
               "flop_saving": saving, "speedup": speedup}
    return lines, figures


def _layer_roofline(compiled: Compiled, stats: LayerStats, layer: LayerLatency, estimate: LatencyEstimate,
                    msg: Messages) -> list[str]:
    """One layer's bytes (inputs + weights + outputs, as the pass counts them), intensity, bound and time."""
    dtype = estimate.dtype
    inputs = sum(numel(compiled.ir.shapes[value]) for value in stats.inputs) * estimate.batch
    weights = stats.figures.params + stats.figures.buffers
    times = {"flops": num(layer.flops), "bytes": num(layer.bytes), "compute": duration(layer.compute),
             "memory": duration(layer.memory), "seconds": duration(layer.seconds)}
    time_line = (msg("lat_time_fixed", overhead=duration(layer.extra), **times) if layer.extra
                 else msg("lat_time", **times))
    return [msg("lat_layer", name=layer.name, flops=num(layer.flops), inputs=num(inputs), weights=num(weights),
                outputs=num(stats.figures.activations), size=DTYPE_BYTES[dtype], bytes=num(layer.bytes),
                intensity=f"{layer.intensity:.3g}", cmp=">" if layer.bound == "compute" else "≤",
                ridge=f"{estimate.ridge:.3g}", bound=msg(f"bound.{layer.bound}")),
            time_line]


# --- lenet5 ----------------------------------------------------------------------------------------
LENET5_FILE = Path(__file__).resolve().parents[2] / "specs" / "lenet5.yaml"


def _course_shape(shape: tuple[int, ...]) -> str:
    """The course writes (H, W, C) and vectors as (N, 1)."""
    if len(shape) == 3:
        shape = (shape[1], shape[2], shape[0])
    elif len(shape) == 1:
        shape = (shape[0], 1)
    return "(" + ",".join(str(s) for s in shape) + ")"


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(_width(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0] + " " * (widths[0] - _width(row[0]))]
        cells += [" " * (w - _width(cell)) + cell for cell, w in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    return lines


def _left_out(compiled: Compiled, layer: LayerStats) -> bool:
    """The rows the course leaves out of its table: layers that keep the number of values and
    have no parameters (activations, flatten, dropout)."""
    return not layer.figures.params and numel(layer.output_shape) == numel(compiled.ir.shapes[layer.inputs[0]])


def _lenet5_rows(compiled: Compiled) -> list[tuple[str, tuple[int, ...], int]]:
    """(label, output shape, parameters) per row; a sliding window's label gives its f and s."""
    ir, analysis = compiled.ir, compiled.analysis
    ((input_name, input_shape),) = analysis.inputs.items()
    rows = [(input_name, input_shape, 0)]
    for layer in analysis.layers:
        if _left_out(compiled, layer):
            continue
        label = layer.name
        node, entry = ir.node(layer.name), lookup(layer.op)
        if entry.window is not None:
            kernel, stride, _, _ = entry.window(node.args, [ir.shapes[i] for i in node.inputs])
            label += f" (f={kernel[0]}, s={stride[0]})"
        rows.append((label, layer.output_shape, layer.figures.params))
    return rows


def _lenet5(msg: Messages) -> tuple[str, dict]:
    if LENET5_FILE.is_file():
        source = str(LENET5_FILE.relative_to(LENET5_FILE.parents[1]))
        compiled = pipeline.compile(LENET5_FILE)
    else:
        source = "lenet5"
        compiled = _compiled("lenet5")
    analysis = compiled.analysis
    explained = _explained(compiled, msg)
    input_name = next(iter(analysis.inputs))
    rows = _lenet5_rows(compiled)
    table_rows = [list(msg.raw("lenet_columns"))]
    figures_rows = []
    for label, shape, params in rows:
        size = numel(shape)
        shown = msg("lenet_input") if label == input_name else label
        table_rows.append([shown, _course_shape(shape), num(size), num(params)])
        figures_rows.append((label, _course_shape(shape), size, params))
    lines = [msg("lenet_title", spec=source), "", *_table(table_rows), "", msg("lenet_note")]
    lines.append(msg("lenet_total", params=num(analysis.totals.params)))
    lines += ["", msg("lenet_formulas")]
    for explanation in explained.values():
        for line in explanation.lines_of("params"):
            if explanation.figures["params"]:
                lines.append(f"  {explanation.node}: {line}")
    figures = {"rows": figures_rows, "total_params": analysis.totals.params}
    return "\n".join(lines), figures


# --- conv-output-size ----------------------------------------------------------------------------------
def _output_size(msg: Messages) -> tuple[str, dict]:
    compiled = _compiled("conv-output-size")
    ir, analysis = compiled.ir, compiled.analysis
    stats, explained = _stats(analysis), _explained(compiled, msg)
    lines = [msg("size_title")]
    figures: dict[str, Any] = {}
    for name, explanation in explained.items():
        node = ir.node(name)
        in_shape = ir.shapes[node.inputs[0]]
        kernel, stride, padding, _ = lookup(node.op).window(node.args, [in_shape])
        out = stats[name].output_shape
        weighted = lookup(node.op).is_("weighted")  # a convolution, else the pooling example
        if weighted:
            intro = msg("size_example", n=in_shape[1], f=kernel[0], p=padding[0], s=stride[0], out=out[1])
        else:
            intro = msg("size_example_pool", n=in_shape[1], c=in_shape[0], f=kernel[0], s=stride[0], out=out[1])
        lines += ["", intro]
        if weighted and padding[0] > 0 and 2 * padding[0] == kernel[0] - 1 and out[1] == in_shape[1]:
            lines.append("  " + msg("size_same", p=padding[0]))
        lines += ["  " + line for line in explanation.lines_of("shape")]
        figures[name] = out[1]
        if "dropped.width" in explanation.figures:
            figures[f"{name}.dropped"] = explanation.figures["dropped.width"]
    return "\n".join(lines), figures


# --- transposed-conv -----------------------------------------------------------------------------------
def _transposed(msg: Messages) -> tuple[str, dict]:
    compiled = _compiled("transposed-conv")
    ir, analysis = compiled.ir, compiled.analysis
    stats, explained = _stats(analysis), _explained(compiled, msg)
    default, course = ir.node("default").args, ir.node("course").args
    n = analysis.inputs["x"][1]
    (f, _), (s, _), (p, _) = pair(default.kernel), pair(default.stride), pair(default.padding)
    out_default, out_course = stats["default"].output_shape[1], stats["course"].output_shape[1]
    op = pair(course.output_padding)[0]
    lines = [
        msg("tconv_title"),
        "",
        msg("tconv_default", n=n, f=f, s=s, p=p, out=out_default),
        *("  " + line for line in explained["default"].lines_of("shape")),
        "",
        msg("tconv_course", op=op, out=out_course),
        *("  " + line for line in explained["course"].lines_of("shape")),
    ]
    figures = {
        "default": out_default,
        "course": out_course,
        "output_padding": op,
        "output_padding_needed": explained["default"].figures.get("output_padding_needed.height"),
    }
    return "\n".join(lines), figures


_BUILDERS: dict[str, Callable[..., tuple[str, dict]]] = {
    "inception-bottleneck": _inception,
    "depthwise-separable": _separable,
    "lenet5": _lenet5,
    "conv-output-size": _output_size,
    "transposed-conv": _transposed,
    **DETECTION_BUILDERS,
}
