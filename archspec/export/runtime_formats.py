"""The exporters to files a runtime loads: ONNX (torch's dynamo exporter, onnxscript), a
torch.export program (.pt2) and TorchScript. Each traces the module at the job's example batch
with a dynamic batch dimension, writes the file atomically, loads it back with the runtime that
reads it and compares its outputs with the module's at another batch."""
from __future__ import annotations

import io
import re
from pathlib import Path

from archspec.errors import ArchspecError
from archspec.export.job import Exported, ExportJob, Verification, check_file, exporter_errors, first_line, quiet
from archspec.files import write_atomic

# The ai.onnx opset the files declare: torch 2.14's default for the dynamo exporter, which
# onnxruntime 1.32 runs in full.
ONNX_OPSET = 20
ONNX_RUNNER = "onnxruntime (CPUExecutionProvider)"
BATCH_NAME = "batch"  # the dynamic dimension's name in the file
PROTOBUF_LIMIT = 2 << 30  # one ONNX protobuf message holds at most 2 GiB

ONNX_HINT = "an op the ONNX exporter cannot translate; --format pt2 or torchscript keep torch's own kernels"
EXPORT_HINT = "an op torch.export cannot trace; try --format torchscript, which falls back to tracing"


# --- onnx: the torch.export program, with what the translator lacks filled in (onnx_gaps) -------
def onnx_output_names(job: ExportJob) -> list[str]:
    """The spec's output names; one that is also an input's name gets `_output`, since every
    value of an ONNX graph has one name (siamese_pair has an input and an output `left`)."""
    inputs = set(job.input_shapes)
    return [f"{name}_output" if name in inputs else name for name in job.output_shapes]


def export_onnx(job: ExportJob) -> Exported:
    import torch

    from archspec.export.onnx_gaps import fill_gaps

    names = onnx_output_names(job)
    program = exported_program(job)
    with exporter_errors("torch.onnx.export (dynamo)", ONNX_HINT):
        program, translations, filled = fill_gaps(program)
        model = torch.onnx.export(program, dynamo=True, input_names=list(job.input_shapes), output_names=names,
                                  opset_version=ONNX_OPSET, custom_translation_table=translations,
                                  verbose=False).model_proto
    _name_batch(model)
    if model.ByteSize() >= PROTOBUF_LIMIT:
        raise ArchspecError(f"the ONNX model is {model.ByteSize() / (1 << 30):.1f} GiB, over protobuf's 2 GiB "
                            "limit for one file")
    path = write_atomic(job.out, model.SerializeToString())
    checker = _check_onnx(path)
    facts = (("exporter", "torch.export.export, then torch.onnx.export(dynamo=True)"), ("opset", str(_file_opset(path))),
             ("batch", _batch_dimension(path)), ("onnx.checker", checker),
             ("output names", ", ".join(names)), *((("filled in", ", ".join(filled)),) if filled else ()))
    return Exported(path, facts, _loaded_check(ONNX_RUNNER, job, lambda inputs: _run_onnx(path, names, job, inputs)))


def _name_batch(model) -> None:
    """Call the batch symbol `batch` in the file (torch.export names it s0, s40, ...), in every
    shape that the file records, alone or in an expression (`3*s40`)."""
    graph = model.graph
    symbols = {value.type.tensor_type.shape.dim[0].dim_param for value in graph.input
               if value.type.tensor_type.shape.dim} - {""}
    if not symbols:
        return
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(symbols))) + r")\b")
    for value in [*graph.input, *graph.output, *graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param:
                dim.dim_param = pattern.sub(BATCH_NAME, dim.dim_param)


def _check_onnx(path: Path) -> str:
    """onnx.checker on the written file: the full check (with strict shape inference), else the
    plain one with the reason the full one could not run."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
        return "passed (full_check)"
    except Exception as full:  # shape inference of an op it does not know: the plain check still applies
        try:
            onnx.checker.check_model(str(path))
        except onnx.checker.ValidationError as err:
            first = str(err).splitlines()[0]
            raise ArchspecError(f"{path}: onnx.checker rejects the exported model: {first}") from None
        reason = (str(full).strip().splitlines() or [type(full).__name__])[0]
        return f"passed (full_check failed: {reason[:120]})"


def _file_opset(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    opsets = [entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")]
    if opsets != [ONNX_OPSET]:
        raise ArchspecError(f"{path}: the file declares opset {opsets}, not {ONNX_OPSET}")
    return opsets[0]


def _batch_dimension(path: Path) -> str:
    """What the file says about dimension 0 of its inputs: a symbol (dynamic) or a number."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    first = {value.type.tensor_type.shape.dim[0].dim_param or str(value.type.tensor_type.shape.dim[0].dim_value)
             for value in graph.input}
    return ", ".join(f"dynamic ('{d}')" if not d.isdigit() else f"fixed at {d}" for d in sorted(first))


def _run_onnx(path: Path, names: list[str], job: ExportJob, inputs: dict) -> dict:
    import onnxruntime
    import torch

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    results = session.run(names, {name: tensor.numpy() for name, tensor in inputs.items()})
    return {name: torch.from_numpy(result) for name, result in zip(job.output_shapes, results)}


# --- pt2 ---------------------------------------------------------------------------------------------
def exported_program(job: ExportJob):
    """torch.export of the module at the example batch, dimension 0 of every input dynamic
    (non-strict: the lowered forward is plain tensor code, nothing for dynamo to guard)."""
    import torch

    with exporter_errors("torch.export.export", EXPORT_HINT):
        return torch.export.export(job.module, (), kwargs=job.example(job.example_batch),
                                   dynamic_shapes=job.dynamic_batch(), strict=False)


def export_pt2(job: ExportJob) -> Exported:
    import torch

    program = exported_program(job)
    with exporter_errors("torch.export.save", "please report it"):
        buffer = io.BytesIO()
        torch.export.save(program, buffer)
    path = write_atomic(job.out, buffer.getvalue())

    def run(inputs: dict) -> dict:
        with torch.no_grad():
            return job.outputs(torch.export.load(str(path)).module()(**inputs))

    facts = (("exporter", "torch.export.export(strict=False), torch.export.save"),
             ("batch", _program_batch(program)))
    return Exported(path, facts, _loaded_check("torch.export.load", job, run))


def _program_batch(program) -> str:
    """The range torch.export recorded for the batch symbol."""
    ranges = {(str(bounds.lower), str(bounds.upper)) for bounds in program.range_constraints.values()}
    text = [f"{lower} and up" if upper in ("int_oo", "oo") else f"{lower} to {upper}"
            for lower, upper in sorted(ranges)]
    return f"dynamic ({', '.join(text)})" if text else "fixed"


def _loaded_check(runner: str, job: ExportJob, run) -> Verification:
    with exporter_errors(runner, "the file was written but does not load back; please report it"):
        return check_file(runner, job, run)


# --- torchscript -------------------------------------------------------------------------------------
def export_torchscript(job: ExportJob) -> Exported:
    import torch

    script, method = _script_or_trace(job)
    buffer = io.BytesIO()
    with quiet():
        torch.jit.save(script, buffer)
    path = write_atomic(job.out, buffer.getvalue())

    def run(inputs: dict) -> dict:
        with torch.no_grad():
            return job.outputs(torch.jit.load(str(path), map_location="cpu")(**inputs))

    return Exported(path, (("method", method),), _loaded_check("torch.jit.load", job, run))


def _script_or_trace(job: ExportJob):
    """torch.jit.script of the fx module (its straight-line forward scripts as it is), else
    torch.jit.trace at the example batch, with the reason script failed."""
    import torch

    try:
        with quiet():
            return torch.jit.script(job.module), "torch.jit.script"
    except Exception as err:
        reason = first_line(err)
    example = job.example(job.example_batch)
    job.reference(example)  # once eagerly: a run-time helper's first-call import (torchvision.ops) is not traced
    with exporter_errors("torch.jit.trace", "an op the tracer cannot record; try --format pt2 or onnx"):
        traced = torch.jit.trace(job.module, example_kwarg_inputs=example, strict=False, check_trace=False)
    return traced, f"torch.jit.trace (torch.jit.script failed: {reason})"
