"""The transformer ops (issue 15 point 1): `param`, `attention`, linear on any rank, layernorm over
channels, the axis ops, against torch and torchvision themselves, and the ViT specs' figures
against torchvision's published ones."""
from __future__ import annotations

import pytest
import torch
import yaml
from torch import nn

from archspec.lower.verify import flop_counter

import archspec
from archspec import SpecError
from archspec.passes.memory import estimate_memory
from archspec.passes.receptive_field import receptive_fields
from archspec.pipeline import compile
from saved_tensors import saved_bytes_measured
from conftest import SPECS


def _spec(tmp_path, layers: list, shape: tuple, name: str = "t") -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "inputs": {"x": list(shape)}, "layers": layers}, sort_keys=False))
    return str(path)


# --- attention -------------------------------------------------------------------------------------
def _attention(tmp_path, tokens: int = 7, width: int = 16, heads: int = 4):
    return compile(_spec(tmp_path, [{"attention": {"name": "self_attention", "heads": heads}}], (tokens, width)))


def test_attention_is_torchs_multihead_attention(tmp_path):
    """torch's nn.MultiheadAttention (batch first, as torchvision's ViT builds it) loads into the
    lowered attention strictly and gives the same outputs, called as ViT calls it."""
    module = _attention(tmp_path).module().eval()
    reference = nn.MultiheadAttention(16, 4, batch_first=True).eval()
    module.self_attention.load_state_dict(reference.state_dict())
    x = torch.randn(3, 7, 16)
    with torch.no_grad():
        torch.testing.assert_close(module(x), reference(x, x, x, need_weights=False)[0])
    assert [key for key, _ in module.state_dict().items()] == [f"self_attention.{key}" for key in reference.state_dict()]


def test_attention_params_and_flops_by_hand(tmp_path):
    # d = 16, T = 7: params 4d² + 4d; FLOPs per sample 2·(4·T·d² + 2·T²·d) (projections, then
    # Q·Kᵀ and A·V by torch's SDPA formula 4·T²·d)
    compiled = _attention(tmp_path)
    assert compiled.analysis.totals.params == 4 * 16 * 16 + 4 * 16 == 1_088
    assert compiled.analysis.totals.flops == 2 * (4 * 7 * 16 * 16 + 2 * 7 * 7 * 16) == 17_472


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("grad", [True, False])
def test_attention_flops_are_what_the_counter_reports_in_every_mode(tmp_path, training, grad):
    """Eval without grad is where nn.MultiheadAttention would take its fused kernel, which
    FlopCounterMode does not count: the lowered attention never does."""
    compiled = _attention(tmp_path)
    module = compiled.module().train(training)
    with torch.set_grad_enabled(grad), flop_counter() as counter:
        module(torch.randn(2, 7, 16))
    assert counter.get_total_flops() == 2 * compiled.analysis.totals.flops


def test_torchs_own_attention_on_cpu_is_counted_by_torchs_sdpa_formula(tmp_path):
    """archspec's counter counts a plain nn.MultiheadAttention on the CPU (in training mode, the
    standard path) as FlopCounterMode does on CUDA: the projections, plus 4·N·h·T²·d_head for
    scaled dot-product attention (torch.utils.flop_counter.sdpa_flop_count); torch's own registry
    is left as it was."""
    from torch.utils.flop_counter import flop_registry, sdpa_flop_count

    reference = nn.MultiheadAttention(16, 4, batch_first=True).train()
    x = torch.randn(2, 7, 16)
    cpu_kernel = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    registered = cpu_kernel in flop_registry
    with torch.no_grad(), flop_counter() as counter:
        reference(x, x, x, need_weights=False)
    projections = 2 * 2 * 7 * 16 * 4 * 16  # 2·N·T·d·(3d + d)
    assert counter.get_total_flops() == projections + sdpa_flop_count((2, 4, 7, 4), (2, 4, 7, 4), (2, 4, 7, 4))
    assert (cpu_kernel in flop_registry) == registered


def test_attention_saved_tensors_are_what_autograd_keeps(tmp_path):
    compiled = _attention(tmp_path)
    estimate = estimate_memory(compiled.ir, batch=2).saved_activations
    module = compiled.module().train()
    measured = saved_bytes_measured(module, torch.randn(2, 7, 16))
    # by hand, per sample: the input and 4·T·d activations (q, k, v; the attention output) and
    # the log-sum-exp per head and token, 4 bytes each
    assert estimate == measured == 2 * 4 * (7 * 16 + 4 * 7 * 16 + 4 * 7)


def test_attention_explains_its_formulas(tmp_path):
    from archspec.explain import explain_spec

    text = explain_spec(_attention(tmp_path, tokens=197, width=768, heads=12), lang="en")
    # ViT-B/16's layer: 4·768² + 4·768 parameters; per token 2·(4·768² + 2·197·768) FLOPs
    assert "parameters = 4d² + 4d: 4·768·768 + 4·768 = 2,362,368" in text
    assert "FLOPs per token = 2·(4d² + 2T·d)" in text and "= 5,323,776" in text
    korean = explain_spec(_attention(tmp_path, tokens=197, width=768, heads=12), lang="ko")
    assert "4d² + 4d" in korean and "토큰당 FLOPs" in korean


def test_attention_refuses_a_map_and_uneven_heads(tmp_path):
    with pytest.raises(SpecError, match="tokens"):
        compile(_spec(tmp_path, [{"attention": {"heads": 2}}], (4, 6, 6)))
    with pytest.raises(SpecError, match="must divide"):
        compile(_spec(tmp_path, [{"attention": {"heads": 3}}], (5, 8)))


# --- param ------------------------------------------------------------------------------------------
def test_param_keys_are_their_paths(tmp_path):
    layers = [
        {"param": {"name": "class_token", "shape": [1, 1, 8], "batch": "expand"}},
        {"concat": {"from": ["class_token", "x"]}},
        {"seq": {"name": "encoder", "layers": [
            {"param": {"name": "pos_embedding", "shape": [1, 6, 8], "init": "normal", "std": 0.02, "batch": "leading"}},
            {"add": {"from": ["concat1", "pos_embedding"]}}]}},
    ]
    compiled = compile(_spec(tmp_path, layers, (5, 8)))
    module = compiled.module()
    assert {key: tuple(v.shape) for key, v in module.state_dict().items()} == {
        "class_token": (1, 1, 8), "encoder.pos_embedding": (1, 6, 8)}
    assert compiled.analysis.totals.params == 8 + 48 and compiled.analysis.totals.flops == 0
    assert torch.equal(module.class_token, torch.zeros(1, 1, 8))  # zeros unless told
    x = torch.randn(3, 5, 8)
    expected = torch.cat([module.class_token.expand(3, -1, -1), x], dim=1) + module.encoder.pos_embedding
    torch.testing.assert_close(module(x), expected)


def test_param_starts_as_its_init_says(tmp_path):
    def stored(**args):
        return compile(_spec(tmp_path, [{"param": {"name": "p", "shape": [200, 50], **args}}, "relu"], (4,))).module().p

    assert torch.equal(stored(value=1e-6), torch.full((200, 50), 1e-6))
    assert torch.equal(stored(init="ones"), torch.ones(200, 50))
    assert stored(init="normal", std=0.02).std().item() == pytest.approx(0.02, rel=0.05)
    truncated = stored(init="trunc_normal", std=2.0)
    assert truncated.abs().max().item() <= 2.0  # nn.init.trunc_normal_'s default bounds ±2


def test_param_refuses_what_it_cannot_mean(tmp_path):
    with pytest.raises(SpecError, match="leading 1"):
        compile(_spec(tmp_path, [{"param": {"shape": [2, 8], "batch": "leading"}}], (4,)))
    with pytest.raises(SpecError, match="goes with init `constant`"):
        compile(_spec(tmp_path, [{"param": {"shape": [2], "init": "ones", "value": 2.0}}], (4,)))


def test_frozen_param_is_not_trained(tmp_path):
    compiled = compile(_spec(tmp_path, [{"param": {"name": "p", "shape": [4], "trainable": False}}, "relu"], (4,)))
    assert not compiled.module().p.requires_grad and compiled.analysis.totals.trainable == 0


# --- linear on a channels-last map, and the BN fold that must not happen -------------------------------
def test_bn_never_folds_into_a_linear_on_the_last_axis_of_a_map(tmp_path):
    from archspec.rewrite.engine import apply_rewrites
    from archspec.rewrite.rules import FOLD_BN

    layers = [{"permute": {"dims": [1, 2, 0]}}, {"linear": {"out": 6}}, "bn"]
    ir = compile(_spec(tmp_path, layers, (4, 6, 6))).ir  # bn on (6, 6, 6): H taken for channels
    rewritten, _ = apply_rewrites(ir, FOLD_BN)
    assert [node.op for node in rewritten.nodes() if not node.is_input] == ["permute", "linear", "bn"]
    vector = compile(_spec(tmp_path, ["flatten", {"linear": {"out": 6}}, "bn"], (4, 2, 2), "v")).ir
    folded, _ = apply_rewrites(vector, FOLD_BN)
    assert [node.op for node in folded.nodes() if not node.is_input] == ["flatten", "linear"]


def test_layernorm_over_channels_is_torchvisions_layernorm2d(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    from torchvision.models.convnext import LayerNorm2d

    module = compile(_spec(tmp_path, [{"layernorm": {"name": "norm", "over": "channels", "eps": 1e-6}}], (6, 5, 4))).module()
    reference = LayerNorm2d(6, eps=1e-6)
    with torch.no_grad():
        reference.weight.uniform_(0.5, 1.5), reference.bias.normal_()
    module.norm.load_state_dict(reference.state_dict())
    x = torch.randn(2, 6, 5, 4)
    torch.testing.assert_close(module(x), reference(x))
    assert torchvision is not None


# --- receptive fields of the axis ops ----------------------------------------------------------------
def test_slice_reads_a_strided_window_and_roll_the_whole_map(tmp_path):
    sliced = compile(_spec(tmp_path, [{"slice": {"name": "s", "dim": 2, "start": 1, "step": 2}}], (2, 8, 9))).ir
    field = receptive_fields(sliced, ["s"])["s"]
    assert not field.is_global and field.jump == (1, 2) and field.size == (1, 1)
    rolled = compile(_spec(tmp_path, [{"roll": {"name": "r", "shifts": 1, "dims": 2}}], (2, 8, 9), "r")).ir
    assert receptive_fields(rolled, ["r"])["r"].is_global
    channels = compile(_spec(tmp_path, [{"roll": {"name": "r", "shifts": 1, "dims": 0}}], (2, 8, 9), "c")).ir
    assert receptive_fields(channels, ["r"])["r"].size == (1, 1)


# --- the ViT specs against torchvision's published figures --------------------------------------------
@pytest.mark.parametrize("name, gmacs, params", [("vit_b_16", 17.564, 86_567_656), ("vit_l_16", 61.555, 304_326_632)])
def test_vit_figures_are_torchvisions(name, gmacs, params):
    # torchvision's weights tables (ViT_B_16_Weights.IMAGENET1K_V1.meta: "_ops" in GFLOPS, which
    # torchvision counts as multiply-accumulates, attention's Q·Kᵀ and A·V included)
    analysis = archspec.analyze_spec(SPECS / f"{name}.yaml")
    assert round(analysis.totals.macs / 1e9, 3) == gmacs
    assert analysis.totals.params == params
    assert analysis.outputs == {"output": (1000,)}
    assert analysis.totals.flops == 2 * analysis.totals.macs
