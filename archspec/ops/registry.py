"""The op registry: everything archspec knows about one op lives in one `Op` entry.

An entry holds the op's argument schema (a strict pydantic model), its shape rule, its tensor
rule (parameters and buffers, with shapes), its MAC rule and the torch lowering. Every op module lists its
entries in `OPS`; `archspec.ops.catalog` registers the modules it names explicitly, and everything
else looks ops up there. Adding an op means adding an entry to one of those modules, never editing
a dispatcher or a table elsewhere.

Shapes never include the batch dimension: a feature map is `(C, H, W)`, a vector `(F,)`.

Counting conventions (see README, "Counting conventions"):
- `macs`: multiply-accumulates of convolutions, transposed convolutions and linear layers, bias
  excluded, for one sample.
- `flops`: what `torch.utils.flop_counter.FlopCounterMode` reports for the lowered op (2 x MACs
  for conv / linear, 0 for ops it has no formula for).
- `all_ops`: `flops` plus an estimate of the elementwise, normalisation and pooling work.
"""
from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Union

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from archspec.spec.expressions import ExpressionError, evaluate

Shape = tuple[int, ...]

# every number in an op argument (a size, a count, a factor), in magnitude; and the entries of a
# list argument (a shape). Inferred shapes have their own bounds (archspec.passes.shapes).
MAX_ARGUMENT = 1_000_000
MAX_LIST = 8


class ShapeError(ValueError):
    """An op cannot accept the shapes it is given; the message says why.

    The message may name inputs as `<in0>`, `<in1>`...: the IR builder puts the producers' names there."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


class OpArgs(BaseModel):
    """Base of every op's argument schema. Unknown arguments are errors; string values for
    non-string fields are expressions over the spec's parameters (validation context `names`)."""

    # defer_build: a schema is built on first use, so a spec pays only for the ops it uses
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    @field_validator("*", mode="before")
    @classmethod
    def _evaluate_expressions(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, (str, list, tuple)):
            return value  # a plain number or boolean: nothing to evaluate (most arguments)
        names = (info.context or {}).get("names", {})
        annotation = cls.model_fields[info.field_name].annotation
        return _evaluate_strings(value, annotation, names)

    @field_validator("*", mode="after")
    @classmethod
    def _bounded(cls, value: Any) -> Any:
        _check_bounded(value)
        return value


def _check_bounded(value: Any) -> None:
    """Every number in an argument is finite and at most MAX_ARGUMENT in magnitude."""
    if isinstance(value, (tuple, list)):
        for item in value:
            _check_bounded(item)
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    elif abs(value) > MAX_ARGUMENT:
        raise ValueError(f"is over the limit of {MAX_ARGUMENT:,} for a number in an op argument")


def _accepts_text(annotation: Any, value: str) -> bool:
    """Whether `value` is a legal literal string of the field (then it is not an expression)."""
    if annotation is str:
        return True
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return value in typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        return any(_accepts_text(arg, value) for arg in typing.get_args(annotation))
    return False


def _evaluate_strings(value: Any, annotation: Any, names: dict[str, Any]) -> Any:
    if isinstance(value, (list, tuple)) and len(value) > MAX_LIST:
        raise ValueError(f"a list argument has at most {MAX_LIST} entries, not {len(value):,}")
    if isinstance(value, str) and not _accepts_text(annotation, value):
        try:
            return evaluate(value, names)
        except ExpressionError as err:
            raise ValueError(str(err)) from None
    if isinstance(value, list):
        return [evaluate(v, names) if isinstance(v, str) and not _accepts_text(annotation, v) else v for v in value]
    return value


class NoArgs(OpArgs):
    pass


@dataclass(frozen=True)
class Saved:
    """What autograd keeps of one op for the backward pass (PyTorch's derivatives.yaml), for
    the memory estimate: which inputs' tensors, whether the output, and extra tensors as
    (elements, dtype kind, whether per sample) with kinds "act" (activation dtype), "fp32",
    "int32", "int64" and "bool"."""

    inputs: tuple[int, ...] = (0,)
    output: bool = False
    extra: tuple[tuple[int, str, bool], ...] = ()


def saves_input(args: Any, inputs: list[Shape], output: Shape) -> Saved:
    return Saved()


def saves_output(args: Any, inputs: list[Shape], output: Shape) -> Saved:
    return Saved(inputs=(), output=True)


def saves_nothing(args: Any, inputs: list[Shape], output: Shape) -> Saved:
    return Saved(inputs=())


# --- rule signatures -------------------------------------------------------------------------
ShapeRule = Callable[[Any, list[Shape]], Shape]
TensorRule = Callable[[Any, list[Shape]], dict[str, Shape]]
MacRule = Callable[[Any, list[Shape], Shape], int]
ModuleBuilder = Callable[[Any, list[Shape]], Any]  # -> torch.nn.Module
FunctionBuilder = Callable[[Any, list[Shape]], tuple[Callable[..., Any], dict[str, Any]]]


def no_tensors(args: Any, inputs: list[Shape]) -> dict[str, Shape]:
    return {}


def no_macs(args: Any, inputs: list[Shape], output: Shape) -> int:
    return 0


# what an op is, for the passes, rewrites and explanations that treat ops by kind rather than by name
TRAITS = frozenset({
    "elementwise",   # output position p reads input position p only, shape kept, no weights (relu, dropout)
    "per_channel",   # acts on each channel independently (bn, softmax over channels): commutes with flatten
    "weighted",      # a conv or linear layer: counted in a network's depth, takes a folded BN
    "pass_through",  # keeps the shape and sits between two weighted layers (norms, activations, dropout)
    "activation",    # a nonlinearity (diagram family, explain)
    "normalisation", # a normalisation layer
    "merge",         # combines several inputs position by position (add, mul, concat)
    "residual",      # the sum that closes a residual branch (out = branch + identity): zero_init_residual
    "removable",     # the identity at inference (dropout, drop_path, identity): strip_dropout removes it
    # for the rewrites (archspec.rewrite): which removable ops are dropout, and which op is a flatten
    "stochastic",    # random in training, the identity at inference (dropout, drop_path)
    "flattens",      # a C×H×W map as a C·H·W vector in torch's order: convolutionalize moves it past ops
    "view",          # returns a view of its input (split, permute, slice): no kernel runs, no bytes move
    "last_axis",     # a weighted layer on the last axis (linear): its output channels are last, so a BN folds in only on a vector
})
FAMILIES = ("conv", "linear", "norm", "activation", "pool", "merge", "resize", "other")


@dataclass(frozen=True)
class Expansion:
    """Nodes an op inserts in front of one of its inputs, decided from the shapes it meets
    (ResNet's `add: {project: auto}` puts a 1x1 conv + BN on the shortcut): `layers` are
    (op name, arguments) applied in order to input `slot`, named `0`, `1`, ... in a scope `scope`."""

    slot: int
    scope: str
    layers: tuple[tuple[str, dict[str, Any]], ...]


@dataclass(frozen=True)
class Op:
    """Everything about one op. Rules take the validated args and the input shapes (without the
    batch); an op with `outputs` > 1 (or a callable giving the count) has a shape rule returning
    one shape per output, and its other rules receive that list as `output`."""

    name: str
    summary: str
    args: type[OpArgs]
    shape: ShapeRule
    # trainable tensors (name -> shape); `buffers` are tensors saved in the state_dict only
    params: TensorRule = no_tensors
    buffers: TensorRule = no_tensors
    macs: MacRule = no_macs
    # estimate of non-MAC arithmetic per sample, for `--all-ops` (documented per op)
    extra_ops: MacRule = no_macs
    # how many inputs the op takes: (min, max); max None = any number
    arity: tuple[int, int | None] = (1, 1)
    # how many outputs: 1, or a rule (args, input shapes) -> count; referenced as `node.0`, `node.1`
    outputs: int | Callable[[Any, list[Shape]], int] = 1
    # lowering: exactly one of the two. A module builder gives an nn.Module called on the
    # inputs; a function builder gives (callable, keyword args) called on the inputs.
    module: ModuleBuilder | None = None
    function: FunctionBuilder | None = None
    # the function takes its inputs as one list (torch.cat) rather than as positional args
    inputs_as_list: bool = False
    # how a call reads as standalone PyTorch source (`export --format python`): (args, input
    # shapes, in place) -> archspec.ops.source.Written; None: written from the builder above
    source: Callable[[Any, list[Shape], bool], Any] | None = None
    # a learned tensor no layer owns (ViT's class token, ConvNeXt's layer_scale): (args, input
    # shapes) -> the nn.Parameter, which the lowering registers at the node's own path (its
    # state_dict key is the path, as torchvision's) and reads with get_attr; `function` then
    # receives it before the inputs. Its `params` rule names the tensor "" (the node itself)
    tensor: Callable[[Any, list[Shape]], Any] | None = None
    # receptive field (archspec.ops.field): a sliding `window` (kernel, stride, padding,
    # dilation per spatial axis), or a `receptive_field` rule (args, output ranges, input shapes,
    # output shape) -> the ranges read in each input; with neither, every input is read at the
    # same positions (elementwise ops). `spatial=False`: the output has no spatial positions of
    # its own (a flatten or linear output depends on the whole map: a "global" field)
    window: Callable[[Any, list[Shape]], tuple[Shape, Shape, Shape, Shape]] | None = None
    receptive_field: Callable[[Any, Any, list[Shape], Shape], list] | None = None
    # positions in any layout (archspec.ops.field.Layout: channels-last (H, W, C) too): (args,
    # input shapes, input layouts) -> the output's layout. The op's `receptive_field` rule then
    # takes the input layouts as a fifth argument. Without it an op with a rule or a window reads
    # (C, H, W) maps: positions held anywhere else count as read whole
    layout: Callable[[Any, list[Shape], list[Any]], Any] | None = None
    # what autograd keeps for backward (memory estimate); most ops keep their input
    saved: Callable[[Any, list[Shape], Shape], Saved] = saves_input
    # the op returns a new tensor that its own backward does not keep, so a relu or add that is
    # its only reader may overwrite it in place (archspec.lower.fx), as torchvision's models do
    fresh_output: bool = False
    # the op may overwrite its first input given its args and input shapes (archspec.ir.in_place
    # decides where it does); `in_place_form` turns the (function, keywords) of `function` into the
    # in-place call: torch.relu -> torch.relu_, operator.add -> operator.iadd, {"inplace": True}
    in_place: Callable[[Any, list[Shape]], bool] | None = None
    in_place_form: Callable[[Callable[..., Any], dict[str, Any]], tuple[Callable[..., Any], dict[str, Any]]] | None = None
    # --- presentation: diagram family and label, explanation ---
    family: str = "other"
    # the diagram label from the args (`conv 3x3/2, 128`); None: the op's name
    label: Callable[[Any], str] | None = None
    # the per-layer explanation (archspec.explain): a rule (ExplainContext) -> None that adds lines
    explain: Callable[[Any], None] | None = None
    # the kind of kernel the op runs, for the latency estimate's per-kind CPU figures
    # (archspec.passes.latency): (args, input shapes) -> one of KERNELS; None: from the family
    kernel: Callable[[Any, list[Shape]], str] | None = None
    # the matrix dimensions of the product the op runs, where one small one slows it (args, input
    # shapes, batch) -> (dims...): a linear's (rows, in, out); a conv's (in x kernel, out) per group
    gemm_dims: Callable[[Any, list[Shape], int], tuple[int, ...]] | None = None
    # --- rewrites and construct expansion ---
    traits: frozenset[str] = frozenset()
    # nodes to insert in front of an input, from the args and input shapes (add's `project: auto`)
    expand: Callable[[Any, list[Shape]], Expansion | None] | None = None
    # arguments the spec language reads but the node does not need once expanded (add's
    # `project`, `projection_name`): a rewritten spec leaves them out
    builder_args: tuple[str, ...] = ()
    # --- weight-transfer hooks of the rewrites (archspec.rewrite; helpers in archspec.ops.transfer) ---
    # fold_bn: fold a per-output-channel y·scale + shift that follows the op into its tensors,
    # (args, {"weight", "bias" if any}, scale, shift) -> {"weight", "bias"}; the op has a `bias` argument
    fold_affine: Callable[[Any, dict[str, Any], Any, Any], dict[str, Any]] | None = None
    # the op at inference as such a y = x·scale + shift per channel, so it folds into the layer
    # before it: (args) -> None when it is none (bn without running statistics), else a rule
    # (its tensors by name) -> (scale, shift)
    affine_at_inference: Callable[[Any], Callable[[dict[str, Any]], tuple[Any, Any]] | None] | None = None
    # convolutionalize: the op reading a flattened C×H×W map as an op on the map, (args, map shape)
    # -> (op name, arguments); its weights are the same numbers reshaped (linear -> conv HxW)
    convolutional: Callable[[Any, Shape], tuple[str, dict[str, Any]]] | None = None
    # a per_channel op's changed arguments once its (C,) vector is a C×1×1 map (softmax's dim)
    unit_map_args: Callable[[Any], dict[str, Any]] | None = None
    # `archspec import`: (a traced torch call, archspec.importer.matching.TorchCall) -> this op's
    # arguments for it, or None when the call is not this op (nn.Conv2d -> conv's out, kernel, ...)
    from_torch: Callable[[Any], dict[str, Any] | None] | None = None
    aliases: tuple[str, ...] = field(default=())

    def flops(self, args: Any, inputs: list[Shape], output: Shape) -> int:
        """FlopCounterMode's count: it counts 2 x MACs for conv and linear, nothing else."""
        return 2 * self.macs(args, inputs, output)

    def output_count(self, args: Any, inputs: list[Shape]) -> int:
        return self.outputs if isinstance(self.outputs, int) else self.outputs(args, inputs)

    def is_(self, trait: str) -> bool:
        return trait in self.traits

    def kernel_of(self, args: Any, inputs: list[Shape]) -> str:
        """The op's kernel kind (KERNELS): no kernel for a view or an identity at inference."""
        if self.is_("removable") or self.is_("flattens") or self.is_("view"):
            return "view"
        return self.kernel(args, inputs) if self.kernel is not None else KERNEL_OF_FAMILY.get(self.family, "pointwise")

    def text(self, args: Any) -> str:
        """The op's short label (diagram, reports): `label(args)`, or its name."""
        return self.label(args) if self.label is not None else self.name


# the kernels an eager op runs, as the latency estimate tells them apart: matrix products
# (linear, attention), convolutions lowered to them (their weights re-laid out on each CPU call),
# depthwise convolutions (a slow path of their own on CPUs), normalisations, pooling windows,
# everything elementwise, and views (no kernel)
KERNELS = ("gemm", "windowed_gemm", "depthwise", "normalise", "pooling", "pointwise", "view")
KERNEL_OF_FAMILY = {"conv": "windowed_gemm", "linear": "gemm", "norm": "normalise", "pool": "pooling"}
RELAYOUT_KERNEL = "windowed_gemm"  # whose weights a CPU's eager kernel re-lays out on every call
VIEW_KERNEL = "view"  # no kernel: the op returns a view, or is the identity at inference


def check_op(op: Op) -> None:
    """The invariants of an entry; `Registry.register` refuses an op that breaks one."""
    problems = []
    if not op.name.isidentifier() or op.name != op.name.lower():
        problems.append("its name must be a lower-case identifier")
    if (op.module is None) == (op.function is None):
        problems.append("it needs exactly one torch builder: `module` or `function`")
    if not op.summary:
        problems.append("it needs a `summary`")
    if not (isinstance(op.args, type) and issubclass(op.args, OpArgs)):
        problems.append("its `args` must be an OpArgs model")
    if op.family not in FAMILIES:
        problems.append(f"family '{op.family}' is not one of {', '.join(FAMILIES)}")
    if op.traits - TRAITS:
        problems.append(f"unknown traits {sorted(op.traits - TRAITS)}")
    if (op.in_place is None) != (op.in_place_form is None):
        problems.append("`in_place` and `in_place_form` come together")
    low, high = op.arity
    if low < 0 or (high is not None and high < low):
        problems.append(f"arity {op.arity} is not a (min, max) range")
    if op.tensor is not None and op.function is None:
        problems.append("an op with a `tensor` reads it with a `function`")
    if op.window is not None and op.receptive_field is not None:
        problems.append("it gives both a `window` and a `receptive_field` rule")
    if op.layout is not None and op.receptive_field is None:
        problems.append("a `layout` rule comes with the `receptive_field` rule it feeds")
    if problems:
        raise ValueError(f"op '{op.name}' is not a valid entry: " + "; ".join(problems))


class Registry:
    """Op name (and alias) -> entry. Registration checks the entry and refuses a duplicate name."""

    def __init__(self) -> None:
        self._ops: dict[str, Op] = {}

    def register(self, op: Op) -> Op:
        check_op(op)
        for name in (op.name, *op.aliases):
            if name in self._ops:
                raise ValueError(f"op '{name}' is registered twice")
        for name in (op.name, *op.aliases):
            self._ops[name] = op
        return op

    def get(self, name: str) -> Op | None:
        return self._ops.get(name)

    def entries(self) -> dict[str, Op]:
        return dict(self._ops)


def numel(shape: Shape) -> int:
    return math.prod(shape)


def tensor_key(path: str, name: str) -> str:
    """The state_dict key of a node's tensor `name`: `path.name`, or the path itself for the one
    tensor of an op with a `tensor` builder, which its `params` rule names "" (`class_token`)."""
    return f"{path}.{name}" if name else path
