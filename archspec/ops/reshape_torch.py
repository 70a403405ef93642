"""The `from_torch` matchers of the ops that move data (archspec.ops.reshape, archspec.ops.axes):
which torch calls each op is, for `archspec import`. Each reads an `archspec.importer.matching.
TorchCall` (duck-typed: the ops never import the importer). torch counts dims with the batch,
a spec without it: torch's dim d > 0 is the spec's d - 1, negative dims are the same."""
from __future__ import annotations

_VIEWS = ("Tensor.view", "Tensor.reshape", "torch.reshape")


def _dim(dim):
    return dim - 1 if dim > 0 else dim


def flatten_from_torch(call):
    """torch.flatten(x, 1), nn.Flatten(), and a view or reshape to one axis after the batch."""
    if call.is_("torch.flatten", "Tensor.flatten"):
        start, end = call.arg(1, "start_dim", 0), call.arg(2, "end_dim", -1)
    elif call.is_("nn.Flatten"):
        start, end = call.module.start_dim, call.module.end_dim
    elif call.is_(*_VIEWS):
        return {} if len(call.output) == 1 and len(call.inputs[0]) > 1 else None
    else:
        return None
    return {} if (start, end) == (1, -1) else None


def reshape_from_torch(call):
    """A view or reshape that keeps the batch: the traced shape after it."""
    return {"shape": list(call.output)} if call.is_(*_VIEWS, "Tensor.unflatten", "nn.Unflatten") else None


def upsample_from_torch(call):
    """F.interpolate / nn.Upsample to a size or by one scale factor."""
    if call.is_("nn.Upsample"):
        layer = call.module
        size, scale, mode, corners = layer.size, layer.scale_factor, layer.mode, layer.align_corners
        extra = layer.recompute_scale_factor
    elif call.is_("F.interpolate", "F.upsample"):
        size, scale = call.arg(1, "size"), call.arg(2, "scale_factor")
        mode, corners = call.arg(3, "mode", "nearest"), call.arg(4, "align_corners")
        extra = call.arg(5, "recompute_scale_factor") or call.arg(6, "antialias", False)
    else:
        return None
    if extra:
        return call.refuse("interpolate with recompute_scale_factor or antialias")
    if isinstance(scale, (tuple, list)):
        if len(set(scale)) > 1:
            return call.refuse("interpolate with a different scale per axis")
        scale = scale[0]
    if scale is not None:
        found = {"scale": float(scale)}
    elif call.module is None and call.size_of(1, "size") is not None:
        found = {}  # the size of the tensor it was read from: that tensor is the second input
    else:
        found = {"size": call.compact(size)}
    return {**found, "mode": mode, **({"align_corners": bool(corners)} if mode != "nearest" else {})}


def pad_from_torch(call):
    """F.pad of a map by constants: (left, right, top, bottom) as F.pad takes them."""
    if not call.is_("F.pad", "nn.ZeroPad2d", "nn.ConstantPad2d"):
        return None
    if call.module is not None:
        amounts, value = call.module.padding, getattr(call.module, "value", 0.0)
    else:
        amounts, value = call.arg(1, "pad"), call.arg(3, "value", 0.0)
        if call.arg(2, "mode", "constant") != "constant":
            return call.refuse("padding that is not constant")
    amounts = list(amounts)
    if len(amounts) == 2:
        amounts += [0, 0]
    return {"amount": call.compact(amounts) if len(set(amounts)) == 1 else amounts, "value": float(value or 0.0)}


def channel_shuffle_from_torch(call):
    if call.is_("nn.ChannelShuffle"):
        return {"groups": call.module.groups}
    return {"groups": call.arg(1, "groups")} if call.is_("torch.channel_shuffle", "F.channel_shuffle") else None


def split_from_torch(call):
    """torch.split / Tensor.split: the piece sizes as traced."""
    if not call.is_("torch.split", "Tensor.split", "torch.tensor_split", "Tensor.tensor_split"):
        return None
    dim = _dim(call.arg(2, "dim", 0))
    axis = dim if dim >= 0 else len(call.inputs[0]) + dim
    return {"sizes": [shape[axis] for shape in call.output], "dim": dim}


def chunk_from_torch(call):
    if not call.is_("torch.chunk", "Tensor.chunk"):
        return None
    return {"chunks": call.arg(1, "chunks"), "dim": _dim(call.arg(2, "dim", 0))}


def permute_from_torch(call):
    """Tensor.permute / torch.permute, and torchvision's Permute module, keeping the batch first."""
    if call.is_("torchvision.ops.misc.Permute"):
        dims = list(call.module.dims)
    elif call.is_("torch.permute", "Tensor.permute"):
        first = call.arg(1, "dims")
        dims = list(first) if isinstance(first, (tuple, list)) else [first, *call.args[2:]]
    else:
        return None
    if not dims or dims[0] != 0:
        return call.refuse("a permute that moves the batch axis")
    return {"dims": [d - 1 for d in dims[1:]]}


def transpose_from_torch(call):
    if not call.is_("torch.transpose", "Tensor.transpose", "torch.swapaxes", "Tensor.swapaxes"):
        return None
    first, second = call.arg(1, "dim0"), call.arg(2, "dim1")
    if 0 in (first, second):
        return call.refuse("a transpose of the batch axis")
    return {"dim0": _dim(first), "dim1": _dim(second)}


def mean_from_torch(call):
    """torch.mean / Tensor.mean over axes after the batch."""
    if not call.is_("torch.mean", "Tensor.mean"):
        return None
    dims = call.arg(1, "dim")
    dims = list(dims) if isinstance(dims, (tuple, list)) else [dims]
    if None in dims or 0 in dims:
        return call.refuse("a mean over the batch axis or over everything")
    found = [_dim(d) for d in dims]
    return {"dims": found[0] if len(found) == 1 else found, "keepdim": bool(call.arg(2, "keepdim", False))}


def matmul_from_torch(call):
    if not call.is_("torch.matmul", "Tensor.matmul", "operator.matmul", "torch.bmm"):
        return None
    return {} if len(call.inputs) == 2 else call.refuse("a matmul with a constant")


def select_from_torch(call):
    """x[:, k] (and x.select(d, k)): one index of one axis after the batch."""
    if call.is_("Tensor.select", "torch.select"):
        dim, index = call.arg(1, "dim"), call.arg(2, "index")
        return {"dim": _dim(dim), "index": index} if dim != 0 else None
    index = _getitem_index(call)
    picks = [(axis, item) for axis, item in enumerate(index or ()) if isinstance(item, int)]
    if index is None or len(picks) != 1 or any(_sliced(item) for item in index):
        return None
    return {"dim": picks[0][0] - 1, "index": picks[0][1]} if picks[0][0] > 0 else None


def slice_from_torch(call):
    """x[:, a:b:s] (one sliced axis after the batch)."""
    index = _getitem_index(call)
    cuts = [(axis, item) for axis, item in enumerate(index or ()) if _sliced(item)]
    if index is None or len(cuts) != 1 or any(isinstance(item, int) for item in index) or cuts[0][0] == 0:
        return None
    axis, cut = cuts[0]
    found = {"dim": axis - 1, "start": cut.start, "stop": cut.stop, "step": cut.step or 1}
    return {key: value for key, value in found.items() if value is not None}


def _getitem_index(call):
    """The index of `x[...]` as a tuple over the axes (with the batch), or None."""
    if not call.is_("operator.getitem") or len(call.args) != 2:
        return None
    index = call.args[1]
    index = index if isinstance(index, tuple) else (index,)
    if any(item is Ellipsis or item is None for item in index):
        return None
    return index


def _sliced(item) -> bool:
    return isinstance(item, slice) and (item.start, item.stop, item.step) != (None, None, None)


def roll_from_torch(call):
    if not call.is_("torch.roll", "Tensor.roll"):
        return None
    shifts, dims = call.arg(1, "shifts"), call.arg(2, "dims")
    dims = list(dims) if isinstance(dims, (tuple, list)) else [dims]
    if None in dims or 0 in dims:
        return call.refuse("a roll over the batch axis or the flattened tensor")
    found = [_dim(d) for d in dims]
    return {"shifts": list(shifts) if isinstance(shifts, (tuple, list)) else shifts, "dims": found[0] if len(found) == 1 else found}
