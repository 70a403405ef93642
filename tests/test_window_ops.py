"""Swin's ops, `window_attention` and `patch_merging` (archspec.ops.window), and the Swin specs'
schedules: outputs against a window attention written out here, FLOPs against FlopCounterMode on
torchvision's own modules, what autograd saves against saved_tensors_hooks, and each block's shift
and stochastic-depth rate against torchvision's built model."""
from __future__ import annotations

import math

import pytest
from saved_tensors import saved_elements_estimated, saved_elements_measured
import torch
import torch.nn.functional as F
import yaml

from archspec.lower.verify import flop_counter

from archspec import SpecError
from archspec.pipeline import compile
from conftest import SPECS

torchvision = pytest.importorskip("torchvision")
from torchvision.models.swin_transformer import PatchMerging, ShiftedWindowAttention  # noqa: E402

# (H, W, C, heads, window, shift): square and padded maps (10x9 pads to 12x12), shifted or not,
# and a map smaller than its window (torchvision then pads to one window and drops the shift)
GEOMETRIES = [(8, 8, 8, 2, 4, 2), (8, 8, 8, 2, 4, 0), (10, 9, 8, 2, 4, 2), (5, 5, 8, 2, 7, 3), (14, 14, 12, 3, 7, 3)]


def _spec(tmp_path, layers: list, shape: tuple) -> str:
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "inputs": {"x": list(shape)}, "layers": layers}, sort_keys=False))
    return str(path)


def _attention(tmp_path, height, width, channels, heads, window, shift):
    layers = [{"window_attention": {"name": "attn", "heads": heads, "window": window, "shift": shift}}]
    return compile(_spec(tmp_path, layers, (height, width, channels)))


def windowed_attention_by_hand(x, attn, heads: int, window: int, shift: int) -> torch.Tensor:
    """Swin's W-MSA / SW-MSA as the paper describes it, one window at a time: pad to whole windows,
    roll by -shift, attend within each window (plus the relative-position bias; when shifted, only
    among tokens that came from the same region of the unrolled map), roll back, crop."""
    batch, height, width, channels = x.shape
    padded = F.pad(x, (0, 0, 0, -width % window, 0, -height % window))
    rows, cols = padded.shape[1:3]
    shift = 0 if window >= rows else shift  # torchvision drops a shift that would wrap one window
    region = torch.zeros(rows, cols)
    if shift:
        edges = [0, rows - window, rows - shift, rows], [0, cols - window, cols - shift, cols]
        for i in range(3):
            for j in range(3):
                region[edges[0][i]:edges[0][i + 1], edges[1][j]:edges[1][j + 1]] = 3 * i + j
    rolled = torch.roll(padded, (-shift, -shift), (1, 2))
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    offsets = (coords[:, :, None] - coords[:, None, :]) + window - 1  # (2, N, N), each in [0, 2M-2]
    bias = attn.relative_position_bias_table[offsets[0] * (2 * window - 1) + offsets[1]].permute(2, 0, 1)
    out = torch.empty_like(rolled)
    width_per_head = channels // heads
    for top in range(0, rows, window):
        for left in range(0, cols, window):
            tokens = rolled[:, top:top + window, left:left + window].reshape(batch, -1, channels)
            q, k, v = F.linear(tokens, attn.qkv.weight, attn.qkv.bias).reshape(batch, -1, 3, heads, width_per_head).permute(2, 0, 3, 1, 4)
            logits = q @ k.transpose(-2, -1) / math.sqrt(width_per_head) + bias
            labels = region[top:top + window, left:left + window].flatten()
            logits = logits.masked_fill(labels[:, None] != labels[None, :], float("-inf"))
            mixed = (logits.softmax(-1) @ v).transpose(1, 2).reshape(batch, -1, channels)
            out[:, top:top + window, left:left + window] = F.linear(mixed, attn.proj.weight, attn.proj.bias).reshape(batch, window, window, channels)
    return torch.roll(out, (shift, shift), (1, 2))[:, :height, :width]


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_window_attention_is_swins_shifted_window_attention(tmp_path, geometry):
    height, width, channels, heads, window, shift = geometry
    torch.manual_seed(0)
    module = _attention(tmp_path, *geometry).module().eval()
    x = torch.randn(2, height, width, channels)
    with torch.no_grad():
        expected = windowed_attention_by_hand(x, module.attn, heads, window, shift)
        # torchvision masks with -100, not -inf: exp(-100) is far below the tolerance
        torch.testing.assert_close(module(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_window_attention_tensors_flops_and_saved_are_torchvisions(tmp_path, geometry):
    height, width, channels, heads, window, shift = geometry
    compiled = _attention(tmp_path, *geometry)
    reference = ShiftedWindowAttention(channels, [window, window], [shift, shift], heads).train()
    layer = compiled.analysis.layers[0]
    assert layer.tensors == {n: tuple(p.shape) for n, p in reference.named_parameters()}
    assert layer.buffer_tensors == {n: tuple(b.shape) for n, b in reference.named_buffers()}
    x = torch.randn(2, height, width, channels, requires_grad=True)
    with flop_counter() as counter:
        reference(x)
    assert compiled.analysis.totals.flops == counter.get_total_flops() // 2  # per sample: the batch is 2
    # by hand, padded tokens Tp, N = M² per window: 4·Tp·C² (qkv, proj) + 2·Tp·N·C (Q·Kᵀ, A·V)
    padded = math.ceil(height / window) * window * math.ceil(width / window) * window
    assert compiled.analysis.totals.macs == 4 * padded * channels ** 2 + 2 * padded * window ** 2 * channels
    assert saved_elements_estimated("window_attention", compiled, (height, width, channels)) == saved_elements_measured(reference, x)


@pytest.mark.parametrize("shape", [(8, 8, 4), (7, 9, 4)], ids=str)
def test_patch_merging_is_torchvisions(tmp_path, shape):
    compiled = compile(_spec(tmp_path, [{"patch_merging": {"name": "merge"}}], shape))
    torch.manual_seed(0)
    reference = PatchMerging(shape[-1]).train()
    module = compiled.module().eval()
    module.merge.load_state_dict(reference.state_dict())  # strict: reduction.weight, norm.weight, norm.bias
    x = torch.randn(2, *shape, requires_grad=True)
    with flop_counter() as counter:
        expected = reference(x)
    assert compiled.analysis.outputs["output"] == tuple(expected.shape[1:])
    assert compiled.analysis.totals.flops == counter.get_total_flops() // 2
    with torch.no_grad():
        torch.testing.assert_close(module(x), reference.eval()(x))
    assert saved_elements_estimated("patch_merging", compiled, shape) == saved_elements_measured(reference.train(), x)


@pytest.mark.parametrize(
    "layers, shape, words",
    [
        ([{"window_attention": {"heads": 2, "window": 4}}], (16, 8), ("channels-last map (H, W, C)", "permute")),
        ([{"window_attention": {"heads": 3, "window": 4}}], (8, 8, 8), ("must divide the channels C = 8",)),
        ([{"window_attention": {"heads": 2, "window": 4, "shift": 4}}], (8, 8, 8), ("smaller than the window", "window // 2")),
        ([{"patch_merging": {}}], (8, 8), ("channels-last map (H, W, C)",)),
    ],
)
def test_window_op_errors_say_what_to_do(tmp_path, layers, shape, words):
    with pytest.raises(SpecError) as caught:
        compile(_spec(tmp_path, layers, shape))
    text = str(caught.value) + str(getattr(caught.value, "hint", "") or "")
    for word in words:
        assert word in text, text


@pytest.mark.parametrize("name", ["swin_t", "swin_s"])
def test_each_blocks_shift_and_stochastic_depth_are_torchvisions(name):
    """The spec's expressions over the block index give torchvision's shift_size and sd_prob."""
    ours = compile(SPECS / f"{name}.yaml").module()
    theirs = torchvision.models.get_model(name)
    blocks = [path for path, m in theirs.named_modules() if type(m).__name__ == "SwinTransformerBlock"]
    assert len(blocks) == sum({"swin_t": [2, 2, 6, 2], "swin_s": [2, 2, 18, 2]}[name])
    for path in blocks:
        block = theirs.get_submodule(path)
        assert ours.get_submodule(f"{path}.attn").shift_size == block.attn.shift_size, path
        for part in ("stochastic_depth", "mlp_stochastic_depth"):
            assert ours.get_submodule(f"{path}.{part}").p == pytest.approx(block.stochastic_depth.p), path
