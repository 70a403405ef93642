"""`archspec export`: a spec's lowered module as a file that another runtime loads, each format
checked by loading the file back and comparing its outputs with the module's.

FORMATS is the one table of formats (name -> exporter): the command looks a format up here and
names none itself; a new format is one entry."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from archspec.errors import ArchspecError, did_you_mean
from archspec.export.job import EXAMPLE_BATCH, MIN_EXAMPLE_BATCH, Exported, ExportJob, Verification, exporter_errors
from archspec.export.runtime_formats import ONNX_OPSET, export_onnx, export_pt2, export_torchscript
from archspec.files import write_atomic

__all__ = ["EXAMPLE_BATCH", "FORMATS", "MIN_EXAMPLE_BATCH", "ONNX_OPSET", "ExportFormat", "Exported", "ExportJob",
           "Verification", "lookup"]


def export_python(job: ExportJob) -> Exported:
    """Standalone source (archspec.export.python_source): the text only, checked by its own tests."""
    try:
        from archspec.export.python_source import python_source
    except ModuleNotFoundError as err:
        if err.name != "archspec.export.python_source":
            raise
        raise ArchspecError("--format python is not available yet (archspec.export.python_source is missing)") from None
    with exporter_errors("archspec.export.python_source", "a construct the source writer does not cover yet; "
                         "--format pt2 or torchscript export the module itself"):
        text = python_source(job.compiled)
    path = write_atomic(job.out, text)
    return Exported(path, (("weights", "none in the file: load a state_dict into the module strictly"),), None)


@dataclass(frozen=True)
class ExportFormat:
    name: str
    suffix: str  # the usual file name ending
    summary: str
    export: Callable[[ExportJob], Exported]
    runs_module: bool = True  # exports the lowered module (so --weights matter), not only its source


FORMATS: dict[str, ExportFormat] = {entry.name: entry for entry in (
    ExportFormat("onnx", ".onnx", f"ONNX opset {ONNX_OPSET} by torch's dynamo exporter, checked with onnx.checker "
                 "and run by onnxruntime", export_onnx),
    ExportFormat("pt2", ".pt2", "a torch.export program (torch.export.save), loaded back with torch.export.load",
                 export_pt2),
    ExportFormat("torchscript", ".pt", "TorchScript (torch.jit.script, else torch.jit.trace), loaded back with "
                 "torch.jit.load", export_torchscript),
    ExportFormat("python", ".py", "standalone PyTorch source: one nn.Module class per block, no archspec import",
                 export_python, runs_module=False),
)}


def lookup(name: str) -> ExportFormat:
    if name not in FORMATS:
        hint = did_you_mean(name, FORMATS)
        raise ArchspecError(f"--format must be one of {', '.join(FORMATS)}, not '{name}'"
                            + (f"\n  hint: {hint}" if hint else ""))
    return FORMATS[name]
