"""Every construct of the spec language, checked three ways: the static analysis (numbers worked
out by hand below), the IR's structure (node ids = module paths) and the lowered torch module.

Constructs: 1 sequences, 2 names and references, 3 blocks, 4 repeat, 5 residual add with
projection, 6 concat, 7 parallel branches, 8 U-Net bridges (fit), 9 several inputs/outputs,
10 shared weights, 11 params and expressions (API and CLI), 12 trainable: false; plus `extends`.
"""
from __future__ import annotations

import inspect
import json

import pytest
import torch
import torch.fx as fx
from conftest import SPECS, run_cli

import archspec
from archspec import SpecError, analyze_spec, build_module, compile_spec

LENET = SPECS / "lenet5.yaml"
RESNET18 = SPECS / "resnet18.yaml"
INCEPTION = SPECS / "inception_module.yaml"
DENSE = SPECS / "dense_block.yaml"
UNET = SPECS / "tiny_unet.yaml"
SIAMESE = SPECS / "siamese_pair.yaml"
TWO_HEADS = SPECS / "two_heads.yaml"
TWO_HEADS_WIDE = SPECS / "two_heads_wide.yaml"


# --- helpers ------------------------------------------------------------------------------------
def torch_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def torch_trainable(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def layer(analysis, name: str):
    (found,) = [entry for entry in analysis.layers if entry.name == name]
    return found


def block_params(analysis, path: str) -> int:
    (found,) = [b for b in analysis.blocks if b.name == path]
    return found.figures.params


def random_inputs(analysis, batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(batch, *shape, generator=generator) for name, shape in analysis.inputs.items()}


def intermediates(module: fx.GraphModule, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Run the lowered module node by node and keep every value, by fx node name."""
    values: dict[str, torch.Tensor] = {}

    class Recorder(fx.Interpreter):
        def run_node(self, node):
            result = super().run_node(node)
            values[node.name] = result.clone() if isinstance(result, torch.Tensor) else result  # later ops may work in place
            return result

    module.eval()
    with torch.no_grad():
        Recorder(module).run(*[inputs[n.name] for n in module.graph.nodes if n.op == "placeholder"])
    return values


def called_modules(module: fx.GraphModule) -> list[str]:
    return [node.target for node in module.graph.nodes if node.op == "call_module"]


def ops_by_id(ir) -> dict[str, object]:
    return {node.id: node for node in ir.nodes()}


# --- 1. a sequence of layers ----------------------------------------------------------------------
def test_sequence_chains_each_layer_to_the_previous_one():
    ir = compile_spec(LENET)
    ids = ir.order
    assert ids == [
        "image", "conv1", "relu1", "pool1", "conv2", "relu2", "pool2",
        "flatten1", "fc3", "relu3", "fc4", "relu4", "fc5",
    ]  # unnamed items are named op + running number per op (relu1, relu2, ...)
    nodes = ops_by_id(ir)
    for previous, current in zip(ids, ids[1:]):
        assert nodes[current].inputs == [previous]
    assert ir.outputs == {"output": "fc5"}  # no `outputs:`: the last layer

    module = build_module(LENET)
    # the lowered forward calls the modules in the spec's order, and nothing else
    assert called_modules(module) == ["conv1", "pool1", "conv2", "pool2", "fc3", "fc4", "fc5"]
    assert module(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


# --- 2. named nodes and references ----------------------------------------------------------------
def test_references_by_name_and_dotted_into_a_repeat():
    ir = compile_spec(TWO_HEADS)
    nodes = ops_by_id(ir)
    # `from: body.0` is the output of the first repetition of the conv_bn block
    assert nodes["aux_pool"].inputs == ["body.0.relu"]
    # `from: body` is the output of the whole repeat (its last repetition)
    assert nodes["head.conv"].inputs == ["body.1.relu"]
    # the outputs name nodes by name
    assert ir.outputs == {"logits": "fc", "aux": "aux_fc"}

    module = build_module(TWO_HEADS)
    graph = {node.name: node for node in module.graph.nodes}
    assert graph["aux_pool"].args[0].name == "body_0_relu"
    assert graph["head_conv"].args[0].name == "body_1_relu"


def test_dotted_references_into_a_block(write_spec):
    write_spec((SPECS / "blocks" / "resnet.yaml").read_text(), "blocks/resnet.yaml")
    path = write_spec(
        """
        name: taps
        use: [blocks/resnet.yaml]
        inputs: {image: [8, 16, 16]}
        outputs: {main: layer1, second: tap_block, inner: tap_conv}
        layers:
          - basic: {name: layer1, out: 8, repeat: 2}
          - identity: {name: tap_block, from: layer1.1}         # a repetition (a block call)
          - identity: {name: tap_conv, from: layer1.0.conv1}    # a node inside a block
        """
    )
    ir = compile_spec(path)
    nodes = ops_by_id(ir)
    assert nodes["tap_block"].inputs == ["layer1.1.relu2"]
    assert nodes["tap_conv"].inputs == ["layer1.0.conv1"]
    assert ir.outputs == {"main": "layer1.1.relu2", "second": "tap_block", "inner": "tap_conv"}

    module = build_module(path).eval()
    seen = {}
    module.get_submodule("layer1.0.conv1").register_forward_hook(lambda m, i, o: seen.setdefault("conv", o))
    x = torch.randn(2, 8, 16, 16)
    with torch.no_grad():
        out = module(image=x)
    assert torch.equal(out["inner"], seen["conv"])  # the tap reads exactly that conv's output
    assert torch.equal(out["second"], out["main"])  # layer1.1 is the repeat's last repetition


# --- 3. reusable blocks ---------------------------------------------------------------------------
def test_block_from_an_included_file_with_params_and_nested_blocks():
    """specs/inception_module.yaml `use`s blocks/inception.yaml; `inception` calls `conv_relu`."""
    loaded = archspec.load_spec(INCEPTION)
    assert {"inception", "conv_relu"} <= set(loaded.blocks)
    analysis = analyze_spec(INCEPTION)
    # (in_channels * kh * kw + 1) * out for each conv (with bias), input 192 channels
    b1 = (192 * 1 * 1 + 1) * 64  # 12,352
    b2 = (192 + 1) * 96 + (96 * 3 * 3 + 1) * 128  # 18,528 + 110,720
    b3 = (192 + 1) * 16 + (16 * 5 * 5 + 1) * 32  # 3,088 + 12,832
    b4 = (192 + 1) * 32  # maxpool has none; 6,176
    assert (b1, b2, b3, b4) == (12_352, 129_248, 15_920, 6_176)
    assert block_params(analysis, "inception3a") == b1 + b2 + b3 + b4 == 163_696
    assert block_params(analysis, "inception3a.b2") == b2
    assert block_params(analysis, "inception3a.b2.conv") == 110_720  # the nested conv_relu call
    fc = 256 * 10 + 10
    assert analysis.totals.params == b1 + b2 + b3 + b4 + fc == 166_266

    module = build_module(INCEPTION)
    assert torch_params(module) == analysis.totals.params
    # module paths: block call . branch . nested block call . node
    conv = module.get_submodule("inception3a.b2.conv.conv")
    assert isinstance(conv, torch.nn.Conv2d)
    assert conv.weight.shape == (128, 96, 3, 3) and conv.padding == (1, 1)
    # conv_relu's default kernel (1) and padding (0) apply where the caller gives none
    assert module.get_submodule("inception3a.b1.conv.conv").kernel_size == (1, 1)
    assert module.get_submodule("inception3a.b3.conv.conv").kernel_size == (5, 5)


def test_in_spec_blocks_with_params_nested_and_repeated():
    """dense_block.yaml: `dense` (in the spec) repeats `dense_layer` (in the spec), growth k a param."""
    ir = compile_spec(DENSE)
    analysis = analyze_spec(DENSE)
    k = 12
    # dense_layer's `out: 4 * growth` with growth = k
    assert analysis.inputs == {"image": (3, 32, 32)}
    assert layer(analysis, "denseblock1.denselayer.0.conv1").output_shape == (4 * k, 32, 32)
    assert layer(analysis, "denseblock1.denselayer.3.conv2").output_shape == (k, 32, 32)
    kinds = {b.name: b.kind for b in analysis.blocks}
    assert kinds["denseblock1"] == "dense"
    assert kinds["denseblock1.denselayer"] == "repeat"
    assert kinds["denseblock1.denselayer.2"] == "dense_layer"
    assert kinds["transition1"] == "transition"
    assert "denseblock1.denselayer.3.norm2" in ir.order

    module = build_module(DENSE)
    assert module.get_submodule("denseblock1.denselayer.1.conv1").weight.shape == (4 * k, 2 * k + k, 1, 1)
    assert module.get_submodule("transition1.conv").weight.shape == ((2 * k + 4 * k) // 2, 2 * k + 4 * k, 1, 1)


def test_block_param_defaults_and_overrides(write_spec):
    path = write_spec(
        """
        name: blocks_params
        params: {c: 4}
        inputs: {x: [2, 8, 8]}
        blocks:
          unit:
            params: {out: null, kernel: 3, pad: "kernel // 2"}   # defaults may be expressions
            layers:
              - conv: {name: conv, out: out, kernel: kernel, padding: pad}
          pair:
            params: {out: null}
            layers:                                                # a block calling a block
              - unit: {name: first, out: out}
              - unit: {name: second, out: out * 2, kernel: 1}
        layers:
          - pair: {name: p, out: c}        # block params are expressions over the spec's params
          - unit: {name: u, out: 5, kernel: 5}
        """
    )
    analysis = analyze_spec(path)
    # p.first: 3x3 (default), padding 3 // 2 = 1: 8x8 stays; (2*9 + 1) * 4 = 76
    assert layer(analysis, "p.first.conv").output_shape == (4, 8, 8)
    assert layer(analysis, "p.first.conv").figures.params == (2 * 3 * 3 + 1) * 4 == 76
    # p.second: 1x1, out = 2c = 8; (4 + 1) * 8 = 40
    assert layer(analysis, "p.second.conv").output_shape == (8, 8, 8)
    assert layer(analysis, "p.second.conv").figures.params == (4 + 1) * 8 == 40
    # u: 5x5, padding 5 // 2 = 2; (8 * 25 + 1) * 5 = 1,005
    assert layer(analysis, "u.conv").output_shape == (5, 8, 8)
    assert layer(analysis, "u.conv").figures.params == (8 * 25 + 1) * 5 == 1_005
    module = build_module(path)
    assert module.get_submodule("u.conv").padding == (2, 2)
    assert torch_params(module) == 76 + 40 + 1_005
    assert module(x=torch.zeros(2, 2, 8, 8)).shape == (2, 5, 8, 8)


# --- 4. repeat ------------------------------------------------------------------------------------
def test_repeat_with_expression_count_and_index():
    ir = compile_spec(RESNET18)
    nodes = ops_by_id(ir)
    # `repeat: "stages[1]"` = 2 copies named 0 and 1; `stride: "2 if i == 0 else 1"`
    assert [n for n in ir.order if n.startswith("layer2.") and n.endswith(".conv1")] == ["layer2.0.conv1", "layer2.1.conv1"]
    assert nodes["layer2.0.conv1"].args.stride == 2
    assert nodes["layer2.1.conv1"].args.stride == 1
    assert nodes["layer2.1.conv1"].inputs == ["layer2.0.relu2"]  # each copy feeds the next

    module = build_module(RESNET18)
    assert module.get_submodule("layer2.0.conv1").stride == (2, 2)
    assert module.get_submodule("layer2.1.conv1").stride == (1, 1)

    # the count is an expression over params: ResNet-10 with stages [1, 1, 1, 1]
    smaller = compile_spec(RESNET18, params={"stages": [1, 1, 1, 1]})
    assert "layer1.0.conv1" in smaller.order and "layer1.1.conv1" not in smaller.order


def test_repeat_index_and_zero_repeats(write_spec):
    path = write_spec(
        """
        name: repeats
        params: {n: 3}
        inputs: {x: [4, 6, 6]}
        layers:
          - conv: {name: grow, out: "8 * (i + 1)", kernel: 1, repeat: n}    # 8, 16, 24 channels
          - relu: {name: none, repeat: 0}                                     # no copies: passes through
          - conv: {name: last, out: 2, kernel: 1, repeat: round(n / 3)}       # round(1.0) = 1
        """
    )
    ir = compile_spec(path)
    assert [n for n in ir.order if n.startswith("grow")] == ["grow.0", "grow.1", "grow.2"]
    assert not any(n.startswith("none") for n in ir.order)
    assert ops_by_id(ir)["last.0"].inputs == ["grow.2"]
    analysis = analyze_spec(path)
    assert [layer(analysis, f"grow.{i}").output_shape[0] for i in range(3)] == [8, 16, 24]
    # (in + 1) * out: (4+1)*8 = 40, (8+1)*16 = 144, (16+1)*24 = 408, (24+1)*2 = 50
    assert analysis.totals.params == 40 + 144 + 408 + 50 == 642
    module = build_module(path)
    assert torch_params(module) == 642
    assert module.get_submodule("grow.2").weight.shape == (24, 16, 1, 1)
    assert module(x=torch.zeros(2, 4, 6, 6)).shape == (2, 2, 6, 6)
    # the count follows its parameter
    assert len([n for n in compile_spec(path, params={"n": 5}).order if n.startswith("grow")]) == 5


# --- 5. residual add, with a projection when the shapes differ --------------------------------------
def test_residual_identity_and_projection_in_resnet18():
    ir = compile_spec(RESNET18)
    nodes = ops_by_id(ir)
    # same shape (64x56x56 in and out): identity shortcut, no downsample
    assert nodes["layer1.0.add1"].inputs == ["layer1.0.bn2", "maxpool1"]
    assert not any(".downsample" in n for n in ir.order if n.startswith("layer1."))
    assert nodes["layer2.1.add1"].inputs == ["layer2.1.bn2", "layer2.0.relu2"]
    # 64x56x56 -> 128x28x28: a 1x1 stride-2 conv (no bias) + BN on the shortcut
    conv, bn = nodes["layer2.0.downsample.0"], nodes["layer2.0.downsample.1"]
    assert (conv.op, conv.args.out, conv.args.kernel, conv.args.stride, conv.args.bias) == ("conv", 128, 1, 2, False)
    assert conv.inputs == ["layer1.1.relu2"] and bn.op == "bn" and bn.inputs == ["layer2.0.downsample.0"]
    assert nodes["layer2.0.add1"].inputs == ["layer2.0.bn2", "layer2.0.downsample.1"]
    analysis = analyze_spec(RESNET18)
    # 64 * 128 * 1 * 1 weights + 2 * 128 BN affine
    assert block_params(analysis, "layer2.0.downsample") == 64 * 128 + 2 * 128 == 8_448
    assert [b.kind for b in analysis.blocks if b.name.endswith("downsample")] == ["projection"] * 3

    module = build_module(RESNET18)
    downsample = module.get_submodule("layer2.0.downsample.0")
    assert downsample.stride == (2, 2) and downsample.kernel_size == (1, 1) and downsample.bias is None
    assert isinstance(module.get_submodule("layer2.0.downsample.1"), torch.nn.BatchNorm2d)
    # the add really sums the main path and the projected shortcut
    values = intermediates(module, {"image": torch.randn(1, 3, 64, 64)})
    assert torch.allclose(values["layer2_0_add1"], values["layer2_0_bn2"] + values["layer2_0_downsample_1"])
    assert torch.allclose(values["layer1_0_add1"], values["layer1_0_bn2"] + values["maxpool1"])


@pytest.mark.parametrize(
    "size, stride, expected",
    [
        (16, 1, (8, 16, 16)),  # channels only: 4 -> 8, stride-1 projection
        (16, 2, (8, 8, 8)),  # 16 -> 8: stride 2
        (15, 2, (8, 8, 8)),  # odd size: 15 -> ceil(15 / 2) = 8, as torchvision's downsample does
    ],
)
def test_projection_shortcut_shapes(write_spec, size, stride, expected):
    path = write_spec(
        f"""
        name: proj
        inputs: {{x: [4, {size}, {size}]}}
        layers:
          - conv: {{name: conv, out: 8, kernel: 3, stride: {stride}, padding: 1, bias: false}}
          - bn: {{name: bn}}
          - add: {{name: add, from: [bn, x], project: auto, projection_name: shortcut}}
        """
    )
    ir = compile_spec(path)
    nodes = ops_by_id(ir)
    assert ir.shapes["add"] == expected
    assert nodes["shortcut.0"].args.stride == stride and nodes["add"].inputs == ["bn", "shortcut.1"]
    analysis = analyze_spec(path)
    # conv 4*8*9 + bn 16 + shortcut conv 4*8 + bn 16
    assert analysis.totals.params == 4 * 8 * 9 + 2 * 8 + 4 * 8 + 2 * 8 == 352
    module = build_module(path)
    assert torch_params(module) == 352
    assert module(x=torch.zeros(2, 4, size, size)).shape == (2, *expected)


def test_add_without_projection_refuses_different_shapes(write_spec):
    path = write_spec(
        """
        name: noproj
        inputs: {x: [4, 8, 8]}
        layers:
          - conv: {name: conv, out: 8, kernel: 1}
          - add: {from: [conv, x]}
        """
    )
    with pytest.raises(SpecError, match="add needs equal shapes"):
        compile_spec(path)


def test_resnet18_accepts_odd_feature_map_sizes():
    # torchvision's resnet18 runs at 200x200: 200 -> 100 -> 50 -> 50 -> 25 -> 13 -> 7
    analysis = analyze_spec(RESNET18, inputs={"image": (3, 200, 200)})
    assert layer(analysis, "layer3.0.downsample.0").output_shape == (256, 13, 13)
    assert layer(analysis, "layer4.0.add1").output_shape == (512, 7, 7)
    assert analysis.totals.params == 11_689_512  # sizes do not change the weights
    module = build_module(RESNET18, inputs={"image": (3, 200, 200)}).eval()
    with torch.no_grad():
        assert module(image=torch.zeros(1, 3, 200, 200)).shape == (1, 1000)


# --- 6. concat along channels ---------------------------------------------------------------------
def test_dense_concat_grows_channels_by_k():
    k, c0 = 12, 24  # growth and the stem's 2k channels
    ir = compile_spec(DENSE)
    for j in range(4):
        cat = f"denseblock1.denselayer.{j}.cat"
        assert ir.shapes[cat] == (c0 + (j + 1) * k, 32, 32)  # 36, 48, 60, 72
        assert ops_by_id(ir)[cat].inputs[1] == f"denseblock1.denselayer.{j}.conv2"
    assert ops_by_id(ir)["denseblock1.denselayer.0.cat"].inputs[0] == "conv0"
    assert ir.shapes["transition1.pool"] == ((c0 + 4 * k) // 2, 16, 16)

    analysis = analyze_spec(DENSE)
    # conv0 3*24*9; per layer j with c = 24 + 12j: BN 2c, 1x1 c*48, BN 2*48, 3x3 48*12*9
    channels = [c0 + j * k for j in range(4)]  # 24, 36, 48, 60
    dense = sum(2 * c + c * 4 * k + 2 * 4 * k + 4 * k * k * 9 for c in channels)
    transition = 2 * 72 + 72 * 36
    head = 2 * 36 + 36 * 10 + 10
    assert dense == 29_520
    assert analysis.totals.params == 3 * 24 * 9 + dense + transition + head == 33_346

    module = build_module(DENSE)
    values = intermediates(module, random_inputs(analysis))
    cat = values["denseblock1_denselayer_3_cat"]
    assert cat.shape == (2, 72, 32, 32)
    # the block's input survives unchanged in the first channels, the newest k maps come last
    assert torch.equal(cat[:, :c0], values["conv0"])
    assert torch.equal(cat[:, 60:], values["denseblock1_denselayer_3_conv2"])
    assert torch.equal(cat[:, :60], values["denseblock1_denselayer_2_cat"])


# --- 7. parallel branches -------------------------------------------------------------------------
def test_block_branches_merged_by_concat():
    ir = compile_spec(INCEPTION)
    nodes = ops_by_id(ir)
    merge = nodes["inception3a.concat"]
    assert merge.op == "concat"
    assert merge.inputs == [
        "inception3a.b1.conv.relu",
        "inception3a.b2.conv.relu",
        "inception3a.b3.conv.relu",
        "inception3a.b4.proj.relu",
    ]
    # every branch starts from the module's input
    for first in ("inception3a.b1.conv.conv", "inception3a.b2.reduce.conv", "inception3a.b3.reduce.conv", "inception3a.b4.pool"):
        assert nodes[first].inputs == ["features"]
    assert ir.shapes["inception3a.concat"] == (64 + 128 + 32 + 32, 28, 28) == (256, 28, 28)

    analysis = analyze_spec(INCEPTION)
    module = build_module(INCEPTION)
    values = intermediates(module, random_inputs(analysis))
    out = values["inception3a_concat"]
    assert torch.equal(out[:, :64], values["inception3a_b1_conv_relu"])
    assert torch.equal(out[:, 64:192], values["inception3a_b2_conv_relu"])
    assert torch.equal(out[:, 192:224], values["inception3a_b3_conv_relu"])
    assert torch.equal(out[:, 224:], values["inception3a_b4_proj_relu"])


def test_parallel_merged_by_add_and_by_concat(write_spec):
    path = write_spec(
        """
        name: par
        inputs: {x: [4, 8, 8]}
        outputs: {summed: both, joined: cat}
        layers:
          - parallel:
              name: both
              merge: add
              branches:
                wide: {conv: {out: 6, kernel: 3, padding: 1}}     # one item: the branch is that node
                narrow:                                            # a list: a sequence in a scope
                  - conv: {out: 6, kernel: 1}
                  - relu
          - parallel:
              name: cat
              from: x
              branches:                                            # merge defaults to concat
                a: {conv: {out: 2, kernel: 1}}
                b: {identity: {}}
        """
    )
    ir = compile_spec(path)
    nodes = ops_by_id(ir)
    assert nodes["both.add"].inputs == ["both.wide", "both.narrow.relu1"]
    assert nodes["both.narrow.conv1"].inputs == ["x"] and nodes["both.wide"].inputs == ["x"]
    assert ir.shapes["both.add"] == (6, 8, 8)
    assert nodes["cat.concat"].inputs == ["cat.a", "cat.b"] and ir.shapes["cat.concat"] == (2 + 4, 8, 8)
    analysis = analyze_spec(path)
    # (4*9+1)*6 + (4+1)*6 + (4+1)*2
    assert analysis.totals.params == 37 * 6 + 5 * 6 + 5 * 2 == 262

    module = build_module(path)
    assert torch_params(module) == 262
    x = torch.randn(2, 4, 8, 8)
    values = intermediates(module, {"x": x})
    assert torch.allclose(values["both_add"], values["both_wide"] + values["both_narrow_relu1"])
    assert torch.equal(values["cat_concat"][:, 2:], x)


# --- 8. U-Net bridges: fit crop and fit pad ----------------------------------------------------------
def test_unet_bridges_crop_the_encoder_maps():
    ir = compile_spec(UNET)
    s = ir.shapes
    # valid 3x3 convs take 2 pixels each: 92 - 4 = 88; pool /2 = 44; 44 - 4 = 40; /2 = 20; 20 - 4 = 16
    assert (s["enc1.relu2"], s["enc2.relu2"], s["bottom.relu2"]) == ((8, 88, 88), (16, 40, 40), (32, 16, 16))
    # 2x2 up-conv doubles: 16 -> 32; crop enc2 40 -> 32; channels 16 + 16
    assert s["up2"] == (16, 32, 32) and s["bridge2"] == (32, 32, 32)
    # 32 - 4 = 28 -> 56; crop enc1 88 -> 56; 8 + 8 channels; 56 - 4 = 52
    assert s["up1"] == (8, 56, 56) and s["bridge1"] == (16, 56, 56)
    assert s["head"] == (2, 52, 52)
    assert ops_by_id(ir)["bridge2"].inputs == ["up2", "enc2.relu2"]

    analysis = analyze_spec(UNET)
    assert analysis.outputs == {"output": (2, 52, 52)}
    # convs (in*9+1)*out; up-convs (in*4)*out + out
    enc = (1 * 9 + 1) * 8 + (8 * 9 + 1) * 8 + (8 * 9 + 1) * 16 + (16 * 9 + 1) * 16
    bottom = (16 * 9 + 1) * 32 + (32 * 9 + 1) * 32
    dec = 32 * 16 * 4 + 16 + (32 * 9 + 1) * 16 + (16 * 9 + 1) * 16 + 16 * 8 * 4 + 8 + (16 * 9 + 1) * 8 + (8 * 9 + 1) * 8
    head = 8 * 2 + 2
    assert analysis.totals.params == enc + bottom + dec + head == 29_330

    module = build_module(UNET)
    values = intermediates(module, random_inputs(analysis))
    # centre crop: offset (40 - 32) / 2 = 4 and (88 - 56) / 2 = 16
    assert torch.equal(values["bridge2"], torch.cat([values["up2"], values["enc2_relu2"][..., 4:36, 4:36]], 1))
    assert torch.equal(values["bridge1"], torch.cat([values["up1"], values["enc1_relu2"][..., 16:72, 16:72]], 1))
    assert values["head"].shape == (2, 2, 52, 52)


def test_bridge_with_fit_pad(write_spec):
    path = write_spec(
        """
        name: padded_unet
        inputs: {x: [3, 15, 15]}
        layers:
          - conv: {name: enc, out: 4, kernel: 3, padding: 1}                  # 15
          - maxpool: {kernel: 2}                                              # 7
          - conv_transpose: {name: up, out: 4, kernel: 2, stride: 2}          # 14
          - concat: {name: bridge, from: [up, enc], fit: pad}                 # pad 14 -> 15; 8 ch
          - add: {name: skip, from: [up, enc], fit: pad}                      # add fits too
        """
    )
    ir = compile_spec(path)
    assert ir.shapes["up"] == (4, 14, 14)
    assert ir.shapes["bridge"] == (8, 15, 15) and ir.shapes["skip"] == (4, 15, 15)
    module = build_module(path)
    x = torch.randn(2, 3, 15, 15)
    values = intermediates(module, {"x": x})
    up, enc = values["up"], values["enc"]
    # padding 1 row and 1 column: none before (1 // 2 = 0), one after
    padded = torch.nn.functional.pad(up, (0, 1, 0, 1))
    assert torch.equal(values["bridge"], torch.cat([padded, enc], 1))
    assert torch.allclose(values["skip"], padded + enc)
    assert torch.all(values["bridge"][:, :4, 14, :] == 0)


# --- 9. several inputs, several outputs ----------------------------------------------------------
def test_two_inputs_and_named_outputs():
    ir = compile_spec(SIAMESE)
    assert ir.inputs == {"left": "left", "right": "right"}
    assert ir.outputs == {"left": "encoder.fc", "right": "encoder_right.fc"}
    analysis = analyze_spec(SIAMESE)
    assert analysis.inputs == {"left": (3, 32, 32), "right": (3, 32, 32)}
    assert analysis.outputs == {"left": (32,), "right": (32,)}

    module = build_module(SIAMESE)
    assert list(inspect.signature(module.forward).parameters) == ["left", "right"]
    out = module(left=torch.randn(2, 3, 32, 32), right=torch.randn(2, 3, 32, 32))
    assert set(out) == {"left", "right"} and out["left"].shape == out["right"].shape == (2, 32)


def test_outputs_as_list_and_inputs_merged(write_spec):
    path = write_spec(
        """
        name: multi
        inputs: {rgb: [3, 8, 8], depth: [1, 8, 8]}
        outputs: [features, score]
        layers:
          - concat: {name: fused, from: [rgb, depth]}
          - conv: {name: features, out: 4, kernel: 1}
          - global_avgpool
          - linear: {name: score, out: 1}
        """
    )
    analysis = analyze_spec(path)
    assert analysis.outputs == {"features": (4, 8, 8), "score": (1,)}
    assert compile_spec(path).shapes["fused"] == (3 + 1, 8, 8)
    module = build_module(path)
    rgb, depth = torch.randn(2, 3, 8, 8), torch.randn(2, 1, 8, 8)
    out = module(rgb=rgb, depth=depth)
    assert out["features"].shape == (2, 4, 8, 8) and out["score"].shape == (2, 1)
    assert torch.allclose(out["features"], module.features(torch.cat([rgb, depth], 1)))


# --- 10. shared weights ---------------------------------------------------------------------------
def test_shared_weights_counted_once_and_really_shared():
    ir = compile_spec(SIAMESE)
    nodes = ops_by_id(ir)
    # the right tower's call sites own nothing: they call the left tower's modules
    assert nodes["encoder_right.conv1"].module == "encoder.conv1"
    assert nodes["encoder_right.conv1"].inputs == ["right"]
    assert nodes["encoder_right.fc"].module == "encoder.fc"

    analysis = analyze_spec(SIAMESE)
    # conv1 3*16*9 (no bias) + bn1 2*16 + conv2 (16*9+1)*32 + fc (32+1)*32
    tower = 3 * 16 * 9 + 2 * 16 + (16 * 9 + 1) * 32 + (32 + 1) * 32
    assert tower == 6_160
    assert analysis.totals.params == tower  # not 2 * tower
    assert block_params(analysis, "encoder") == tower
    assert sum(entry.figures.params for entry in analysis.layers if entry.name.startswith("encoder_right.")) == 0
    assert analysis.totals.buffers == 2 * 16 + 1  # one BN's running stats
    # the work is done twice though
    left_flops = sum(entry.figures.flops for entry in analysis.layers if entry.name.startswith("encoder."))
    right_flops = sum(entry.figures.flops for entry in analysis.layers if entry.name.startswith("encoder_right."))
    assert left_flops == right_flops > 0 and analysis.totals.flops == 2 * left_flops

    module = build_module(SIAMESE)
    assert torch_params(module) == tower
    assert not any(name.startswith("encoder_right") for name in module.state_dict())
    calls = called_modules(module)
    assert calls.count("encoder.conv1") == 2 and calls.count("encoder.fc") == 2

    module.eval()
    x, y = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        same = module(left=x, right=x)
        swapped = module(left=y, right=x)
    assert torch.equal(same["left"], same["right"])
    assert torch.equal(swapped["right"], same["left"])
    # a gradient from the right output alone reaches the (only) tensors
    module.train()
    module(left=x, right=y)["right"].sum().backward()
    for name in ("encoder.conv1.weight", "encoder.conv2.weight", "encoder.fc.weight"):
        assert module.get_parameter(name).grad.abs().sum() > 0
    # and changing a tensor changes both outputs
    module.eval()
    with torch.no_grad():
        same = module(left=x, right=x)  # again: the training pass moved BN's running stats
        module.get_parameter("encoder.fc.bias").add_(1.0)
        shifted = module(left=x, right=x)
    assert torch.allclose(shifted["left"], same["left"] + 1) and torch.allclose(shifted["right"], same["right"] + 1)


def test_reuse_of_a_single_node(write_spec):
    path = write_spec(
        """
        name: tied
        inputs: {x: [4, 8, 8]}
        layers:
          - conv: {name: shared, out: 4, kernel: 3, padding: 1}
          - relu
          - reuse: {name: again, node: shared}
        """
    )
    analysis = analyze_spec(path)
    assert analysis.totals.params == (4 * 9 + 1) * 4 == 148
    assert layer(analysis, "again").module == "shared" and layer(analysis, "again").figures.params == 0
    module = build_module(path).eval()
    assert torch_params(module) == 148
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        assert torch.allclose(module(x=x), module.shared(torch.relu(module.shared(x))))


# --- 11. spec params, defaults, overrides, expressions ---------------------------------------------
def two_heads_params(width: float, depth: float, classes: int = 10) -> tuple[int, int]:
    """(total, frozen) parameters of two_heads.yaml, by hand."""
    from archspec.spec.expressions import make_divisible

    stem, body, head = make_divisible(32 * width, 8), make_divisible(64 * width, 8), make_divisible(128 * width, 8)
    stages = round(depth * 2)
    frozen = 3 * stem * 9 + 2 * stem  # 3x3 conv without bias + BN
    total = frozen
    total += stem * body * 9 + 2 * body  # body.0
    total += (stages - 1) * (body * body * 9 + 2 * body)  # body.1 ...
    total += body * classes + classes  # aux_fc
    total += body * head * 9 + 2 * head  # head
    total += head * classes + classes  # fc
    return total, frozen


def test_param_defaults_and_overrides_through_the_api():
    # defaults: width 1.0 -> 32/64/128 channels, depth 1.0 -> round(2.0) = 2 body stages
    default = analyze_spec(TWO_HEADS)
    assert default.totals.params == two_heads_params(1.0, 1.0)[0]
    assert default.totals.params == (3 * 32 * 9 + 64) + (32 * 64 * 9 + 128) + (64 * 64 * 9 + 128) + 650 + (
        64 * 128 * 9 + 256
    ) + 1290 == 132_404
    # width 0.5 -> make_divisible(16, 8) = 16, 32, 64 channels
    half = compile_spec(TWO_HEADS, params={"width": 0.5})
    assert half.params["width"] == 0.5
    assert half.shapes["stem.0.conv"] == (16, 32, 32) and half.shapes["head.conv"] == (64, 8, 8)
    assert analyze_spec(TWO_HEADS, params={"width": 0.5}).totals.params == two_heads_params(0.5, 1.0)[0] == 33_956
    # width 0.3: 9.6 rounds down to 8, more than 10% below 9.6, so make_divisible gives 16
    assert compile_spec(TWO_HEADS, params={"width": 0.3}).shapes["stem.0.conv"][0] == 16
    # depth 1.5 -> round(3.0) = 3 stages
    deep = compile_spec(TWO_HEADS, params={"depth": 1.5, "num_classes": 7})
    assert [n for n in deep.order if n.endswith(".conv") and n.startswith("body.")] == ["body.0.conv", "body.1.conv", "body.2.conv"]
    assert deep.shapes["fc"] == (7,) and deep.shapes["aux_fc"] == (7,)
    # build_module takes the same overrides as keywords
    module = build_module(TWO_HEADS, width=0.5, depth=1.5)
    assert torch_params(module) == two_heads_params(0.5, 1.5)[0]


def test_param_overrides_through_the_cli():
    result = run_cli("validate", str(TWO_HEADS), "--set", "width=0.5", "--set", "depth=1.5")
    assert result.returncode == 0, result.stderr
    expected = two_heads_params(0.5, 1.5)[0]
    assert f"{expected:,} params" in result.stdout
    report = run_cli("report", str(TWO_HEADS), "--format", "json", "--set", "width=0.5", "--set", "num_classes=3")
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    total, frozen = two_heads_params(0.5, 1.0, classes=3)
    assert data["params"] == {"total": total, "trainable": total - frozen, "frozen": frozen}
    assert data["outputs"] == {"logits": [3], "aux": [3]}
    unknown = run_cli("validate", str(TWO_HEADS), "--set", "widht=2")
    assert unknown.returncode == 1 and "widht" in unknown.stderr and "width" in unknown.stderr


def test_params_may_refer_to_earlier_params_and_expressions_are_rich(write_spec):
    path = write_spec(
        """
        name: exprs
        params:
          base: 8
          wide: base * 2                 # a default computed from an earlier param
          widths: [4, 6]
          use_bias: false
        inputs: {x: [2, 10, 10]}
        layers:
          - conv: {name: a, out: "max(widths[1], base // 2)", kernel: 3, bias: use_bias}
          - conv: {name: b, out: "wide if base > 4 else 1", kernel: 1, padding: "min(1, base)"}
          - conv: {name: c, out: "make_divisible(wide * 0.7, 4)", kernel: 1}
        """
    )
    ir = compile_spec(path)
    nodes = ops_by_id(ir)
    assert ir.shapes["a"] == (6, 8, 8)  # max(6, 4); 10 - 2
    assert nodes["a"].args.bias is False
    assert ir.shapes["b"] == (16, 10, 10)  # wide = 16; padding 1 on a 1x1 conv grows 8 -> 10
    assert ir.shapes["c"][0] == 12  # 16 * 0.7 = 11.2 -> nearest multiple of 4 is 12
    overridden = compile_spec(path, params={"base": 2})
    assert overridden.params["wide"] == 4  # the derived default follows the override
    assert overridden.shapes["a"][0] == 6 and overridden.shapes["b"][0] == 1


@pytest.mark.parametrize(
    "expression",
    ["__import__('os').getpid()", "base.__class__", "(lambda: 3)()", "open('x')", "[c for c in [1]]", "2 ** 1000"],
)
def test_expressions_are_safe(write_spec, expression):
    path = write_spec(
        f"""
        name: unsafe
        params: {{base: 8}}
        inputs: {{x: [2, 4, 4]}}
        layers:
          - conv: {{out: "{expression}", kernel: 1}}
        """
    )
    with pytest.raises(SpecError):
        compile_spec(path)


# --- 12. trainable: false ------------------------------------------------------------------------
def test_frozen_stem_static_and_torch_agree():
    analysis = analyze_spec(TWO_HEADS)
    total, frozen = two_heads_params(1.0, 1.0)
    assert frozen == 3 * 32 * 9 + 2 * 32 == 928
    assert analysis.totals.params == total and analysis.totals.trainable == total - frozen == 131_476
    assert [entry.name for entry in analysis.layers if not entry.trainable] == ["stem.0.conv", "stem.0.bn", "stem.0.relu"]
    kinds = {b.name: b.kind for b in analysis.blocks}
    assert kinds["stem"] == "seq" and kinds["stem.0"] == "conv_bn"  # `trainable` on a seq reaches inside

    module = build_module(TWO_HEADS)
    assert torch_trainable(module) == analysis.totals.trainable
    assert torch_params(module) == analysis.totals.params
    assert {n for n, p in module.named_parameters() if not p.requires_grad} == {
        "stem.0.conv.weight", "stem.0.bn.weight", "stem.0.bn.bias",
    }
    # a training step leaves the stem alone and moves the rest
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    optimizer = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=0.1)
    out = module(image=torch.randn(4, 3, 32, 32))
    (out["logits"].sum() + out["aux"].sum()).backward()
    optimizer.step()
    assert module.get_parameter("stem.0.conv.weight").grad is None
    assert torch.equal(before["stem.0.conv.weight"], module.get_parameter("stem.0.conv.weight"))
    assert not torch.equal(before["body.0.conv.weight"], module.get_parameter("body.0.conv.weight"))


def test_trainable_false_on_an_op_and_a_repeat(write_spec):
    path = write_spec(
        """
        name: frozen_bits
        inputs: {x: [3, 8, 8]}
        layers:
          - conv: {name: first, out: 4, kernel: 1, trainable: false}
          - conv: {name: mid, out: 4, kernel: 1, repeat: 2, trainable: false}
          - conv: {name: last, out: 2, kernel: 1}
        """
    )
    analysis = analyze_spec(path)
    # (3+1)*4 + 2 * (4+1)*4 frozen; (4+1)*2 trainable
    assert analysis.totals.params == 16 + 40 + 10
    assert analysis.totals.trainable == 10
    module = build_module(path)
    assert torch_trainable(module) == 10
    assert [n for n, p in module.named_parameters() if p.requires_grad] == ["last.weight", "last.bias"]


# --- extends ----------------------------------------------------------------------------------------
def test_extends_variant_overrides_params():
    wide = compile_spec(TWO_HEADS_WIDE)
    assert wide.name == "two_heads_wide"
    assert wide.params == {"width": 1.5, "depth": 1.5, "num_classes": 10}  # merged key by key
    # make_divisible(48, 8) = 48, 96, 192 channels and round(3.0) = 3 stages
    assert wide.shapes["stem.0.conv"] == (48, 32, 32) and wide.shapes["head.conv"] == (192, 8, 8)
    assert "body.2.conv" in wide.order
    total, frozen = two_heads_params(1.5, 1.5)
    analysis = analyze_spec(TWO_HEADS_WIDE)
    assert analysis.totals.params == total == 378_500
    assert analysis.totals.trainable == total - frozen
    assert analysis.outputs == {"logits": (10,), "aux": (10,)}  # the rest comes from the base
    # its params can still be overridden: back to the base's figures
    assert analyze_spec(TWO_HEADS_WIDE, params={"width": 1.0, "depth": 1.0}).totals.params == 132_404
    assert torch_params(build_module(TWO_HEADS_WIDE)) == total


def test_extends_merges_blocks_and_replaces_layers(write_spec):
    write_spec(
        """
        name: base
        params: {c: 4, k: 3}
        inputs: {x: [2, 8, 8]}
        blocks:
          unit:
            params: {out: null}
            layers: [{conv: {name: conv, out: out, kernel: k, padding: 1}}]
          other:
            layers: [relu]
        layers:
          - unit: {name: u, out: c}
        """,
        "base.yaml",
    )
    variant = write_spec(
        """
        name: variant
        extends: base.yaml
        params: {c: 6}
        blocks:
          other:
            layers: [sigmoid]
        layers:
          - unit: {name: u, out: c}
          - other: {name: o}
        """,
        "variant.yaml",
    )
    ir = compile_spec(variant)
    assert ir.params == {"c": 6, "k": 3}
    assert ir.shapes["u.conv"] == (6, 8, 8)
    assert ops_by_id(ir)["o.sigmoid1"].op == "sigmoid"  # the variant's block replaced the base's
    assert analyze_spec(variant).totals.params == (2 * 9 + 1) * 6
