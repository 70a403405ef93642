"""RoI pooling (`roi_pool`, `roi_align`), linear over the last axis, and the Fast R-CNN spec.

The ops are checked against torchvision.ops called directly; the spec's parameters are derived
by hand from the layer sizes, its conv part loads torchvision's VGG-16 features, and its FLOPs
are what FlopCounterMode counts on the lowered module.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torchvision

from archspec.lower.verify import flop_counter

from archspec import SpecError
from archspec.lower.fx import lower
from archspec.passes.memory import estimate_memory
from archspec.pipeline import compile
from conftest import SPECS

FAST_RCNN = SPECS / "fast_rcnn_vgg16.yaml"


def random_boxes(images: int, per_image: int, size: float, generator: torch.Generator) -> torch.Tensor:
    """(images, per_image, 5) valid boxes in a size x size image: x1 <= x2, y1 <= y2, column 0 the image."""
    corners = torch.rand(images, per_image, 2, 2, generator=generator) * size
    low, high = corners.min(dim=2).values, corners.max(dim=2).values
    index = torch.arange(images, dtype=torch.float32).reshape(images, 1, 1).expand(images, per_image, 1)
    return torch.cat([index, low, high], dim=2)


def roi_spec(write_spec, op_text: str, features="[4, 12, 12]", boxes="[6, 5]", before: str = "") -> str:
    return write_spec(f"""
        name: roi
        inputs: {{x: {features}, boxes: {boxes}}}
        layers:
        {before}  - {op_text}
    """)


def pool_and_reference(write_spec, op_text: str, direct, images=3, per_image=6, seed=0):
    """The lowered module's output and torchvision's, called directly on the flattened boxes."""
    generator = torch.Generator().manual_seed(seed)
    compiled = compile(roi_spec(write_spec, op_text, boxes=f"[{per_image}, 5]"))
    features = torch.randn(images, 4, 12, 12, generator=generator)
    boxes = random_boxes(images, per_image, 24.0, generator)  # a 24-pixel image, spatial_scale 0.5
    with torch.no_grad():
        actual = compiled.module()(x=features, boxes=boxes)
        expected = direct(features, boxes.reshape(images * per_image, 5))
    return compiled, actual, expected.reshape(images, per_image, *expected.shape[1:])


# --- the ops against torchvision.ops ---------------------------------------------------------------
def test_roi_pool_equals_torchvision(write_spec):
    op = "roi_pool: {name: pool, from: [x, boxes], output: 3, spatial_scale: 0.5}"
    direct = lambda f, b: torchvision.ops.roi_pool(f, b, output_size=3, spatial_scale=0.5)  # noqa: E731
    compiled, actual, expected = pool_and_reference(write_spec, op, direct)
    assert torch.equal(actual, expected)
    assert tuple(actual.shape[1:]) == compiled.ir.shapes["pool"] == (6, 4, 3, 3)


@pytest.mark.parametrize("extra, sampling_ratio, aligned", [("", -1, False), (", sampling_ratio: 2, aligned: true", 2, True)])
def test_roi_align_equals_torchvision(write_spec, extra, sampling_ratio, aligned):
    op = f"roi_align: {{name: pool, from: [x, boxes], output: [2, 5], spatial_scale: 0.5{extra}}}"
    direct = lambda f, b: torchvision.ops.roi_align(f, b, (2, 5), 0.5, sampling_ratio, aligned)  # noqa: E731
    compiled, actual, expected = pool_and_reference(write_spec, op, direct, seed=1)
    assert torch.equal(actual, expected)
    assert tuple(actual.shape[1:]) == compiled.ir.shapes["pool"] == (6, 4, 2, 5)


def test_column_zero_picks_the_feature_map_as_given(write_spec):
    """The rows go to torchvision as they are: image 0's boxes may read image 2's map. An index
    outside the batch is clamped into it (torchvision would read outside the tensor)."""
    generator = torch.Generator().manual_seed(2)
    module = compile(roi_spec(write_spec, "roi_pool: {from: [x, boxes], output: 2}", boxes="[6, 5]")).module()
    features = torch.randn(3, 4, 12, 12, generator=generator)
    boxes = random_boxes(3, 6, 12.0, generator)
    boxes[0, :, 0] = 2
    crossed = torchvision.ops.roi_pool(features, boxes.reshape(18, 5), 2).reshape(3, 6, 4, 2, 2)
    assert torch.equal(module(x=features, boxes=boxes), crossed)
    outside = boxes.clone()
    outside[1, :, 0] = 7
    clamped = outside.clone()
    clamped[1, :, 0] = 2
    assert torch.equal(module(x=features, boxes=outside), module(x=features, boxes=clamped))


@pytest.mark.parametrize("op", ["roi_pool", "roi_align"])
@pytest.mark.parametrize("output, features, boxes", [(7, (8, 5, 9), 3), ([2, 4], (3, 16, 16), 1)])
def test_static_shapes_are_the_torch_output_shapes(write_spec, op, output, features, boxes):
    path = roi_spec(write_spec, f"{op}: {{name: pool, from: [x, boxes], output: {output}, spatial_scale: 0.25}}",
                    features=list(features), boxes=f"[{boxes}, 5]")
    compiled = compile(path)
    generator = torch.Generator().manual_seed(3)
    rois = random_boxes(2, boxes, 4.0 * max(features[1:]), generator)
    with torch.no_grad():
        result = compiled.module()(x=torch.randn(2, *features, generator=generator), boxes=rois)
    bins = (output, output) if isinstance(output, int) else tuple(output)
    assert tuple(result.shape) == (2, *compiled.ir.shapes["pool"]) == (2, boxes, features[0], *bins)


@pytest.mark.parametrize(
    "features, boxes, args, before, words",
    [
        ("[4, 8, 8]", "[3, 5]", "", "  - flatten: {name: flat}\n        ", ["roi_pool", "(C, H, W) feature map", "256", "from: [features, rois]"]),
        ("[4, 8, 8]", "[3, 4]", "", "", ["[K, 5]", "3x4", "batch_index, x1, y1, x2, y2", "rois: [K, 5]"]),
        ("[4, 8, 8]", "[2, 3, 5]", "", "", ["[K, 5]", "2x3x5"]),
        ("[4, 8, 8]", "[3, 5]", ", output: 0", "", ["output", "at least 1"]),
        ("[4, 8, 8]", "[3, 5]", ", output: [7, 0]", "", ["at least 1"]),
        ("[4, 8, 8]", "[3, 5]", ", spatial_scale: 0", "", ["spatial_scale must be > 0", "1 / the map's stride"]),
        ("[4, 8, 8]", "[3, 5]", ", spatial_scale: -0.0625", "", ["spatial_scale must be > 0"]),
    ],
    ids=["flattened-features", "four-columns", "rank-3-boxes", "no-bins", "no-bins-on-one-axis", "zero-scale", "negative-scale"],
)
def test_bad_inputs_are_clear_errors(write_spec, features, boxes, args, before, words):
    source = "flat" if before else "x"
    output = "" if "output" in args else ", output: 7"
    path = roi_spec(write_spec, f"roi_pool: {{name: pool, from: [{source}, boxes]{output}{args}}}", features, boxes, before)
    with pytest.raises(SpecError) as caught:
        compile(path)
    text = str(caught.value) + (caught.value.hint or "")
    for word in words:
        assert word in text, (word, text)


def test_one_input_is_not_enough(write_spec):
    with pytest.raises(SpecError) as caught:
        compile(write_spec("name: t\ninputs: {x: [4, 8, 8]}\nlayers:\n  - roi_align: {output: 7}\n"))
    assert "roi_align" in str(caught.value)


@pytest.mark.parametrize("op", ["roi_pool", "roi_align"])
def test_saved_for_backward_is_what_autograd_keeps(write_spec, op):
    """torchvision's backward keeps the rois (and roi_pool its int32 argmax), not the features:
    measured with saved_tensors_hooks behind a conv (which keeps its input)."""
    path = roi_spec(write_spec, f"{op}: {{from: [c, boxes], output: 3}}", boxes="[5, 5]",
                    before="  - conv: {name: c, out: 6, kernel: 1}\n        ")
    compiled = compile(path)
    module = compiled.module().train()
    generator = torch.Generator().manual_seed(4)
    inputs = {"x": torch.randn(2, 4, 12, 12, generator=generator), "boxes": random_boxes(2, 5, 12.0, generator)}
    weights = {t.untyped_storage().data_ptr() for t in module.parameters()}
    storages: dict[int, int] = {}

    def pack(tensor):
        if tensor.untyped_storage().data_ptr() not in weights:
            storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        module(**inputs)
    assert estimate_memory(compiled.ir, batch=2).saved_activations == sum(storages.values())


@pytest.mark.parametrize("op, expected", [("roi_pool", "roi_pool 7x7, 1/16"), ("roi_align", "roi_align 2x3, 0.3")])
def test_labels_show_the_bins_and_the_scale(op, expected):
    from archspec.ops.catalog import lookup

    entry = lookup(op)
    output = 7 if op == "roi_pool" else [2, 3]
    scale = "1 / 16" if op == "roi_pool" else 0.3
    assert entry.text(entry.args.model_validate({"output": output, "spatial_scale": scale})) == expected


# --- linear over the last axis ------------------------------------------------------------------------
def test_linear_on_rows_is_nn_linear_on_the_last_axis(write_spec):
    """Per sample (K, F) = (5, 12); at run time (N, K, F) = (2, 5, 12), a rank-3 tensor."""
    compiled = compile(write_spec("name: rows\ninputs: {x: [5, 12]}\nlayers:\n  - linear: {name: fc, out: 3}\n"))
    module = compiled.module().eval()
    reference = nn.Linear(12, 3)
    reference.load_state_dict(module.fc.state_dict())
    x = torch.randn(2, 5, 12)
    with torch.no_grad(), flop_counter() as ours:
        actual = module(x)
    with torch.no_grad(), flop_counter() as theirs:
        expected = reference(x)
    assert torch.equal(actual, expected)
    assert compiled.ir.shapes["fc"] == tuple(expected.shape[1:]) == (5, 3)
    assert compiled.analysis.totals.params == sum(p.numel() for p in reference.parameters()) == 12 * 3 + 3
    assert compiled.analysis.totals.macs == 5 * 3 * 12  # numel(out) x in_features
    assert 2 * compiled.analysis.totals.flops == ours.get_total_flops() == theirs.get_total_flops() == 2 * 2 * 5 * 3 * 12


def test_linear_on_a_rank_4_input_and_on_a_vector(write_spec):
    rank4 = compile(write_spec("name: r4\ninputs: {x: [2, 3, 4, 6]}\nlayers:\n  - linear: {out: 5}\n", "r4.yaml"))
    with torch.no_grad(), flop_counter() as counter:
        result = rank4.module()(torch.randn(1, 2, 3, 4, 6))
    assert rank4.ir.shapes["linear1"] == tuple(result.shape[1:]) == (2, 3, 4, 5)
    assert rank4.analysis.totals.flops == counter.get_total_flops() == 2 * (2 * 3 * 4 * 5) * 6
    vector = compile(write_spec("name: v\ninputs: {x: [8]}\nlayers:\n  - linear: {out: 3}\n", "v.yaml"))
    assert vector.ir.shapes["linear1"] == (3,) and vector.analysis.totals.macs == 8 * 3


def test_linear_explains_its_rows(write_spec):
    from archspec.explain import explain_layers

    compiled = compile(write_spec("name: rows\ninputs: {x: [5, 12]}\nlayers:\n  - linear: {name: fc, out: 3}\n"))
    (explanation,) = explain_layers(compiled.ir, compiled.analysis, ["fc"], "en")
    assert "rows·n_in·n_out: 5·12·3 = 180" in explanation.text()


# --- Fast R-CNN on VGG-16 ------------------------------------------------------------------------------
# VGG-16 (configuration D): stage widths and 3x3 convs per stage; Fast R-CNN keeps all 13 convs
VGG16_STAGES = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]


def vgg16_convs(image: int):
    """(in channels, out channels, output size) of each 3x3 conv; pools halve the size after
    stages 1-4 (Fast R-CNN drops pool5)."""
    convs, channels, size = [], 3, image
    for stage, (width, count) in enumerate(VGG16_STAGES):
        for _ in range(count):
            convs.append((channels, width, size))
            channels = width
        size = size // 2 if stage < 4 else size
    return convs


def test_fast_rcnn_parameters_by_hand():
    convs = sum(3 * 3 * cin * cout + cout for cin, cout, _ in vgg16_convs(224))
    assert convs == 14_714_688  # VGG-16's 13 conv layers (torchvision's vgg16().features)
    fc6 = 512 * 7 * 7 * 4096 + 4096  # the 7x7 RoI grid of conv5_3's 512 channels
    fc7 = 4096 * 4096 + 4096
    cls_score = 4096 * 21 + 21  # 20 VOC classes + background
    bbox_pred = 4096 * (4 * 21) + 4 * 21  # (dx, dy, dw, dh) per class
    by_hand = convs + fc6 + fc7 + cls_score + bbox_pred
    with torch.device("meta"):
        module = compile(FAST_RCNN).module()
    assert by_hand == sum(p.numel() for p in module.parameters()) == compile(FAST_RCNN).analysis.totals.params


def test_fast_rcnn_flops_are_what_flop_counter_mode_counts():
    """At the spec's own size (224, K = 64), on the meta device; and by hand: 2 x (conv MACs
    H·W·9·C_in·C_out + K·(fc6 + fc7 + cls + bbox) MACs)."""
    compiled = compile(FAST_RCNN)
    with torch.device("meta"):
        module = compiled.module().eval()
    inputs = {name: torch.empty(1, *shape, device="meta") for name, shape in compiled.analysis.inputs.items()}
    with torch.no_grad(), flop_counter() as counter:
        outputs = module(**inputs)
    conv_macs = sum(size * size * 9 * cin * cout for cin, cout, size in vgg16_convs(224))
    head_macs = 64 * (25088 * 4096 + 4096 * 4096 + 4096 * 21 + 4096 * 84)
    assert compiled.analysis.totals.flops == counter.get_total_flops() == 2 * (conv_macs + head_macs)
    assert {name: tuple(t.shape) for name, t in outputs.items()} == {"cls_score": (1, 64, 21), "bbox_pred": (1, 64, 84)}


@pytest.fixture(scope="module")
def small_fast_rcnn():
    """Fast R-CNN at a 64x64 image and K = 4, the RoI output and the heads as extra outputs, with
    torchvision's VGG-16 conv layers (features[:30], pool5 left out) loaded into `features`."""
    compiled = compile(FAST_RCNN, params={"K": 4}, inputs={"image": (3, 64, 64)})
    ir = compiled.ir
    ir.outputs = {"roi": ir.node("roi_pool").values[0], "fc7": ir.node("drop7").values[0], **ir.outputs}
    module = lower(ir).eval()
    torch.manual_seed(0)
    reference = torchvision.models.vgg16().features[:30].eval()
    module.features.load_state_dict(reference.state_dict(), strict=True)  # the same names: 0, 2, 5, ... 28
    return module, reference


def test_fast_rcnn_conv_part_is_torchvision_vgg16_features(small_fast_rcnn):
    module, reference = small_fast_rcnn
    ours = {name: tuple(t.shape) for name, t in module.features.state_dict().items()}
    assert ours == {name: tuple(t.shape) for name, t in reference.state_dict().items()}
    assert len(ours) == 2 * 13


def test_fast_rcnn_roi_output_is_torchvision_roi_pool_on_vgg16_features(small_fast_rcnn):
    module, reference = small_fast_rcnn
    generator = torch.Generator().manual_seed(5)
    image = torch.randn(2, 3, 64, 64, generator=generator)
    boxes = random_boxes(2, 4, 64.0, generator)
    with torch.no_grad():
        result = module(image=image, rois=boxes)
        conv5_3 = reference(image)  # (2, 512, 4, 4): stride 16
        pooled = torchvision.ops.roi_pool(conv5_3, boxes.reshape(8, 5), output_size=7, spatial_scale=1 / 16)
    assert torch.equal(result["roi"], pooled.reshape(2, 4, 512, 7, 7))
    # the heads read one row per RoI, flattened in torch's (C, h, w) order; both from fc7
    fc7 = result["fc7"]
    assert torch.equal(result["cls_score"], nn.functional.linear(fc7, module.cls_score.weight, module.cls_score.bias))
    assert torch.equal(result["bbox_pred"], nn.functional.linear(fc7, module.bbox_pred.weight, module.bbox_pred.bias))
    assert tuple(result["bbox_pred"].shape) == (2, 4, 84)


def test_fast_rcnn_receptive_field_is_global_from_the_roi_pooling_on():
    compiled = compile(FAST_RCNN, params={"K": 4}, inputs={"image": (3, 64, 64)})
    fields = compiled.fields
    assert not fields["features.28"].is_global  # conv5_3: a fixed 196-pixel field
    assert fields["features.28"].size == (196, 196)
    assert all(fields[node].is_global for node in ("roi_pool", "fc6", "cls_score", "bbox_pred"))
    assert math.prod(compiled.ir.shapes["flatten_rois"]) == 4 * 512 * 7 * 7
