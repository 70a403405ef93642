"""`archspec export --format python`: a compiled spec as one standalone PyTorch file.

The file reads as torchvision's model files do: one `nn.Module` class per block (calls that
differ only in their parameters share it), built from the block's parameters, and a class for
the model whose `__init__` builds every module at the lowered module's path (so the lowered
module's state_dict loads into it strictly and the outputs are equal) and whose `forward` runs
the calls in order with named locals. It imports torch (and, where an op needs it, a helper's own
imports), never archspec, and is formatted by black.
"""
from __future__ import annotations

import re
import textwrap
from typing import Any

from archspec.errors import SpecError
from archspec.export.python_body import Context, expression, owns
from archspec.export.python_fragments import Line
from archspec.export.python_classes import SHAPE_NAMES, Draft, call_site, class_text, draft
from archspec.export.python_tree import PROJECTION, Scope, name_in, scope_tree
from archspec.ir.in_place import in_place_nodes
from archspec.lower.fx import python_name

LINE_LENGTH = 100


def python_source(compiled: Any) -> str:
    """The standalone source of a compiled spec (archspec.pipeline.Compiled), formatted by black.
    Raises SpecError where a part of the model cannot be written (at the node, where it is one)."""
    try:
        return _source(compiled)
    except ValueError as err:
        raise SpecError(f"cannot write {compiled.ir.name} as Python source: {err}") from None


def _source(compiled: Any) -> str:
    import black

    ir, loaded = compiled.ir, compiled.loaded
    tree = scope_tree(ir)
    ctx = Context(ir, _in_place(ir, tree), {name: list(block.inputs) for name, (block, _) in loaded.blocks.items()})
    ctx.readers = _readers(ir)
    ctx.scopes = {scope.path: scope for scope in tree.scopes()}
    ctx.optional = _optional_projections(tree)
    for node in ir.nodes():  # every call written first: a local never takes a helper's name
        if not node.is_input:
            ctx.written(node)
    classes: list[str] = []
    taken: set[str] = set()
    for kind, instances in _blocks_inner_first(tree):
        classes += _block_classes(ctx, loaded.blocks[kind][0], kind, instances, taken)
    classes += _model_class(ctx, compiled, tree, taken)
    helpers = list(ctx.helpers.sources.values())
    clash = taken & set(ctx.helpers.sources)
    if clash:
        raise ValueError(f"a block class and a helper are both named '{sorted(clash)[0]}'")
    body = "\n\n".join(["\n".join(helpers), "\n".join(classes)])
    text = "\n".join([_docstring(compiled), *_imports(ctx, body), "", "", body])
    return black.format_str(text, mode=black.Mode(line_length=LINE_LENGTH))


def _docstring(compiled: Any) -> str:
    doc = compiled.document
    # the spec's summary, unless it names the tool (the file stands on its own)
    about = f"{doc.name}: {doc.summary}" if doc.summary and "archspec" not in doc.summary.lower() else doc.name
    use = ("Standalone PyTorch source: build the model class at the end of the file and load its weights with "
           "`load_state_dict(state_dict, strict=True)`.")
    wrap = lambda words: textwrap.fill(words, LINE_LENGTH - 4)  # noqa: E731
    return f'"""{wrap(about)}\n\n{wrap(use)}\n"""'


def _imports(ctx: Context, body: str) -> list[str]:
    """The import lines, standard library first, typing's names on one line."""
    wanted = set(ctx.helpers.imports) | {"import torch", "import torch.nn as nn"}
    if "F." in body:
        wanted.add("import torch.nn.functional as F")
    typing = {line.rpartition(" ")[2] for line in wanted if line.startswith("from typing import ")}
    typing |= {"Optional"} if "Optional[" in body else set()
    wanted = {line for line in wanted if not line.startswith("from typing import ")}
    wanted -= {"from torch import nn", "from torch.nn import functional as F"}  # the same modules, named alike
    if typing:
        wanted.add(f"from typing import {', '.join(sorted(typing))}")
    third_party = ("import torch", "from torch", "import torchvision", "from torchvision")
    standard = sorted(line for line in wanted if not line.startswith(third_party))
    return [*standard, *([""] if standard else []), *sorted(line for line in wanted if line.startswith(third_party))]


def _readers(ir) -> dict[str, list[str]]:
    readers: dict[str, list[str]] = {}
    for node in ir.nodes():
        for value in node.inputs:
            readers.setdefault(value, []).append(node.id)
    return readers


def _in_place(ir, tree: Scope) -> set[str]:
    """The nodes the lowering runs in place, less those whose fellows in other calls of the same
    block do not (one class writes them all alike)."""
    chosen = set(in_place_nodes(ir))
    verdict: dict[tuple[str, str], bool] = {}
    members: dict[tuple[str, str], list[str]] = {}
    for scope in tree.scopes():
        if scope.block:
            for node in scope.nodes:
                key = (scope.kind, node.id[len(scope.path) + 1:])
                verdict[key] = verdict.get(key, True) and node.id in chosen
                members.setdefault(key, []).append(node.id)
    for key, ok in verdict.items():
        if not ok:
            chosen.difference_update(members[key])
    return chosen


def _optional_projections(tree: Scope) -> dict[tuple[str, str], str]:
    """(block, the add it feeds) -> the name of a projection shortcut some call of the block has."""
    found = {}
    for scope in tree.scopes():
        if not scope.block:
            continue
        for child in scope.children:
            if isinstance(child, Scope) and child.kind == PROJECTION and len(child.outputs) == 1:
                for node in scope.children:
                    if not isinstance(node, Scope) and child.outputs[0] in node.inputs:
                        found[(scope.kind, name_in(scope, node))] = child.name
    return found


def _blocks_inner_first(tree: Scope) -> list[tuple[str, list[Scope]]]:
    """Each block with its calls, a block after every block its calls contain."""
    instances: dict[str, list[Scope]] = {}
    inner: dict[str, set[str]] = {}
    for scope in tree.scopes():
        if scope.block:
            instances.setdefault(scope.kind, []).append(scope)
            inner.setdefault(scope.kind, set()).update(s.kind for s in scope.scopes() if s is not scope and s.block)
    order: list[str] = []

    def visit(kind: str) -> None:
        if kind not in order:
            for other in sorted(inner[kind]):
                visit(other)
            order.append(kind)

    for kind in instances:
        visit(kind)
    return [(kind, instances[kind]) for kind in order]


def _block_classes(ctx: Context, block: Any, kind: str, instances: list[Scope], taken: set[str]) -> list[str]:
    drafts = [_block_draft(ctx, block, scope) for scope in instances]
    variants: dict[tuple, list[int]] = {}
    for index, made in enumerate(drafts):
        variants.setdefault(made.key(), []).append(index)
    lines: list[str] = []
    for number, members in enumerate(variants.values(), start=1):
        name = _free_name(class_name(kind) + (str(number) if number > 1 else ""), taken)
        group = [drafts[k] for k in members]
        text, signature = class_text(name, group)
        lines += text
        for index, made in enumerate(group):
            optional = {c.name: expression(ctx, c, c.name) for c in made.scope.children
                        if isinstance(c, Scope) and c.kind == PROJECTION}
            ctx.call_sites[made.scope.path] = call_site(name, signature, made, index, optional)
    return lines


def _block_draft(ctx: Context, block: Any, scope: Scope) -> Draft:
    declared = [("x" if n == "input" else python_name(n)) for n in ctx.block_inputs.get(scope.kind, [])]
    inputs = declared if len(declared) == len(scope.inputs) else [f"x{k}" if k else "x" for k in range(len(scope.inputs))]
    returned = scope.outputs or scope.nodes[-1].values[:1]  # several: nodes inside read from outside
    made = draft(ctx, scope, inputs, "out", returned)
    params = ctx.ir.block_params.get(scope.path, {})
    required = [n for n, d in block.params.items() if d is None and n in params]
    shapes = ctx.ir.shapes[scope.inputs[0]] if scope.inputs else ()
    sizes = dict(zip(SHAPE_NAMES, (shapes[0], shapes[-2], shapes[-1]) if len(shapes) == 3 else shapes[:1]))
    made.env = {**{n: params[n] for n in required}, **sizes, **params}
    made.interface = set(required)
    made.defaults = {n: d for n, d in block.params.items() if isinstance(d, (bool, int, float)) and type(d) is type(params.get(n))}
    return made


def _model_class(ctx: Context, compiled: Any, tree: Scope, taken: set[str]) -> list[str]:
    ir = compiled.ir
    inputs = [python_name(node_id) for node_id in ir.inputs.values()]
    tree.inputs = list(ir.inputs.values())  # forward takes every input, in the spec's order
    made = draft(ctx, tree, inputs, "x", list(ir.outputs.values()))
    made.env = {n: v for n, v in ir.params.items() if isinstance(v, (bool, int, float, str))}
    # a parameter whose value is distinctive reads as the model's interface (`nn.Linear(512, num_classes)`)
    made.interface = {n for n, v in made.env.items() if isinstance(v, str) or (isinstance(v, float) and v)
                      or (type(v) is int and abs(v) >= 2)}
    made.defaults = dict(made.env)
    made.init += _frozen(ctx, tree)
    text, _ = class_text(_free_name(model_class_name(ir.name), taken), [made])
    return text


def _frozen(ctx: Context, tree: Scope) -> list[Line]:
    """`trainable: false`: the lowered module's frozen tensors are frozen here too."""
    frozen = [node for node in ctx.ir.nodes() if not node.is_input and not node.trainable and owns(node)
              and (node.entry.module or node.entry.tensor) is not None]
    return [Line(2, [f"{ctx.access(tree, node.module)}.requires_grad_(False)"]) for node in frozen]


def class_name(block: str) -> str:
    """A block's class: `basic` -> BasicBlock, `encoder_block` -> EncoderBlock."""
    words = "".join(w[:1].upper() + w[1:] for w in re.split(r"[^A-Za-z0-9]", block) if w)
    return words if words.lower().endswith("block") else f"{words}Block"


def model_class_name(spec: str) -> str:
    words = "".join(w[:1].upper() + w[1:] for w in re.split(r"[^A-Za-z0-9]", spec) if w)
    return words if words[:1].isalpha() else f"Model{words}"


def _free_name(name: str, taken: set[str]) -> str:
    count, chosen = 2, name
    while chosen in taken or chosen in ("Optional", "F", "nn", "torch"):
        chosen, count = f"{name}{count}", count + 1
    taken.add(chosen)
    return chosen
