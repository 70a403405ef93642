"""What every exporter shares: the job (the lowered module in eval mode, its named inputs and
outputs, the example it is traced with), the check of a file's outputs against the module's, and
the shortening of an exporter's own error to one line."""
from __future__ import annotations

import math
import os
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from archspec.errors import ArchspecError

if TYPE_CHECKING:
    import torch

    from archspec.pipeline import Compiled

# torch.export fixes a dimension whose example size is 1 (a batch of 1 cannot be told from a
# constant), so the example batch is at least 2, and the check runs at another batch than it: an
# output at the check's batch proves the file's batch dimension is dynamic.
EXAMPLE_BATCH = 3
MIN_EXAMPLE_BATCH = 2

# |file - torch| <= ATOL + RTOL * max|torch| for every element of an output. fp32 runtimes order
# sums differently (conv algorithms, fused kernels); each sum's rounding is relative to the size
# of its terms, not of its result, so an element that cancels to near zero in an output of scale
# 1e12 (inception_v3 at its initialisation, batch norm at unit statistics) is off by far more
# than 1e-4 of itself. Relative to the output's scale, a wrong op still differs by order 1.
RTOL = 1e-4
ATOL = 1e-4
TOLERANCE = "atol 1e-4 + rtol 1e-4 x the output's max |torch|"


@dataclass(frozen=True)
class ExportJob:
    """One export: the compiled spec, its lowered module (eval mode, weights loaded) and the file."""

    compiled: "Compiled"
    module: "torch.nn.Module | None"  # None for a format that writes source only
    out: Path
    example_batch: int = EXAMPLE_BATCH

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Input name -> shape without the batch, in the spec's order (the forward's arguments)."""
        ir = self.compiled.ir
        return {name: tuple(ir.shapes[value]) for name, value in ir.inputs.items()}

    @property
    def output_shapes(self) -> dict[str, tuple[int, ...]]:
        return dict(self.compiled.analysis.outputs)

    @property
    def check_batch(self) -> int:
        return 2 if self.example_batch != 2 else 3

    def example(self, batch: int) -> dict[str, "torch.Tensor"]:
        """Seeded standard-normal inputs at this batch: the same values for every run."""
        import torch

        generator = torch.Generator().manual_seed(batch)
        return {name: torch.randn(batch, *shape, generator=generator) for name, shape in self.input_shapes.items()}

    def dynamic_batch(self) -> dict[str, dict[int, Any]]:
        """torch.export's dynamic_shapes: dimension 0 of every input is one shared batch size."""
        from torch.export import Dim

        batch = Dim("batch", min=1)
        return {name: {0: batch} for name in self.input_shapes}

    def outputs(self, result: Any) -> dict[str, "torch.Tensor"]:
        """A forward's result by output name (a lowered module returns one tensor or a dict)."""
        if isinstance(result, dict):
            return {name: result[name] for name in self.output_shapes}
        if isinstance(result, (list, tuple)):
            return dict(zip(self.output_shapes, result))
        return {next(iter(self.output_shapes)): result}

    def reference(self, inputs: dict[str, "torch.Tensor"]) -> dict[str, "torch.Tensor"]:
        import torch

        with torch.no_grad():
            return self.outputs(self.module(**inputs))


@dataclass(frozen=True)
class Verification:
    """The exported file run at `batch` against the torch module on the same inputs."""

    runner: str  # what ran the file: "onnxruntime (CPUExecutionProvider)", "torch.export.load"
    batch: int
    max_abs_diff: float
    scale: float  # the largest |torch| output value
    ok: bool
    problem: str = ""  # a shape or name mismatch, when there is one

    def text(self, example_batch: int) -> str:
        verdict = "ok" if self.ok else "MISMATCH"
        problem = f" ({self.problem})" if self.problem else ""
        return (f"{self.runner} at batch {self.batch} (traced at {example_batch}) vs torch: max abs diff "
                f"{self.max_abs_diff:.2e}, outputs up to {self.scale:.2e} (allowed: {TOLERANCE}): {verdict}{problem}")


@dataclass(frozen=True)
class Exported:
    """What an exporter wrote: the file, facts for the summary (label, value), and its check."""

    path: Path
    facts: tuple[tuple[str, str], ...]
    check: Verification | None


def compare(runner: str, batch: int, reference: dict, got: dict) -> Verification:
    import torch

    if list(got) != list(reference):
        return Verification(runner, batch, math.inf, 0.0, False, f"outputs {list(got)}, expected {list(reference)}")
    worst, scale, ok, problems = 0.0, 0.0, True, []
    for name, expected in reference.items():
        actual = torch.as_tensor(got[name]).to(expected.dtype)
        if actual.shape != expected.shape:
            problems.append(f"{name} has shape {list(actual.shape)}, torch's is {list(expected.shape)}")
            continue
        if not expected.numel():
            continue
        size, diff = float(expected.abs().max()), float((actual - expected).abs().max())
        worst, scale = max(worst, diff), max(scale, size)
        ok = ok and diff <= ATOL + RTOL * size  # false for nan too
    if problems:
        return Verification(runner, batch, math.inf, scale, False, "; ".join(problems))
    return Verification(runner, batch, worst, scale, ok)


def check_file(runner: str, job: ExportJob, run: Callable[[dict], dict]) -> Verification:
    """Run the exported file (`run`: inputs -> outputs by name) at the check batch against torch."""
    inputs = job.example(job.check_batch)
    reference = job.reference(inputs)
    with quiet():
        got = run(inputs)
    return compare(runner, job.check_batch, reference, got)


@contextmanager
def quiet() -> Iterator[None]:
    """No exporter warnings on the terminal (TorchScript's deprecation notes, tracer notes): the
    summary says what was done, and an exporter's error still ends the command."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@contextmanager
def exporter_errors(exporter: str, hint: str) -> Iterator[None]:
    """An exporter's own error as one located line (`exporter: first meaningful line`) and a
    hint; ARCHSPEC_DEBUG=1 shows the exporter's whole error instead."""
    try:
        with quiet():
            yield
    except ArchspecError:
        raise
    except Exception as err:
        if os.environ.get("ARCHSPEC_DEBUG"):
            raise
        raise ArchspecError(f"{exporter} failed: {first_line(err)}\n  hint: {hint}; "
                            "ARCHSPEC_DEBUG=1 shows the exporter's whole message") from None


NOISE = ("Traceback", "The above exception", "For more information", "Set TORCH_LOGS", "from user code",
         "While executing", "Original traceback", "[torch.onnx]")
MAX_LINE = 300
ANSI = re.compile(r"\x1b\[[0-9;]*m")
FX_NODE = re.compile(r"translating node %(\w+)")


def first_line(err: BaseException) -> str:
    """The root cause's first line that says something (not a banner, a traceback or a blank),
    with the node of the exported graph where an exporter names one."""
    chain = [err]
    while len(chain) < 10 and chain[-1].__cause__ is not None:  # `raise ... from`: the exporter's own chain
        chain.append(chain[-1].__cause__)
    nodes = [match.group(1) for cause in chain if (match := FX_NODE.search(str(cause)))]
    text = next((line for line in _lines(chain[-1]) if len(line) > 3 and not line.startswith(NOISE)),
                type(chain[-1]).__name__)
    text = text if len(text) <= MAX_LINE else text[: MAX_LINE - 3] + "..."
    return text + (f" (at node '{nodes[0]}' of the exported graph)" if nodes else "")


def _lines(err: BaseException) -> list[str]:
    return [ANSI.sub("", line).strip().strip("#").strip() for line in str(err).splitlines()]
