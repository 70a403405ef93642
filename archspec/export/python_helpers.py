"""The source of the classes and functions a written model calls besides torch's own (a helper of
the lowering such as `channel_shuffle`, a torchvision layer such as ShiftedWindowAttention), with
what they in turn use: the file holds them all, so it imports nothing but torch, torchvision.ops,
typing and math (and what those helpers import themselves).
"""
from __future__ import annotations

import ast
import builtins
import inspect
import sys
import textwrap
from dataclasses import dataclass, field
from typing import Any

ALLOWED_MODULES = ("torch", "torchvision.ops", "typing", "math", "collections", "functools", "warnings", "types")


@dataclass
class Helpers:
    """The helpers' source text (each once, what it uses first) and the import lines they need."""

    sources: dict[str, str] = field(default_factory=dict)  # name -> source, in definition order
    imports: set[str] = field(default_factory=set)
    _objects: dict[str, Any] = field(default_factory=dict)

    def add(self, obj: Any) -> str:
        """Hold `obj` (and what it uses); return the name the file calls it by."""
        name = obj.__name__
        if name in self._objects:
            if self._objects[name] is not obj:
                raise ValueError(f"two helpers are named '{name}'")
            return name
        self._objects[name] = obj
        module = sys.modules[obj.__module__]
        text = textwrap.dedent(inspect.getsource(obj))
        tree = ast.parse(text)
        for used in sorted(_names(tree)):
            if used != name and used in vars(module):
                self._use(used, vars(module)[used])
        self.sources[name] = text if "archspec" not in text.lower() else _without_docstrings(tree)
        return name

    def _use(self, name: str, value: Any) -> None:
        if inspect.ismodule(value):
            self.imports.add(_module_import(name, value))
        elif _public_in(value, "typing") or getattr(value, "__module__", None) == "typing":
            self.imports.add(f"from typing import {name}")
        elif (inspect.isclass(value) or inspect.isfunction(value)) and _public_module(value, name):
            self.imports.add(f"from {_public_module(value, name)} import {name}")
        elif inspect.isclass(value) or inspect.isfunction(value):
            self.add(value)
        elif isinstance(value, (int, float, str, bool, tuple)) and not hasattr(builtins, name):
            self.sources.setdefault(name, f"{name} = {value!r}\n")


def _names(tree: ast.AST) -> set[str]:
    """Every bare name the code reads (a global it uses, or a local of the same spelling)."""
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and not hasattr(builtins, node.id)}


def _module_import(name: str, module: Any) -> str:
    full = module.__name__
    if not full.startswith(ALLOWED_MODULES):
        raise ValueError(f"a helper imports {full}, which the written file may not import")
    if full == name:
        return f"import {full}"
    parent, _, leaf = full.rpartition(".")
    return f"from {parent} import {leaf}" if leaf == name and parent else f"import {full} as {name}"


def _public_in(value: Any, module_name: str) -> bool:
    module = sys.modules.get(module_name)
    return module is not None and any(v is value for v in vars(module).values() if not isinstance(v, (int, str)))


def _public_module(value: Any, name: str) -> str | None:
    """The public module the file imports `value` from (torch, torchvision.ops), if it is one."""
    for module_name in ("torch", "torch.nn", "torchvision.ops", "types"):
        module = sys.modules.get(module_name)
        if module is not None and getattr(module, name, None) is value:
            return module_name
    return None


def _without_docstrings(tree: ast.Module) -> str:
    """A helper's code without its docstrings and comments, which name the tool that wrote the
    file (the file is meant to stand alone)."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
            node.body = body[1:] or [ast.Pass()]
    source = ast.unparse(tree)
    if "archspec" in source.lower():
        raise ValueError("a helper's code names archspec")
    return source + "\n"
