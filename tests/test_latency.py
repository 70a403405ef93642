"""The latency estimate (archspec.passes.latency): its roofline arithmetic against hand computations,
the `cpu` calibration cache, and `report --latency --device`'s errors and JSON."""
from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from archspec import pipeline
from archspec.cli import app
from archspec.lower import calibrate
from archspec.passes.devices import PUBLISHED, Device, cache_path
from archspec.passes.latency import estimate_latency

# a 3x3 conv with bias, 3 -> 4 channels, padding 1, on 3x8x8; a dropout (free at inference) after it
CONV_SPEC = """\
name: one_conv
inputs: {image: [3, 8, 8]}
layers:
  - conv: {out: 4, kernel: 3, padding: 1}
  - dropout: {p: 0.5}
"""
# by hand: 4x8x8 outputs, each 3*3*3 multiply-adds -> 2 * 256 * 27 FLOPs
CONV_FLOPS = 2 * (4 * 8 * 8) * (3 * 3 * 3)  # 13,824
CONV_WEIGHTS = 4 * 3 * 3 * 3 + 4  # kernel and bias: 112
CONV_INPUT, CONV_OUTPUT = 3 * 8 * 8, 4 * 8 * 8  # 192, 256


def _conv_estimate(write_spec, device: Device, batch: int = 1, dtype_bytes: int = 4, dtype: str = "fp32"):
    compiled = pipeline.compile(write_spec(CONV_SPEC), batch=batch)
    return estimate_latency(compiled.ir, compiled.analysis, device, dtype_bytes, dtype)


SLOW_MEMORY = Device("made_up", {"fp32": 1e9, "bf16": 4e9}, bandwidth=1e8, source="test", overhead=1e-6)


def test_a_memory_bound_conv_by_hand(write_spec):
    conv, dropout = _conv_estimate(write_spec, SLOW_MEMORY).layers
    moved = (CONV_INPUT + CONV_WEIGHTS + CONV_OUTPUT) * 4  # 2,240 bytes
    assert (conv.flops, conv.bytes) == (CONV_FLOPS, moved)
    assert conv.intensity == pytest.approx(13_824 / 2_240)  # 6.17 FLOP/B, under the ridge of 1e9 / 1e8 = 10
    assert conv.bound == "memory"
    assert conv.seconds == pytest.approx(2_240 / 1e8 + 1e-6)  # bytes / bandwidth (22.4 µs) beats 13.8 µs of compute
    assert (dropout.bytes, dropout.flops, dropout.seconds) == (0, 0, pytest.approx(1e-6))  # only the fixed cost


def test_a_compute_bound_conv_by_hand(write_spec):
    fast_memory = Device("made_up", {"fp32": 1e9}, bandwidth=1e10, source="test")  # ridge 0.1 FLOP/B
    estimate = _conv_estimate(write_spec, fast_memory)
    conv = estimate.layers[0]
    assert conv.bound == "compute"
    assert conv.seconds == pytest.approx(13_824 / 1e9)
    assert estimate.seconds == pytest.approx(13_824 / 1e9)  # the dropout adds nothing (no fixed cost here)
    assert estimate.ridge == pytest.approx(0.1)


def test_batch_and_dtype_scale_activations_not_weights(write_spec):
    conv = _conv_estimate(write_spec, SLOW_MEMORY, batch=2, dtype_bytes=2, dtype="bf16").layers[0]
    assert conv.flops == 2 * CONV_FLOPS
    assert conv.bytes == (2 * CONV_INPUT + CONV_WEIGHTS + 2 * CONV_OUTPUT) * 2  # 2,016 bytes
    # bf16 peak 4e9: ridge 40; 27,648 / 4e9 = 6.9 µs of compute against 20.2 µs of memory
    assert conv.seconds == pytest.approx(2_016 / 1e8 + 1e-6)


def test_published_devices_have_sources():
    assert set(PUBLISHED) == {"a100", "h100", "h200"}
    assert PUBLISHED["h200"].bandwidth == 4.8e12  # NVIDIA's H200 datasheet: 4.8 TB/s
    assert PUBLISHED["a100"].peak("bf16") == 312e12  # A100 datasheet, dense
    assert all("datasheet" in d.source and "https://" in d.source for d in PUBLISHED.values())


def test_cpu_is_calibrated_once_then_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_path() == tmp_path / "archspec" / "cpu-device.json"
    first = calibrate.device("cpu", seconds=0.05)  # a real, short measurement
    assert cache_path().is_file()
    written = json.loads(cache_path().read_text())
    assert written["device"]["bandwidth"] == first.bandwidth
    assert all(math.isfinite(v) and v > 0 for v in (*first.peak_flops.values(), first.bandwidth, first.overhead))

    def must_not_measure(seconds):
        raise AssertionError("the cached figures should have been used")

    monkeypatch.setattr(calibrate, "calibrate_cpu", must_not_measure)
    assert calibrate.device("cpu") == first


def test_an_unreadable_cache_is_measured_again(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache_path().parent.mkdir(parents=True)
    cache_path().write_text("{not json")
    measured = Device("cpu", {"fp32": 1e10}, 1e9, "fake measurement")
    monkeypatch.setattr(calibrate, "calibrate_cpu", lambda seconds: measured)
    assert calibrate.device("cpu") == measured
    assert json.loads(cache_path().read_text())["device"]["source"] == "fake measurement"


def test_a_bad_device_is_a_one_line_error(write_spec):
    result = CliRunner().invoke(app, ["report", str(write_spec(CONV_SPEC)), "--latency", "--device", "tpu"])
    assert result.exit_code == 1
    assert result.output == "error: --device must be cpu, a100, h100 or h200, not 'tpu'\n"


def test_latency_with_several_specs_in_a_table_is_refused(write_spec):
    spec = str(write_spec(CONV_SPEC))
    result = CliRunner().invoke(app, ["report", spec, spec, "--latency", "--device", "a100"])
    assert result.exit_code == 1
    assert result.output.startswith("error: --latency gives a per-layer table: name one spec")


def test_report_json_gives_the_a100_roofline(write_spec):
    result = CliRunner().invoke(app, ["report", str(write_spec(CONV_SPEC)), "--latency", "--device", "a100",
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    conv = data["layers"][0]["latency"]
    # A100: 2,039 GB/s and 19.5 TFLOP/s fp32, a ridge of 9.56 FLOP/B: 6.17 FLOP/B is memory-bound
    assert conv["bound"] == "memory"
    assert conv["seconds"] == pytest.approx(2_240 / 2.039e12)
    assert data["latency"]["ridge"] == pytest.approx(19.5e12 / 2.039e12)
    assert data["latency"]["seconds"] == pytest.approx(2_240 / 2.039e12)  # the dropout is free


def test_report_table_shows_the_roofline(write_spec):
    result = CliRunner().invoke(app, ["report", str(write_spec(CONV_SPEC)), "--latency", "--device", "h200"])
    assert result.exit_code == 0, result.output
    assert "latency estimate on h200" in result.output
    assert "4.80 TB/s" in result.output


# --- a measured CPU's figures per kernel kind (archspec.ops.registry.KERNELS) ----------------------------
KINDS_SPEC = """\
name: kinds
inputs: {image: [4, 8, 8]}
layers:
  - conv: {name: dw, out: 4, kernel: 3, padding: 1, groups: 4, bias: false}
  - conv: {name: grouped, out: 4, kernel: 1, groups: 2, bias: false}
  - dwconv: {name: dw_op, kernel: 1, bias: false}
  - bn: {name: norm}
  - relu: {name: act}
  - maxpool: {name: pool, kernel: 2}
  - dropout: {name: drop, p: 0.5}
  - flatten: {name: flat}
  - linear: {name: fc, out: 3}
"""
KIND_OF = {"dw": "depthwise", "grouped": "windowed_gemm", "dw_op": "depthwise", "norm": "normalise", "act": "pointwise",
           "pool": "pooling", "drop": "view", "flat": "view", "fc": "gemm"}
MEASURED = Device("measured", {"fp32": 1e9}, bandwidth=1e8, source="test", overhead=1e-6,
                  kernel_overheads={"depthwise": 50e-6, "windowed_gemm": 10e-6, "view": 0.0},
                  kernel_rates={"pooling": 1e6}, relayout_bandwidth=1e6)


def test_each_op_runs_its_kind_of_kernel(write_spec):
    compiled = pipeline.compile(write_spec(KINDS_SPEC))
    kinds = {layer.name: compiled.ir.node(layer.name).entry.kernel_of(
        compiled.ir.node(layer.name).args, [compiled.ir.shapes[v] for v in layer.inputs]) for layer in compiled.analysis.layers}
    assert kinds == KIND_OF  # groups == in channels is depthwise; groups=2 of 4 channels is not


def test_kernel_kinds_fixed_costs_rates_and_relayout_by_hand(write_spec):
    compiled = pipeline.compile(write_spec(KINDS_SPEC))
    layers = {layer.name: layer for layer in estimate_latency(compiled.ir, compiled.analysis, MEASURED).layers}
    # depthwise: 4x8x8 outputs x 9 MACs = 4,608 FLOPs; bytes (256 in + 36 weights + 256 out) x 4 = 2,192
    dw = layers["dw"]
    assert (dw.flops, dw.bytes) == (2 * 256 * 9, 2_192)
    assert dw.seconds == pytest.approx(2_192 / 1e8 + 50e-6)  # memory-bound, its own fixed cost, no re-layout
    # grouped 1x1: 2 groups of 2 -> 2: 256 outputs x 2 MACs; 8 weights; (256 + 8 + 256) x 4 = 2,080 B;
    # its weights re-laid out at 1e6 B/s: 8 x 4 / 1e6 = 32 µs, plus its kind's 10 µs
    grouped = layers["grouped"]
    assert grouped.seconds == pytest.approx(2_080 / 1e8 + 32 / 1e6 + 10e-6)
    # max pool 2x2 over 4x8x8: 4x4x4 = 64 windows of 4 comparisons = 256 at 1e6/s = 256 µs, above the
    # memory time of (256 + 64) x 4 = 1,280 B at 1e8 B/s = 12.8 µs: compute-bound at its own rate
    pool = layers["pool"]
    assert pool.seconds == pytest.approx(256 / 1e6 + 1e-6) and pool.bound == "compute"
    assert layers["drop"].seconds == layers["flat"].seconds == 0.0  # views: no bytes, no kernel, no cost
    assert layers["act"].seconds == pytest.approx(2 * 256 * 4 / 1e8 + 1e-6)  # the default fixed cost


def test_published_gpus_are_the_plain_roofline(write_spec):
    compiled = pipeline.compile(write_spec(KINDS_SPEC))
    h100 = PUBLISHED["h100"]
    assert (h100.kernel_overheads, h100.kernel_rates, h100.relayout_bandwidth) == ({}, {}, None)
    for layer in estimate_latency(compiled.ir, compiled.analysis, h100).layers:
        work = layer.flops or compiled.analysis.layers[[x.name for x in compiled.analysis.layers].index(layer.name)].figures.all_ops
        assert layer.seconds == pytest.approx(max(work / h100.peak("fp32"), layer.bytes / h100.bandwidth))


def test_views_move_nothing_and_cost_only_their_dispatch(write_spec):
    # a permute and its inverse are views of the input: torch moves no data for them
    spec = "name: views\ninputs: {image: [4, 8, 8]}\nlayers:\n  - permute: {name: to_last, dims: [1, 2, 0]}\n" \
           "  - permute: {name: back, dims: [2, 0, 1]}\n  - relu: {name: act}\n"
    compiled = pipeline.compile(write_spec(spec))
    layers = {layer.name: layer for layer in estimate_latency(compiled.ir, compiled.analysis, MEASURED).layers}
    assert layers["to_last"].bytes == layers["back"].bytes == 0
    assert layers["to_last"].seconds == 0.0  # MEASURED's view kernel costs 0
    assert layers["act"].bytes == 2 * 4 * 8 * 8 * 4  # the relu reads and writes the map


def test_a_product_with_a_small_dimension_runs_at_the_rate_measured_for_it(write_spec):
    # measured: 1e6 FLOP/s when the smallest dimension is 2, 4e6 at 8, the 1e9 peak from 32 on
    device = Device("measured", {"fp32": 1e9}, bandwidth=1e12, source="test",
                    gemm_rates={"2": 1e6, "8": 4e6, "32": 1e9})
    assert device.gemm_rate(4) == pytest.approx(2e6)  # halfway between 2 and 8 on a log scale: sqrt(1e6 * 4e6)
    assert device.gemm_rate(1) == 1e6 and device.gemm_rate(32) is None  # below the table: its first; past it: the peak
    spec = "name: small\ninputs: {image: [3, 8, 8]}\nlayers:\n  - conv: {name: c, out: 4, kernel: 1, bias: false}\n" \
           "  - flatten\n  - linear: {name: fc, out: 64, bias: false}\n"
    compiled = pipeline.compile(write_spec(spec), batch=2)
    layers = {layer.name: layer for layer in estimate_latency(compiled.ir, compiled.analysis, device).layers}
    # conv 1x1, 3 -> 4: the product is (64 pixels x 3) by (3 x 4); smallest of (in x window, out) = 3,
    # between 2 and 8: 1e6 * 4 ** (log(3 / 2) / log(4)) FLOP/s; 2 images x 256 outputs x 3 MACs x 2 FLOPs
    conv_rate = 1e6 * 4 ** (math.log(3 / 2) / math.log(4))
    assert layers["c"].seconds == pytest.approx(2 * 2 * 256 * 3 / conv_rate, rel=1e-9)
    # linear 256 -> 64 at batch 2: rows 2 is the smallest: 1e6 FLOP/s; 2 x 256 x 64 MACs
    assert layers["fc"].seconds == pytest.approx(2 * 2 * 256 * 64 / 1e6, rel=1e-9)
