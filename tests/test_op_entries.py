"""Every registered op entry, walked one by one: its family is one the registry knows and its label
formats with real, valid arguments; and the labels read the arguments they name (expectations
written out by hand from the label format: kernel x kernel / stride, then the key figure)."""
from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Literal, Union

import pytest
from pydantic import ValidationError

from archspec.ops.catalog import entries, lookup
from archspec.ops.registry import FAMILIES, TRAITS, Op

OPS = entries()


def _sample(annotation: Any, number: int) -> Any:
    """A small value of a field's type: `number` for an int (and for each int of a pair or list),
    number / 4 for a float, the first choice of a Literal, the first member of a union."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return _sample(args[0], number)
    if origin is Literal:
        return args[0]
    if origin in (Union, types.UnionType):
        return _sample(next(a for a in args if a is not type(None)), number)
    if origin is tuple:
        return tuple(_sample(a, number) for a in args if a is not Ellipsis)
    if origin is list:
        return [_sample(args[0], number)] * 2  # two entries: some lists need several (split sizes)
    return {bool: True, int: number, float: number / 4, str: "x"}[annotation]


def minimal_args(op: Op):
    """A valid argument instance with only the required fields, set to small values."""
    required = {name: f.annotation for name, f in op.args.model_fields.items() if f.is_required()}
    errors = []
    for number in (2, 1, 0):
        try:
            return op.args.model_validate({name: _sample(kind, number) for name, kind in required.items()})
        except ValidationError as err:
            errors.append(str(err))
    raise AssertionError(f"no small valid arguments for {op.name}: {errors[0]}")


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
def test_every_op_has_a_known_family(op):
    assert op.family in FAMILIES, (op.name, op.family)


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
def test_every_label_formats_with_valid_arguments(op):
    text = op.text(minimal_args(op))
    assert isinstance(text, str) and text.strip() == text and text, (op.name, text)
    assert "None" not in text, (op.name, text)  # an optional argument read without its default
    symbol = len(text) == 1 and not text.isalnum()  # add's +, mul's x: drawn in a circle
    assert symbol or text == op.name or text.startswith(op.name + " "), (op.name, text)


def label(op: str, **args: Any) -> str:
    entry = lookup(op)
    return entry.text(entry.args.model_validate(args))


@pytest.mark.parametrize(
    "op, args, expected",
    [
        ("conv", dict(out=128, kernel=3, stride=2, padding=1), "conv 3x3/2, 128"),
        ("conv", dict(out=64, kernel=1), "conv 1x1, 64"),
        ("conv", dict(out=16, kernel=[3, 5], stride=[2, 1], dilation=2, groups=4), "conv 3x5/2x1, 16 (dil 2, groups 4)"),
        ("conv", dict(out=16, kernel=3, dilation=[1, 2]), "conv 3x3, 16 (dil 1x2)"),
        ("conv_transpose", dict(out=64, kernel=2, stride=2), "conv_transpose 2x2/2, 64"),
        ("deconv", dict(out=8, kernel=3, groups=2), "conv_transpose 3x3, 8 (groups 2)"),  # an alias: the op's name
        ("dwconv", dict(kernel=3, stride=2, padding=1), "dwconv 3x3/2"),
        ("dwconv", dict(kernel=5, multiplier=2), "dwconv 5x5, x2"),
        ("maxpool", dict(kernel=3, stride=2, padding=1), "maxpool 3x3/2"),
        ("maxpool", dict(kernel=[2, 3], stride=1), "maxpool 2x3"),
        ("avgpool", dict(kernel=2), "avgpool 2x2/2"),  # the stride defaults to the kernel
        ("adaptive_avgpool", dict(), "adaptive_avgpool 1x1"),
        ("adaptive_maxpool", dict(size=[2, 3]), "adaptive_maxpool 2x3"),
        ("linear", dict(out=1000), "linear 1000"),
        ("upsample", dict(scale=2, mode="bilinear"), "upsample x2 bilinear"),
        ("upsample", dict(scale=1.5), "upsample x1.5 nearest"),
        ("upsample", dict(size=[12, 10]), "upsample to 12x10 nearest"),
        ("upsample", dict(), "upsample to size nearest"),  # the size of a second input
        ("concat", dict(), "concat"),
        ("concat", dict(fit="crop"), "concat (crop)"),
        ("add", dict(fit="pad"), "+"),
        ("mul", dict(), "×"),
        ("groupnorm", dict(groups=32), "groupnorm 32"),
        ("channel_shuffle", dict(groups=3), "channel_shuffle 3"),
        ("dropout", dict(p=0.2), "dropout 0.2"),
        ("dropout", dict(), "dropout 0.5"),
        ("drop_path", dict(p=0.1), "drop_path 0.1"),
        ("relu", dict(), "relu"),
        ("bn", dict(eps=1e-3), "bn"),
    ],
)
def test_labels_read_their_arguments(op, args, expected):
    assert label(op, **args) == expected


def test_leaky_relu_label_shows_its_slope():
    """Regression: the diagram read `slope`, but the argument is `negative_slope`, so the label
    lost it and every leaky ReLU read `leaky_relu`."""
    assert label("leaky_relu", negative_slope=0.2) == "leaky_relu 0.2"
    assert label("leaky_relu") == "leaky_relu 0.01"  # PyTorch's default slope


# --- every entry against torch: shapes, outputs, parameters, FLOPs, saved-for-backward ----------
# arguments for ops whose smallest valid arguments do not fit a small input; every other op is
# tried with `minimal_args` on each candidate input until one is accepted
EXAMPLES = {
    "reshape": {"shape": [6, 48]},
    "permute": {"dims": [1, 2, 0]},
    "split": {"sizes": [3, 5]},
    "channel_shuffle": {"groups": 2},
    "groupnorm": {"groups": 2},
    "upsample": {"scale": 2},
    "crop": {"size": 4},
    "pad": {"amount": 1},
    "partition_attention": {"head_dim": 2, "partition": "grid", "size": 3},  # a 6x6 map in a 3x3 grid
}
CANDIDATES = [(8, 6, 6), (8,), (4, 8)]
# ops whose inputs differ in shape, given one shape per input: RoI pooling takes a map and the
# K = 3 boxes of each image, rows (batch_index, x1, y1, x2, y2)
INPUT_SHAPES = {"roi_pool": [(8, 6, 6), (3, 5)], "roi_align": [(8, 6, 6), (3, 5)]}


def _candidates(op: Op) -> list[list[tuple[int, ...]]]:
    if op.name in INPUT_SHAPES:
        return [INPUT_SHAPES[op.name]]
    return [[shape] * max(op.arity[0], 1) for shape in CANDIDATES]


def _feed(shape, batch: int):
    """Random values of one input; [K, 5] boxes are valid ones on a 6x6 map (x1 <= x2, y1 <= y2),
    column 0 the sample's own index."""
    import torch

    if len(shape) != 2 or shape[1] != 5:
        return torch.randn(batch, *shape)
    corners = torch.rand(batch, shape[0], 2, 2) * 5
    low, high = corners.min(dim=2).values, corners.max(dim=2).values
    index = torch.arange(batch, dtype=torch.float32).reshape(batch, 1, 1).expand(batch, shape[0], 1)
    return torch.cat([index, low, high], dim=2)


def _one_op_spec(tmp_path, op: Op, shapes, args: dict):
    import yaml

    inputs = {f"x{k}": list(shape) for k, shape in enumerate(shapes)}
    item = {op.name: {**args, "from": list(inputs)} if len(inputs) > 1 else args}
    # a free tensor (param) is read by one more op: FlopCounterMode's module tracker cannot hook
    # an output that is a view of a parameter made without grad
    layers = [item, "relu"] if op.tensor is not None else [item]
    path = tmp_path / f"{op.name}_{len(shapes[0])}.yaml"
    path.write_text(yaml.safe_dump({"name": f"one_{op.name}", "inputs": inputs, "layers": layers}))
    return path, list(inputs)


def _first_accepted(tmp_path, op: Op):
    from archspec import SpecError
    from archspec.pipeline import compile

    sampled = {name: _sample(f.annotation, 2) for name, f in op.args.model_fields.items() if f.is_required()}
    args = EXAMPLES.get(op.name, sampled)
    for shapes in _candidates(op):
        path, names = _one_op_spec(tmp_path, op, shapes, args)
        try:
            return compile(path), shapes, names
        except SpecError:
            continue
    raise AssertionError(f"{op.name}: no candidate input accepted with {args}")


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
def test_every_entry_agrees_with_its_torch_lowering(op, tmp_path):
    import torch
    from archspec.lower.verify import flop_counter

    compiled, shapes, names = _first_accepted(tmp_path, op)
    node = next(node for node in reversed(compiled.ir.nodes()) if node.op == op.name)
    module = compiled.module().eval()
    feeds = {name: _feed(shape, 2) for name, shape in zip(names, shapes)}
    with torch.no_grad(), flop_counter() as counter:
        result = module(**feeds)
    pieces = result if isinstance(result, (tuple, list)) else (result,)
    assert len(node.shapes) == op.output_count(node.args, shapes)
    assert tuple(tuple(p.shape[1:]) for p in pieces[: len(node.shapes)])[:1] == node.shapes[:1]
    assert compiled.analysis.totals.params == sum(p.numel() for p in module.parameters())
    assert compiled.analysis.totals.buffers == sum(b.numel() for b in module.buffers())
    assert compiled.analysis.totals.flops * 2 == counter.get_total_flops()  # counts are per sample, fed 2
    output = node.shape if len(node.shapes) == 1 else list(node.shapes)
    saved = op.saved(node.args, shapes, output)
    assert all(0 <= index < len(names) for index in saved.inputs)
    assert op.traits <= TRAITS and (op.explain is None or callable(op.explain))


# --- the registry's own invariants ----------------------------------------------------------------
def _entry(**changes):
    from dataclasses import replace

    return replace(lookup("relu"), **changes)


def test_register_refuses_a_name_or_alias_that_is_taken():
    from archspec.ops.registry import Registry

    registry = Registry()
    registry.register(_entry(name="twice"))
    with pytest.raises(ValueError, match="'twice' is registered twice"):
        registry.register(_entry(name="twice"))
    with pytest.raises(ValueError, match="'twice' is registered twice"):
        registry.register(_entry(name="other", aliases=("twice",)))
    assert list(registry.entries()) == ["twice"]  # a refused entry leaves nothing behind


@pytest.mark.parametrize(
    "changes, words",
    [
        (dict(module=lambda a, i: None), "exactly one torch builder"),  # relu already has a function
        (dict(function=None), "exactly one torch builder"),
        (dict(family="sparkly"), "family 'sparkly'"),
        (dict(traits=frozenset({"shiny"})), "unknown traits"),
        (dict(in_place_form=None), "come together"),
        (dict(summary=""), "needs a `summary`"),
        (dict(name="Relu"), "lower-case identifier"),
        (dict(arity=(2, 1)), "arity"),
    ],
)
def test_register_checks_each_entry(changes, words):
    from archspec.ops.registry import Registry

    with pytest.raises(ValueError, match="not a valid entry") as caught:
        Registry().register(_entry(**changes))
    assert words in str(caught.value)


def test_the_catalog_lists_its_modules_explicitly():
    """No discovery by import side effects: every op module under archspec/ops/ that defines OPS
    is named in the catalog, and the registry holds exactly their entries."""
    import importlib
    import pkgutil

    import archspec.ops
    from archspec.ops import catalog

    with_ops = []
    for info in pkgutil.iter_modules(archspec.ops.__path__):
        module = importlib.import_module(f"archspec.ops.{info.name}")
        if hasattr(module, "OPS"):
            with_ops.append(module)
    assert set(with_ops) == set(catalog.MODULES)
    assert [op.name for op in entries()] == [op.name for module in catalog.MODULES for op in module.OPS]
