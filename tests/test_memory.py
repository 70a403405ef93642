"""The memory estimate against what torch keeps: saved_tensors_hooks on the lowered module
(every spec), a hand count for LeNet-5, and torch.cuda.max_memory_allocated where a GPU is."""
from __future__ import annotations

import time

import pytest
import torch

import archspec
from archspec.lower.fx import lower
from archspec.passes.memory import estimate_memory
from conftest import LIBRARY, run_cli
from saved_tensors import saved_bytes_measured

# the biggest specs are measured at a reduced input to keep CI fast
SMALLER_INPUT = {"unet": (1, 188, 188), "unet_padded": (3, 128, 128), "vgg19": (3, 64, 64), "vgg16": (3, 64, 64),
                 "vgg16_bn": (3, 64, 64), "vgg11": (3, 64, 64), "alexnet": (3, 128, 128), "densenet169": (3, 96, 96),
                 "resnet152": (3, 96, 96), "resnet101": (3, 96, 96), "efficientnet_b3": (3, 128, 128),
                 "pspnet": (3, 128, 128), "fcn_resnet50": (3, 128, 128), "deeplabv3_resnet50": (3, 128, 128),
                 "yolo_v1": (3, 224, 224), "spp_net": (3, 128, 128),
                 "vit_l_16": (3, 64, 64)}  # 304M parameters: the weights and gradients alone are 2.4 GB
BATCH = 2


@pytest.mark.parametrize("spec", LIBRARY, ids=lambda p: p.stem)
def test_saved_activations_within_10_percent_of_torch(spec):
    loaded = archspec.load_spec(spec)
    shape = SMALLER_INPUT.get(spec.stem)
    ir = archspec.compile_spec(loaded, inputs={next(iter(loaded.document.inputs)): shape} if shape else None)
    estimate = estimate_memory(ir, batch=BATCH).saved_activations
    module = lower(ir).train()
    inputs = {name: torch.randn(BATCH, *ir.shapes[node]) for name, node in ir.inputs.items()}
    measured = saved_bytes_measured(module, **inputs)
    ratio = estimate / measured
    assert 0.9 <= ratio <= 1.1, f"estimate {estimate:,} vs measured {measured:,} bytes (ratio {ratio:.3f})"


def test_lenet5_by_hand():
    # per sample, fp32 unless noted: conv1 keeps the image (3*32*32); relu1 its output (6*28*28);
    # pool1 keeps relu1's output (already counted) and int64 argmax indices (6*14*14); conv2
    # keeps pool1's output (6*14*14); relu2 its output (16*10*10); pool2 indices (16*5*5, int64);
    # fc3 keeps the flattened pool2 output (400); relu3 and relu4 their outputs (120, 84); fc4
    # and fc5 keep those same tensors.
    floats = 3 * 32 * 32 + 6 * 28 * 28 + 6 * 14 * 14 + 16 * 10 * 10 + 400 + 120 + 84
    indices = 6 * 14 * 14 + 16 * 5 * 5
    per_sample = floats * 4 + indices * 8
    memory = estimate_memory(archspec.compile_spec("specs/lenet5.yaml"), batch=BATCH)
    assert memory.saved_activations == BATCH * per_sample
    params = 62_006 * 4
    assert memory.params == params and memory.gradients == params
    assert memory.optimizer_state == params  # SGD momentum: one buffer per parameter
    adam = estimate_memory(archspec.compile_spec("specs/lenet5.yaml"), optimizer="adam", dtype="bf16")
    assert adam.optimizer_state == 2 * 62_006 * 2
    assert memory.training_peak > memory.inference_peak > params


def test_a_long_chain_is_estimated_in_one_pass(write_spec):
    # 20,000 relus on a 3x8x8 map: no weights, and while relu k runs, only relu k - 1's output
    # (its input) and its own are alive, so the inference peak is two maps of 3 * 8 * 8 floats.
    # The graph input does not require a gradient, so nothing is recorded or saved.
    spec = write_spec("name: chain\ninputs: {x: [3, 8, 8]}\nlayers:\n" + "  - relu: {repeat: 1000}\n" * 20)
    ir = archspec.compile_spec(spec)
    start = time.perf_counter()
    memory = estimate_memory(ir, batch=BATCH)
    assert time.perf_counter() - start < 10  # a bound far above one linear pass (well under a second)
    assert memory.inference_peak == 2 * 3 * 8 * 8 * 4 * BATCH
    assert memory.saved_activations == 0 and len(memory.layers) == 20_000


def test_report_memory_json():
    result = run_cli("report", "specs/lenet5.yaml", "--memory", "--batch", "2", "--format", "json")
    assert result.returncode == 0, result.stderr
    import json

    data = json.loads(result.stdout)
    assert data["memory"]["saved_activations"] == sum(layer["memory"]["saved"] for layer in data["layers"])
    assert data["memory"]["params"] == 62_006 * 4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_peak_against_cuda_allocator():
    ir = archspec.compile_spec("specs/resnet18.yaml")
    memory = estimate_memory(ir, batch=16, optimizer="sgd")
    module = lower(ir).cuda().train()
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(16, 3, 224, 224, device="cuda")
    for _ in range(2):  # the second step has the momentum buffers allocated
        torch.cuda.reset_peak_memory_stats()
        optimizer.zero_grad(set_to_none=False)
        module(image=x).sum().backward()
        optimizer.step()
    measured = torch.cuda.max_memory_allocated() - x.numel() * 4
    assert 0.8 <= memory.training_peak / measured <= 1.25, (memory.training_peak, measured)
