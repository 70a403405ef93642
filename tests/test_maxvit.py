"""MaxViT's op, `partition_attention` (archspec.ops.maxvit), and the maxvit_t spec's schedule:
outputs against block and grid attention written out here, tensors and FLOPs against torchvision's
PartitionAttentionLayer under FlopCounterMode, what autograd saves against saved_tensors_hooks,
and each layer's stochastic-depth rate against torchvision's built model."""
from __future__ import annotations


import pytest
from saved_tensors import saved_elements_estimated, saved_elements_measured
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from archspec.lower.verify import flop_counter

from archspec import SpecError
from archspec.pipeline import compile
from conftest import SPECS

torchvision = pytest.importorskip("torchvision")
from torchvision.models.maxvit import PartitionAttentionLayer  # noqa: E402

# (C, H, W, head_dim, partition, size): both partitions, one and several groups per axis
GEOMETRIES = [(8, 8, 8, 4, "window", 4), (8, 8, 8, 4, "grid", 4), (16, 12, 12, 8, "grid", 3),
              (16, 12, 6, 8, "window", 3), (8, 4, 4, 8, "grid", 4)]


def _compiled(tmp_path, channels, height, width, head_dim, partition, size, **extra):
    args = {"name": "attn", "head_dim": head_dim, "partition": partition, "size": size, **extra}
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "inputs": {"x": [channels, height, width]},
                                    "layers": [{"partition_attention": args}]}, sort_keys=False))
    return compile(str(path))


def _groups(x, partition: str, size: int) -> list[tuple[slice, slice] | tuple[int, int]]:
    """Each group's positions: a size x size block of neighbours (window), or every (H/size)-th
    row and column from an offset (grid, spanning the map)."""
    height, width = x.shape[-2:]
    if partition == "window":
        return [(slice(top, top + size), slice(left, left + size)) for top in range(0, height, size) for left in range(0, width, size)]
    stride = height // size
    return [(slice(a, None, stride), slice(b, None, stride)) for a in range(stride) for b in range(stride)]


def attention_by_hand(x, layer, heads: int, partition: str, size: int) -> torch.Tensor:
    """MaxViT's layer as the paper describes it, one group of N = size² tokens at a time: x + MHSA(LN(x))
    with a relative-position bias, then x + MLP(LN(x)). torchvision scales k by C^-1/2 (not the
    head's width), so this does too."""
    attn_norm, attention, mlp = layer.attn_layer[0], layer.attn_layer[1], layer.mlp_layer
    channels = x.shape[1]
    coords = torch.stack(torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")).flatten(1)
    offsets = coords[:, :, None] - coords[:, None, :] + size - 1           # (2, N, N), each in [0, 2s-2]
    bias = attention.relative_position_bias_table[offsets[0] * (2 * size - 1) + offsets[1]].permute(2, 0, 1)
    out = x.clone()
    for rows, cols in _groups(x, partition, size):
        tokens = x[:, :, rows, cols].flatten(2).transpose(1, 2)            # (B, N, C), row-major
        q, k, v = F.linear(attn_norm(tokens), attention.to_qkv.weight, attention.to_qkv.bias).chunk(3, dim=-1)
        q, k, v = (t.unflatten(-1, (heads, -1)).transpose(1, 2) for t in (q, k, v))
        weights = (q @ k.transpose(-2, -1) * channels ** -0.5 + bias).softmax(-1)
        mixed = (weights @ v).transpose(1, 2).flatten(2)
        tokens = tokens + F.linear(mixed, attention.merge.weight, attention.merge.bias)
        tokens = tokens + mlp[3](F.gelu(mlp[1](mlp[0](tokens))))
        out[:, :, rows, cols] = tokens.transpose(1, 2).unflatten(2, (size, size))
    return out


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_partition_attention_is_maxvits_block_and_grid_attention(tmp_path, geometry):
    channels, height, width, head_dim, partition, size = geometry
    torch.manual_seed(0)
    module = _compiled(tmp_path, *geometry).module().eval()
    x = torch.randn(2, channels, height, width)
    with torch.no_grad():
        expected = attention_by_hand(x, module.attn, channels // head_dim, partition, size)
        torch.testing.assert_close(module(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
@pytest.mark.parametrize("training", [{}, {"p": 0.1, "attention_dropout": 0.1, "mlp_dropout": 0.2}], ids=["plain", "dropouts"])
def test_partition_attention_tensors_flops_and_saved_are_torchvisions(tmp_path, geometry, training):
    channels, height, width, head_dim, partition, size = geometry
    compiled = _compiled(tmp_path, *geometry, **training)
    reference = PartitionAttentionLayer(channels, head_dim, size, partition, (height, width), 4, nn.GELU, nn.LayerNorm,
                                        training.get("attention_dropout", 0.0), training.get("mlp_dropout", 0.0),
                                        training.get("p", 0.0)).train()
    layer = compiled.analysis.layers[0]
    assert list(layer.tensors.items()) == [(n, tuple(p.shape)) for n, p in reference.named_parameters()]
    assert layer.buffer_tensors == {n: tuple(b.shape) for n, b in reference.named_buffers()}
    x = torch.randn(2, channels, height, width, requires_grad=True)
    with flop_counter() as counter:
        reference(x)
    assert compiled.analysis.totals.flops == counter.get_total_flops() // 2  # per sample: the batch is 2
    # by hand, T = H·W tokens, N = size²: 4·T·C² (to_qkv, merge) + 8·T·C² (MLP) + 2·T·N·C (Q·Kᵀ, A·V)
    tokens = height * width
    assert compiled.analysis.totals.macs == 12 * tokens * channels ** 2 + 2 * tokens * size ** 2 * channels
    assert saved_elements_estimated("partition_attention", compiled, (channels, height, width)) == saved_elements_measured(reference, x)


@pytest.mark.parametrize(
    "shape, args, words",
    [
        ((8, 8), {"head_dim": 4, "partition": "window", "size": 4}, ("(C, H, W) map",)),
        ((8, 8, 8), {"head_dim": 3, "partition": "window", "size": 4}, ("must divide the channels C = 8",)),
        ((8, 10, 10), {"head_dim": 4, "partition": "window", "size": 4}, ("whole 4x4 partitions", "divisible")),
        ((8, 8, 4), {"head_dim": 4, "partition": "grid", "size": 4}, ("square map",)),
    ],
)
def test_partition_attention_errors_say_what_to_do(tmp_path, shape, args, words):
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "inputs": {"x": list(shape)}, "layers": [{"partition_attention": args}]}))
    with pytest.raises(SpecError) as caught:
        compile(str(path))
    text = str(caught.value) + str(getattr(caught.value, "hint", "") or "")
    for word in words:
        assert word in text, text


def test_each_layers_stochastic_depth_is_torchvisions():
    """The spec's expressions over the layer index give torchvision's linspace(0, 0.2, 11)."""
    ours = compile(SPECS / "maxvit_t.yaml").module()
    theirs = torchvision.models.maxvit_t()
    layers = [path for path, m in theirs.named_modules() if type(m).__name__ == "MaxVitLayer"]
    assert len(layers) == 2 + 2 + 5 + 2
    for path in layers:
        for part in ("window_attention", "grid_attention"):
            expected = theirs.get_submodule(f"{path}.layers.{part}").stochastic_dropout.p
            assert ours.get_submodule(f"{path}.layers.{part}").stochastic_dropout.p == pytest.approx(expected), path
        mbconv = theirs.get_submodule(f"{path}.layers.MBconv.stochastic_depth")
        assert getattr(ours.get_submodule(f"{path}.layers.MBconv.stochastic_depth"), "p", 0.0) == pytest.approx(getattr(mbconv, "p", 0.0)), path
