"""What torch 2.14's ONNX exporter has no translation for, filled in on the torch.export program
before it is translated: adaptive max pooling as one max per bin (the bins are fixed, since only
the batch is dynamic), and torchvision's roi_pool as ONNX's MaxRoiPool (Caffe's RoI max pooling,
which rounds boxes to the feature grid as torchvision does). Each is checked against torch by the
command, like every other export. Nothing else is changed."""
from __future__ import annotations

import operator
from typing import Any


def adaptive_max_pool2d(x, output_size):
    """aten.adaptive_max_pool2d (values and flat indices, as torch gives them) from slices: bin i
    of n over a size s spans [floor(i*s/n), ceil((i+1)*s/n)), as in torch's kernel."""
    import torch

    height, width = x.shape[-2:]
    rows, row_indices = [], []
    for i in range(output_size[0]):
        top, bottom = (i * height) // output_size[0], -(-(i + 1) * height // output_size[0])
        values, indices = [], []
        for j in range(output_size[1]):
            left, right = (j * width) // output_size[1], -(-(j + 1) * width // output_size[1])
            best, where = x[..., top:bottom, left:right].flatten(-2).max(dim=-1)
            values.append(best)
            indices.append((top + where // (right - left)) * width + left + where % (right - left))
        rows.append(torch.stack(values, -1))
        row_indices.append(torch.stack(indices, -1))
    return torch.stack(rows, -2), torch.stack(row_indices, -2)


def roi_pool_as_max_roi_pool(features, rois, spatial_scale: float, pooled_height: int, pooled_width: int):
    """torchvision.roi_pool -> ONNX MaxRoiPool; rows (batch_index, x1, y1, x2, y2) in both. The
    second result (argmax, which only roi_pool's backward reads) is not computed: `fill_gaps`
    uses this only where nothing reads it."""
    from onnxscript import opset20 as onnx_ops

    pooled = onnx_ops.MaxRoiPool(features, rois, pooled_shape=[pooled_height, pooled_width],
                                 spatial_scale=spatial_scale)
    return pooled, onnx_ops.Cast(pooled, to=7)  # a placeholder of the argmax's dtype (int64)


def _decompositions() -> dict:
    import torch

    return {torch.ops.aten.adaptive_max_pool2d.default: (adaptive_max_pool2d, "one max per bin")}


def _translations() -> dict:
    import torch

    try:
        import torchvision  # noqa: F401  (registers torch.ops.torchvision)
    except ImportError:
        return {}
    return {torch.ops.torchvision.roi_pool.default: (roi_pool_as_max_roi_pool, "ONNX MaxRoiPool")}


def fill_gaps(program) -> tuple[Any, dict, list[str]]:
    """(the program with the decompositions it needs applied, the translation table for
    torch.onnx.export, what was filled in, for the summary)."""
    targets = {node.target for node in program.graph.nodes if node.op == "call_function"}
    decompositions = {op: entry for op, entry in _decompositions().items() if op in targets}
    translations = {op: entry for op, entry in _translations().items()
                    if op in targets and not _reads_second(program, op)}
    if decompositions:
        program = program.run_decompositions({op: rule for op, (rule, _) in decompositions.items()})
    filled = [f"{op.name().split('::')[-1]} as {how}" for op, (_, how) in (decompositions | translations).items()]
    return program, {op: rule for op, (rule, _) in translations.items()}, filled


def _reads_second(program, op) -> bool:
    """Whether any node reads result 1 of an `op` node (roi_pool's argmax)."""
    return any(user.target is operator.getitem and user.args[1] == 1 and user.users
               for node in program.graph.nodes if node.target is op for user in node.users)
