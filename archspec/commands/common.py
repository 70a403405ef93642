"""What every `archspec` command shares: option types, option parsing, the error wrapper and
compiling a spec (archspec.pipeline) under the command-line options. Commands live in
archspec/cli.py and archspec/commands/*.py."""
from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import typer

from archspec.errors import ArchspecError, SpecError, check_choice, did_you_mean
from archspec.runs import OPTIMIZER_NAMES, OPTIMIZERS

if TYPE_CHECKING:
    from archspec.pipeline import Compiled

SPECS_FOLDER = Path("specs")
REPORTS_FOLDER = Path("reports")
DEFAULT_MEMORY_LIMIT_GIB = 8.0

SetOption = typer.Option(None, "--set", help="Override a spec parameter: --set num_classes=10 (repeatable).")
InputOption = typer.Option(None, "--input", help="Input shape CxHxW, or NAME=CxHxW for a named input (repeatable).")
BatchOption = typer.Option(1, "--batch", min=1, help="Batch size the counts are for.")

DtypeOption = typer.Option("fp32", "--dtype", help="fp32, bf16 or fp16: bytes per activation and weight in the memory figures.")
OptimizerOption = typer.Option("sgd", "--optimizer", help=f"{OPTIMIZER_NAMES}: the optimizer state in the training peak "
                                                          "(sgd: one tensor per parameter, adam and adamw: two).")

MemoryLimitOption = typer.Option(DEFAULT_MEMORY_LIMIT_GIB, "--memory-limit",
                                 help="GiB the static estimate (model, batch and data set) may reach.")
ForceOption = typer.Option(False, "--force", help="Run even above the memory limit.")
MEMORY_HINT = "use a smaller --input or batch, raise --memory-limit, or pass --force"


def check_memory_options(dtype: str, optimizer: str) -> str:
    """Check --dtype and --optimizer (one of archspec.runs.OPTIMIZERS, as `train` takes); the
    optimizer's name, which the memory estimate counts it under."""
    from archspec.passes.memory import DTYPE_BYTES

    check_choice("--dtype", dtype, list(DTYPE_BYTES))
    check_choice("--optimizer", optimizer, list(OPTIMIZERS))
    return optimizer


def check_memory_limit(value: float) -> float:
    """--memory-limit is a positive, finite number of GiB (nan would pass every comparison)."""
    if not math.isfinite(value) or value <= 0:
        raise ArchspecError(f"--memory-limit must be a positive number of GiB, not {value:g}")
    return value


def refuse_over_limit(what: str, parts: list[tuple[str, int]], limit: float, force: bool) -> None:
    """The static memory check of build, applied to train, evaluate and bench before any big allocation."""
    needed = sum(size for _, size in parts)
    if force or needed <= limit * (1 << 30):
        return
    from archspec.render.figures import human_bytes

    detail = "; ".join(f"{label}: {human_bytes(size)}" for label, size in parts if size)
    raise SpecError(f"{what} would need about {human_bytes(needed)} ({detail}), over the {limit:g} GiB limit",
                    hint=MEMORY_HINT)


def handles_errors(command: Callable) -> Callable:
    """Print archspec errors as located one-liners on stderr and exit 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ArchspecError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as err:  # a bug in archspec: one line, the traceback only on request
            if os.environ.get("ARCHSPEC_DEBUG"):
                raise
            typer.echo(
                f"internal error: {type(err).__name__}: {err}\n"
                "  this is a bug in archspec; rerun with ARCHSPEC_DEBUG=1 for the traceback and please report it",
                err=True,
            )
            raise typer.Exit(1) from None

    return wrapper


# --- option parsing ---------------------------------------------------------------------------------
MAX_SET_CHARS = 10_000  # one --set value; a list of stages is a few hundred characters


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """`--set NAME=VALUE` pairs as plain Python values. VALUE is YAML read by the spec loader,
    with its limits (tags, aliases, nesting, values), so an alias bomb on the command line is
    refused as in a spec file; an error names the option."""
    overrides: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ArchspecError(f"--set expects NAME=VALUE, got '{item}'")
        overrides[key.strip()] = _set_value(key.strip(), text) if text.strip() else ""
    return overrides


def _set_value(key: str, text: str) -> Any:
    from archspec.spec.yaml_source import parse_yaml_counted

    option = f"--set {key}"
    if len(text) > MAX_SET_CHARS:
        raise SpecError(f"{option}: the value is {len(text):,} characters; the limit is {MAX_SET_CHARS:,}",
                        hint="put long values in the spec's `params`")
    try:
        value, _ = parse_yaml_counted(text, option, allow_empty=True)
    except SpecError as err:
        raise SpecError(f"{option}: {err.message}{_where(err.loc, text)}", hint=err.hint) from None
    return _plain(value)


def _where(loc, text: str) -> str:
    """Where in a --set value an error is: a character for the usual one-line value."""
    if loc is None:
        return ""
    if "\n" in text:
        return f" (at line {loc.line}, column {loc.column})"
    return f" (at character {loc.column})" if loc.line == 1 else " (at the end of the value)"


def _plain(value: Any) -> Any:
    """SourceMap/SourceList as dict/list: the locations would name the option as a file."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def parse_inputs(items: list[str] | None) -> dict[str, tuple[int, ...]]:
    """`3x224x224` (the first input, key "") or `left=3x64x64`; archspec.pipeline resolves ""."""
    shapes: dict[str, tuple[int, ...]] = {}
    for item in items or []:
        name, sep, dims = item.rpartition("=")
        name = name.strip() if sep else ""
        try:
            shape = tuple(int(d) for d in dims.lower().split("x"))
        except ValueError:
            raise ArchspecError(f"--input expects CxHxW like 3x224x224, got '{item}'") from None
        if any(d < 1 for d in shape):
            raise ArchspecError(f"--input sizes must be positive, got '{item}'")
        shapes[name] = shape
    return shapes


def compile_options(spec_path: Path, sets, inputs, batch: int = 1) -> "Compiled":
    """One spec (a file, or a library spec by name) compiled under the `--set` and `--input`
    options (archspec.pipeline.compile)."""
    from archspec import pipeline

    return pipeline.compile(spec_file(spec_path), parse_sets(sets), parse_inputs(inputs), batch=batch)


BOOLEAN_WORDS = {"true", "false", "yes", "no", "on", "off", "1", "0"}


def spec_file(path: Path) -> Path:
    """A SPEC argument: the file it names, else (a bare name such as `resnet18` or `resnet18.yaml`
    that is no file here) the spec of that name in archspec's library, the folder `archspec:`
    paths read (archspec.spec.includes.library_root), so library specs work from any folder."""
    path = Path(path)
    if os.path.lexists(path) or len(path.parts) != 1:
        return path  # a path with folders that does not exist: the loader says "no such file"
    from archspec.spec.includes import LIBRARY_PREFIX, library_root

    root = library_root()
    stem = path.name.removeprefix(LIBRARY_PREFIX).removesuffix(".yaml")  # `archspec:resnet18` as in `use:`
    if root is not None and (root / f"{stem}.yaml").is_file():
        return root / f"{stem}.yaml"
    known = sorted(p.stem for p in root.glob("*.yaml")) if root is not None else []
    if stem.lower() in BOOLEAN_WORDS:  # `--flops true`: the flag took no value, so "true" became a SPEC
        hint = f"flags take no value: write `--flops`, not `--flops {stem}`"
    else:
        hint = did_you_mean(stem, known) or (f"the library's specs include {', '.join(known[:5])}" if known else None)
    raise SpecError(f"no such file: {path}, and archspec's library has no spec '{stem}'", hint=hint)


def library_specs() -> list[Path]:
    """Every spec of the library: the specs/ folder here, else archspec's own library."""
    from archspec.spec.includes import library_root

    folder = SPECS_FOLDER if SPECS_FOLDER.is_dir() else library_root()
    if folder is None:
        raise ArchspecError(f"no SPEC given, no {SPECS_FOLDER}/ folder here and no library in this installation")
    return sorted(folder.glob("*.yaml"))


def print_result(data: dict, output_format: str, render_markdown: Callable[[dict], str], render_table: Callable[[dict], None]) -> None:
    """Print a command's result as JSON, Markdown (from `render_markdown`) or a rich table."""
    import json

    if output_format == "json":
        typer.echo(json.dumps(data, indent=1, default=str))
    elif output_format == "markdown":
        typer.echo(render_markdown(data), nl=False)
    else:
        render_table(data)
