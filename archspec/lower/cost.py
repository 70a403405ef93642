"""What lowering to torch may cost, checked before any torch work (this module imports no torch).

`archspec.lower.fx.lower` writes, compiles and holds a Python `forward` of one line per node;
torch.fx's code generation and Python's compiler grow faster than linearly with its length
(49,000 1x1 convs ran out of memory). A graph of more than MAX_LOWERED_NODES op nodes is
refused: 5,000 1x1 convs lower in about a second and 60 MB. The largest library spec
(DenseNet-169) has 595. The static commands (validate, report, diagram) are not bound by it.
"""
from __future__ import annotations

from archspec.errors import SpecError
from archspec.ir.build import MAX_NODES
from archspec.ir.graph import IRGraph

MAX_LOWERED_NODES = 5_000


def check_lowering_cost(ir: IRGraph) -> None:
    """Refuse an IR too large to lower (MAX_LOWERED_NODES), saying what to do instead."""
    ops = sum(1 for node in ir.nodes() if node.op != "input")
    if ops > MAX_LOWERED_NODES:
        raise SpecError(
            f"'{ir.name}' has {ops:,} op nodes; archspec lowers a graph of at most {MAX_LOWERED_NODES:,} to torch",
            hint=f"the static commands (validate, report, diagram) take graphs up to {MAX_NODES:,} nodes; "
            "to build or train it, use fewer or smaller repeats",
        )
