"""The traced fx graph -> an imported graph: one registry op per tensor node, or the problems.

Sizes read off tensors (`x.size(0)`, `x.shape[-2:]`) become numbers in the arguments of the
calls that read them; `getitem` on an op with several outputs is a reference (`split1.0` in a
spec, `id:k` here); every other node that gives a tensor is matched to an op. A learned tensor
read directly (fx's get_attr: ViT's class_token) is matched too (the `param` op), and a function
reading a module's own tensors (timm's BatchNormAct2d is F.batch_norm on its weight) is first tried
as that module's call. A node no op takes is a `Problem`: all of them are collected, so the user
sees every unsupported node at once.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any

from archspec.importer.matching import Match, Sized, TensorArg, TorchCall, find_op, function_names, method_names, module_names
from archspec.importer.trace import BATCHES, Trace, is_tensor, tensors_in

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Problem:
    """One node that cannot be imported: the fx node, its target, the module path and a hint."""

    node: str
    target: str
    module: str
    hint: str

    def line(self) -> str:
        return f"{self.node}: {self.target} in {self.module or '(the top module)'}: {self.hint}"


@dataclass
class ImportedNode:
    id: str  # the fx node's name
    match: Match
    inputs: list[str]  # value ids: a node id, `id:k` for output k of a multi-output node, or an input name
    in_shapes: list[Shape]
    shape: Any  # its output shape, or a list of them
    path: str | None  # a module call's path (its state_dict prefix); None for a function
    scopes: tuple[str, ...]  # the module paths it runs inside, outermost first (without its own)
    target: str = ""

    @property
    def op(self):
        return self.match.op

    @property
    def weighted(self) -> bool:
        """It owns state_dict tensors, so its name must be its module path."""
        return self.path is not None and bool(self.op.params(self.match.validated, self.in_shapes)
                                              or self.op.buffers(self.match.validated, self.in_shapes))

    @property
    def scope(self) -> str:
        return self.scopes[-1] if self.scopes else ""


@dataclass
class ImportedGraph:
    inputs: dict[str, Shape] = field(default_factory=dict)
    nodes: dict[str, ImportedNode] = field(default_factory=dict)  # in execution order
    outputs: Any = None  # a value id, or {name: value id}
    classes: dict[str, type] = field(default_factory=dict)  # module path -> its class
    problems: list[Problem] = field(default_factory=list)

    def shape_of(self, value: str) -> Shape:
        if value in self.inputs:
            return self.inputs[value]
        node_id, _, index = value.partition(":")
        shape = self.nodes[node_id].shape
        return tuple(shape[int(index)]) if index else tuple(shape)

    def consumers(self, value: str) -> list[ImportedNode]:
        return [n for n in self.nodes.values() if value in n.inputs]


def from_trace(traced: Trace) -> ImportedGraph:
    builder = _Builder(traced)
    for node in traced.module.graph.nodes:
        builder.visit(node)
    _shared_weights(builder.graph)
    return builder.graph


def _shared_weights(graph: ImportedGraph) -> None:
    """A module with tensors called more than once shares its weights between the calls: a
    problem for each call after the first (a spec would need `reuse`, which the importer does not write)."""
    seen: dict[str, str] = {}
    for node in list(graph.nodes.values()):
        if not node.weighted:
            continue
        if node.path in seen:
            graph.problems.append(Problem(node.id, node.target, node.path,
                                          f"a second call of the module '{node.path}' (shared weights, first called "
                                          f"as {seen[node.path]}): the importer writes no `reuse`"))
        seen.setdefault(node.path, node.id)


@dataclass(frozen=True)
class OwnTensor:
    """A module's own tensor read by a function of that module (timm's BatchNormAct2d calls
    F.batch_norm with its weight): part of the call, not an input."""

    name: str


class _Builder:
    def __init__(self, traced: Trace):
        self.traced = traced
        self.graph = ImportedGraph()
        self.value_of: dict[Any, Any] = {}  # fx node -> value id (or a list of them, for several outputs)
        self.constants: dict[Any, Any] = {}  # fx node -> the non-tensor value it gave
        self.shapes: dict[str, Shape] = {}  # value id -> its traced shape (unsupported nodes' too)
        self.owners = _tensor_owners(traced)  # function fx node -> the module whose own tensors it reads
        self._attribute_nodes: dict[str, Any] = {}  # id of a learned-tensor node -> its get_attr fx node
        self.unbatched: set[str] = set()  # learned tensors whose torch value has no batch axis

    def visit(self, node) -> None:
        value, other = self.traced.values.get(node, (None, None))
        if node.op == "placeholder":
            if is_tensor(value):
                self._batched(node, value, other)
                self.graph.inputs[node.name] = self.shapes[node.name] = value.shape[1:]
                self.value_of[node] = node.name
            else:
                self.constants[node] = value
        elif node.op == "output":
            self.graph.outputs = self._outputs(node.args[0])
        elif node.op == "get_attr" and any(node in owned for _, owned in self.owners.values()):
            self.constants[node] = OwnTensor(node.target.rpartition(".")[2])
        elif self._reference(node):
            return
        elif not tensors_in(value):
            self.constants[node] = self._sized(node, value)  # a size, a shape, a flag: folded into its readers' arguments
        else:
            self._call(node, value, other)

    def _sized(self, node, value):
        """A (H, W) that is the spatial size of the tensor it was read from, as a `Sized`."""
        if not (isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value)):
            return value
        source = self._tensor_behind(node, depth=4)
        if source is None or tuple(self.shapes.get(source, ())[-2:]) != value or len(self.shapes[source]) != 3:
            return value
        sized = Sized(value)
        sized.source, sized.source_shape = source, self.shapes[source]
        return sized

    def _tensor_behind(self, node, depth: int) -> str | None:
        from torch.fx.node import Node

        for arg in node.args:
            if isinstance(arg, Node) and isinstance(self.value_of.get(arg), str):
                return self.value_of[arg]
            if isinstance(arg, Node) and arg in self.constants and depth > 0:
                found = self._tensor_behind(arg, depth - 1)
                if found is not None:
                    return found
        return None

    def _reference(self, node) -> bool:
        """`getitem` on an op with several outputs: the reference `id:k`, not a node."""
        if node.op != "call_function" or node.target is not operator.getitem:
            return False
        source, index = node.args
        if isinstance(self.value_of.get(source), list) and isinstance(index, int):
            self.value_of[node] = self.value_of[source][index]
            return True
        return False

    def _what(self, node, value, owned: bool, stored=None):
        """(names, module, path, the tensors the call owns) of a call."""
        if stored is not None:  # a call on a learned tensor alone, claimed as that tensor
            return (function_names(node.target) if node.op == "call_function" else method_names(node.target),
                    None, stored.path, {"": tuple(self.traced.values[self._attribute_nodes[stored.id]][0].shape)})
        if node.op == "call_module":
            module = self.traced.module.get_submodule(node.target)
            return module_names(module), module, node.target, _state(module)
        if node.op == "get_attr":  # a learned tensor read directly: its state_dict key is its path
            return frozenset({"Tensor.attribute"}), None, node.target, {"": value.shape}
        names = function_names(node.target) if node.op == "call_function" else method_names(node.target)
        if owned:
            path = self.owners[node][0]
            module = self.traced.model.get_submodule(path)
            return names, module, path, _state(module, recurse=False)
        return names, None, None, {}

    def _call(self, node, value, other) -> None:
        """Match the call; a function that reads a module's own tensors is first tried as that
        module's call, then (no op taking it so) with those tensors as `param` nodes."""
        if node in self.owners:
            if self._match(node, value, other, owned=True, quiet=True):
                return
            for read in self.owners.pop(node)[1]:
                del self.constants[read]
                self._call(read, self.traced.values[read][0], self.traced.values[read][1])
        stored = self._stored_alone(node)
        if stored is not None and self._match(node, value, other, owned=False, quiet=True, stored=stored):
            del self.graph.nodes[stored.id]  # the tensor is this call's now (ViT's class_token.expand(n, -1, -1))
            return
        self._match(node, value, other, owned=False, quiet=False)

    def _stored_alone(self, node) -> ImportedNode | None:
        """The learned-tensor node that is a call's one tensor argument and read by nothing else."""
        from torch.fx.node import Node

        sources = [a for a in [*node.args, *node.kwargs.values()] if isinstance(a, Node) and a not in self.constants]
        if node.op not in ("call_method", "call_function") or len(sources) != 1 or len(sources[0].users) != 1:
            return None
        found = self.graph.nodes.get(str(self.value_of.get(sources[0])))
        return found if found is not None and found.id in self._attribute_nodes else None

    def _match(self, node, value, other, owned: bool, quiet: bool, stored: ImportedNode | None = None) -> bool:
        names, module, path, tensors = self._what(node, value, owned, stored)
        scopes = stored.scopes if stored is not None else _prefixes(path.rpartition(".")[0]) if owned else _scopes(node)
        inputs: list[str] = []
        in_shapes: list[Shape] = []
        args, kwargs = self._arguments(node, inputs, in_shapes)
        attribute = node.op == "get_attr"
        several = isinstance(value, (tuple, list))
        output = [v.shape[1:] if is_tensor(v) else None for v in value] if several else value.shape[(0 if attribute else 1):]
        kind = "attribute" if attribute or stored is not None else node.op.removeprefix("call_")
        call = TorchCall(kind, names, module, args, kwargs, in_shapes, output, tensors, list(inputs))
        self._name_values(node, value, output)
        stored_only = bool(inputs) and all(v in self.unbatched for v in inputs)  # `gamma.reshape(1, -1, 1, 1)`
        problem = None if attribute else self._stored_problem(value) if stored_only else self._batch_problem(value, other)
        found = problem or find_op(call)
        if not isinstance(found, str) and len(inputs) < found.op.arity[0] and not attribute:
            if len(inputs) == 1 and in_shapes[0] == output:
                self.value_of[node] = inputs[0]  # a merge of one tensor (DenseNet's first torch.cat) is that tensor
                return True
            found = f"{found.op.name} takes at least {found.op.arity[0]} inputs, not {len(inputs)}"
        if isinstance(found, str):
            if not quiet:
                self.graph.problems.append(Problem(node.name, sorted(names)[0], path or (scopes[-1] if scopes else ""), found))
            return False
        for scope_path in scopes:
            self.graph.classes.setdefault(scope_path, type(self.traced.model.get_submodule(scope_path)))
        self._add(node, found, call, inputs, in_shapes, output, path, scopes)
        return True

    def _add(self, node, found: Match, call: TorchCall, inputs, in_shapes, output, path, scopes) -> None:
        inputs[:], in_shapes[:] = list(call.sources), list(call.inputs)  # with a size's tensor, where a matcher read one
        if call.kept is not None:
            inputs[:], in_shapes[:] = [inputs[k] for k in call.kept], [in_shapes[k] for k in call.kept]
        if call.kind == "attribute":  # a learned tensor: its input is the value it meets (tidy.feed_learned_tensors)
            output = self.shapes[node.name] = found.op.shape(found.validated, [])
            if tuple(output) == tuple(call.tensors[""]):
                self.unbatched.add(node.name)  # as stored, without a batch axis: what reads it alone has a leading 1
            inputs[:], in_shapes[:] = [], []
            self._attribute_nodes[node.name] = node if node.op == "get_attr" else self._attribute_nodes[call.sources[0]]
        elif isinstance(output, list) and found.op.output_count(found.validated, in_shapes) == 1:
            output = self.shapes[node.name] = next(shape for shape in output if shape is not None)
            self.value_of[node] = [node.name if shape is not None else None for shape in call.output]
        self.graph.nodes[node.name] = ImportedNode(node.name, found, inputs, in_shapes, output, path, scopes,
                                                   sorted(call.names)[0])

    def _name_values(self, node, value, output) -> None:
        several = isinstance(value, (tuple, list))
        self.value_of[node] = [f"{node.name}:{k}" for k in range(len(value))] if several else node.name
        for value_id, shape in zip(self.value_of[node] if several else [node.name], output if several else [output]):
            self.shapes[value_id] = shape

    def _arguments(self, node, inputs: list[str], in_shapes: list[Shape]):
        """The call's arguments with each tensor as a TensorArg (its slot in `inputs`) and each
        size read off a tensor as its number."""
        from torch.fx.node import Node, map_aggregate

        def convert(item):
            if not isinstance(item, Node):
                return item
            if item in self.constants:
                return self.constants[item]
            found = self.value_of.get(item)
            if isinstance(found, list):
                return tuple(self._tensor_arg(v, inputs, in_shapes) for v in found)
            return self._tensor_arg(found, inputs, in_shapes)

        return map_aggregate(tuple(node.args), convert), map_aggregate(dict(node.kwargs), convert)

    def _tensor_arg(self, value: str, inputs: list[str], in_shapes: list[Shape]) -> TensorArg:
        inputs.append(value)
        in_shapes.append(self.shapes.get(value, ()))
        return TensorArg(len(inputs) - 1, in_shapes[-1])

    @staticmethod
    def _stored_problem(value) -> str | None:
        """A call on learned tensors alone: its leading 1 is the batch a spec broadcasts."""
        if is_tensor(value) and value.shape[:1] == (1,):
            return None
        return "a computation on learned tensors alone whose result does not start with an axis of 1"

    def _batch_problem(self, value, other) -> str | None:
        values = list(value) if isinstance(value, (tuple, list)) else [value]
        others = list(other) if isinstance(other, (tuple, list)) else [other]
        for first, second in zip(values, others):
            if first is None and second is None and len(values) > 1:
                continue  # nn.MultiheadAttention's (output, None)
            if not (is_tensor(first) and is_tensor(second)):
                return "it gives something other than tensors"
            if first.shape[:1] != BATCHES[:1] or second.shape[:1] != BATCHES[1:] or first.shape[1:] != second.shape[1:]:
                return f"its output {list(first.shape)} at batch {BATCHES[0]} does not keep the batch as its first axis"
        return None

    def _batched(self, node, value, other) -> None:
        problem = self._batch_problem(value, other)
        if problem:
            self.graph.problems.append(Problem(node.name, "input", "", problem))

    def _outputs(self, written):
        from torch.fx.node import Node

        if isinstance(written, Node):
            return self.value_of.get(written, written.name)
        if isinstance(written, dict):
            return {str(k): self.value_of.get(v, getattr(v, "name", v)) for k, v in written.items()}
        return {f"output{k}": self.value_of.get(v, getattr(v, "name", v)) for k, v in enumerate(written)}


def _prefixes(path: str) -> tuple[str, ...]:
    parts = path.split(".") if path else []
    return tuple(".".join(parts[: k + 1]) for k in range(len(parts)))


def _state(module, recurse: bool = True) -> dict[str, Shape]:
    """A module's state_dict entries and shapes; without `recurse`, only its own (not its children's)."""
    if recurse:
        return {k: tuple(v.shape) for k, v in module.state_dict().items()}
    own = {**module._parameters, **{k: v for k, v in module._buffers.items() if k not in module._non_persistent_buffers_set}}
    return {k: tuple(v.shape) for k, v in own.items() if v is not None}


def _tensor_owners(traced: Trace) -> dict[Any, tuple[str, list]]:
    """Function calls that read one module's own tensors (and nothing else reads them):
    timm's BatchNormAct2d is F.batch_norm on its weight, bias and running statistics. Such a call
    is that module's call: its path and state_dict are the module's."""
    readers: dict[str, dict[Any, list]] = {}
    for node in traced.module.graph.nodes:
        if node.op != "get_attr":
            continue
        owner = node.target.rpartition(".")[0]
        for user in node.users:
            readers.setdefault(owner, {}).setdefault(user, []).append(node)
    found = {}
    for owner, users in readers.items():
        if len(users) != 1 or not owner:
            continue
        (user, reads), = users.items()
        module = traced.model.get_submodule(owner)
        own = _state(module, recurse=False)
        if user.op in ("call_function", "call_method") and all(read.target.rpartition(".")[2] in own and len(read.users) == 1
                                                                for read in reads):
            found[user] = (owner, reads)
    return found


def _scopes(node) -> tuple[str, ...]:
    """The module paths a node runs inside, outermost first: the prefixes of a module call's own
    path, or of the innermost module running a function (a module path always has its parents)."""
    if node.op in ("call_module", "get_attr"):
        inner = node.target.rpartition(".")[0]
    else:
        paths = [path for path, _ in node.meta.get("nn_module_stack", {}).values()]
        inner = paths[-1] if paths else ""
    parts = inner.split(".") if inner else []
    return tuple(".".join(parts[: k + 1]) for k in range(len(parts)))


def _attribute_holder(root, target: str):
    """The module that owns a tensor read by get_attr (`class_token` -> the root)."""
    owner, _, _ = target.rpartition(".")
    return root.get_submodule(owner) if owner else root
