"""Property tests: random valid graphs, whose static figures must equal the lowered module's.

The strategy builds a spec layer by layer (conv, dwconv, bn, activations, max/avg pooling,
residual adds, with and without a projection or a crop, parallel branches merged by concat or add,
upsampling, transposed convolutions, and optionally a global-average-pool or flatten head with a
linear layer), tracking the feature-map shape as it goes so that it only emits valid graphs. For
each graph: every node's static shape equals the shape torch produces (and the final one equals
the strategy's own bookkeeping), and the parameters, buffers and FLOPs equal what torch counts.

`PROPERTY_EXAMPLES=500 pytest tests/test_properties.py` raises the number of examples.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.fx.passes.shape_prop import ShapeProp
from archspec.lower.verify import flop_counter

from archspec import build_module, compile_spec
from archspec.passes.counts import analyze

EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "60"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MAX_SIDE = 24
MAX_CHANNELS = 16
BATCH = 2


# --- shape bookkeeping, written independently of archspec ---------------------------------------
def window_size(n: int, k: int, s: int, p: int, d: int = 1, ceil_mode: bool = False) -> int:
    """PyTorch's conv / pooling output size, with its ceil_mode rule."""
    span = d * (k - 1) + 1
    num = n + 2 * p - span
    out = (-(-num // s) if ceil_mode else num // s) + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def fits(n: int, k: int, p: int, d: int = 1) -> bool:
    return n + 2 * p >= d * (k - 1) + 1


@dataclass
class Graph:
    input: tuple[int, int, int]
    layers: list = field(default_factory=list)
    shape: tuple[int, ...] = ()  # current shape (the strategy's bookkeeping)
    current: str = "x"  # name of the node giving the current value
    count: int = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def spec(self) -> dict:
        return {"name": "random_graph", "inputs": {"x": list(self.input)}, "layers": self.layers}


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


# --- one generator per kind of layer; each appends items and updates the shape -------------------
def add_conv(draw, g: Graph) -> None:
    c, h, w = g.shape
    out = draw(st.integers(1, 8))
    groups = draw(st.sampled_from(divisors(math.gcd(c, out))))
    kernel = draw(st.sampled_from([1, 2, 3, [1, 3], [3, 1]]))
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    stride = draw(st.sampled_from([1, 1, 2]))
    dilation = draw(st.sampled_from([1, 1, 2]))
    padding = draw(st.sampled_from([0, 1, 2, "same", "valid", [1, 0]]))
    if padding == "same" and stride != 1:
        padding = 1
    ph, pw = {"same": (0, 0), "valid": (0, 0)}.get(padding, (padding, padding)) if not isinstance(padding, list) else padding
    if padding != "same" and not (fits(h, kh, ph, dilation) and fits(w, kw, pw, dilation)):
        kernel, kh, kw, dilation = 1, 1, 1, 1
    args = {"out": out, "kernel": kernel, "stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    args["bias"] = draw(st.booleans())
    name = g.name("conv")
    g.layers.append({"conv": {**args, "name": name}})
    if padding == "same":
        g.shape = (out, h, w)
    else:
        g.shape = (out, window_size(h, kh, stride, ph, dilation), window_size(w, kw, stride, pw, dilation))
    g.current = name


def add_dwconv(draw, g: Graph) -> None:
    c, h, w = g.shape
    multiplier = draw(st.integers(1, 2)) if c * 2 <= MAX_CHANNELS else 1
    kernel = draw(st.sampled_from([1, 3, 5]))
    stride = draw(st.sampled_from([1, 2]))
    padding = draw(st.sampled_from([0, 1, 2, "same"]))
    if padding == "same" and stride != 1:
        padding = kernel // 2
    p = 0 if padding == "same" else padding
    if padding != "same" and not (fits(h, kernel, p) and fits(w, kernel, p)):
        kernel = 1
    name = g.name("dw")
    g.layers.append(
        {"dwconv": {"kernel": kernel, "stride": stride, "padding": padding, "multiplier": multiplier, "name": name, "bias": draw(st.booleans())}}
    )
    g.shape = (c * multiplier, h, w) if padding == "same" else (c * multiplier, window_size(h, kernel, stride, p), window_size(w, kernel, stride, p))
    g.current = name


def add_elementwise(draw, g: Graph) -> None:
    op = draw(st.sampled_from(["bn", "relu", "relu6", "leaky_relu", "sigmoid", "silu", "hardswish", "identity", "dropout"]))
    name = g.name(op)
    g.layers.append({op: {"name": name}})
    g.current = name


def add_pool(draw, g: Graph) -> None:
    c, h, w = g.shape
    op = draw(st.sampled_from(["maxpool", "avgpool"]))
    kernel = draw(st.integers(2, 3))
    stride = draw(st.sampled_from([None, 1, 2]))
    padding = draw(st.integers(0, kernel // 2))
    ceil_mode = draw(st.booleans())
    dilation = draw(st.sampled_from([1, 1, 2])) if op == "maxpool" else 1
    if not (fits(h, kernel, padding, dilation) and fits(w, kernel, padding, dilation)):
        return
    s = kernel if stride is None else stride
    args = {"kernel": kernel, "padding": padding, "ceil_mode": ceil_mode}
    if stride is not None:
        args["stride"] = stride
    if op == "maxpool":
        args["dilation"] = dilation
    else:
        args["count_include_pad"] = draw(st.booleans())
    name = g.name(op)
    g.layers.append({op: {**args, "name": name}})
    g.shape = (c, window_size(h, kernel, s, padding, dilation, ceil_mode), window_size(w, kernel, s, padding, dilation, ceil_mode))
    g.current = name


def add_residual(draw, g: Graph) -> None:
    """x -> conv -> bn (-> relu) ; add(main, x), with a 1x1 projection when the shapes differ,
    or with the shortcut centre-cropped (`fit: crop`) when the main path is unpadded."""
    c, h, w = g.shape
    kind = draw(st.sampled_from(["same", "project", "project", "crop"]))
    if kind == "project" and (h % 2 or w % 2):
        kind = "same"
    if kind == "crop" and min(h, w) < 3:
        kind = "same"
    shortcut = g.current
    main = g.name("res")
    if kind == "same":
        g.layers.append({"conv": {"out": c, "kernel": 3, "padding": 1, "bias": False, "name": main}})
        out_shape = (c, h, w)
    elif kind == "project":
        out = draw(st.integers(1, 8))
        g.layers.append({"conv": {"out": out, "kernel": 3, "stride": 2, "padding": 1, "bias": False, "name": main}})
        out_shape = (out, h // 2, w // 2)
    else:
        g.layers.append({"conv": {"out": c, "kernel": 3, "name": main}})
        out_shape = (c, h - 2, w - 2)
    norm = g.name("resbn")
    g.layers.append({"bn": {"name": norm}})
    if draw(st.booleans()):
        activation = g.name("resrelu")
        g.layers.append({"relu": {"name": activation}})
        norm = activation
    add = g.name("add")
    args: dict = {"from": [norm, shortcut], "name": add}
    if kind == "project":
        args.update(project="auto", projection_name=f"proj{g.count}")
    elif kind == "crop":
        args["fit"] = "crop"
    g.layers.append({"add": args})
    g.shape = out_shape
    g.current = add


def add_parallel(draw, g: Graph) -> None:
    """Two or three branches from the same input, keeping the spatial size, merged by concat
    (any widths) or add (equal widths)."""
    c, h, w = g.shape
    merge = draw(st.sampled_from(["concat", "add"]))
    count = draw(st.integers(2, 3))
    width = draw(st.integers(1, 4))
    branches, channels = {}, []
    for index in range(count):
        kind = draw(st.sampled_from(["conv1", "conv3", "pool", "dw"]))
        if merge == "add" and kind in ("pool", "dw") and c != width:
            kind = "conv1"
        if kind == "conv1":
            layers, out = [{"conv": {"out": width if merge == "add" else draw(st.integers(1, 4)), "kernel": 1}}], None
        elif kind == "conv3":
            layers, out = [{"conv": {"out": width if merge == "add" else draw(st.integers(1, 4)), "kernel": 3, "padding": 1}}, "bn", "relu"], None
        elif kind == "pool":
            layers, out = [{"maxpool": {"kernel": 3, "stride": 1, "padding": 1}}], c
        else:
            layers, out = [{"dwconv": {"kernel": 3, "padding": "same"}}], c
        channels.append(out if out is not None else layers[0]["conv"]["out"])
        branches[f"b{index}"] = layers
    if merge == "concat" and sum(channels) > MAX_CHANNELS:
        return
    name = g.name("par")
    g.layers.append({"parallel": {"branches": branches, "merge": merge, "name": name}})
    g.shape = (sum(channels) if merge == "concat" else width, h, w)
    g.current = name


def add_concat_skip(draw, g: Graph) -> None:
    """A named conv, then concat(conv, earlier value), optionally through `fit: crop|pad`."""
    c, h, w = g.shape
    fit = draw(st.sampled_from(["none", "crop", "pad"]))
    out = draw(st.integers(1, 4))
    if c + out > MAX_CHANNELS:
        return
    kernel = 1 if fit == "none" or min(h, w) < 3 else 3
    skip = g.current
    conv = g.name("cb")
    g.layers.append({"conv": {"out": out, "kernel": kernel, "name": conv}})
    cat = g.name("cat")
    args = {"from": [skip, conv], "name": cat}
    if fit != "none":
        args["fit"] = fit
    g.layers.append({"concat": args})
    if fit == "pad":
        g.shape = (c + out, h, w)
    else:
        g.shape = (c + out, h - kernel + 1, w - kernel + 1)
    g.current = cat


def add_upsample(draw, g: Graph) -> None:
    c, h, w = g.shape
    mode = draw(st.sampled_from(["nearest", "bilinear"]))
    how = draw(st.sampled_from(["scale", "size"]))
    if how == "scale":
        scale = draw(st.sampled_from([2, 1.5, 0.5]))
        size = (int(h * scale), int(w * scale))
        args = {"scale": scale}
    else:
        size = (draw(st.integers(1, MAX_SIDE)), draw(st.integers(1, MAX_SIDE)))
        args = {"size": list(size)}
    if max(size) > MAX_SIDE or min(size) < 1:
        return
    name = g.name("up")
    g.layers.append({"upsample": {**args, "mode": mode, "name": name}})
    g.shape = (c, *size)
    g.current = name


def add_conv_transpose(draw, g: Graph) -> None:
    c, h, w = g.shape
    out = draw(st.integers(1, 8))
    groups = draw(st.sampled_from(divisors(math.gcd(c, out))))
    kernel, stride, padding, output_padding = draw(st.sampled_from([(2, 2, 0, 0), (3, 1, 1, 0), (3, 2, 1, 1), (3, 2, 0, 0), (4, 2, 1, 0)]))
    size = [(n - 1) * stride - 2 * padding + kernel + output_padding for n in (h, w)]
    if max(size) > MAX_SIDE:
        return
    name = g.name("up")
    args = {"out": out, "kernel": kernel, "stride": stride, "padding": padding, "output_padding": output_padding, "groups": groups}
    g.layers.append({"conv_transpose": {**args, "name": name, "bias": draw(st.booleans())}})
    g.shape = (out, *size)
    g.current = name


BODY = [add_conv, add_dwconv, add_elementwise, add_pool, add_residual, add_parallel, add_concat_skip, add_upsample, add_conv_transpose]


@st.composite
def graphs(draw) -> Graph:
    shape = (draw(st.integers(1, 4)), draw(st.integers(4, 12)), draw(st.integers(4, 12)))
    g = Graph(input=shape, shape=shape)
    for _ in range(draw(st.integers(1, 6))):
        draw(st.sampled_from(BODY))(draw, g)
    head = draw(st.sampled_from(["none", "gap", "flatten"]))
    if head == "flatten" and math.prod(g.shape) > 1024:
        head = "gap"
    if head != "none":
        features = g.shape[0] if head == "gap" else math.prod(g.shape)
        g.layers.append("global_avgpool" if head == "gap" else "flatten")
        classes = draw(st.integers(1, 10))
        g.layers.append({"linear": {"out": classes, "bias": draw(st.booleans())}})
        if draw(st.booleans()):
            g.layers.append("softmax")
        g.shape = (classes,)
        assert features > 0
    if not g.layers:
        g.layers.append("relu")
    return g


# --- the properties -----------------------------------------------------------------------------
def compile_graph(tmp_path_factory, g: Graph):
    path = tmp_path_factory.mktemp("graph") / "spec.yaml"
    path.write_text(yaml.safe_dump(g.spec(), sort_keys=False))
    return compile_spec(path)


@SETTINGS
@given(g=graphs())
def test_static_figures_equal_the_lowered_module(tmp_path_factory, g: Graph):
    ir = compile_graph(tmp_path_factory, g)
    analysis = analyze(ir, batch=BATCH)
    assert analysis.outputs["output"] == g.shape  # the strategy's own bookkeeping

    torch.manual_seed(0)
    module = build_module(ir)
    x = torch.randn(BATCH, *g.input)
    with torch.no_grad(), flop_counter() as counter:
        y = module(x)
    assert tuple(y.shape) == (BATCH, *g.shape)
    assert analysis.totals.flops == counter.get_total_flops()
    assert analysis.totals.flops == 2 * analysis.totals.macs
    assert analysis.totals.params == sum(p.numel() for p in module.parameters())
    assert analysis.totals.trainable == sum(p.numel() for p in module.parameters() if p.requires_grad)
    assert analysis.totals.buffers == sum(b.numel() for b in module.buffers())

    # every node's shape, in the order the lowering emits them
    with torch.no_grad():
        ShapeProp(module).propagate(x)
    fx_nodes = [n for n in module.graph.nodes if n.op != "output"]
    assert len(fx_nodes) == len(ir.order)
    for node_id, fx_node in zip(ir.order, fx_nodes):
        assert ir.shapes[node_id] == tuple(fx_node.meta["tensor_meta"].shape[1:]), node_id
    assert analysis.totals.activations == BATCH * sum(math.prod(ir.shapes[i]) for i in ir.order if i not in ir.inputs.values())

    # the state_dict holds exactly the tensors the analysis lists, with the listed shapes
    listed = {}
    for layer in analysis.layers:
        for tensor, shape in {**layer.tensors, **layer.buffer_tensors}.items():
            listed[f"{layer.module}.{tensor}"] = tuple(shape)
    assert listed == {key: tuple(value.shape) for key, value in module.state_dict().items()}


@SETTINGS
@given(g=graphs(), batch=st.integers(1, 5))
def test_counts_scale_with_the_batch(tmp_path_factory, g: Graph, batch: int):
    ir = compile_graph(tmp_path_factory, g)
    one, many = analyze(ir, batch=1), analyze(ir, batch=batch)
    assert many.totals.params == one.totals.params
    assert many.totals.buffers == one.totals.buffers
    for figure in ("macs", "flops", "all_ops", "activations"):
        assert getattr(many.totals, figure) == batch * getattr(one.totals, figure), figure
    # totals are the sum of the layers, and each block's figures the sum of its layers
    assert one.totals.params == sum(layer.figures.params for layer in one.layers)
    assert one.totals.flops == sum(layer.figures.flops for layer in one.layers)
    for block in one.blocks:
        inside = [layer for layer in one.layers if block.name in layer.scopes]
        assert block.layers == len(inside)
        assert block.figures.params == sum(layer.figures.params for layer in inside)
        assert block.figures.macs == sum(layer.figures.macs for layer in inside)
