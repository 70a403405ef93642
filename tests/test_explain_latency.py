"""`explain --case depthwise-separable`'s roofline part, against hand computations.

The case: x 3x6x6, a plain 3x3 conv to 5 channels (valid padding, no bias) against a 3x3
depthwise conv and a 1x1 pointwise conv to 5 channels. Counted by hand below, at fp32 (4 bytes),
with FlopCounterMode's convention of 2 FLOPs per multiply-accumulate; the device figures are
NVIDIA's datasheets (dense, no sparsity).
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archspec.cli import app
from archspec.explain import explain_case
from archspec.passes.devices import Device, write_cached

LENET5 = str(Path(__file__).resolve().parents[1] / "specs" / "lenet5.yaml")
VALUE_BYTES = 4  # fp32
X = 3 * 6 * 6  # input values
# (FLOPs, inputs read, weights read, outputs written), in values
HAND = {
    "plain": (2 * (4 * 4 * 5) * (3 * 3 * 3), X, 5 * 3 * 3 * 3, 5 * 4 * 4),
    "depthwise": (2 * (4 * 4 * 3) * (3 * 3), X, 3 * 3 * 3, 3 * 4 * 4),
    "pointwise": (2 * (4 * 4 * 5) * 3, 3 * 4 * 4, 5 * 3, 5 * 4 * 4),
}
# published fp32 peak FLOP/s and memory bandwidth (bytes/s): A100 80GB SXM, H100 SXM, H200 SXM
DATASHEETS = {"a100": (19.5e12, 2.039e12), "h100": (67e12, 3.35e12), "h200": (67e12, 4.8e12)}


def hand_bytes(name: str) -> int:
    _, inputs, weights, outputs = HAND[name]
    return (inputs + weights + outputs) * VALUE_BYTES


def hand_seconds(name: str, peak: float, bandwidth: float, fixed: float = 0.0) -> float:
    return max(HAND[name][0] / peak, hand_bytes(name) / bandwidth) + fixed


@pytest.mark.parametrize("device", ["h100", "a100", "h200"])
def test_figures_match_the_hand_roofline(device):
    peak, bandwidth = DATASHEETS[device]
    latency = explain_case("depthwise-separable", "en", device).figures["latency"]
    assert (latency["device"], latency["dtype"], latency["dtype_bytes"]) == (device, "fp32", 4)
    assert math.isclose(latency["ridge"], peak / bandwidth)
    for name, (flops, *_) in HAND.items():
        layer = latency["layers"][name]
        assert (layer["flops"], layer["bytes"]) == (flops, hand_bytes(name))
        assert math.isclose(layer["intensity"], flops / hand_bytes(name))
        # all three are far below every GPU's ridge point (>= 9.5 FLOP/B): memory-bound
        assert layer["intensity"] < peak / bandwidth and layer["bound"] == "memory"
        assert math.isclose(layer["seconds"], hand_seconds(name, peak, bandwidth))
    separable = HAND["depthwise"][0] + HAND["pointwise"][0]
    assert latency["separable_flops"] == separable == 1_344
    assert math.isclose(latency["flop_saving"], 4_320 / 1_344)
    # memory-bound with no fixed cost: the time ratio is the bytes ratio, 1,292 / 1,304
    assert latency["separable_bytes"] == hand_bytes("depthwise") + hand_bytes("pointwise") == 1_304
    assert math.isclose(latency["speedup"], 1_292 / 1_304)


def test_the_default_device_is_published_h100_at_fp32():
    case = explain_case("depthwise-separable", "en")
    assert case.figures["latency"]["device"] == "h100" and case.figures["latency"]["overhead"] == 0
    assert case.figures["ratio"] == 672 / 2_160  # the course's MAC ratio is still there


def test_the_text_names_the_bound_and_the_ratios():
    text = explain_case("depthwise-separable", "en").text
    assert "h100 at fp32 (NVIDIA's published figures)" in text
    assert "ridge point 20 FLOP/B" in text
    assert "depthwise: 864 FLOPs, (108 + 27 + 48)·4 = 732 B → 1.18 FLOP/B ≤ 20: memory-bound" in text
    assert "plain: 4,320 FLOPs, (108 + 135 + 80)·4 = 1,292 B" in text
    assert "FLOP saving: 4,320 / 1,344 = 3.21x; predicted speed-up: " in text
    assert "the depthwise convolution is memory-bound (1.18 FLOP/B, below the ridge point 20)" in text
    assert "so the 3.21x FLOP saving predicts a 0.99x speed-up" in text
    assert "1,304 B against the plain convolution's 1,292 B" in text


def test_korean_text():
    text = explain_case("depthwise-separable", "ko").text
    assert "h100, fp32 (NVIDIA 공개 수치)" in text
    assert "리지 포인트 20 FLOP/B" in text
    assert "1.18 FLOP/B ≤ 20: 메모리 병목(memory-bound)" in text
    assert "깊이별 합성곱은 메모리 병목입니다" in text
    assert "그래서 FLOPs는 3.21배 줄어도 예상 속도 향상은 0.99배입니다" in text
    assert "predicted" not in text and "FLOP saving" not in text


def test_cpu_reads_its_calibration_and_adds_the_fixed_cost(tmp_path, monkeypatch):
    """A cached `cpu` (no measuring here): 100 GFLOP/s, 10 GB/s (ridge 10), 2 µs per op."""
    import torch

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cpu = Device("cpu", {"fp32": 100e9}, 10e9, "test", overhead=2e-6)
    write_cached(tmp_path / "archspec" / "cpu-device.json", cpu, torch.get_num_threads())
    case = explain_case("depthwise-separable", "en", "cpu")
    latency = case.figures["latency"]
    for name in HAND:
        assert math.isclose(latency["layers"][name]["seconds"], hand_seconds(name, 100e9, 10e9, 2e-6))
    # two ops pay the fixed cost twice
    expected = hand_seconds("plain", 100e9, 10e9, 2e-6) / (
        hand_seconds("depthwise", 100e9, 10e9, 2e-6) + hand_seconds("pointwise", 100e9, 10e9, 2e-6))
    assert math.isclose(latency["speedup"], expected)
    assert "cpu at fp32 (measured on this machine)" in case.text
    assert "+ fixed cost per op = max(" in case.text and "+ 2 µs = " in case.text


@pytest.mark.parametrize("args, message", [
    (["--case", "depthwise-separable", "--device", "tpu"], "--device must be cpu, a100, h100 or h200, not 'tpu'"),
    (["--case", "lenet5", "--device", "h100"], "--device applies to --case depthwise-separable only"),
    ([LENET5, "--device", "h100"], "--device goes with --case depthwise-separable"),
])
def test_a_bad_device_is_a_one_line_error(args, message):
    result = CliRunner().invoke(app, ["explain", *args, "--lang", "en"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output
    assert "Traceback" not in result.output


def test_the_command_prints_the_estimate():
    result = CliRunner().invoke(app, ["explain", "--case", "depthwise-separable", "--device", "h200", "--lang", "en"])
    assert result.exit_code == 0, result.output
    assert "h200 at fp32 (NVIDIA's published figures)" in result.output
    assert "ridge point 14 FLOP/B" in result.output  # 67 / 4.8 = 13.96
