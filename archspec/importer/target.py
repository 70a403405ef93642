"""The model an `archspec import` TARGET names: `package.module:factory` or `path/to/model.py:build`.

This is the user's own code, run because the user's command names it (as `python -c` would);
nothing in a spec is ever imported. A package without the factory but with a `create_model`
or `get_model` function is asked by name (`timm:resnet50d` is `timm.create_model("resnet50d")`,
`torchvision.models:get_model` style registries work the same). Keyword arguments come from
`--arg k=v`, read as Python literals (ast.literal_eval), never evaluated.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from archspec.errors import ArchspecError, SpecError

REGISTRY_FUNCTIONS = ("create_model", "get_model")


def parse_kwargs(pairs: list[str] | None) -> dict[str, Any]:
    """`--arg num_classes=10 --arg weights=None` -> {"num_classes": 10, "weights": None}."""
    kwargs = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ArchspecError(f"--arg '{pair}' is not NAME=VALUE")
        try:
            kwargs[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            kwargs[key] = text  # a bare word is a string: --arg mode=fast
    return kwargs


def load_model(target: str, kwargs: dict[str, Any] | None = None):
    """The nn.Module the target builds, in eval mode."""
    import torch

    where, sep, factory = target.rpartition(":")
    if not sep or not where or not factory:
        raise SpecError(f"TARGET '{target}' is not MODULE:FACTORY or FILE.py:FACTORY",
                            hint="e.g. torchvision.models:resnet50, timm:resnet50d or model.py:build")
    module = _load_file(Path(where)) if where.endswith(".py") else _import(where)
    build = _factory(module, where, factory)
    try:
        model = build(**(kwargs or {}))
    except Exception as err:
        raise ArchspecError(f"{target}(...) failed: {type(err).__name__}: {err}") from None
    if not isinstance(model, torch.nn.Module):
        raise ArchspecError(f"{target} gave a {type(model).__name__}, not a torch.nn.Module")
    return model.eval()


def _import(name: str):
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise ArchspecError(f"cannot import '{name}': {err}") from None


def _load_file(path: Path):
    if not path.is_file():
        raise ArchspecError(f"no file '{path}'")
    name = f"archspec_import_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        raise ArchspecError(f"{path} failed to load: {type(err).__name__}: {err}") from None
    return module


def _factory(module, where: str, factory: str):
    found = getattr(module, factory, None)
    if callable(found):
        return found
    for registry in REGISTRY_FUNCTIONS:
        create = getattr(module, registry, None)
        if callable(create):
            return lambda **kwargs: create(factory, **kwargs)
    raise ArchspecError(f"'{where}' has no factory '{factory}'")
