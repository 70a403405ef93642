"""Classic classification specs of the library, against stated and hand-derived figures.

AlexNet (torchvision's and the 2012 paper's), VGG-11/16/19/16-BN, ResNet-18/34/50/101/152, Network
in Network and SPP-net. Every figure is either one that torchvision states (its weights' meta) or
written out below as arithmetic from the papers' layer tables, and is compared with the static
analysis (no torch) and with `archspec report --format json`. Only the small specs are lowered
here; the torchvision counterparts are compared tensor by tensor in
tests/test_torchvision_equivalence.py, which builds them once.
"""
from __future__ import annotations

import json

import pytest

import archspec
from conftest import SPECS, run_cli
from archspec.spec.yaml_source import parse_yaml, read_text

# name: (parameters, FlopCounterMode FLOPs at the default input at batch 1, or None)
STATED = {
    "alexnet": (61_100_840, 1_428_376_960),  # torchvision's meta; FLOPs = 2 * 714,188,480 MACs
    "alexnet_2012": (60_965_224, 2 * 724_406_816),  # derived in test_alexnet_2012_by_hand
    "vgg11": (132_863_336, None),
    "vgg16": (138_357_544, 30_940_528_640),
    "vgg19": (143_667_240, None),
    "vgg16_bn": (138_365_992, None),
    "resnet18": (11_689_512, 3_628_146_688),
    "resnet34": (21_797_672, None),
    "resnet50": (25_557_032, 8_178_368_512),
    "resnet101": (44_549_160, None),
    "resnet152": (60_192_808, None),
    "nin": (966_986, 2 * 222_486_528),  # derived in test_nin_by_hand
    "spp_net": (46_628_968, None),  # derived in test_spp_net_by_hand
}
CLASSIC = list(STATED)


def analyze(name: str, **kwargs):
    return archspec.analyze_spec(SPECS / f"{name}.yaml", **kwargs)


def by_name(analysis) -> dict:
    return {layer.name: layer for layer in analysis.layers}


def conv(c_in: int, c_out: int, k: int, groups: int = 1, bias: bool = True) -> int:
    """Parameters of a k x k convolution."""
    return (c_in // groups) * c_out * k * k + (c_out if bias else 0)


def linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def bn(channels: int) -> int:
    return 2 * channels  # weight and bias (running mean/var are buffers)


# --- every spec: the stated figures, statically and through the CLI's JSON report -----------------
@pytest.mark.parametrize("name", CLASSIC)
def test_stated_figures_static(name):
    params, flops = STATED[name]
    analysis = analyze(name)
    assert analysis.totals.params == params
    assert analysis.totals.trainable == params
    if flops is not None:
        assert analysis.totals.flops == flops


def test_stated_figures_json_report():
    run = run_cli("report", *(f"specs/{name}.yaml" for name in CLASSIC), "--format", "json")
    assert run.returncode == 0, run.stderr
    reports = {report["name"]: report for report in json.loads(run.stdout)}
    assert list(reports) == CLASSIC
    for name, (params, flops) in STATED.items():
        assert reports[name]["params"]["total"] == params, name
        if flops is not None:
            assert reports[name]["flops"] == flops, name


@pytest.mark.parametrize("name", CLASSIC)
def test_metadata(name):
    document = archspec.load_spec(SPECS / f"{name}.yaml").document
    assert document.name == name
    assert document.summary and document.paper and document.task == "classification"
    assert list(document.inputs) == ["image"]


# --- variants share one definition --------------------------------------------------------------
VARIANTS = {  # variant: the spec it extends
    "vgg16": "vgg11.yaml",
    "vgg19": "vgg11.yaml",
    "vgg16_bn": "vgg16.yaml",
    "resnet34": "resnet18.yaml",
    "resnet50": "resnet18.yaml",
    "resnet101": "resnet50.yaml",
    "resnet152": "resnet50.yaml",
}


@pytest.mark.parametrize("name", VARIANTS)
def test_variants_are_a_few_lines_over_a_base(name):
    path = SPECS / f"{name}.yaml"
    raw = parse_yaml(read_text(path), str(path))
    assert raw["extends"] == VARIANTS[name]
    own = set(raw) - {"extends", "name", "summary", "paper", "params"}
    # only ResNet-50 (the bottleneck base) restates the layers: a block name is not a parameter
    assert own == ({"layers"} if name == "resnet50" else set())


# --- AlexNet (torchvision) ----------------------------------------------------------------------
def test_alexnet_by_hand():
    analysis = analyze("alexnet")
    layers = by_name(analysis)
    expected = {  # name: (output shape, parameters, MACs)
        "features.0": ((64, 55, 55), conv(3, 64, 11), 55 * 55 * 64 * 3 * 11 * 11),  # (224 + 4 - 11) // 4 + 1
        "features.2": ((64, 27, 27), 0, 0),
        "features.3": ((192, 27, 27), conv(64, 192, 5), 27 * 27 * 192 * 64 * 25),
        "features.5": ((192, 13, 13), 0, 0),
        "features.6": ((384, 13, 13), conv(192, 384, 3), 13 * 13 * 384 * 192 * 9),
        "features.8": ((256, 13, 13), conv(384, 256, 3), 13 * 13 * 256 * 384 * 9),
        "features.10": ((256, 13, 13), conv(256, 256, 3), 13 * 13 * 256 * 256 * 9),
        "features.12": ((256, 6, 6), 0, 0),
        "avgpool": ((256, 6, 6), 0, 0),
        "classifier.1": ((4096,), linear(9216, 4096), 9216 * 4096),
        "classifier.4": ((4096,), linear(4096, 4096), 4096 * 4096),
        "classifier.6": ((1000,), linear(4096, 1000), 4096 * 1000),
    }
    for name, (shape, params, macs) in expected.items():
        assert (layers[name].output_shape, layers[name].figures.params, layers[name].figures.macs) == (shape, params, macs), name
    # 23,296 + 307,392 + 663,936 + 884,992 + 590,080 + 37,752,832 + 16,781,312 + 4,097,000
    assert sum(p for _, p, _ in expected.values()) == 61_100_840
    assert sum(m for _, _, m in expected.values()) == analysis.totals.macs == 714_188_480
    assert [layer.name for layer in analysis.layers if layer.figures.params] == [
        "features.0", "features.3", "features.6", "features.8", "features.10",
        "classifier.1", "classifier.4", "classifier.6",
    ]  # fmt: skip


# --- AlexNet as in the 2012 paper -----------------------------------------------------------------
def test_alexnet_2012_by_hand():
    """227x227x3; the two GPUs' halves as groups=2 on conv2, conv4, conv5 (conv3 sees both)."""
    analysis = analyze("alexnet_2012")
    layers = by_name(analysis)
    expected = {  # name: (output shape, parameters, MACs = H_out * W_out * C_out * C_in/groups * k * k)
        "conv1": ((96, 55, 55), 11 * 11 * 3 * 96 + 96, 55 * 55 * 96 * 3 * 11 * 11),  # (227 - 11) / 4 + 1 = 55
        "norm1": ((96, 55, 55), 0, 0),
        "pool1": ((96, 27, 27), 0, 0),  # (55 - 3) / 2 + 1 = 27, overlapping 3x3/2
        "conv2": ((256, 27, 27), 5 * 5 * 48 * 256 + 256, 27 * 27 * 256 * 48 * 5 * 5),  # pad 2, 96 / 2 = 48 per group
        "norm2": ((256, 27, 27), 0, 0),
        "pool2": ((256, 13, 13), 0, 0),  # (27 - 3) / 2 + 1 = 13
        "conv3": ((384, 13, 13), 3 * 3 * 256 * 384 + 384, 13 * 13 * 384 * 256 * 3 * 3),
        "conv4": ((384, 13, 13), 3 * 3 * 192 * 384 + 384, 13 * 13 * 384 * 192 * 3 * 3),  # 384 / 2 = 192 per group
        "conv5": ((256, 13, 13), 3 * 3 * 192 * 256 + 256, 13 * 13 * 256 * 192 * 3 * 3),
        "pool5": ((256, 6, 6), 0, 0),  # (13 - 3) / 2 + 1 = 6
        "fc6": ((4096,), 6 * 6 * 256 * 4096 + 4096, 9216 * 4096),
        "fc7": ((4096,), 4096 * 4096 + 4096, 4096 * 4096),
        "fc8": ((1000,), 4096 * 1000 + 1000, 4096 * 1000),
    }
    for name, (shape, params, macs) in expected.items():
        assert (layers[name].output_shape, layers[name].figures.params, layers[name].figures.macs) == (shape, params, macs), name
    # 34,944 + 307,456 + 885,120 + 663,936 + 442,624 + 37,752,832 + 16,781,312 + 4,097,000
    assert sum(p for _, p, _ in expected.values()) == analysis.totals.params == 60_965_224
    # 105,415,200 + 223,948,800 + 149,520,384 + 112,140,288 + 74,760,192 + 37,748,736 + 16,777,216 + 4,096,000
    assert sum(m for _, _, m in expected.values()) == analysis.totals.macs == 724_406_816
    assert analysis.totals.buffers == 0 and analysis.depth == 8
    assert [layers[n].op for n in ("norm1", "norm2")] == ["lrn", "lrn"]
    assert analysis.inputs == {"image": (3, 227, 227)}


# --- VGG ----------------------------------------------------------------------------------------
VGG_CFGS = {  # torchvision's vgg.cfgs, written out ("M" = 2x2 max pool)
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
VGG_CFGS["vgg16_bn"] = VGG_CFGS["vgg16"]


def make_layers(cfg: list, batch_norm: bool) -> tuple[list[tuple[str, str, int]], int]:
    """torchvision's make_layers as (features.k, op, parameters) of the weighted layers, and the
    total parameters of `features`."""
    weighted, index, c_in, total = [], 0, 3, 0
    for v in cfg:
        if v == "M":
            index += 1
            continue
        weighted.append((f"features.{index}", "conv", conv(c_in, v, 3)))
        if batch_norm:
            weighted.append((f"features.{index + 1}", "bn", bn(v)))
        total += conv(c_in, v, 3) + (bn(v) if batch_norm else 0)
        index += 3 if batch_norm else 2
        c_in = v
    return weighted, total


# classifier: 512 * 7 * 7 -> 4096 -> 4096 -> 1000
VGG_CLASSIFIER = linear(25088, 4096) + linear(4096, 4096) + linear(4096, 1000)  # 119,586,344


@pytest.mark.parametrize("name", list(VGG_CFGS))
def test_vgg_mirrors_make_layers(name):
    weighted, features = make_layers(VGG_CFGS[name], batch_norm=name.endswith("_bn"))
    analysis = analyze(name)
    got = [(layer.name, layer.op, layer.figures.params) for layer in analysis.layers if layer.figures.params]
    classifier = [("classifier.0", "linear", linear(25088, 4096)), ("classifier.3", "linear", linear(4096, 4096)), ("classifier.6", "linear", linear(4096, 1000))]
    assert got == weighted + classifier
    assert features + VGG_CLASSIFIER == STATED[name][0] == analysis.totals.params
    assert by_name(analysis)["avgpool"].output_shape == (512, 7, 7)
    # vgg16: 15,470,264,320 MACs (torchvision's "_ops": 15.47 GMACs), twice that in FLOPs
    assert analysis.totals.flops == 2 * analysis.totals.macs


# --- ResNet -------------------------------------------------------------------------------------
def resnet_params(stages: list[int], bottleneck: bool) -> int:
    """torchvision's ResNet counted block by block: convs without bias, BN after each, a 1x1
    projection (+ BN) on the first block of a stage whose shape changes."""
    expansion = 4 if bottleneck else 1
    total = conv(3, 64, 7, bias=False) + bn(64)  # stem
    c_in = 64
    for stage, blocks in enumerate(stages):
        width = 64 * 2**stage
        c_out = width * expansion
        for index in range(blocks):
            if bottleneck:
                total += conv(c_in, width, 1, bias=False) + bn(width)
                total += conv(width, width, 3, bias=False) + bn(width)
                total += conv(width, c_out, 1, bias=False) + bn(c_out)
            else:
                total += conv(c_in, c_out, 3, bias=False) + bn(c_out) + conv(c_out, c_out, 3, bias=False) + bn(c_out)
            if index == 0 and (c_in != c_out or stage > 0):
                total += conv(c_in, c_out, 1, bias=False) + bn(c_out)  # downsample.0 / downsample.1
            c_in = c_out
    return total + linear(c_in, 1000)


@pytest.mark.parametrize(
    "name, stages, bottleneck",
    [
        ("resnet18", [2, 2, 2, 2], False),
        ("resnet34", [3, 4, 6, 3], False),
        ("resnet50", [3, 4, 6, 3], True),
        ("resnet101", [3, 4, 23, 3], True),
        ("resnet152", [3, 8, 36, 3], True),
    ],
)
def test_resnet_by_blocks(name, stages, bottleneck):
    analysis = analyze(name)
    assert resnet_params(stages, bottleneck) == STATED[name][0] == analysis.totals.params
    layers = by_name(analysis)
    last = f"layer4.{stages[3] - 1}"
    assert layers[f"{last}.conv3" if bottleneck else f"{last}.conv2"].output_shape == (2048 if bottleneck else 512, 7, 7)
    assert "layer1.0.downsample.0" in layers if bottleneck else "layer1.0.downsample.0" not in layers
    assert "layer2.0.downsample.1" in layers and "layer2.1.downsample.0" not in layers
    # depth as in the names: every conv and the fc, projections left out
    assert sum(1 for layer in analysis.layers if layer.op in ("conv", "linear") and "downsample" not in layer.name) == int(name[6:])


# --- Network in Network -------------------------------------------------------------------------
def test_nin_by_hand():
    """CIFAR-10: 192-160-96 (5x5), max pool 3/2, dropout; 192-192-192 (5x5), avg pool 3/2, dropout;
    192-192-10 (3x3), global average pooling. Pools round up (Caffe): 32 -> 16 -> 8."""
    analysis = analyze("nin")
    layers = by_name(analysis)
    expected = {  # name: (output shape, parameters, MACs)
        "mlpconv1.conv1": ((192, 32, 32), 5 * 5 * 3 * 192 + 192, 32 * 32 * 192 * 3 * 5 * 5),  # pad 2 keeps 32
        "mlpconv1.conv2": ((160, 32, 32), 192 * 160 + 160, 32 * 32 * 160 * 192),
        "mlpconv1.conv3": ((96, 32, 32), 160 * 96 + 96, 32 * 32 * 96 * 160),
        "pool1": ((96, 16, 16), 0, 0),  # ceil((32 - 3) / 2) + 1 = 16
        "mlpconv2.conv1": ((192, 16, 16), 5 * 5 * 96 * 192 + 192, 16 * 16 * 192 * 96 * 5 * 5),
        "mlpconv2.conv2": ((192, 16, 16), 192 * 192 + 192, 16 * 16 * 192 * 192),
        "mlpconv2.conv3": ((192, 16, 16), 192 * 192 + 192, 16 * 16 * 192 * 192),
        "pool2": ((192, 8, 8), 0, 0),  # ceil((16 - 3) / 2) + 1 = 8
        "mlpconv3.conv1": ((192, 8, 8), 3 * 3 * 192 * 192 + 192, 8 * 8 * 192 * 192 * 3 * 3),  # pad 1 keeps 8
        "mlpconv3.conv2": ((192, 8, 8), 192 * 192 + 192, 8 * 8 * 192 * 192),
        "mlpconv3.conv3": ((10, 8, 8), 192 * 10 + 10, 8 * 8 * 10 * 192),  # one confidence map per class
        "pool3": ((10,), 0, 0),  # global average: the class scores
    }
    for name, (shape, params, macs) in expected.items():
        assert (layers[name].output_shape, layers[name].figures.params, layers[name].figures.macs) == (shape, params, macs), name
    # 14,592 + 30,880 + 15,456 + 460,992 + 37,056 + 37,056 + 331,968 + 37,056 + 1,930
    assert sum(p for _, p, _ in expected.values()) == analysis.totals.params == 966_986
    # 1024 * 60,480 + 256 * 534,528 + 64 * 370,560 = 61,931,520 + 136,839,168 + 23,715,840
    assert sum(m for _, _, m in expected.values()) == analysis.totals.macs == 222_486_528
    assert analysis.outputs == {"output": (10,)}
    assert not any(layer.op == "linear" for layer in analysis.layers)  # no fully connected layer
    assert sum(1 for layer in analysis.layers if layer.op == "relu") == 9  # every conv has its ReLU


# --- SPP-net ------------------------------------------------------------------------------------
SPP_VECTOR = 256 * (4 * 4 + 2 * 2 + 1 * 1)  # 5,376 values, whatever the input size
SPP_PARAMS = (
    7 * 7 * 3 * 96 + 96  # conv1: 14,208
    + 5 * 5 * 96 * 256 + 256  # conv2: 614,656
    + 3 * 3 * 256 * 384 + 384  # conv3: 885,120
    + 3 * 3 * 384 * 384 + 384  # conv4: 1,327,488
    + 3 * 3 * 384 * 256 + 256  # conv5: 884,992
    + SPP_VECTOR * 4096 + 4096  # fc6: 22,024,192
    + 4096 * 4096 + 4096  # fc7: 16,781,312
    + 4096 * 1000 + 1000  # fc8: 4,097,000
)


def spp_conv5(height: int, width: int) -> tuple[int, int, int]:
    """conv1 7x7/2 pad 1, pool 3/2 rounding up, conv2 5x5/2, pool 3/2 rounding up; conv3-5 keep the size."""

    def side(n: int) -> int:
        n = (n + 2 - 7) // 2 + 1
        n = -(-(n - 3) // 2) + 1
        n = (n - 5) // 2 + 1
        return -(-(n - 3) // 2) + 1

    return (256, side(height), side(width))


SPP_SIZES = {  # input (C, H, W): conv5's maps
    (3, 224, 224): (256, 13, 13),  # 224 -> 110 -> 55 -> 26 -> 13 (the paper's 13x13)
    (3, 180, 180): (256, 10, 10),  # 180 -> 88 -> 44 -> 20 -> 10
    (3, 256, 300): (256, 15, 17),  # 256 -> 126 -> 63 -> 30 -> 15; 300 -> 148 -> 74 -> 35 -> 17
}


def test_spp_net_by_hand():
    assert SPP_VECTOR == 5376 and SPP_PARAMS == 46_628_968
    for size, conv5 in SPP_SIZES.items():
        assert spp_conv5(*size[1:]) == conv5
        analysis = analyze("spp_net", inputs={"image": size})
        layers = by_name(analysis)
        assert layers["conv5"].output_shape == conv5, size
        assert [layers[f"spp.bins{n}x{n}.adaptive_maxpool1"].output_shape for n in (4, 2, 1)] == [(256, 4, 4), (256, 2, 2), (256, 1, 1)]
        assert layers["spp.concat"].output_shape == (SPP_VECTOR,), size
        assert analysis.totals.params == SPP_PARAMS, size
        assert analysis.outputs == {"output": (1000,)}
        assert layers["fc6"].figures.macs == SPP_VECTOR * 4096  # the same fc6 for every size


def test_spp_net_input_sizes_through_the_cli():
    for size in ((3, 180, 180), (3, 256, 300)):
        run = run_cli("report", "specs/spp_net.yaml", "--input", "x".join(map(str, size)), "--format", "json")
        assert run.returncode == 0, run.stderr
        report = json.loads(run.stdout)
        assert report["params"]["total"] == SPP_PARAMS
        assert report["inputs"] == {"image": list(size)}
        concat = next(layer for layer in report["layers"] if layer["name"] == "spp.concat")
        assert concat["output_shape"] == [SPP_VECTOR]


# --- torch agrees with the analysis (the small specs; one SPP-net module for every size) ----------
def test_small_specs_lower_and_agree_with_torch():
    pytest.importorskip("torch")
    from archspec.lower.verify import verify_module

    for name in ("nin", "alexnet_2012"):
        analysis = analyze(name)
        module = archspec.build_module(SPECS / f"{name}.yaml")
        assert [check.what for check in verify_module(module, analysis) if not check.ok] == [], name


def test_spp_net_one_module_for_every_input_size():
    """The pyramid makes the fc layers independent of the input size: one lowered module runs
    at every size, and torch's output, parameters and FLOPs equal the analysis at each."""
    pytest.importorskip("torch")
    from archspec.lower.verify import verify_module

    module = archspec.build_module(SPECS / "spp_net.yaml")
    for size in SPP_SIZES:
        analysis = analyze("spp_net", inputs={"image": size})
        assert [check.what for check in verify_module(module, analysis) if not check.ok] == [], size
