"""`archspec.explain`: the course's worked examples come out with the course's numbers, and every
per-layer equation printed is true arithmetic that agrees with the analysis, in both languages."""
from __future__ import annotations

import ast
import math
import operator
import re
import subprocess
import sys

import pytest

import archspec
from archspec.errors import ArchspecError
from archspec.explain import (
    CASES,
    LANGUAGES,
    case_descriptions,
    default_lang,
    explain_case,
    explain_layers,
    explain_spec,
    format_explanations,
)
from archspec.passes.counts import analyze
from conftest import LIBRARY, ROOT, SPECS

HANGUL = re.compile("[\uac00-\ud7a3]")
WINDOW_OPS = {"conv", "dwconv", "maxpool", "avgpool", "conv_transpose"}


# --- a tiny evaluator for the printed equations (`·` multiplies, `,` separates thousands) ---------
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv, ast.Pow: operator.pow}
_CALLS = {"floor": math.floor, "ceil": math.ceil}


def _value(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_value(node.left), _value(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_value(node.operand)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CALLS and len(node.args) == 1:
        return _CALLS[node.func.id](_value(node.args[0]))
    raise AssertionError(f"unexpected term {ast.dump(node)}")


def evaluate(side: str) -> float:
    text = side.replace(",", "").replace("·", "*").replace("²", "**2").strip()
    assert re.fullmatch(r"[0-9+\-*/(). floorceil]+", text), side
    return _value(ast.parse(text, mode="eval").body)


def assert_true(equation: str) -> None:
    sides = [evaluate(side) for side in equation.split(" = ")]
    assert len(sides) >= 2, equation
    assert all(math.isclose(v, sides[0], rel_tol=1e-12) for v in sides), f"false: {equation}"


def explained(spec, nodes=None, lang="en", batch=1, **params):
    ir = archspec.compile_spec(spec, params or None)
    analysis = analyze(ir, batch=batch)
    return ir, analysis, explain_layers(ir, analysis, nodes, lang)


def check_layers(ir, analysis, explanations) -> None:
    """Equations are true and quoted in the text; sizes, parameters and MACs match the analysis."""
    stats = {layer.name: layer for layer in analysis.layers}
    for e in explanations:
        layer = stats[e.node]
        text = e.text()
        for equation in e.equations:
            assert equation in text
            assert_true(equation)
        assert e.figures["params"] == layer.figures.params
        assert e.figures["macs"] == layer.figures.macs
        if layer.figures.params and ir.node(e.node).module == e.node:
            assert any(f"= {layer.figures.params:,}" in line for line in e.lines_of("params")), text
        if layer.figures.macs:
            assert any(f"= {layer.figures.macs:,}" in line for line in e.lines_of("macs")), text
        if e.op in WINDOW_OPS:
            # one output-size equation per axis (or one for both), its left side the real size
            assert e.figures["out.height"] == layer.output_shape[1]
            assert e.figures["out.width"] == layer.output_shape[2]
            sizes = [q for q in e.equations if re.match(r"\d+ = (floor|ceil|\()", q)]
            assert {int(q.split(" = ")[0]) for q in sizes} == set(layer.output_shape[1:]), text


# --- the course's cases ------------------------------------------------------------------------------
@pytest.mark.parametrize("lang", LANGUAGES)
def test_inception_bottleneck(lang):
    case = explain_case("inception-bottleneck", lang)
    f = case.figures
    assert f["direct_macs"] == 120_422_400 == (28 * 28 * 32) * (5 * 5 * 192)
    assert f["reduce_macs"] == 2_408_448
    assert f["conv_macs"] == 10_035_200
    assert f["bottleneck_macs"] == 12_443_648
    assert round(f["ratio"], 2) == 9.68
    # the per-layer comparison (through the conv op's rules) agrees with the analysed layers
    assert f["layer_figures"]["bottleneck.direct_macs"] == f["direct_macs"]
    assert f["layer_figures"]["bottleneck.macs"] == f["bottleneck_macs"]
    for number in ("120,422,400", "12,443,648", "2,408,448", "10,035,200", "9.68"):
        assert number in case.text
    assert "28·28·32·192·5·5 = 120,422,400" in case.text
    assert str(case) == case.text


@pytest.mark.parametrize("lang", LANGUAGES)
def test_depthwise_separable(lang):
    case = explain_case("depthwise-separable", lang)
    f = case.figures
    assert (f["depthwise_macs"], f["pointwise_macs"], f["separable_macs"], f["plain_macs"]) == (432, 240, 672, 2_160)
    assert round(f["ratio"], 3) == 0.311
    assert math.isclose(f["ratio"], 1 / 5 + 1 / 9) and math.isclose(f["formula"], 1 / 5 + 1 / 9)
    assert f["layer_figures"]["separable.ratio"] == f["ratio"]
    for number in ("432 + 240 = 672", "2,160", "0.311", "1/5 + 1/9"):
        assert number in case.text


LENET_TABLE = [
    ("(32,32,3)", 3_072, 0),
    ("(28,28,6)", 4_704, 456),
    ("(14,14,6)", 1_176, 0),
    ("(10,10,16)", 1_600, 2_416),
    ("(5,5,16)", 400, 0),
    ("(120,1)", 120, 48_120),
    ("(84,1)", 84, 10_164),
    ("(10,1)", 10, 850),
]


@pytest.mark.parametrize("lang", LANGUAGES)
def test_lenet5_table(lang):
    case = explain_case("lenet5", lang)
    assert [row[1:] for row in case.figures["rows"]] == LENET_TABLE
    assert case.figures["total_params"] == sum(p for _, _, p in LENET_TABLE)
    lines = case.text.splitlines()
    for shape, size, params in LENET_TABLE:
        assert any(shape in line and f"{size:,}" in line and line.rstrip().endswith(f"{params:,}") for line in lines), shape
    assert "(5·5·3 + 1)·6 = 456" in case.text and "400·120 + 120 = 48,120" in case.text


def test_lenet5_without_the_specs_folder(monkeypatch, tmp_path):
    """An installation without specs/ computes the same table from the embedded copy."""
    from archspec.explain import cases

    monkeypatch.setattr(cases, "LENET5_FILE", tmp_path / "missing.yaml")
    case = explain_case("lenet5", "en")
    assert [row[1:] for row in case.figures["rows"]] == LENET_TABLE


@pytest.mark.parametrize("lang", LANGUAGES)
def test_conv_output_size(lang):
    case = explain_case("conv-output-size", lang)
    f = case.figures
    assert (f["valid"], f["same"], f["strided"], f["dropped"], f["pool"]) == (4, 6, 3, 2, 5)
    assert f["dropped.dropped"] == 1  # floor(1.5): one row and one column are dropped
    for equation in (
        "4 = floor((6 + 2·0 - 3) / 1) + 1",
        "6 = floor((6 + 2·1 - 3) / 1) + 1",
        "3 = floor((7 + 2·0 - 3) / 2) + 1",
        "2 = floor((6 + 2·0 - 3) / 2) + 1",
        "5 = floor((10 + 2·0 - 2) / 2) + 1",
    ):
        assert equation in case.text
        assert_true(equation)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_transposed_conv(lang):
    case = explain_case("transposed-conv", lang)
    f = case.figures
    assert (f["default"], f["course"], f["output_padding"], f["output_padding_needed"]) == (3, 4, 1, 1)
    assert "4 = (2 - 1)·2 - 2·1 + 3 + 1" in case.text
    assert "3 = (2 - 1)·2 - 2·1 + 3 + 0" in case.text
    assert "output_padding=1" in case.text


@pytest.mark.parametrize("name", list(CASES))
def test_case_languages(name):
    english, korean = explain_case(name, "en"), explain_case(name, "ko")
    assert HANGUL.search(korean.text) and not HANGUL.search(english.text)
    assert korean.figures == english.figures
    assert (english.lang, korean.lang) == ("en", "ko")


def test_cases_are_listed_and_described():
    assert set(CASES) == {"inception-bottleneck", "depthwise-separable", "lenet5", "conv-output-size", "transposed-conv",
                          "iou", "yolo-target", "nms", "style-cost"}  # the last four: issue 14
    assert all(CASES.values())
    assert all(HANGUL.search(text) for text in case_descriptions("ko").values())


def test_unknown_case_lists_the_cases():
    with pytest.raises(ArchspecError) as error:
        explain_case("inception", "en")
    message = str(error.value)
    assert all(name in message for name in CASES)


def test_unknown_language():
    with pytest.raises(ArchspecError, match="en, ko"):
        explain_case("lenet5", "fr")


# --- per-layer explanations ------------------------------------------------------------------------
@pytest.mark.parametrize("lang", LANGUAGES)
def test_lenet5_layers(lang):
    ir, analysis, explanations = explained(SPECS / "lenet5.yaml", lang=lang)
    check_layers(ir, analysis, explanations)
    assert [e.node for e in explanations] == [layer.name for layer in analysis.layers]
    text = format_explanations(explanations)
    assert "28 = floor((32 + 2·0 - 5) / 1) + 1" in text
    assert "(5·5·3 + 1)·6 = 456" in text and "(5·5·6 + 1)·16 = 2,416" in text
    assert "16·5·5 = 400" in text  # flatten
    assert bool(HANGUL.search(text)) == (lang == "ko")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_resnet18_layers(lang):
    ir, analysis, explanations = explained(SPECS / "resnet18.yaml", lang=lang)
    check_layers(ir, analysis, explanations)
    text = format_explanations(explanations)
    assert "112 = floor((224 + 2·3 - 7) / 2) + 1" in text  # conv1
    assert "56 = floor((112 + 2·1 - 3) / 2) + 1" in text  # maxpool
    assert "7·7·3·64 = 9,408" in text  # conv1 without bias
    assert "2·64 + 1 = 129" in text  # bn1's running statistics
    assert "512·1000 + 1000 = 513,000" in text
    # the 1x1 stride-2 projection shortcut skips every other row: its division is not exact
    shortcut = next(e for e in explanations if e.node == "layer2.0.downsample.0")
    assert "28 = floor((56 + 2·0 - 1) / 2) + 1" in shortcut.text() and shortcut.figures["dropped.height"] == 1
    # basic blocks have neither depthwise-separable pairs nor 1x1 bottlenecks
    assert not any(e.lines_of("pair") for e in explanations)


ZOO = """\
name: zoo
inputs: {image: [8, 18, 18]}
layers:
  - conv: {name: stem, out: 16, kernel: 3, stride: 2, padding: 1}
  - bn: {name: stem_bn}
  - relu
  - dwconv: {name: dw, kernel: 3, padding: 1, bias: false}
  - bn: {name: dw_bn}
  - relu6
  - conv: {name: pw, out: 24, kernel: 1, bias: false}
  - conv: {name: reduce, out: 8, kernel: 1}
  - relu
  - conv: {name: spatial, out: 24, kernel: 3, padding: same}
  - conv: {name: grouped, out: 32, kernel: 3, groups: 4, dilation: 2, padding: 2}
  - conv: {name: even, out: 32, kernel: 4, padding: same, bias: false}
  - maxpool: {name: ceil_pool, kernel: 2, stride: 2, ceil_mode: true}
  - maxpool: {name: undone_pool, kernel: 2, stride: 2, padding: 1, ceil_mode: true}
  - conv_transpose: {name: up, out: 16, kernel: 3, stride: 2, padding: 1}
  - conv_transpose: {name: up_dilated, out: 16, kernel: 3, stride: 2, padding: 1, dilation: 2, output_padding: 1}
  - upsample: {name: up2, scale: 1.5}
  - pad: {name: padded, amount: [1, 2, 0, 3]}
  - crop: {name: cropped, size: [12, 12]}
  - groupnorm: {name: gn, groups: 4}
  - channel_shuffle: {name: shuffle, groups: 4}
  - adaptive_avgpool: {name: squeeze, size: 1}
  - mul: {name: gate, from: [shuffle, squeeze]}
  - conv: {name: mobile_dw, out: 32, kernel: 3, groups: 16, stride: 2, padding: 1}
  - conv: {name: mobile_pw, out: 8, kernel: 1}
  - avgpool: {name: avg, kernel: 3, stride: 3}
  - concat: {name: cat, from: [avg, avg]}
  - add: {name: sum, from: [cat, cat]}
  - dropout: {name: drop, p: 0.2}
  - global_avgpool
  - linear: {name: fc, out: 10, bias: false}
  - softmax
"""


@pytest.fixture
def zoo(write_spec):
    return write_spec(ZOO, "zoo.yaml")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_kind_of_layer(zoo, lang):
    ir, analysis, explanations = explained(zoo, lang=lang)
    check_layers(ir, analysis, explanations)
    by_node = {e.node: e for e in explanations}
    assert all(e.lines for e in explanations)
    assert bool(HANGUL.search(format_explanations(explanations))) == (lang == "ko")

    # depthwise conv -> BN -> ReLU6 -> 1x1: a separable pair, compared with a plain 3x3 16 -> 24
    pw = by_node["pw"].figures
    assert pw["separable.depthwise_macs"] == by_node["dw"].figures["macs"]
    assert pw["separable.plain_macs"] == 9 * 9 * 24 * 16 * 3 * 3
    assert math.isclose(pw["separable.ratio"], 1 / 24 + 1 / 9)
    assert "1/24 + 1/9" in by_node["pw"].text()
    # a grouped conv with groups = C_in and 2 filters per channel, then 1x1: m/n_c' + m/f²
    mobile = by_node["mobile_pw"].figures
    assert math.isclose(mobile["separable.ratio"], 2 / 8 + 2 / 9)
    assert "2/8 + 2/9" in by_node["mobile_pw"].text()
    # 1x1 (24 -> 8) -> ReLU -> 3x3: a bottleneck against a direct 3x3 from 24 channels
    spatial = by_node["spatial"].figures
    assert spatial["bottleneck.direct_macs"] == 9 * 9 * 24 * 24 * 3 * 3
    assert spatial["bottleneck.macs"] == by_node["reduce"].figures["macs"] + by_node["spatial"].figures["macs"]
    assert f"{spatial['bottleneck.ratio']:.2f}" in by_node["spatial"].text()
    assert [e.node for e in explanations if e.lines_of("pair")] == ["pw", "spatial", "mobile_pw"]

    assert by_node["stem"].figures["dropped.width"] == 1  # (18 + 2 - 3) / 2 = 8.5
    assert "2·(3 - 1) + 1 = 5" in by_node["grouped"].text()  # dilation
    assert "(3·3·(24/4) + 1)·32 = 1,760" in by_node["grouped"].text()
    assert "9 = floor((9 + 1 + 2 - 4) / 1) + 1" in by_node["even"].text()  # asymmetric 'same'
    assert "5 = ceil((9 + 2·0 - 2) / 2) + 1" in by_node["ceil_pool"].text()
    assert "3 = ceil((5 + 2·1 - 2) / 2) + 1 - 1" in by_node["undone_pool"].text()
    assert "5 = (3 - 1)·2 - 2·1 + 3 + 0" in by_node["up"].text()
    assert by_node["up"].figures["output_padding_needed.height"] == 1
    assert "12 = (5 - 1)·2 - 2·1 + 2·(3 - 1) + 1 + 1" in by_node["up_dilated"].text()
    assert "18 = floor(12·1.5)" in by_node["up2"].text()
    assert "21 = 18 + 0 + 3" in by_node["padded"].text() and "21 = 18 + 1 + 2" in by_node["padded"].text()
    assert "8 + 8 = 16" in by_node["cat"].text()
    assert "2·2 = 4" in by_node["global_avgpool1"].text()
    assert "16·10 = 160" in by_node["fc"].text()


def test_transposed_and_separable_in_a_spec(write_spec):
    """The course's transposed conv and MobileNet pair inside an ordinary spec."""
    spec = write_spec(
        """\
        name: small
        inputs: {image: [3, 6, 6]}
        layers:
          - dwconv: {name: dw, kernel: 3}
          - bn
          - relu
          - conv: {name: pw, out: 5, kernel: 1}
          - conv_transpose: {name: up, out: 5, kernel: 3, stride: 2, padding: 1}
        """
    )
    ir, analysis, explanations = explained(spec)
    check_layers(ir, analysis, explanations)
    by_node = {e.node: e for e in explanations}
    # with biases the MACs are the same: bias is not a multiply-accumulate
    assert by_node["pw"].figures["separable.macs"] == 672 and by_node["pw"].figures["separable.plain_macs"] == 2_160
    assert "(3·3 + 1)·3 = 30" in by_node["dw"].text()  # depthwise parameters with bias
    assert "7 = (4 - 1)·2 - 2·1 + 3 + 0" in by_node["up"].text()
    assert "output_padding = 1" in by_node["up"].text()


def test_batch_factor(zoo):
    ir, analysis, explanations = explained(zoo, batch=4)
    check_layers(ir, analysis, explanations)
    fc = next(e for e in explanations if e.node == "fc")
    assert "n_in·n_out·B: 16·10·4 = 640" in fc.text()


def test_shared_and_frozen_weights():
    ir, analysis, explanations = explained(SPECS / "siamese_pair.yaml")
    check_layers(ir, analysis, explanations)
    shared = [e for e in explanations if ir.node(e.node).module != e.node]
    assert shared and all(e.figures["params"] == 0 and "reuses the weights of" in e.text() for e in shared)
    ir, analysis, explanations = explained(SPECS / "two_heads.yaml")
    check_layers(ir, analysis, explanations)
    assert any("frozen" in e.text() for e in explanations)


@pytest.mark.parametrize("spec", LIBRARY, ids=lambda p: p.stem)
def test_library_specs(spec):
    ir, analysis, explanations = explained(spec)
    check_layers(ir, analysis, explanations)


def test_select_nodes():
    ir = archspec.compile_spec(SPECS / "resnet18.yaml")
    analysis = analyze(ir)
    block = explain_layers(ir, analysis, ["layer1"], "en")
    assert block and all(e.node.startswith("layer1.") for e in block)
    picked = explain_layers(ir, analysis, ["fc", "conv1"], "en")
    assert [e.node for e in picked] == ["conv1", "fc"]  # graph order
    with pytest.raises(ArchspecError) as error:
        explain_layers(ir, analysis, ["layer9"], "en")
    assert "layer9" in str(error.value) and "did you mean" in str(error.value)


def test_explain_spec_text():
    text = explain_spec(SPECS / "lenet5.yaml", ["conv1"], "ko", params={"num_classes": 10})
    assert text.startswith("conv1 (conv): 3x32x32 → 6x28x28")
    assert "파라미터 수" in text and "출력 크기" in text and "연산량 (곱셈-누적)" in text


@pytest.mark.parametrize(
    "environ, lang",
    [
        ({}, "en"),
        ({"LANG": "ko_KR.UTF-8"}, "ko"),
        ({"LANG": "en_US.UTF-8"}, "en"),
        ({"LC_ALL": "ko_KR.UTF-8", "LANG": "en_US.UTF-8"}, "ko"),
        ({"LC_ALL": "C", "LANG": "ko_KR.UTF-8"}, "en"),
        ({"LC_MESSAGES": "ko_KR", "LANG": "en_US"}, "ko"),
        ({"LC_ALL": "", "LANG": "ko"}, "ko"),
    ],
)
def test_default_lang(environ, lang):
    assert default_lang(environ) == lang


def test_catalogues_have_the_same_keys():
    from archspec.explain.messages import CATALOGUE

    keys = {lang: set(table) for lang, table in CATALOGUE.items()}
    assert all(k == keys["en"] for k in keys.values())


def test_explain_never_imports_torch():
    code = (
        "import sys, archspec.explain as x\n"
        "from archspec.explain.detection_cases import DETECTION_CASES\n"  # these run the torch detection/style code
        "[x.explain_case(n, 'ko') for n in x.CASES if n not in DETECTION_CASES]\n"
        "x.explain_spec('specs/resnet18.yaml')\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
