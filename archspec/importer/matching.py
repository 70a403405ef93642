"""A traced torch call as an op's `from_torch` matcher sees it, and the search over the registry.

A matcher reads a `TorchCall`: what was called (`is_`: names such as `nn.Conv2d`, `F.relu`,
`torch.cat`, `operator.add`, `Tensor.flatten`), the module instance for a module call, the
arguments (tensors among them as `TensorArg`, sizes read off tensors already as numbers) and
the shapes, batch left out as everywhere in archspec. It returns the op's arguments, or None
(`refuse` leaves a hint for the report). The importer then checks the answer against the op's
own rules: its argument schema, its shape rule and, for a module, its tensors against the
module's state_dict, so a match that would not load or not compute the same is refused.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from archspec.ops.catalog import entries
from archspec.ops.registry import Op

Shape = tuple[int, ...]


@dataclass(frozen=True)
class TensorArg:
    """A tensor among a call's arguments: its input slot and its shape without the batch."""

    slot: int
    shape: Shape


class Sized(tuple):
    """A (H, W) read off a tensor (`x.shape[-2:]`): `source` is the value it was read from."""

    source: str = ""


class TorchCall:
    """One traced call, for the matchers: `kind` is "module", "function" or "method"."""

    def __init__(self, kind: str, names: frozenset[str], module: Any = None, args: tuple = (), kwargs: dict | None = None,
                 inputs: list[Shape] | None = None, output: Shape | list[Shape] = (), tensors: dict[str, Shape] | None = None,
                 sources: list[str] | None = None):
        self.kind, self.names, self.module = kind, names, module
        self.args, self.kwargs = args, kwargs or {}
        self.inputs = inputs or []
        self.output = output  # its shape, or one per output (None where an output is not a tensor)
        self.tensors = tensors or {}  # the state_dict entries the call owns (a module's), name -> shape
        self.sources = sources or []  # the values in the input slots (to tell whether two slots are one tensor)
        self.hint: str | None = None
        self.kept: list[int] | None = None

    def size_of(self, position: int, keyword: str) -> int | None:
        """Where an argument is a size read off a tensor (`size=x.shape[-2:]`), that tensor as one
        more input slot (an op that matches a second input's size reads it so); else None."""
        value = self.arg(position, keyword)
        if not isinstance(value, Sized) or not value.source:
            return None
        self.sources.append(value.source)
        self.inputs.append(value.source_shape)
        return len(self.inputs) - 1

    def keep(self, *slots: int) -> None:
        """The op reads only these input slots (self-attention's query, key and value are one tensor)."""
        self.kept = list(slots)

    def same(self, *slots: int) -> bool:
        """Whether the input slots hold one tensor."""
        return len(self.sources) > max(slots) and len({self.sources[k] for k in slots}) == 1

    def is_(self, *names: str) -> bool:
        """Whether the call is any of `names` (`nn.ReLU`, `F.relu`, `torch.relu`, `Tensor.relu`)."""
        return not self.names.isdisjoint(names)

    def plain(self, *names: str) -> dict | None:
        """The arguments of an op that takes none ({}) when the call is one of `names`, else None."""
        return {} if self.is_(*names) else None

    def arg(self, position: int, keyword: str, default: Any = None) -> Any:
        """An argument given by position or keyword (position 0 of a method call is the tensor)."""
        if keyword in self.kwargs:
            return self.kwargs[keyword]
        return self.args[position] if position < len(self.args) else default

    def refuse(self, hint: str) -> None:
        """Not this op, and why (the unsupported-node report shows the hint)."""
        self.hint = hint
        return None

    @staticmethod
    def compact(value: Any) -> Any:
        """(3, 3) -> 3 and (1, 2) -> [1, 2]: a size pair as a spec writes it."""
        if isinstance(value, (tuple, list)):
            return value[0] if len(set(value)) == 1 else list(value)
        return value


class _Probe(TorchCall):
    """A call that is nothing, recording the names each matcher asks about (`known_names`)."""

    def __init__(self) -> None:
        super().__init__("probe", frozenset())
        self.asked: set[str] = set()

    def is_(self, *names: str) -> bool:
        self.asked.update(names)
        return False


def known_names() -> set[str]:
    """Every call name some op's matcher recognises: the importer keeps those modules whole
    (fx leaves) instead of tracing into them (torchvision's StochasticDepth, for one)."""
    probe = _Probe()
    for op in entries():
        if op.from_torch is not None:
            try:
                op.from_torch(probe)
            except Exception:  # a matcher that reads past `is_` on a probe: it named its calls first
                pass
    return probe.asked


def module_names(module: Any) -> frozenset[str]:
    cls = type(module)
    if cls.__module__.startswith("torch.nn"):
        return frozenset({f"nn.{cls.__name__}"})
    return frozenset({f"{cls.__module__}.{cls.__qualname__}"})


def function_names(function: Any) -> frozenset[str]:
    """`torch.cat`, `F.relu`, `operator.add`: the public names by which the function is reached."""
    import torch
    import torch.nn.functional as F

    name = getattr(function, "__name__", str(function))
    spaces = (("torch", torch), ("F", F), ("operator", operator), ("math", math), ("torch.fft", torch.fft),
              ("torch.linalg", torch.linalg), ("torch.special", torch.special))
    names = {f"{prefix}.{short}" for prefix, space in spaces for short in (name, name.rpartition("_")[2])
             if getattr(space, short, None) is function}
    if not names:
        names.add(f"{getattr(function, '__module__', None) or '?'}.{getattr(function, '__qualname__', name)}")
    return frozenset(names)


def method_names(method: str) -> frozenset[str]:
    return frozenset({f"Tensor.{method}"})


@dataclass(frozen=True)
class Match:
    op: Op
    args: dict[str, Any]  # as the matcher gave them (what the spec writes)
    validated: Any  # the op's args model


def find_op(call: TorchCall) -> Match | str:
    """The first registry op whose matcher takes the call, checked against the op's rules; or why none."""
    reasons = []
    slots = len(call.inputs)
    for op in entries():
        if op.from_torch is None:
            continue
        call.kept = None
        del call.inputs[slots:], call.sources[slots:]  # undo the slots a matcher tried before
        found = op.from_torch(call)
        if found is None:
            continue
        try:
            validated = op.args.model_validate(found)
        except ValidationError as err:
            reasons.append(f"{op.name}: " + "; ".join(e["msg"] for e in err.errors()))
            continue
        problem = _rule_problem(op, validated, call)
        if problem:
            reasons.append(f"{op.name}: {problem}")
            continue
        return Match(op, found, validated)
    if call.hint:
        reasons.insert(0, call.hint)
    return "; ".join(reasons) or "no op in the registry matches it (`archspec ops` lists them)"


def _rule_problem(op: Op, validated: Any, call: TorchCall) -> str | None:
    """Whether the op's shape rule and tensors agree with what torch did."""
    inputs = call.inputs if call.kept is None else [call.inputs[k] for k in call.kept]
    try:
        count = op.output_count(validated, inputs)
        shape = op.shape(validated, inputs)
    except Exception as err:  # a ShapeError, or a rule that cannot take these shapes
        return f"its shape rule refuses the traced shapes ({err})"
    if call.kind != "attribute":  # a stored tensor has no batch: its op says what it is per sample
        traced = [s for s in call.output if s is not None] if isinstance(call.output, list) else [call.output]
        shapes = list(shape) if count > 1 else [shape]
        if [tuple(s) for s in shapes] != [tuple(s) for s in traced]:
            return f"it gives {shapes} where torch gave {traced}"
    expected = {k: tuple(v) for k, v in {**op.params(validated, inputs), **op.buffers(validated, inputs)}.items()}
    if expected != {k: tuple(v) for k, v in call.tensors.items()}:
        return f"its tensors {sorted(expected)} differ from the module's {sorted(call.tensors)}"
    return None
