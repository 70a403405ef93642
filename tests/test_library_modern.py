"""The modern CNNs of the spec library: GoogLeNet, DenseNet-121/169, MobileNet v1/v2, EfficientNet-B0/B3.

Every stated figure is checked exactly (static analysis, and the CLI's JSON for the same totals).
The names and behaviour of the torchvision counterparts are checked by
tests/test_torchvision_equivalence.py; MobileNet v1 has none, so its parameters and MACs are
derived here by hand from the paper's Table 1. The last tests cover the language the specs rely on:
`{expression}` names, repeats unrolled into the scope, and `when`.
"""
from __future__ import annotations

import json
import math
from fractions import Fraction

import pytest

import archspec
from archspec.spec.expressions import make_divisible
from archspec.spec.yaml_source import parse_yaml, read_text
from conftest import SPECS, run_cli

# name: (parameters, FlopCounterMode FLOPs at the spec's default input or None)
FIGURES = {
    "googlenet": (13_004_888, None),  # with the two auxiliary classifiers
    "densenet121": (7_978_856, None),
    "densenet169": (14_149_480, None),
    "mobilenet_v1": (4_231_976, 1_137_480_704),  # 2 x 568.7M mult-adds (Howard et al., Table 1)
    "mobilenet_v2": (3_504_872, None),
    "efficientnet_b0": (5_288_548, None),
    "efficientnet_b3": (12_233_232, None),
}


def analysis(name: str, **params):
    return archspec.analyze_spec(SPECS / f"{name}.yaml", params=params or None)


def parameter_names(result) -> list[str]:
    return [f"{layer.module}.{tensor}" for layer in result.layers for tensor in layer.tensors]


@pytest.mark.parametrize("name", FIGURES)
def test_stated_figures(name):
    params, flops = FIGURES[name]
    totals = analysis(name).totals
    assert totals.params == params
    if flops is not None:
        assert totals.flops == flops


def test_cli_json_reports_the_same_totals():
    run = run_cli("report", *(f"specs/{name}.yaml" for name in FIGURES), "--format", "json")
    assert run.returncode == 0, run.stderr
    reports = {report["name"]: report for report in json.loads(run.stdout)}
    assert {name: reports[name]["params"]["total"] for name in FIGURES} == {name: p for name, (p, _) in FIGURES.items()}
    assert reports["mobilenet_v1"]["flops"] == FIGURES["mobilenet_v1"][1]


# --- GoogLeNet --------------------------------------------------------------------------------
def test_googlenet_auxiliary_heads_are_extra_outputs():
    result = analysis("googlenet")
    assert result.outputs == {"logits": (1000,), "aux1": (1000,), "aux2": (1000,)}
    aux = sum(layer.figures.params for layer in result.layers if layer.scopes and layer.scopes[0] in ("aux1", "aux2"))
    assert result.totals.params - aux == 6_624_904  # torchvision's figure without the aux heads
    # aux1 reads inception4a (512x14x14), aux2 inception4d (528x14x14); each pools to 4x4 first
    pools = {layer.name: layer for layer in result.layers if layer.op == "adaptive_avgpool"}
    shapes = {layer.name: layer.output_shape for layer in result.layers}
    assert shapes[pools["aux1.adaptive_avgpool1"].inputs[0]] == (512, 14, 14)
    assert shapes[pools["aux2.adaptive_avgpool1"].inputs[0]] == (528, 14, 14)
    # torchvision's "5x5" branch is a 3x3 conv (pytorch/vision#906), kept for equivalence
    weights = {f"{layer.module}.{t}": s for layer in result.layers for t, s in layer.tensors.items()}
    assert weights["inception3a.branch3.1.conv.weight"] == (32, 16, 3, 3)


# --- DenseNet ---------------------------------------------------------------------------------
def test_densenet_channels_grow_by_k_and_transitions_halve_them():
    for name, block_config, final in (("densenet121", [6, 12, 24, 16], 1024), ("densenet169", [6, 12, 32, 32], 1664)):
        blocks = {block.name: block.output_shape for block in analysis(name).blocks}
        channels = 64
        for n, layers in enumerate(block_config, start=1):
            channels += 32 * layers  # growth k = 32 per dense layer
            assert blocks[f"features.denseblock{n}"][0] == channels
            assert f"features.denseblock{n}.denselayer{layers}" in blocks  # denselayer1 ... denselayerN
            if n < 4:
                channels //= 2
                assert blocks[f"features.transition{n}"][0] == channels
        assert channels == final


def variant(name: str) -> dict:
    """The keys a variant file itself writes (before `extends` merges in its base)."""
    return dict(parse_yaml(read_text(SPECS / f"{name}.yaml"), name))


def test_densenet169_is_densenet121_with_other_block_counts():
    assert variant("densenet169") == {
        "name": "densenet169",
        "summary": variant("densenet169")["summary"],
        "extends": "densenet121.yaml",
        "params": {"block_config": [6, 12, 32, 32]},
    }
    assert analysis("densenet121", block_config=[6, 12, 32, 32]).totals == analysis("densenet169").totals


# --- MobileNet v2 and EfficientNet names --------------------------------------------------------
@pytest.mark.parametrize(
    "name, expected",
    [
        ("mobilenet_v2", ["features.0.0.weight", "features.1.conv.0.0.weight", "features.1.conv.1.weight",
                          "features.2.conv.0.0.weight", "features.2.conv.3.weight", "features.18.0.weight",
                          "classifier.1.weight"]),
        ("efficientnet_b0", ["features.0.0.weight", "features.1.0.block.0.0.weight", "features.1.0.block.1.fc1.weight",
                             "features.1.0.block.2.0.weight", "features.2.0.block.2.fc2.bias", "features.8.1.weight",
                             "classifier.1.weight"]),
        ("densenet121", ["features.conv0.weight", "features.denseblock1.denselayer1.norm1.weight",
                         "features.transition1.conv.weight", "features.norm5.weight", "classifier.weight"]),
    ],
)
def test_parameter_names_follow_torchvision(name, expected):
    names = parameter_names(analysis(name))
    assert set(expected) <= set(names)


def test_mobilenet_v2_residuals_only_where_stride_1_and_channels_match():
    adds = [layer.name for layer in analysis("mobilenet_v2").layers if layer.op == "add"]
    # stages of n = 1, 2, 3, 4, 3, 3, 1 blocks: every copy but the first of a stage adds its input
    assert [name.split(".")[1] for name in adds] == ["3", "5", "6", "8", "9", "10", "12", "13", "15", "16"]


# --- EfficientNet compound scaling and stochastic depth -----------------------------------------
# the paper's Table 1 (B0): expansion t, kernel, stride, input and output channels, layers
B0_STAGES = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
             (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]


@pytest.mark.parametrize("name, width, depth, resolution", [("efficientnet_b0", 1.0, 1.0, 224), ("efficientnet_b3", 1.2, 1.4, 300)])
def test_efficientnet_compound_scaling(name, width, depth, resolution):
    result = analysis(name)
    assert result.inputs == {"image": (3, resolution, resolution)}
    blocks = {block.name: block for block in result.blocks}
    for stage, (_, _, _, _, out, layers) in enumerate(B0_STAGES, start=1):
        copies = [b for b in blocks if b.count(".") == 2 and b.startswith(f"features.{stage}.")]
        assert len(copies) == math.ceil(layers * depth)
        assert blocks[f"features.{stage}"].output_shape[0] == make_divisible(out * width, 8)
    assert blocks["features.8"].output_shape[0] == 4 * make_divisible(320 * width, 8)  # 1280 (B0), 1536 (B3)


def test_efficientnet_b3_is_b0_with_scaling_parameters():
    assert variant("efficientnet_b3")["extends"] == "efficientnet_b0.yaml"
    assert variant("efficientnet_b3")["params"] == {"width": 1.2, "depth": 1.4, "resolution": 300, "dropout": 0.3}
    scaled = archspec.analyze_spec(SPECS / "efficientnet_b0.yaml", params={"width": 1.2, "depth": 1.4, "resolution": 300})
    assert scaled.totals == analysis("efficientnet_b3").totals


@pytest.mark.parametrize("name, width, depth", [("efficientnet_b0", 1.0, 1.0), ("efficientnet_b3", 1.2, 1.4)])
def test_efficientnet_stochastic_depth_grows_linearly_with_the_block_index(name, width, depth):
    # torchvision: block b of all B gets p = 0.2 * b / B; only residual blocks use it
    counts = [math.ceil(n * depth) for *_, n in B0_STAGES]
    expected, index = {}, 0
    for stage, (_, _, stride, cin, cout, _) in enumerate(B0_STAGES, start=1):
        for copy in range(counts[stage - 1]):
            same = copy > 0 or (stride == 1 and make_divisible(cin * width, 8) == make_divisible(cout * width, 8))
            if same:
                expected[f"features.{stage}.{copy}.stochastic_depth"] = 0.2 * float(index) / sum(counts)
            index += 1
    ir = archspec.compile_spec(SPECS / f"{name}.yaml")
    assert {node.id: node.args.p for node in ir.nodes() if node.op == "drop_path"} == expected


# --- MobileNet v1: derived by hand from the paper ------------------------------------------------
# the 13 depthwise-separable layers of Table 1 at alpha = 1, 224x224: (output size D_F, M in, N out)
V1_LAYERS = [(112, 32, 64), (56, 64, 128), (56, 128, 128), (28, 128, 256), (28, 256, 256), (14, 256, 512),
             *[(14, 512, 512)] * 5, (7, 512, 1024), (7, 1024, 1024)]


def test_mobilenet_v1_parameters_by_hand():
    # conv1: 3x3x3x32 weights + BN (scale, shift) on 32 channels
    conv1 = 3 * 3 * 3 * 32 + 2 * 32  # 928
    # each separable layer: 3x3 depthwise (9M) + BN (2M), 1x1 pointwise (MN) + BN (2N); no conv biases
    separable = [9 * m + 2 * m + m * n + 2 * n for _, m, n in V1_LAYERS]
    assert separable == [2_528, 9_152, 18_048, 34_688, 68_864, 134_912, *[268_800] * 5, 531_968, 1_061_888]
    fc = 1024 * 1000 + 1000  # 1,025,000
    # 928 + 3,206,048 + 1,025,000
    assert conv1 + sum(separable) + fc == 4_231_976 == analysis("mobilenet_v1").totals.params


def test_mobilenet_v1_macs_by_hand():
    conv1 = 112 * 112 * 32 * 3 * 9  # 10,838,016
    # depthwise D_F^2 * M * 9, pointwise D_F^2 * M * N (Eq. 5 of the paper)
    separable = sum(d * d * m * 9 + d * d * m * n for d, m, n in V1_LAYERS)
    fc = 1024 * 1000
    macs = conv1 + separable + fc
    assert macs == 568_740_352  # the paper's 569M mult-adds
    totals = analysis("mobilenet_v1").totals
    assert totals.macs == macs and totals.flops == 2 * macs


def test_mobilenet_v1_separable_cost_ratio():
    """(depthwise + pointwise MACs) / (standard conv MACs) = 1/N + 1/D_K^2 (Eq. 5 / Eq. 2), per layer,
    from the analysis' per-layer MACs."""
    layers = {layer.name: layer for layer in analysis("mobilenet_v1").layers}
    for k, (d, m, n) in enumerate(V1_LAYERS, start=1):
        dw, pw = layers[f"block{k}.dw"], layers[f"block{k}.pw"]
        assert dw.output_shape == (m, d, d) and pw.output_shape == (n, d, d)
        standard = d * d * m * n * 3 * 3  # a 3x3 conv from M to N channels at the same output size
        assert Fraction(dw.figures.macs + pw.figures.macs, standard) == Fraction(1, n) + Fraction(1, 9)


def test_mobilenet_v1_width_and_resolution_multipliers_match_the_paper():
    # Table 6 (width multiplier) and Table 7 (resolution): million mult-adds, million parameters
    for params, (mult_adds, millions) in {
        (("alpha", 0.75),): (325, 2.6),
        (("alpha", 0.5),): (149, 1.3),
        (("alpha", 0.25),): (41, 0.5),
        (("resolution", 192),): (418, 4.2),
        (("resolution", 160),): (290, 4.2),
        (("resolution", 128),): (186, 4.2),
    }.items():
        totals = analysis("mobilenet_v1", **dict(params)).totals
        assert abs(totals.macs / 1e6 - mult_adds) < 1, params
        assert round(totals.params / 1e6, 1) == millions, params
    # resolution multiplier rho: every conv's MACs scale by rho^2 (160 = 224 * 5/7), the fc's do not
    full, small = analysis("mobilenet_v1").totals.macs, analysis("mobilenet_v1", resolution=160).totals.macs
    assert Fraction(small - 1024 * 1000, full - 1024 * 1000) == Fraction(5, 7) ** 2


def test_mobilenet_v1_flop_counter_agrees():
    torch = pytest.importorskip("torch")
    from archspec.lower.verify import flop_counter

    module = archspec.build_module(SPECS / "mobilenet_v1.yaml").eval()
    assert sum(p.numel() for p in module.parameters()) == 4_231_976
    with torch.no_grad(), flop_counter() as counter:
        out = module(image=torch.randn(1, 3, 224, 224))
    assert out.shape == (1, 1000)
    assert counter.get_total_flops() == 1_137_480_704


# --- the language the specs rely on ---------------------------------------------------------------
def test_templated_names_unroll_a_repeat_into_the_scope(write_spec):
    path = write_spec(
        """
        name: t
        params: {first: 1}
        inputs: {image: [3, 8, 8]}
        blocks:
          unit:
            params: {out: null, dw_at: 1}
            layers:
              - conv: {name: "{dw_at}", out: out, kernel: 1}
        layers:
          - unit: {name: "layer{i + first}", repeat: 3, out: "4 * (i + 1)"}
          - conv: {name: head, from: layer2, out: 2, kernel: 1}
        """
    )
    result = archspec.analyze_spec(path)
    assert [layer.name for layer in result.layers] == ["layer1.1", "layer2.1", "layer3.1", "head"]
    assert [layer.output_shape[0] for layer in result.layers] == [4, 8, 12, 2]
    assert result.layers[-1].inputs == ["layer2.1"]


def test_when_leaves_an_item_out(write_spec):
    path = write_spec(
        """
        name: t
        params: {expand: false}
        inputs: {image: [3, 8, 8]}
        layers:
          - conv: {name: wide, out: 16, kernel: 1, when: expand}
          - conv: {out: 4, kernel: 1}
          - add: {from: [conv1, image], when: "expand and 4 == 3"}
          - relu
        """
    )
    assert [layer.name for layer in archspec.analyze_spec(path).layers] == ["conv1", "relu1"]
    assert [layer.name for layer in archspec.analyze_spec(path, params={"expand": True}).layers] == ["wide", "conv1", "relu1"]


@pytest.mark.parametrize(
    "item, message",
    [
        ('conv: {out: 4, kernel: 1, when: "1 + 1"}', "`when` must be true or false"),
        ('conv: {name: "a{i + 1}", out: 4, kernel: 1}', "unknown name 'i'"),
        ('conv: {name: "a{0.5}", out: 4, kernel: 1, repeat: 2}', "a name part is a whole number or a word"),
        ('conv: {name: "a{i // 2}", out: 4, kernel: 1, repeat: 2}', "the name 'a0' is used twice"),
    ],
)
def test_name_and_when_errors_are_located(write_spec, item, message):
    path = write_spec(f"name: t\ninputs: {{image: [3, 8, 8]}}\nlayers:\n  - {item}\n")
    with pytest.raises(archspec.SpecError, match=message) as error:
        archspec.analyze_spec(path)
    assert error.value.loc is not None and error.value.loc.line == 4
