"""The op catalog: the built-in op modules, named explicitly, and the lookup everything else uses.

Each module in `MODULES` lists its entries in `OPS`; they are registered here, once, in this
order. Registration checks each entry (`archspec.ops.registry.check_op`) and refuses a name or
alias that is taken.
"""
from __future__ import annotations

from archspec.ops import activation, conv, linear, merge, norm, pool, reshape, roi
from archspec.ops import attention, axes, tensor
from archspec.ops import window
from archspec.ops import maxvit
from archspec.ops.registry import Op, Registry

MODULES = (activation, conv, linear, merge, norm, pool, reshape, roi, tensor, axes, attention, window, maxvit)

_REGISTRY = Registry()
for _module in MODULES:
    for _op in _module.OPS:
        _REGISTRY.register(_op)


def lookup(name: str) -> Op | None:
    return _REGISTRY.get(name)


def all_ops() -> dict[str, Op]:
    """Every registered name (aliases included) -> its entry, in registration order."""
    return _REGISTRY.entries()


def entries() -> list[Op]:
    """Each op once (no aliases), in registration order."""
    return list({id(op): op for op in _REGISTRY.entries().values()}.values())
