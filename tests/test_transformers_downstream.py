"""Issue 15 point 4 for the transformers: train, sweep, explain, report, diagram, compare and diff
on the ViT specs, against torchvision, torch itself, hand derivations and published figures."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from typer.testing import CliRunner  # noqa: E402

import archspec  # noqa: E402
from archspec.cli import app  # noqa: E402
from archspec.lower.fx import lower  # noqa: E402
from archspec.passes.memory import estimate_memory  # noqa: E402
from saved_tensors import saved_bytes_measured  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VIT_B = str(ROOT / "specs" / "vit_b_16.yaml")
VIT_L = str(ROOT / "specs" / "vit_l_16.yaml")
TINY = str(ROOT / "specs" / "vit_tiny_digits.yaml")
ATTENTION = "encoder.layers.encoder_layer_0.self_attention"
# torchvision's published parameter counts (its model tables)
PUBLISHED_PARAMS = {"vit_b_16": 86_567_656, "vit_l_16": 304_326_632, "resnet50": 25_557_032}


def invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def last_test_accuracy(folder: Path) -> float:
    rows = (folder / "metrics.jsonl").read_text().splitlines()
    return json.loads(rows[-1])["test_accuracy"]


def test_tiny_vit_reaches_95_percent_on_digits(tmp_path):
    # the README's run (12 epochs, the default crop augmentation), one thread for CI's speed:
    # measured 0.9833 test accuracy in about 20 s on a 2-core CPU
    invoke("train", TINY, "--data", "digits", "--threads", "1", "--no-progress", "--out", str(tmp_path / "run"))
    assert last_test_accuracy(tmp_path / "run") >= 0.95


def test_tiny_vit_trains_on_fake_data(tmp_path):
    invoke("train", TINY, "--data", "fake", "--max-steps", "2", "--threads", "1", "--no-progress",
           "--out", str(tmp_path / "run"))
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(rows[-1])["step"] == 2


def torchvision_counts(image_size: int, patch: int, layers: int, heads: int, hidden: int, mlp_dim: int):
    """Params, FlopCounterMode FLOPs of one training forward (SDPA's math kernel: plain bmm's
    counted by torch's own formulas) and the output shape of torchvision's VisionTransformer."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from archspec.lower.verify import flop_counter
    from torchvision.models.vision_transformer import VisionTransformer

    model = VisionTransformer(image_size, patch, layers, heads, hidden, mlp_dim).train()
    counter = flop_counter()
    with sdpa_kernel(SDPBackend.MATH), counter:
        output = model(torch.randn(1, 3, image_size, image_size))
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops(), list(output.shape[1:])


def test_patch_by_resolution_sweep_equals_torchvision():
    # the position embedding's length follows `image_size`, which also sets the input
    small = ["--set", "layers=1", "--set", "heads=4", "--set", "hidden=64", "--set", "mlp_dim=128"]
    output = invoke("sweep", VIT_B, *small, "--set", "patch=16,32", "--set", "image_size=224,384", "--format", "json")
    rows = json.loads(output)["rows"]
    assert [(r["set"]["patch"], r["set"]["image_size"]) for r in rows] == [(16, 224), (16, 384), (32, 224), (32, 384)]
    for row in rows:
        patch, size = row["set"]["patch"], row["set"]["image_size"]
        assert row["error"] is None and row["inputs"]["image"] == [3, size, size]
        params, flops, shape = torchvision_counts(size, patch, layers=1, heads=4, hidden=64, mlp_dim=128)
        assert (row["params"], row["flops"], row["outputs"]["output"]) == (params, flops, shape), (patch, size)


@pytest.mark.parametrize("lang, words", [("en", ("parameters", "FLOPs per token")), ("ko", ("파라미터", "토큰당 FLOPs"))])
def test_explain_attention_gives_the_formulas_with_numbers(lang, words):
    d, tokens = 768, (224 // 16) ** 2 + 1
    text = invoke("explain", VIT_B, ATTENTION, "--lang", lang)
    params_line = next(line for line in text.splitlines() if words[0] in line and "4d² + 4d" in line)
    assert f"4·{d}·{d} + 4·{d} = {4 * d * d + 4 * d:,}" in params_line  # 2,362,368
    flops_line = next(line for line in text.splitlines() if words[1] in line)
    assert "2·(4d² + 2T·d)" in flops_line
    assert f"2·(4·{d}·{d} + 2·{tokens}·{d}) = {2 * (4 * d * d + 2 * tokens * d):,}" in flops_line  # 5,323,776


def test_receptive_field_is_global_after_the_patches():
    layers = json.loads(invoke("report", VIT_B, "--receptive-field", "--format", "json"))["layers"]
    by_name = {layer["name"]: layer for layer in layers}
    patch = by_name["conv_proj"]  # one 16x16 patch, 16 apart
    assert (patch["receptive_field"], patch["jump"], patch["global"]) == ([16, 16], [16, 16], False)
    assert by_name[ATTENTION]["global"] and by_name[ATTENTION]["receptive_field"] == [224, 224]
    assert by_name["heads.head"]["global"]


def test_saved_activations_skip_dropout_at_zero(write_spec):
    # torch's dropout at p = 0 returns its input and records nothing; the two linears keep their inputs
    spec = write_spec("name: drop0\ninputs: {x: [16]}\nlayers:\n  - linear: {out: 32}\n  - dropout: {p: 0.0}\n"
                      "  - linear: {out: 8}\n")
    ir = archspec.compile_spec(spec)
    measured = saved_bytes_measured(lower(ir).train(), x=torch.randn(2, 16))
    assert measured == 2 * (16 + 32) * 4
    assert estimate_memory(ir, batch=2).saved_activations == measured


def test_diagram_draws_attention_and_folds_the_layers(tmp_path):
    invoke("diagram", VIT_B, "--format", "dot", "--out", str(tmp_path / "full.dot"))
    full = (tmp_path / "full.dot").read_text()
    assert full.count("<B>attention 12 heads</B>") == 12
    invoke("diagram", VIT_B, "--depth", "3", "--format", "dot", "--out", str(tmp_path / "folded.dot"))
    folded = (tmp_path / "folded.dot").read_text()
    assert "attention" not in folded.split("legend")[0]
    assert all(f"<B>encoder_layer_{i}</B>" in folded for i in range(12)) and folded.count("encoder_block · ") == 12
    if shutil.which("dot"):
        invoke("diagram", VIT_B, "--out", str(tmp_path / "vit.svg"))
        assert "<svg" in (tmp_path / "vit.svg").read_text()


def test_compare_and_diff_against_published_figures():
    specs = json.loads(invoke("compare", VIT_B, str(ROOT / "specs" / "resnet50.yaml"), "--format", "json"))["specs"]
    assert {spec["name"]: spec["params"] for spec in specs} == {k: PUBLISHED_PARAMS[k] for k in ("vit_b_16", "resnet50")}
    diff = json.loads(invoke("diff", VIT_B, VIT_L, "--format", "json"))
    params = diff["totals"]["params"]
    assert (params["old"], params["new"]) == (PUBLISHED_PARAMS["vit_b_16"], PUBLISHED_PARAMS["vit_l_16"])
    assert params["delta"] == PUBLISHED_PARAMS["vit_l_16"] - PUBLISHED_PARAMS["vit_b_16"]
    # ViT-L/16 adds 12 encoder layers (0..11 change width, 12..23 are new)
    assert diff["counts"]["added"] == 12 * 11
