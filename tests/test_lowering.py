"""The lowered torch module against the static analysis, for every spec of the library; the
published figures of LeNet-5 and ResNet-18; training, torch.compile and CUDA."""
from __future__ import annotations

import io
import math
import operator
import re
import tokenize
from types import SimpleNamespace

import pytest
import torch
from conftest import LIBRARY, SPECS

from archspec.lower.verify import flop_counter

from archspec import SpecError, analyze_spec, build_module
from archspec.ops.catalog import lookup
from archspec.ops.registry import tensor_key

LENET = SPECS / "lenet5.yaml"
RESNET18 = SPECS / "resnet18.yaml"
BATCH = 2


def random_inputs(analysis, batch: int = BATCH, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(batch, *shape, generator=generator) for name, shape in analysis.inputs.items()}


def as_dict(result, analysis) -> dict[str, torch.Tensor]:
    return result if isinstance(result, dict) else {next(iter(analysis.outputs)): result}


def spec_id(path) -> str:
    return path.stem


def test_library_has_the_example_specs():
    names = {path.stem for path in LIBRARY}
    assert {"lenet5", "resnet18", "inception_module", "dense_block", "tiny_unet", "siamese_pair", "two_heads"} <= names


# --- every spec: torch measures what the static analysis predicts ------------------------------------
# Two runs per spec, both compared exactly with the static analysis at the same input size:
# - at the spec's own input size, on the `meta` device: the real lowered module (built under
#   `torch.device("meta")`), run under FlopCounterMode with tensors that carry shapes but no data,
#   so even the ~300-GFLOP segmentation nets cost nothing;
# - on the CPU with real weights and data, at a smaller input size where the spec is heavier than
#   CPU_FLOP_BUDGET (a CPU test cannot afford 300 GFLOPs): the analysis is redone at that size.
CPU_FLOP_BUDGET = 250_000_000  # per sample
SIZE_STEP = 16  # sizes stay congruent to the default mod 16 (valid-conv U-Nets need that)


def cpu_size(spec) -> tuple[dict[str, tuple[int, ...]] | None, int]:
    """(None, FLOPs) for the spec's own input sizes, or (sizes, FLOPs) for the largest smaller size
    (in steps of SIZE_STEP) that is valid for the spec and within CPU_FLOP_BUDGET, else the
    smallest valid one."""
    full = analyze_spec(spec)
    images = [shape for shape in full.inputs.values() if len(shape) == 3]
    if full.totals.flops <= CPU_FLOP_BUDGET or not images:
        return None, full.totals.flops
    height = min(shape[1] for shape in images)
    # FLOPs grow about with the square of the size: start the search near the estimate
    first = max(1, int(height * (1 - math.sqrt(CPU_FLOP_BUDGET / full.totals.flops))) // SIZE_STEP)

    def attempt(k: int):
        inputs = {
            name: (shape[0], *(n - k * SIZE_STEP for n in shape[1:])) if len(shape) == 3 else shape
            for name, shape in full.inputs.items()
        }
        try:
            return inputs, analyze_spec(spec, inputs=inputs).totals.flops
        except SpecError:
            return None  # not a valid size for this architecture

    found = None
    for k in range(first, height // SIZE_STEP):  # smaller and smaller
        found = attempt(k) or found
        if found and found[1] <= CPU_FLOP_BUDGET:
            return found
    if found:
        return found
    for k in range(first - 1, 0, -1):  # nothing valid below the estimate: the next valid above it
        found = attempt(k)
        if found:
            return found
    return None, full.totals.flops


def check_against_analysis(module, analysis, inputs) -> dict[str, torch.Tensor]:
    """Output shapes, parameters, trainable parameters, buffers and FLOPs: torch vs static."""
    module.eval()
    with torch.no_grad(), flop_counter() as counter:
        result = as_dict(module(**inputs), analysis)
    assert {name: tuple(t.shape) for name, t in result.items()} == {
        name: (BATCH, *shape) for name, shape in analysis.outputs.items()
    }
    parameters = list(module.parameters())
    assert sum(p.numel() for p in parameters) == analysis.totals.params
    assert sum(p.numel() for p in parameters if p.requires_grad) == analysis.totals.trainable
    assert sum(b.numel() for b in module.buffers()) == analysis.totals.buffers
    assert counter.get_total_flops() == analysis.totals.flops > 0
    return result


@pytest.fixture(scope="module", params=LIBRARY, ids=spec_id)
def lowered(request):
    """The spec, its analysis at batch 2 and its lowered module on the meta device (no data)."""
    spec = request.param
    with torch.device("meta"):
        module = build_module(spec)
    return SimpleNamespace(spec=spec, analysis=analyze_spec(spec, batch=BATCH), module=module)


def test_lowered_module_agrees_with_static_analysis_at_full_size(lowered):
    analysis, module = lowered.analysis, lowered.module
    inputs = {name: torch.empty(BATCH, *shape, device="meta") for name, shape in analysis.inputs.items()}
    result = check_against_analysis(module, analysis, inputs)
    assert all(t.device.type == "meta" for t in result.values())


@pytest.mark.parametrize("spec", LIBRARY, ids=spec_id)
def test_lowered_module_runs_on_cpu_and_agrees_with_static_analysis(spec):
    sizes, flops = cpu_size(spec)
    if flops > 10 * CPU_FLOP_BUDGET:
        # the original U-Net: valid convolutions need >= 188 pixels, still 12 GFLOPs per image
        pytest.skip(f"{flops / 1e9:.1f} GFLOPs per sample at its smallest valid size; checked on meta only")
    analysis = analyze_spec(spec, inputs=sizes, batch=BATCH)
    module = build_module(spec, inputs=sizes)
    result = check_against_analysis(module, analysis, random_inputs(analysis))
    assert all(torch.isfinite(t).all() for t in result.values())
    if sizes is None or not any(entry.op in ("flatten", "param") for entry in analysis.layers):
        # only a flatten -> linear (its in_features) or a param sized from the input (ViT's
        # position embedding, one per patch) ties weights to the input size
        assert analysis.totals.params == analyze_spec(spec).totals.params


def test_state_dict_keys_follow_the_spec_hierarchy(lowered):
    analysis, module = lowered.analysis, lowered.module
    expected = {
        tensor_key(entry.module, tensor)
        for entry in analysis.layers
        if entry.module == entry.name  # owners only: shared weights appear once
        for tensor in [*entry.tensors, *entry.buffer_tensors]
    }
    state = module.state_dict()
    assert set(state) == expected
    # each key's shape is the one the analysis gives
    shapes = {tensor_key(e.module, t): s for e in analysis.layers for t, s in {**e.tensors, **e.buffer_tensors}.items()}
    for key, value in state.items():
        assert tuple(value.shape) == shapes[key], key


def test_lowered_forward_is_straight_line_code(lowered):
    analysis, module = lowered.analysis, lowered.module
    code = module.code
    words = {tok.string for tok in tokenize.generate_tokens(io.StringIO(code).readline) if tok.type == tokenize.NAME}
    assert not words & {"for", "while", "if", "lambda"}
    assert code.count("def ") == 1  # one function: forward
    # one assignment line per op node (an in-place residual add reads `bn2 += identity;  add1 = bn2`),
    # one more per output of a node with several (`halves_0 = halves[0]`), and one per read of a
    # free tensor (`class_token_tensor = self.class_token`)
    outputs = sum(len(layer.output_shapes) for layer in analysis.layers if len(layer.output_shapes) > 1)
    reads = sum(1 for layer in analysis.layers if lookup(layer.op).tensor is not None)
    assert len([line for line in code.splitlines() if re.match(r"\s+\w+ \+?= ", line)]) == len(analysis.layers) + outputs + reads


def test_resnet18_state_dict_names_match_torchvision_style():
    keys = set(build_module(RESNET18).state_dict())
    for key in (
        "conv1.weight",
        "bn1.running_var",
        "layer1.0.conv1.weight",
        "layer1.1.bn2.bias",
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.weight",
        "layer2.0.downsample.1.running_mean",
        "layer4.1.conv2.weight",
        "fc.weight",
        "fc.bias",
    ):
        assert key in keys, key
    assert "layer1.0.downsample.0.weight" not in keys  # identity shortcut there
    # 20 convs (incl. 3 downsample) + 20 BNs (weight, bias, mean, var, count) + fc: 122 keys
    assert len(keys) == 20 * 1 + 20 * 5 + 2 == 122


# --- published figures ------------------------------------------------------------------------------
def test_lenet5_per_layer_figures_match_the_course_table():
    analysis = analyze_spec(LENET)
    by_name = {entry.name: entry for entry in analysis.layers}

    def hwc(name):  # the course writes activation shapes as (H, W, C)
        c, h, w = by_name[name].output_shape
        return (h, w, c)

    assert hwc("conv1") == (28, 28, 6)  # 32 - 5 + 1
    assert hwc("pool1") == (14, 14, 6)
    assert hwc("conv2") == (10, 10, 16)  # 14 - 5 + 1
    assert hwc("pool2") == (5, 5, 16)
    assert by_name["flatten1"].output_shape == (5 * 5 * 16,)
    assert [by_name[n].output_shape for n in ("fc3", "fc4", "fc5")] == [(120,), (84,), (10,)]

    params = {name: by_name[name].figures.params for name in ("conv1", "conv2", "fc3", "fc4", "fc5")}
    assert params == {
        "conv1": (5 * 5 * 3 + 1) * 6,  # 456
        "conv2": (5 * 5 * 6 + 1) * 16,  # 2,416
        "fc3": 400 * 120 + 120,  # 48,120
        "fc4": 120 * 84 + 84,  # 10,164
        "fc5": 84 * 10 + 10,  # 850
    }
    assert list(params.values()) == [456, 2_416, 48_120, 10_164, 850]
    for name in ("relu1", "pool1", "relu2", "pool2", "flatten1"):
        assert by_name[name].figures.params == 0
    assert analysis.totals.params == 456 + 2_416 + 48_120 + 10_164 + 850 == 62_006

    module = build_module(LENET)
    assert sum(p.numel() for p in module.parameters()) == 62_006
    for name, count in params.items():
        assert sum(p.numel() for p in module.get_submodule(name).parameters()) == count
    # MACs: 28*28*6 outputs x 75, 10*10*16 x 150, then the three matrix products
    macs = 28 * 28 * 6 * 75 + 10 * 10 * 16 * 150 + 400 * 120 + 120 * 84 + 84 * 10
    assert analysis.totals.macs == macs == 651_720
    with flop_counter() as counter:
        module(torch.zeros(1, 3, 32, 32))
    assert counter.get_total_flops() == 2 * macs == analysis.totals.flops


def test_resnet18_published_params_and_flops():
    # torchvision's resnet18: 11,689,512 parameters; FlopCounterMode at 1x3x224x224: 3,628,146,688
    analysis = analyze_spec(RESNET18)
    assert analysis.totals.params == 11_689_512
    assert analysis.totals.flops == 3_628_146_688
    assert analysis.totals.macs == 3_628_146_688 // 2
    assert analysis.depth == 18 + 3  # 17 convs + fc, plus the 3 downsample projections

    module = build_module(RESNET18).eval()
    assert sum(p.numel() for p in module.parameters()) == 11_689_512
    with torch.no_grad(), flop_counter() as counter:
        out = module(image=torch.zeros(1, 3, 224, 224))
    assert out.shape == (1, 1000)
    assert counter.get_total_flops() == 3_628_146_688


def test_build_module_takes_params_as_keywords():
    module = build_module(RESNET18, num_classes=10).eval()
    with torch.no_grad():
        assert module(image=torch.zeros(1, 3, 64, 64)).shape == (1, 10)
    assert module.get_submodule("fc").weight.shape == (10, 512)
    # 11,689,512 - the 1000-way fc (512 * 1000 + 1000) + a 10-way fc (512 * 10 + 10)
    assert sum(p.numel() for p in module.parameters()) == 11_689_512 - 513_000 + 5_130


# --- training, compile, GPU -------------------------------------------------------------------------
def test_lenet5_trains_on_a_fixed_batch():
    torch.manual_seed(0)
    module = build_module(LENET).train()
    images, labels = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    optimizer = torch.optim.SGD(module.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(module(image=images), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(2.3, abs=0.2)  # about ln(10): chance level at the start
    assert losses[-1] < 0.75 * losses[0]
    assert sum(losses[-5:]) < sum(losses[:5])


@pytest.mark.parametrize("spec_name", ["tiny_unet", "siamese_pair"])
def test_torch_compile_matches_eager(spec_name):
    spec = SPECS / f"{spec_name}.yaml"
    analysis = analyze_spec(spec)
    module = build_module(spec).eval()
    inputs = random_inputs(analysis)
    torch._dynamo.reset()
    compiled = torch.compile(module, backend="eager", fullgraph=True)  # fullgraph: no graph breaks
    with torch.no_grad():
        expected = as_dict(module(**inputs), analysis)
        actual = as_dict(compiled(**inputs), analysis)
    assert set(actual) == set(expected)
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("spec_name", ["resnet18", "tiny_unet", "siamese_pair"])
def test_runs_on_cuda(spec_name):
    spec = SPECS / f"{spec_name}.yaml"
    analysis = analyze_spec(spec, batch=BATCH)
    module = build_module(spec).eval()
    inputs = random_inputs(analysis)
    with torch.no_grad():
        expected = as_dict(module(**inputs), analysis)
        gpu = module.to("cuda")
        with flop_counter() as counter:
            actual = as_dict(gpu(**{n: t.cuda() for n, t in inputs.items()}), analysis)
    assert counter.get_total_flops() == analysis.totals.flops
    for name in expected:
        assert actual[name].is_cuda
        # cuDNN may use TF32 for convolutions: compare loosely
        torch.testing.assert_close(actual[name].cpu(), expected[name], rtol=1e-2, atol=1e-2)


# --- in-place relu / residual add (archspec.ir.in_place) --------------------------------
def _forward_backward(module, inputs):
    """Train-mode outputs and parameter gradients of a random projection of all outputs (autograd
    raises here if an in-place op overwrote a tensor that a backward needs)."""
    torch.manual_seed(0)  # dropout masks and the projection
    result = module.train()(**{name: t.clone().requires_grad_() for name, t in inputs.items()})
    outputs = result if isinstance(result, dict) else {"out": result}
    sum((t.float() * torch.randn(t.shape)).sum() for t in outputs.values()).backward()
    return outputs, {name: p.grad for name, p in module.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("spec", LIBRARY, ids=spec_id)
def test_in_place_lowering_computes_what_the_out_of_place_one_does(spec, monkeypatch):
    sizes, flops = cpu_size(spec)
    if flops > 10 * CPU_FLOP_BUDGET:
        pytest.skip("too heavy for the CPU even at its smallest valid size")
    # batch 4: with 2 samples, batch norm on ResNet-101's 1x1 maps at this size gives NaN gradients
    analysis = analyze_spec(spec, inputs=sizes, batch=4)
    inputs = random_inputs(analysis, batch=4)
    torch.manual_seed(1)
    in_place = build_module(spec, inputs=sizes)
    with monkeypatch.context() as patch:
        patch.setattr("archspec.lower.fx.in_place_nodes", lambda ir: {})
        out_of_place = build_module(spec, inputs=sizes)
    out_of_place.load_state_dict(in_place.state_dict())
    expected_outputs, expected_grads = _forward_backward(out_of_place, inputs)
    outputs, grads = _forward_backward(in_place, inputs)
    for name in expected_outputs:
        torch.testing.assert_close(outputs[name], expected_outputs[name], rtol=0, atol=0)
    assert set(grads) == set(expected_grads)
    for name in expected_grads:
        torch.testing.assert_close(grads[name], expected_grads[name], rtol=1e-6, atol=1e-6)


def test_in_place_only_where_nothing_else_reads_the_value(tmp_path):
    spec = tmp_path / "inplace.yaml"
    spec.write_text(
        """
name: inplace
inputs: {image: [4, 8, 8]}
layers:
  - relu: {name: on_input}                        # a graph input: never overwritten
  - conv: {name: c1, out: 4, kernel: 3, padding: 1}
  - relu: {name: sole_reader}                     # c1 is read by this relu only: in place
  - conv: {name: c2, out: 4, kernel: 3, padding: 1}
  - relu: {name: first_of_two}                    # c2 is read here and by `skip`: not in place
  - add: {name: skip, from: [c2, first_of_two]}   # c2 has two readers: out of place
  - sigmoid: {name: gate}
  - relu: {name: after_sigmoid}                   # sigmoid keeps its output for backward
  - conv: {name: c3, out: 4, kernel: 1}
  - add: {name: residual, from: [c3, after_sigmoid]}  # c3's only reader: `c3 += after_sigmoid`
outputs: {out: residual, tap: sole_reader}
"""
    )
    module = build_module(spec)
    targets = {node.name: node.target for node in module.graph.nodes if node.op == "call_function"}
    assert targets["on_input"] is torch.relu
    assert targets["sole_reader"] is torch.relu_
    assert targets["first_of_two"] is torch.relu
    assert targets["skip"] is operator.add
    assert targets["after_sigmoid"] is torch.relu
    assert targets["residual"] is operator.iadd
    # the values agree with plain torch written out of place
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        out = module(image=x)
        m = dict(module.named_modules())
        c1 = m["c1"](torch.relu(x))
        c2 = m["c2"](torch.relu(c1))
        gate = torch.sigmoid(c2 + torch.relu(c2))
        expected = m["c3"](torch.relu(gate)) + torch.relu(gate)
    torch.testing.assert_close(out["out"], expected)
    torch.testing.assert_close(out["tap"], torch.relu(c1))


# --- the spec's `init` ----------------------------------------------------------------------------------
def test_kaiming_normal_init_draws_he_weights_and_zero_biases(tmp_path):
    spec = tmp_path / "he.yaml"
    text = """
name: he
init: {init}
inputs: {{image: [64, 16, 16]}}
layers:
  - conv: {{name: conv, out: 256, kernel: 3, padding: 1}}
  - global_avgpool
  - linear: {{name: fc, out: 512}}
"""
    spec.write_text(text.format(init="kaiming_normal"))
    torch.manual_seed(0)
    module = build_module(spec)
    conv, fc = module.get_submodule("conv"), module.get_submodule("fc")
    # He et al.: std = sqrt(2 / fan_in); fan_in = 64 * 3 * 3 for the conv, 256 for the linear layer
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.02)
    assert fc.weight.std().item() == pytest.approx(math.sqrt(2 / 256), rel=0.02)
    assert not conv.bias.any() and not fc.bias.any()
    # the default keeps torch's own: uniform within 1 / sqrt(fan_in) (kaiming_uniform, a = sqrt(5))
    spec.write_text(text.format(init="torch"))
    default = build_module(spec).get_submodule("conv")
    assert default.weight.abs().max().item() <= 1 / math.sqrt(64 * 9)
    assert default.bias.abs().max().item() > 0
    spec.write_text(text.format(init="xavier"))
    with pytest.raises(SpecError) as error:
        build_module(spec)
    assert error.value.loc.line == 3 and "kaiming_normal" in str(error.value)
