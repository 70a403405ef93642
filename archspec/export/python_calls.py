"""One op call as source (archspec.ops.source.Written): from the op's `source` rule, or from its
torch builder: a torch.nn module is written as its constructor call, read back from the module's
attributes and its constructor's signature and checked by building it again; a function as its
name in torch, torch.nn.functional or operator (`a + b`); anything else the builders use (a helper
of the lowering, a torchvision layer) is a class or function whose source the file will hold.
"""
from __future__ import annotations

import inspect
import operator
import re
from typing import Any

from archspec.ir.graph import IRNode, Shape
from archspec.ops.source import INPUT_LIST, INPUTS, Call, Written

OPERATORS = {operator.add: "+", operator.mul: "*", operator.iadd: "+="}
# constructor arguments that say where a module lives, not what it is
PLACEMENT = ("device", "dtype")


def written(node: IRNode, in_shapes: list[Shape], in_place: bool) -> Written:
    """How the node's op call is written: the op's own rule, else read from its builder."""
    op = node.entry
    if op.source is not None:
        return op.source(node.args, in_shapes, in_place)
    if op.module is not None:
        return _from_module(node, in_shapes)
    return _from_function(node, in_shapes, in_place)


def _from_module(node: IRNode, in_shapes: list[Shape]) -> Written:
    import torch

    with torch.device("meta"):  # the module is read, never run: no memory for its weights
        built = node.entry.module(node.args, in_shapes)
    cls = type(built)
    call = constructor_call(built, _callee(cls))
    if call is None:
        raise ValueError(f"its {cls.__name__} does not read back as a constructor call (give the op a `source` rule)")
    return Written(module=call, needs=() if _in_torch(cls) else (cls,))


def _from_function(node: IRNode, in_shapes: list[Shape], in_place: bool) -> Written:
    op = node.entry
    function, keywords = op.function(node.args, in_shapes)
    if in_place:
        function, keywords = op.in_place_form(function, keywords)
    inputs = INPUT_LIST if op.inputs_as_list else INPUTS
    if function in OPERATORS:
        return Written(then=Call(OPERATORS[function], (inputs,)))
    callee, needs = _function_name(function)
    written_call = Call(callee, (inputs,), tuple(keywords.items()))
    if op.tensor is None:
        return Written(then=written_call, needs=needs)
    shape = op.params(node.args, in_shapes)[""]  # the free tensor's shape (Op.tensor names it "")
    parameter = Call("nn.Parameter", (Call("torch.zeros", tuple(shape)),))
    return Written(module=parameter, then=written_call, needs=needs)


def _function_name(function: Any) -> tuple[str, tuple[Any, ...]]:
    import torch
    import torch.nn.functional as F

    name = getattr(function, "__name__", "")
    for prefix, namespace in (("torch", torch), ("F", F)):
        if name and getattr(namespace, name, None) is function:
            return f"{prefix}.{name}", ()
    if inspect.isfunction(function):
        return name, (function,)  # its source goes into the file
    raise ValueError(f"no source for the function {function!r}")


def _in_torch(cls: type) -> bool:
    import torch.nn as nn

    return getattr(nn, cls.__name__, None) is cls


def _callee(cls: type) -> str:
    return f"nn.{cls.__name__}" if _in_torch(cls) else cls.__name__


# --- a module's constructor call, read back from the module -----------------------------------------
def constructor_call(built: Any, callee: str) -> Call | None:
    """The call that builds a module equal to `built`: each constructor parameter read from the
    attribute of its name (a tensor attribute answers a flag such as `bias`), required ones first
    and by position (the first two), the others by keyword where they differ from the default;
    an equal pair (3, 3) is written 3 where that builds the same module. None when no reading
    rebuilds it exactly."""
    values = _constructor_values(built)
    if values is None:
        return None
    for simplify in (True, False):
        call = _call(callee, values, simplify)
        if _rebuilds(built, call):
            return call
    return None


def _constructor_values(built: Any) -> list[tuple[str, Any, Any]] | None:
    """(parameter, value, default) for each constructor parameter, in the signature's order."""
    import torch

    values = []
    for name, parameter in list(inspect.signature(type(built).__init__).parameters.items())[1:]:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD) or name in PLACEMENT:
            continue
        default = parameter.default
        if not hasattr(built, name):
            if default is parameter.empty:
                return None
            continue  # left at its default: the check by rebuilding tells whether it was
        value = getattr(built, name)
        if isinstance(default, bool) and (value is None or isinstance(value, torch.Tensor)):
            value = value is not None  # `bias=False` is stored as bias = None
        if isinstance(value, torch.Size):
            value = tuple(value)
        values.append((name, value, default))
    return values


def _call(callee: str, values: list[tuple[str, Any, Any]], simplify: bool) -> Call:
    args, keywords, defaults = [], [], []
    for name, value, default in values:
        if simplify and isinstance(value, tuple) and len(value) > 1 and len(set(value)) == 1:
            value = value[0]
        required = default is inspect.Parameter.empty
        if required and len(args) < 2 and not keywords:
            args.append(value)
            continue
        keywords.append((name, value))
        if not required:
            defaults.append((name, default))
    return Call(callee, tuple(args), tuple(keywords), tuple(defaults))


def same_value(a: Any, b: Any) -> bool:
    """Equal and of one type (True is not 1, 1.0 is not 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return a == b


def _rebuilds(built: Any, call: Call) -> bool:
    """Whether the call builds a module equal to `built`: the same text, the same plain
    attributes and the same tensors with the same shapes."""
    import torch

    cls = type(built)
    try:
        with torch.device("meta"):
            rebuilt = cls(*call.args, **dict(call.keywords))
    except Exception:  # a reading the constructor refuses is simply not the right one
        return False
    same_text = _pairs_as_one(repr(rebuilt)) == _pairs_as_one(repr(built))
    return same_text and _plain(rebuilt) == _plain(built) and _tensors(rebuilt) == _tensors(built)


def _pairs_as_one(text: str) -> str:
    """A module's text with `(3, 3)` read as `3`: torch.nn takes either for a 2-D size."""
    return re.sub(r"\((-?\d+), \1\)", r"\1", text)


def _plain(module: Any) -> dict[str, Any]:
    plain = (bool, int, float, str, tuple, type(None))
    return {k: _one(v) for k, v in vars(module).items() if not k.startswith("_") and isinstance(v, plain)}


def _one(value: Any) -> Any:
    return value[0] if isinstance(value, tuple) and len(value) > 1 and len(set(value)) == 1 else value


def _tensors(module: Any) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict(keep_vars=True).items()}
