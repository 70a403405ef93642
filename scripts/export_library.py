"""Every library spec through every `archspec export` format, at a reduced input size where the
spec allows one, into reports/export.md: per spec and format ok (with the largest difference
between the file's outputs and torch's, as the command checks them) or the reason it failed.

Each export is one `archspec export` process, so the report is what a user's command gives, and
one exporter's crash or memory cannot spoil the rest. Run from the repository root:

    nice .venv/bin/python scripts/export_library.py [SPEC ...] [--out reports/export.md] [--merge]

--merge keeps the rows of the existing report for the specs not named (a long run done in parts).
"""
from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archspec import pipeline  # noqa: E402
from archspec.errors import ArchspecError  # noqa: E402
from archspec.export import EXAMPLE_BATCH, FORMATS, ONNX_OPSET  # noqa: E402
from archspec.export.job import TOLERANCE  # noqa: E402

REDUCED_SIZES = (64, 96, 128, 160, 192, 224, 256)  # the first the spec compiles at, when smaller than its own
TIMEOUT_S = 1800  # one export of the largest spec (vit_l_16's 1.2 GB of weights) on two cores
MAX_REASON = 240
SMALLEST_SCALE = 1e-2  # outputs below this at init: the 1e-4 absolute tolerance would pass anything


@dataclass(frozen=True)
class Cell:
    status: str  # ok or failed
    detail: str = ""  # the max abs diff, or the reason


def reduced_inputs(path: Path) -> list[str]:
    """`--input NAME=CxSxS` for each image input larger than S, for the smallest S that compiles."""
    compiled = pipeline.compile(path)
    shapes = {name: tuple(compiled.ir.shapes[value]) for name, value in compiled.ir.inputs.items()}
    for size in REDUCED_SIZES:
        smaller = {name: (shape[0], size, size) for name, shape in shapes.items()
                   if len(shape) == 3 and shape[1] > size}
        if not smaller:
            return []
        try:
            pipeline.compile(path, {}, smaller)
        except ArchspecError:
            continue
        return [item for name, shape in smaller.items() for item in ("--input", f"{name}={'x'.join(map(str, shape))}")]
    return []


def zero_output_weights(path: Path, options: list[str], folder: Path) -> list[str]:
    """`--weights FILE` with every tensor moved off its initial value (the test suite's
    moved_weights) for a spec whose outputs at its initialisation are all below SMALLEST_SCALE
    (ViT's zero-initialised head; MobileNet's, MnasNet's and EfficientNet's, 1e-14 to 3e-6 at 64 pixels), where
    the absolute tolerance would pass any file; else []."""
    import torch

    from archspec.commands.common import parse_inputs

    sys.path.insert(0, str(ROOT / "tests"))
    from moved_weights import moved_weights

    compiled = pipeline.compile(path, {}, parse_inputs(options[1::2]))
    module = compiled.module().eval()
    inputs = {name: torch.randn(2, *compiled.ir.shapes[value]) for name, value in compiled.ir.inputs.items()}
    with torch.no_grad():
        outputs = module(**inputs)
    scale = max(float(t.abs().max()) for t in (outputs.values() if isinstance(outputs, dict) else [outputs]))
    if scale >= SMALLEST_SCALE:
        return []
    weights = folder / "moved_weights.pt"
    torch.save(moved_weights(module, seed=1), weights)
    return ["--weights", str(weights)]


def export_cell(path: Path, format_name: str, options: list[str], folder: Path) -> Cell:
    out = folder / f"{path.stem}{FORMATS[format_name].suffix}"
    command = [sys.executable, "-m", "archspec", "export", str(path), "--format", format_name, "--out", str(out),
               *options]
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return Cell("failed", f"over {TIMEOUT_S} s")
    if done.returncode == 0 and format_name == "python":  # the source is text: import it and compare here
        done = subprocess.run([sys.executable, __file__, str(path), *options, "--check-python", str(out)], cwd=ROOT,
                              capture_output=True, text=True, timeout=TIMEOUT_S)
    diff = re.search(r"max abs diff ([-+.0-9eE]+|inf|nan)(?:, outputs up to ([-+.0-9eE]+|inf|nan))?", done.stdout)
    traced = ", traced" if "torch.jit.trace" in done.stdout else ""
    if done.returncode == 0:
        scale = f" of {float(diff.group(2)):.0e}" if diff and diff.group(2) else ""
        return Cell("ok", (diff.group(1) + scale if diff else "(source)") + traced)
    return Cell("failed", (f"max abs diff {diff.group(1)}: " if diff else "") + reason(done.stderr))


def check_python(source: Path, spec: Path, inputs: list[str], weights: Path | None) -> int:
    """Import the written source, build its model class (the file's last nn.Module class, with its
    default arguments), load the archspec module's state_dict strictly and compare at batch 2."""
    import torch

    from archspec.commands.common import parse_inputs
    from archspec.export import ExportJob
    from archspec.export.job import check_file

    compiled = pipeline.compile(spec, {}, parse_inputs(inputs))
    module = compiled.module().eval()
    if weights is not None:
        module.load_state_dict(torch.load(weights, weights_only=True))
    loader = importlib.util.spec_from_file_location("exported_source", source)
    exported = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(exported)
    classes = [value for value in vars(exported).values() if isinstance(value, type)
               and issubclass(value, torch.nn.Module) and value.__module__ == "exported_source"]
    model = classes[-1]().eval()
    model.load_state_dict(module.state_dict(), strict=True)
    job = ExportJob(compiled, module, source)
    with torch.no_grad():
        verification = check_file("the imported source", job, lambda named: job.outputs(model(**named)))
    print(verification.text(job.example_batch))
    if not verification.ok:
        print(f"error: the source's outputs differ from torch's {verification.problem}".strip(), file=sys.stderr)
    return 0 if verification.ok else 1


def reason(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("error:", "internal error:"))]
    first = errors[0] if errors else lines[-1] if lines else "?"
    first = first.removeprefix("error: ")
    return first if len(first) <= MAX_REASON else first[: MAX_REASON - 3] + "..."


def read_rows(report: Path) -> list[tuple[str, list[str], dict[str, Cell]]]:
    """The rows of a report this script wrote, back as (spec, --input options, cells)."""
    text = report.read_text() if report.exists() else ""
    reasons = dict(re.findall(r"^(\d+)\. \*\*.+?\*\*, \w+: (.*)$", text, re.M))
    rows = []
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.split("|")[1:-1]]
        if len(cells) != 2 + len(FORMATS) or cells[0] in ("spec", "---"):
            continue
        options = [item for size in cells[1].split(", ") if size not in ("own", "moved weights")
                   for item in ("--input", size)]
        options += ["--weights", "(moved)"] if "moved weights" in cells[1] else []
        parsed = {}
        for name, cell in zip(FORMATS, cells[2:]):
            failed = re.fullmatch(r"failed \[(\d+)\]", cell)
            parsed[name] = Cell("failed", reasons.get(failed.group(1), "?")) if failed else Cell("ok", cell[3:])
        rows.append((cells[0], options, parsed))
    return rows


def render(rows: list[tuple[str, list[str], dict[str, Cell]]], seconds: float, ran: int) -> str:
    import onnx
    import onnxruntime
    import torch

    names = list(FORMATS)
    lines = [
        "# Export of the library",
        "",
        "Every spec in specs/ through every `archspec export` format (`scripts/export_library.py`), at the",
        f"smallest of {', '.join(map(str, REDUCED_SIZES))} pixels square that it compiles at, where that is below",
        f"its own input size. Each export traces at batch {EXAMPLE_BATCH} with a dynamic batch dimension; the",
        "command then loads the file back and runs it at batch 2 against the torch module on the same",
        f"seeded inputs. ok: every output agrees within {TOLERANCE}.",
        "The figures are the largest absolute difference and, after \"of\", the largest |torch| output",
        "it is measured against (randomly initialised deep nets without normalisation reach large values).",
        f"moved weights: the spec's outputs at its initialisation are all below {SMALLEST_SCALE:g} (ViT's",
        "zero-initialised head; MobileNet's, MnasNet's and EfficientNet's, 1e-14 to 3e-6 at 64 pixels), where the",
        "absolute tolerance would pass any file, so the file holds every tensor moved off its initial",
        "value (tests/moved_weights.py), passed as `--weights`.",
        f"ONNX files declare opset {ONNX_OPSET} and pass onnx.checker;",
        "onnxruntime runs them on the CPUExecutionProvider. traced: TorchScript fell back to",
        "torch.jit.trace because torch.jit.script refused the module. python: the written source is",
        "imported, its model class (the file's last) built with its default arguments, the archspec",
        "module's state_dict loaded into it strictly, and compared the same way.",
        "",
        f"torch {torch.__version__}, onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}; "
        f"{len(rows)} specs" + (f"; the last run ({ran} of them, the rest kept by --merge) took {seconds / 60:.0f} min."
                                if ran < len(rows) else f" in {seconds / 60:.0f} min."),
        "",
        "| spec | input | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    failures = []
    for spec, options, cells in rows:
        shown = []
        for name in names:
            cell = cells[name]
            if cell.status == "failed":
                failures.append(f"- **{spec}**, {name}: {cell.detail}")
                shown.append(f"failed [{len(failures)}]")
            else:
                shown.append(f"ok {cell.detail}")
        pairs = list(zip(options[::2], options[1::2]))
        size = ", ".join(value.split("=")[-1] for flag, value in pairs if flag == "--input") or "own"
        size += ", moved weights" if any(flag == "--weights" for flag, _ in pairs) else ""
        lines.append(f"| {spec} | {size} | " + " | ".join(shown) + " |")
    lines += ["", "Totals: " + ", ".join(f"{name} {sum(c[name].status == 'ok' for *_, c in rows)}/{len(rows)} ok"
                                             for name in names)]
    if failures:
        lines += ["", "## Failures", "", *(f"{i}. {text[2:]}" for i, text in enumerate(failures, 1))]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*", type=Path, help="Specs (default: every spec in specs/).")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "export.md")
    parser.add_argument("--merge", action="store_true", help="Keep the existing report's other rows.")
    parser.add_argument("--input", action="append", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--weights", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--check-python", type=Path, help=argparse.SUPPRESS)  # one python check, in its own process
    args = parser.parse_args(argv)
    if args.check_python:
        return check_python(args.check_python, args.specs[0], args.input, args.weights)
    specs = args.specs or sorted((ROOT / "specs").glob("*.yaml"))
    names = {path.stem for path in specs}
    rows, start = [row for row in read_rows(args.out) if row[0] not in names] if args.merge else [], time.monotonic()
    with tempfile.TemporaryDirectory(prefix="archspec-export-") as temporary:
        for path in specs:
            options = reduced_inputs(path)
            options += zero_output_weights(path, options, Path(temporary))
            cells = {name: export_cell(path, name, options, Path(temporary)) for name in FORMATS}
            for written in Path(temporary).iterdir():
                written.unlink()  # the next spec's disk
            rows.append((path.stem, options, cells))
            rows.sort(key=lambda row: row[0])
            print(path.stem, " ".join(f"{name}:{cell.status}" for name, cell in cells.items()), flush=True)
            args.out.write_text(render(rows, time.monotonic() - start, len(specs)))  # progress survives an interruption
    return 0


if __name__ == "__main__":
    sys.exit(main())
