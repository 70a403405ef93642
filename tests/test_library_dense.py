"""Dense-prediction, detection and embedding specs of the library, against figures derived by hand.

U-Net (original and padded), FCN / DeepLabV3 / PSPNet on a dilated ResNet-50, YOLO v1, the course's
YOLO grid toy and a Siamese encoder. Every figure below is written out as arithmetic from the papers'
layer tables and compared with the static analysis (no torch); the lowered modules are built only
for the small specs (and for U-Net at a small input). torchvision's FCN and DeepLabV3 are compared
tensor by tensor in tests/test_torchvision_equivalence.py.
"""
from __future__ import annotations

import json

import pytest

import archspec
from conftest import SPECS, run_cli

DENSE = ["unet", "unet_padded", "fcn_resnet50", "deeplabv3_resnet50", "pspnet", "yolo_v1", "yolo_grid_toy", "siamese"]


def analyze(name: str, **kwargs):
    return archspec.analyze_spec(SPECS / f"{name}.yaml", **kwargs)


def shapes(analysis) -> dict[str, tuple[int, ...]]:
    return {layer.name: tuple(layer.output_shape) for layer in analysis.layers}


def conv(c_in: int, c_out: int, k: int, bias: bool = True) -> int:
    """Parameters of a k x k convolution."""
    return c_in * c_out * k * k + (c_out if bias else 0)


def bn(channels: int) -> int:
    return 2 * channels  # weight and bias


# --- U-Net --------------------------------------------------------------------------------------
# parameters per level: two 3x3 convs with bias (in -> c, c -> c); each expanding level has a 2x2
# up-convolution (2c -> c, with bias) whose output is concatenated with the skip (c + c = 2c)
UNET_LEVELS = {
    "enc1": (1 * 64 * 9 + 64) + (64 * 64 * 9 + 64),  # 37,568
    "enc2": (64 * 128 * 9 + 128) + (128 * 128 * 9 + 128),  # 221,440
    "enc3": (128 * 256 * 9 + 256) + (256 * 256 * 9 + 256),  # 885,248
    "enc4": (256 * 512 * 9 + 512) + (512 * 512 * 9 + 512),  # 3,539,968
    "bottom": (512 * 1024 * 9 + 1024) + (1024 * 1024 * 9 + 1024),  # 14,157,824
    "dec4": (1024 * 512 * 4 + 512) + (1024 * 512 * 9 + 512) + (512 * 512 * 9 + 512),  # 2,097,664 + 7,078,912
    "dec3": (512 * 256 * 4 + 256) + (512 * 256 * 9 + 256) + (256 * 256 * 9 + 256),  # 524,544 + 1,769,984
    "dec2": (256 * 128 * 4 + 128) + (256 * 128 * 9 + 128) + (128 * 128 * 9 + 128),  # 131,200 + 442,624
    "dec1": (128 * 64 * 4 + 64) + (128 * 64 * 9 + 64) + (64 * 64 * 9 + 64),  # 32,832 + 110,720
    "head": 64 * 2 + 2,  # 1x1 conv to 2 classes: 130
}


def test_unet_parameters_per_level():
    analysis = analyze("unet")
    assert sum(UNET_LEVELS.values()) == 31_030_658
    assert analysis.totals.params == 31_030_658
    assert analysis.totals.buffers == 0
    for level, params in UNET_LEVELS.items():
        owned = sum(layer.figures.params for layer in analysis.layers if layer.name.split(".")[0] == level)
        assert owned == params, level


def test_unet_sizes_of_the_paper():
    """Figure 1 of the paper: every valid 3x3 conv trims 2 pixels, pools halve, up-convs double."""
    analysis = analyze("unet")
    got = shapes(analysis)
    assert analysis.inputs == {"image": (1, 572, 572)}
    assert analysis.outputs == {"output": (2, 388, 388)}
    expected = {
        "enc1.conv2": (64, 568, 568),  # 572 -> 570 -> 568
        "enc2.pool": (64, 284, 284),
        "enc2.conv.conv2": (128, 280, 280),  # 282 -> 280
        "enc3.conv.conv2": (256, 136, 136),  # 140 -> 138 -> 136
        "enc4.conv.conv2": (512, 64, 64),  # 68 -> 66 -> 64
        "bottom.conv.conv2": (1024, 28, 28),  # 32 -> 30 -> 28
        "dec4.up": (512, 56, 56),
        "dec4.bridge": (1024, 56, 56),  # enc4 cropped 64 -> 56
        "dec4.conv.conv2": (512, 52, 52),
        "dec3.bridge": (512, 104, 104),  # enc3 cropped 136 -> 104
        "dec3.conv.conv2": (256, 100, 100),
        "dec2.bridge": (256, 200, 200),  # enc2 cropped 280 -> 200
        "dec2.conv.conv2": (128, 196, 196),
        "dec1.bridge": (128, 392, 392),  # enc1 cropped 568 -> 392
        "dec1.conv.conv2": (64, 388, 388),
        "head": (2, 388, 388),
    }
    assert {name: got[name] for name in expected} == expected
    assert analysis.depth == 23  # 18 3x3 convs + 4 up-convolutions + the 1x1 head


def test_unet_macs_and_flops_by_hand():
    # (c_in, c_out, output size) of every 3x3 conv, along the sizes checked above
    convs = [
        (1, 64, 570), (64, 64, 568),
        (64, 128, 282), (128, 128, 280),
        (128, 256, 138), (256, 256, 136),
        (256, 512, 66), (512, 512, 64),
        (512, 1024, 30), (1024, 1024, 28),
        (1024, 512, 54), (512, 512, 52),
        (512, 256, 102), (256, 256, 100),
        (256, 128, 198), (128, 128, 196),
        (128, 64, 390), (64, 64, 388),
    ]  # fmt: skip
    # 2x2 up-convolutions: every input element is scattered to c_out x 2 x 2 outputs
    upconvs = [(1024, 512, 28), (512, 256, 52), (256, 128, 100), (128, 64, 196)]  # (c_in, c_out, input size)
    macs = sum(n * n * c_out * c_in * 9 for c_in, c_out, n in convs)
    macs += sum(n * n * c_in * c_out * 4 for c_in, c_out, n in upconvs)
    macs += 388 * 388 * 2 * 64  # the 1x1 head
    analysis = analyze("unet")
    assert analysis.totals.macs == macs == 150_428_424_448
    assert analysis.totals.flops == 2 * macs == 300_856_848_896  # FlopCounterMode at 1x572x572


def test_unet_padded_is_the_same_convs_with_padding():
    analysis = analyze("unet_padded")
    # the first conv sees 3 input channels instead of 1: 2 x 64 x 9 more weights
    assert analysis.totals.params == 31_030_658 + 2 * 64 * 9 == 31_031_810
    assert analysis.inputs == {"image": (3, 256, 256)}
    assert analysis.outputs == {"output": (2, 256, 256)}
    base = {layer.name: layer.figures.params for layer in analyze("unet").layers}
    padded = {layer.name: layer.figures.params for layer in analysis.layers}
    assert padded.keys() == base.keys()  # the same layers with the same names
    assert {name for name in base if base[name] != padded[name]} == {"enc1.conv1"}
    got = shapes(analysis)
    assert got["bottom.conv.conv2"] == (1024, 16, 16)  # 256 / 2**4, no pixels lost
    assert got["dec1.bridge"] == (128, 256, 256)


@pytest.mark.parametrize("size", [256, 572, 101, 37])
def test_unet_padded_output_has_the_input_size(size):
    """Odd sizes too: the bridges pad the up-convolution to the skip's size."""
    analysis = analyze("unet_padded", params={"in_channels": 3, "num_classes": 5}, inputs={"image": (3, size, size)})
    assert analysis.outputs == {"output": (5, size, size)}
    assert analysis.totals.params == 31_031_810 - (64 * 2 + 2) + (64 * 5 + 5)


def test_unet_padded_lowered_runs_at_an_odd_size():
    from archspec.lower.verify import verify_module
    from archspec.passes.counts import analyze as analyze_ir

    ir = archspec.compile_spec(SPECS / "unet_padded.yaml", {"base": 8}, {"image": (3, 45, 45)})
    module = archspec.build_module(ir)
    analysis = analyze_ir(ir)
    failed = [check for check in verify_module(module, analysis) if not check.ok]
    assert not failed
    assert analysis.outputs == {"output": (2, 45, 45)}


def test_unet_variant_sets_only_parameters_and_input():
    """unet_padded extends unet: the same layers and blocks, other parameters."""
    base = archspec.load_spec(SPECS / "unet.yaml")
    padded = archspec.load_spec(SPECS / "unet_padded.yaml")
    assert padded.document.layers == base.document.layers
    assert padded.document.params == {**base.document.params, "in_channels": 3, "padding": 1, "fit": "pad"}
    assert set(padded.blocks) == set(base.blocks) == {"double_conv", "down", "up"}


# --- dilated ResNet-50 and the segmentation heads ----------------------------------------------------
def bottleneck(c_in: int, width: int) -> int:
    """ResNet bottleneck: 1x1 reduce, 3x3, 1x1 expand (x4), each without bias + BN; a 1x1
    projection + BN on the shortcut when the channels change (the first block of every stage)."""
    params = conv(c_in, width, 1, False) + bn(width) + conv(width, width, 3, False) + bn(width)
    params += conv(width, 4 * width, 1, False) + bn(4 * width)
    if c_in != 4 * width:
        params += conv(c_in, 4 * width, 1, False) + bn(4 * width)
    return params


def resnet50_backbone() -> int:
    params = conv(3, 64, 7, False) + bn(64)  # stem: 9,408 + 128
    c_in = 64
    for width, blocks in [(64, 3), (128, 4), (256, 6), (512, 3)]:
        params += bottleneck(c_in, width) + (blocks - 1) * bottleneck(4 * width, width)
        c_in = 4 * width
    return params


BACKBONE = 23_508_032  # torchvision's ResNet-50 (25,557,032) without its fc (2048 x 1000 + 1000)

FCN_HEAD = conv(2048, 512, 3, False) + bn(512) + conv(512, 21, 1)  # FCNHead: 2048 // 4 = 512 channels
ASPP = (
    conv(2048, 256, 1, False) + bn(256)  # 1x1 branch
    + 3 * (conv(2048, 256, 3, False) + bn(256))  # 3x3 branches at rates 12, 24, 36
    + conv(2048, 256, 1, False) + bn(256)  # image pooling branch
    + conv(5 * 256, 256, 1, False) + bn(256)  # projection of the 5 concatenated branches
)
DEEPLAB_HEAD = ASPP + conv(256, 256, 3, False) + bn(256) + conv(256, 21, 1)


def test_dilated_resnet50_backbone_by_hand():
    assert resnet50_backbone() == BACKBONE == 25_557_032 - (2048 * 1000 + 1000)


@pytest.mark.parametrize(
    "name, head, total",
    [("fcn_resnet50", FCN_HEAD, 32_957_013), ("deeplabv3_resnet50", DEEPLAB_HEAD, 39_638_869)],
)
def test_segmentation_parameters_by_hand(name, head, total):
    analysis = analyze(name)
    assert BACKBONE + head == total
    assert analysis.totals.params == total
    classifier = sum(layer.figures.params for layer in analysis.layers if layer.name.startswith("classifier."))
    assert classifier == head


@pytest.mark.parametrize("name", ["fcn_resnet50", "deeplabv3_resnet50", "pspnet"])
def test_segmentation_output_stride_8_and_input_size_output(name):
    analysis = analyze(name, inputs={"image": (3, 224, 224)})
    got = shapes(analysis)
    assert analysis.outputs == {"out": (21, 224, 224)}
    assert got["backbone.layer1.2.relu3"] == (256, 56, 56)
    assert got["backbone.layer2.3.relu3"] == (512, 28, 28)
    assert got["backbone.layer3.5.relu3"] == (1024, 28, 28)  # dilated, not strided
    assert got["backbone.layer4.2.relu3"] == (2048, 28, 28)


def test_dilation_follows_torchvision_make_layer():
    """replace_stride_with_dilation=[False, True, True]: the first block of a dilated stage keeps the
    previous dilation (and gets a stride-1 projection), the others use the new one."""
    ir = archspec.compile_spec(SPECS / "fcn_resnet50.yaml")
    for stage, first, rest in [("layer3", 1, 2), ("layer4", 2, 4)]:
        for block in range(3):
            args = ir.node(f"backbone.{stage}.{block}.conv2").args
            assert args.stride == 1
            assert args.dilation == args.padding == (first if block == 0 else rest)
        projection = ir.node(f"backbone.{stage}.0.downsample.0").args
        assert (projection.kernel, projection.stride) == (1, 1)
    assert ir.node("backbone.layer2.0.conv2").args.stride == 2


def test_deeplab_names_mirror_torchvision():
    analysis = analyze("deeplabv3_resnet50")
    names = {layer.name: layer for layer in analysis.layers}
    for name in ["backbone.conv1", "backbone.layer1.0.conv1", "backbone.layer4.2.bn3", "classifier.0.convs.0.0",
                 "classifier.0.convs.3.1", "classifier.0.convs.4.1", "classifier.0.project.0", "classifier.4"]:  # fmt: skip
        assert names[name].figures.params > 0, name
    assert names["classifier.0.convs.4.0"].output_shape == (2048, 1, 1)  # image pooling
    assert names["classifier.0.convs.4.4"].output_shape == (256, 65, 65)  # upsampled back
    assert names["classifier.0.convs.concat"].output_shape == (1280, 65, 65)  # 520 / 8 = 65
    assert names["classifier.1"].output_shape == (256, 65, 65)


def test_pspnet_parameters_by_hand():
    ppm = 4 * (conv(2048, 512, 1, False) + bn(512))  # one 1x1 reduction per bin: 4,198,400
    head = conv(2048 + 4 * 512, 512, 3, False) + bn(512) + conv(512, 21, 1)
    analysis = analyze("pspnet")
    assert analysis.totals.params == BACKBONE + ppm + head == 46_592_597
    assert sum(layer.figures.params for layer in analysis.layers if layer.name.startswith("ppm.")) == ppm


def test_pspnet_pyramid_bins():
    analysis = analyze("pspnet")
    got = shapes(analysis)
    assert analysis.inputs == {"image": (3, 473, 473)}
    assert analysis.outputs == {"out": (21, 473, 473)}
    feature = 60  # 473 -> 237 (conv1) -> 119 (maxpool) -> 60 (layer2), then dilated
    for level, size in enumerate([1, 2, 3, 6], start=1):
        assert got[f"ppm.level{level}.pool"] == (2048, size, size)
        assert got[f"ppm.level{level}.reduce.conv1"] == (512, size, size)
        assert got[f"ppm.level{level}.upsample1"] == (512, feature, feature)
    assert got["ppm.concat1"] == (4096, feature, feature)
    # the 1x1 reductions cost 2048 x 512 per pooled position: (1 + 4 + 9 + 36) positions
    reductions = sum(layer.figures.macs for layer in analysis.layers if layer.name.startswith("ppm."))
    assert reductions == 2048 * 512 * (1 + 4 + 9 + 36)


# --- YOLO -----------------------------------------------------------------------------------------
# Figure 3 of the YOLO paper: (c_in, c_out, kernel, output size) of the 24 convolutions, with bias
YOLO_CONVS = [
    (3, 64, 7, 224), (64, 192, 3, 112),
    (192, 128, 1, 56), (128, 256, 3, 56), (256, 256, 1, 56), (256, 512, 3, 56),
    *[(512, 256, 1, 28), (256, 512, 3, 28)] * 4, (512, 512, 1, 28), (512, 1024, 3, 28),
    *[(1024, 512, 1, 14), (512, 1024, 3, 14)] * 2, (1024, 1024, 3, 14), (1024, 1024, 3, 7),
    (1024, 1024, 3, 7), (1024, 1024, 3, 7),
]  # fmt: skip


def test_yolo_v1_by_hand():
    assert len(YOLO_CONVS) == 24
    fc1 = 7 * 7 * 1024 * 4096 + 4096
    fc2 = 4096 * 1470 + 1470  # S x S x (B x 5 + C) = 7 x 7 x 30
    params = sum(conv(c_in, c_out, k) for c_in, c_out, k, _ in YOLO_CONVS) + fc1 + fc2
    macs = sum(n * n * c_out * c_in * k * k for c_in, c_out, k, n in YOLO_CONVS) + 7 * 7 * 1024 * 4096 + 4096 * 1470
    analysis = analyze("yolo_v1")
    assert analysis.totals.params == params == 271_703_550
    assert analysis.totals.macs == macs == 20_285_153_280
    assert analysis.depth == 26  # 24 convolutional + 2 fully connected layers
    assert analysis.inputs == {"image": (3, 448, 448)}
    assert analysis.outputs == {"output": (30, 7, 7)}
    got = [layer for layer in analysis.layers if layer.op == "conv"]
    assert [(layer.output_shape[0], layer.output_shape[1]) for layer in got] == [(c, n) for _, c, _, n in YOLO_CONVS]
    slopes = [node.args.negative_slope for node in archspec.compile_spec(SPECS / "yolo_v1.yaml").nodes() if node.op == "leaky_relu"]
    assert slopes == [0.1] * 25  # after every conv and the first fc; the last fc is linear


def test_yolo_v1_grid_parameters():
    analysis = analyze("yolo_v1", params={"C": 80, "B": 3})
    assert analysis.outputs == {"output": (3 * 5 + 80, 7, 7)}


# the toy: 5 x (3x3 conv + ReLU + 2x2 pool), 100 -> 50 -> 25 -> 12 -> 6 -> 3, then the fc layers as 1x1 convs
TOY_CONVS = [(3, 16, 3, 100), (16, 32, 3, 50), (32, 64, 3, 25), (64, 128, 3, 12), (128, 256, 3, 6), (256, 256, 1, 3)]


@pytest.mark.parametrize("anchors, channels", [(1, 8), (2, 16)])
def test_yolo_grid_toy(anchors, channels):
    """y = [pc, bx, by, bh, bw, c1, c2, c3] per cell and anchor: 3x3x8, or 3x3x16 with 2 anchors."""
    analysis = analyze("yolo_grid_toy", params={"anchors": anchors})
    assert analysis.inputs == {"image": (3, 100, 100)}
    assert analysis.outputs == {"output": (channels, 3, 3)}
    head = 256 * channels + channels
    assert analysis.totals.params == sum(conv(*c[:3]) for c in TOY_CONVS) + head
    assert analysis.totals.params == {1: 460_456, 2: 462_512}[anchors]
    macs = sum(n * n * c_out * c_in * k * k for c_in, c_out, k, n in TOY_CONVS) + 3 * 3 * channels * 256
    assert analysis.totals.macs == macs
    assert all(layer.op != "linear" for layer in analysis.layers)  # fully convolutional


def test_yolo_grid_toy_lowered_at_both_settings():
    import torch

    for anchors in (1, 2):
        module = archspec.build_module(SPECS / "yolo_grid_toy.yaml", anchors=anchors).eval()
        with torch.no_grad():
            assert module(image=torch.randn(2, 3, 100, 100)).shape == (2, 8 * anchors, 3, 3)


# --- Siamese --------------------------------------------------------------------------------------
ENCODER = (
    conv(3, 32, 3, False) + bn(32)  # 864 + 64
    + conv(32, 64, 3, False) + bn(64)  # 18,432 + 128
    + conv(64, 128, 3, False) + bn(128)  # 73,728 + 256
    + 128 * 128 + 128  # fc to the 128-d embedding
)


def test_siamese_counts_the_shared_encoder_once():
    analysis = analyze("siamese")
    assert analysis.inputs == {"left": (3, 96, 96), "right": (3, 96, 96)}
    assert analysis.outputs == {"left": (128,), "right": (128,)}
    assert analysis.totals.params == ENCODER == 109_984
    assert analysis.totals.buffers == (2 * 32 + 1) + (2 * 64 + 1) + (2 * 128 + 1)
    right = [layer for layer in analysis.layers if layer.name.startswith("encoder_right.")]
    assert right and all(layer.figures.params == 0 and layer.module.startswith("encoder.") for layer in right)
    # the compute is paid twice, once per image
    encoder_macs = 96 * 96 * 32 * 3 * 9 + 48 * 48 * 64 * 32 * 9 + 24 * 24 * 128 * 64 * 9 + 128 * 128
    assert analysis.totals.macs == 2 * encoder_macs


def test_siamese_lowered_shares_weights():
    import torch

    module = archspec.build_module(SPECS / "siamese.yaml")
    assert sum(p.numel() for p in module.parameters()) == ENCODER
    assert not hasattr(module, "encoder_right")
    x = torch.randn(3, 3, 96, 96)
    for mode in (module.train, module.eval):
        mode()
        with torch.no_grad():
            out = module(left=x, right=x.clone())
        assert out["left"].shape == (3, 128)
        assert torch.equal(out["left"], out["right"])
    with torch.no_grad():
        out = module(left=x, right=torch.randn(3, 3, 96, 96))
    assert not torch.equal(out["left"], out["right"])


# --- the command line -----------------------------------------------------------------------------
def test_report_json_totals():
    expected = {
        "unet": 31_030_658,
        "unet_padded": 31_031_810,
        "fcn_resnet50": 32_957_013,
        "deeplabv3_resnet50": 39_638_869,
        "pspnet": 46_592_597,
        "yolo_v1": 271_703_550,
        "yolo_grid_toy": 460_456,
        "siamese": 109_984,
    }
    result = run_cli("report", *(f"specs/{name}.yaml" for name in DENSE), "--format", "json")
    assert result.returncode == 0, result.stderr
    reports = {report["name"]: report for report in json.loads(result.stdout)}
    assert {name: reports[name]["params"]["total"] for name in DENSE} == expected
    assert reports["unet"]["flops"] == 300_856_848_896
    for name in DENSE:
        assert reports[name]["summary"] and reports[name]["paper"], name
