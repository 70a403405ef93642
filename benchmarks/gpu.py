#!/usr/bin/env python3
"""GPU training benchmark: archspec's lowered modules against torchvision's, on one CUDA device.

    python benchmarks/gpu.py                 # CUDA: about 5-8 minutes on one H100/H200
    python benchmarks/gpu.py --cpu-tiny      # no GPU: tiny sizes, to show the script works

For resnet50, mobilenet_v2 and vit_b_16 (specs/NAME.yaml against torchvision.models.NAME, both
with random weights) it measures training images/s (forward, backward and an SGD step on random
in-memory data, warm-up steps excluded, the device synchronized around the timed steps) and the
peak memory of the step (torch.cuda.max_memory_allocated after reset_peak_memory_stats), in three
variants: fp32 eager; bf16 autocast with channels_last; the same under torch.compile (compile
time reported apart from the steady images/s). Each row also sets archspec's static training-peak
estimate (archspec.passes.memory, SGD) against the measured peak.

archspec and torchvision alternate which goes first, variant after variant, so drift in clocks or
temperature hits both. All eager rows run before any compiled one: when the time budget runs out,
only compiled rows are lost. The report is rewritten after every row, so a run stopped halfway
still leaves what it measured. Without CUDA (or with --cpu-tiny) it runs at 3x32x32, batch 2, and
the report says loudly that its figures are not GPU figures.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import gc
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing archspec
    sys.path.insert(0, str(ROOT))

MIB = 2**20
CPU_NOTE = "measured on CPU at tiny sizes to show the script works; NOT GPU figures"


@dataclass(frozen=True)
class Model:
    name: str  # specs/NAME.yaml and torchvision.models.get_model(NAME)
    batch: int  # on the GPU, at 224x224
    tiny: dict = field(default_factory=dict)  # spec parameters (and torchvision keywords) at 32x32


# ViT-B/16 takes one token per 16x16 patch and learns a position per token: 32x32 gives 4 patches
MODELS = (Model("resnet50", 128), Model("mobilenet_v2", 128), Model("vit_b_16", 64, {"image_size": 32}))


@dataclass(frozen=True)
class Variant:
    label: str
    bf16: bool
    channels_last: bool
    compiled: bool


VARIANTS = (
    Variant("fp32 eager", False, False, False),
    Variant("bf16 + channels_last", True, True, False),
    Variant("bf16 + channels_last + compile", True, True, True),
)


@dataclass(frozen=True)
class Settings:
    device: str  # "cuda" or "cpu"
    image: int  # side of the square input
    batch: int | None  # None: each model's own
    steps: int  # timed steps per run (fewer when the cap is reached first)
    warmup: int
    cap_s: float  # the most seconds of timed steps per run
    budget_s: float  # no compiled run starts that would likely end past this
    compile: bool
    out: Path
    command: str  # how this run was started, for the report

    def batch_of(self, model: Model) -> int:
        return self.batch or model.batch

    def params_of(self, model: Model) -> dict:
        return model.tiny if self.device == "cpu" else {}


@dataclass
class Run:
    """One side (archspec or torchvision) of one variant."""

    images_per_s: float | None = None
    peak_bytes: int | None = None  # None on CPU: there is no max_memory_allocated
    compile_s: float | None = None
    steps: int = 0
    note: str = ""  # why there are no figures (skipped, failed)
    wall_s: float = 0.0  # the whole run: building, compiling, warm-up and timed steps


@dataclass
class Row:
    variant: Variant
    archspec: Run
    torchvision: Run
    estimate_bytes: int


# --- building -------------------------------------------------------------------------------------------
def compile_spec(model: Model, settings: Settings):
    """The compiled spec: `.module()` lowers a fresh module each call, `.memory()` estimates."""
    import archspec

    return archspec.compile(ROOT / "specs" / f"{model.name}.yaml", settings.params_of(model),
                            {"": (3, settings.image, settings.image)}, batch=settings.batch_of(model))


def build_torchvision(model: Model, settings: Settings):
    import torchvision

    return torchvision.models.get_model(model.name, weights=None, **settings.params_of(model))


def static_estimate(compiled, bf16: bool) -> int:
    """The training-step peak archspec predicts. Under bf16 autocast the weights, gradients and
    SGD momentum stay fp32 and the activations are bf16, so the two parts come from the two
    estimates."""
    fp32 = compiled.memory("fp32", "sgd")
    if not bf16:
        return fp32.training_peak
    half = compiled.memory("bf16", "sgd")

    def states(estimate) -> int:
        return estimate.params + estimate.buffers + estimate.gradients + estimate.optimizer_state

    return states(fp32) + half.training_peak - states(half)


# --- measuring ------------------------------------------------------------------------------------------
def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(net, variant: Variant, settings: Settings, batch: int) -> Run:
    """Images/s of whole training steps after warm-up, and the peak memory they allocate."""
    import torch
    import torch.nn.functional as F

    device = torch.device(settings.device)
    layout = torch.channels_last if variant.channels_last else torch.contiguous_format
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()  # what other runs left behind (should be ~0)
    net = net.to(device, memory_format=layout).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)  # the estimate's optimizer
    images = torch.randn(batch, 3, settings.image, settings.image, device=device).contiguous(memory_format=layout)
    labels = torch.randint(0, 1000, (batch,), device=device)
    forward = torch.compile(net) if variant.compiled else net

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=variant.bf16):
            loss = F.cross_entropy(forward(images), labels)
        loss.backward()
        optimizer.step()

    run = Run()
    synchronize(device)
    began = time.perf_counter()
    step()  # the first step compiles, when compiling
    synchronize(device)
    first_s = time.perf_counter() - began
    for _ in range(settings.warmup - 1):
        step()
    synchronize(device)
    began = time.perf_counter()
    while run.steps < settings.steps and (run.steps == 0 or time.perf_counter() - began < settings.cap_s):
        step()
        run.steps += 1
    synchronize(device)
    elapsed = time.perf_counter() - began
    run.images_per_s = run.steps * batch / elapsed
    if variant.compiled:
        run.compile_s = max(first_s - elapsed / run.steps, 0.0)
    if device.type == "cuda":
        run.peak_bytes = torch.cuda.max_memory_allocated() - baseline
    return run


def release() -> None:
    """Free one run's modules, compiled graphs and cached blocks before the next starts."""
    import torch

    torch._dynamo.reset()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_side(build, variant: Variant, settings: Settings, batch: int) -> Run:
    try:
        return measure(build(), variant, settings, batch)
    except Exception as err:  # noqa: BLE001 -- one failed run (out of memory, a compile error) must not lose the others
        first_line = (str(err).splitlines() or [type(err).__name__])[0][:160]
        log(f"    failed: {type(err).__name__}: {first_line}")
        return Run(note=f"failed: {type(err).__name__}")
    finally:
        release()


# --- the run --------------------------------------------------------------------------------------------
STARTED = time.perf_counter()


def elapsed_s() -> float:
    return time.perf_counter() - STARTED


def log(message: str) -> None:
    print(f"[{elapsed_s():6.1f} s] {message}", file=sys.stderr, flush=True)


def skip_reason(variant: Variant, settings: Settings, longest_run_s: float) -> str:
    if not variant.compiled:
        return ""
    if not settings.compile:
        return "skipped (--no-compile)"
    # a row is two compiled runs (archspec's and torchvision's), each compiling and then timing
    if elapsed_s() + 2 * longest_run_s > settings.budget_s:
        return "skipped (time budget)"
    return ""


def benchmark_row(model: Model, variant: Variant, settings: Settings, archspec_first: bool, longest_run_s: float) -> Row:
    batch = settings.batch_of(model)
    compiled = compile_spec(model, settings)
    estimate = static_estimate(compiled, variant.bf16)
    reason = skip_reason(variant, settings, longest_run_s)
    if reason:
        log(f"{model.name} / {variant.label}: {reason}")
        return Row(variant, Run(note=reason), Run(note=reason), estimate)
    sides = {"archspec": compiled.module, "torchvision": lambda: build_torchvision(model, settings)}
    order = ["archspec", "torchvision"] if archspec_first else ["torchvision", "archspec"]
    runs = {}
    for side in order:
        log(f"{model.name} / {variant.label} / {side}: batch {batch}, {settings.image}x{settings.image}")
        began = time.perf_counter()
        runs[side] = run_side(sides[side], variant, settings, batch)
        runs[side].wall_s = time.perf_counter() - began
        if runs[side].images_per_s:
            log(f"    {runs[side].images_per_s:,.1f} img/s over {runs[side].steps} steps")
    return Row(variant, runs["archspec"], runs["torchvision"], estimate)


def run_all(models: list[Model], settings: Settings) -> dict[str, list[Row]]:
    """Eager variants of every model first, then the compiled ones; the report after each row."""
    rows: dict[str, list[Row]] = {model.name: [] for model in models}
    compiled_runs_s: list[float] = []
    turn = 0
    for phase in (False, True):
        for model in models:
            for variant in (v for v in VARIANTS if v.compiled == phase):
                # until one is measured, 100 s is a first guess at a run with a cold torch.compile
                row = benchmark_row(model, variant, settings, archspec_first=turn % 2 == 0,
                                    longest_run_s=max(compiled_runs_s, default=100.0))
                turn += 1
                rows[model.name].append(row)
                compiled_runs_s += [run.wall_s for run in (row.archspec, row.torchvision) if variant.compiled and run.wall_s]
                write_report(rows, models, settings)
    return rows


# --- the report -----------------------------------------------------------------------------------------
def fmt_rate(run: Run) -> str:
    return f"{run.images_per_s:,.1f}" if run.images_per_s else run.note or "n/a"


def fmt_mib(value: int | None) -> str:
    return f"{value / MIB:,.0f}" if value is not None else "n/a"


def fmt_compile(row: Row) -> str:
    if not row.variant.compiled:
        return "-"
    return " / ".join(f"{run.compile_s:.1f}" if run.compile_s is not None else "n/a" for run in (row.archspec, row.torchvision))


def table_line(row: Row) -> str:
    ours, theirs = row.archspec, row.torchvision
    ratio = f"{ours.images_per_s / theirs.images_per_s:.2f}" if ours.images_per_s and theirs.images_per_s else "n/a"
    versus = f"{row.estimate_bytes / ours.peak_bytes:.2f}" if ours.peak_bytes else "n/a"
    cells = [row.variant.label, fmt_rate(ours), fmt_rate(theirs), ratio, fmt_mib(ours.peak_bytes),
             fmt_mib(theirs.peak_bytes), fmt_mib(row.estimate_bytes), versus, fmt_compile(row)]
    return "| " + " | ".join(cells) + " |"


def header_lines(settings: Settings) -> list[str]:
    import torch
    import torchvision

    date = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    if settings.device == "cuda":
        where = f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
        tf32 = f"; TF32: matmul {torch.backends.cuda.matmul.allow_tf32}, cuDNN {torch.backends.cudnn.allow_tf32} (torch defaults)"
    else:
        where, tf32 = f"CPU, {torch.get_num_threads()} threads", ""
    lines = ["# GPU training benchmark: archspec against torchvision", "",
             f"Device: {where} · torch {torch.__version__} · torchvision {torchvision.__version__} · {date}{tf32}", ""]
    if settings.device == "cpu":
        lines += [f"**{CPU_NOTE}.**", ""]
    lines += [
        f"Written by `{settings.command}`. Training steps (forward, cross-entropy, backward, SGD with momentum) on "
        f"random {settings.image}x{settings.image} images held on the device; {settings.warmup} warm-up step(s) "
        f"excluded, then up to {settings.steps} timed steps or {settings.cap_s:g} s, synchronized before and after. "
        "archspec and torchvision alternate which runs first. Ratio: archspec img/s / torchvision img/s (above 1: "
        "archspec faster). Peak: `torch.cuda.max_memory_allocated` over the run (weights, gradients, momentum, "
        "activations). Estimate: archspec's static training peak (archspec.passes.memory, SGD; under bf16 autocast "
        "fp32 weights and states with bf16 activations); estimate / measured is against archspec's measured peak. "
        "Compile s: the first step's time less a steady step's.", ""]
    return lines


def render(rows: dict[str, list[Row]], models: list[Model], settings: Settings) -> str:
    lines = header_lines(settings)
    for model in models:
        lines += [f"## {model.name} (batch {settings.batch_of(model)})", "",
                  "| variant | archspec img/s | torchvision img/s | ratio | archspec peak MiB | torchvision peak MiB "
                  "| estimate MiB | estimate / measured | compile s (archspec / torchvision) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        lines += [table_line(row) for row in rows.get(model.name, [])] + [""]
    lines.append(f"Elapsed: {elapsed_s():.0f} s.")
    return "\n".join(lines) + "\n"


def write_report(rows: dict[str, list[Row]], models: list[Model], settings: Settings) -> None:
    settings.out.parent.mkdir(parents=True, exist_ok=True)
    settings.out.write_text(render(rows, models, settings), encoding="utf-8")


# --- command line ---------------------------------------------------------------------------------------
class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and exit 1, as every archspec command does
        print(f"gpu.py: error: {message}", file=sys.stderr)
        raise SystemExit(1)


def parse(argv: list[str] | None) -> tuple[list[Model], Settings]:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-tiny", action="store_true", help="run on CPU at 3x32x32, batch 2, 2 warm-up and 2 timed steps (automatic without CUDA)")
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile variant")
    parser.add_argument("--models", default=",".join(model.name for model in MODELS), help="comma-separated subset")
    parser.add_argument("--batch", type=int, help="one batch for every model (default 128/128/64; 2 on CPU)")
    parser.add_argument("--steps", type=int, help="timed steps per run (default 30; 2 on CPU)")
    parser.add_argument("--warmup", type=int, help="warm-up steps per run (default 3; 2 on CPU)")
    parser.add_argument("--cap", type=float, default=12.0, help="most seconds of timed steps per run (default 12)")
    parser.add_argument("--budget", type=float, default=480.0,
                        help="no compiled row starts that would likely end after this many seconds (default 480)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "gpu.md", help="the Markdown report")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    known = {model.name: model for model in MODELS}
    names = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        parser.error(f"--models: unknown model '{(unknown or [''])[0]}' (choose from {', '.join(known)})")
    for option in ("batch", "steps", "warmup"):
        if getattr(args, option) is not None and getattr(args, option) < 1:
            parser.error(f"--{option} must be at least 1, not {getattr(args, option)}")
    import torch

    tiny = args.cpu_tiny or not torch.cuda.is_available()
    settings = Settings("cpu" if tiny else "cuda", 32 if tiny else 224, args.batch or (2 if tiny else None),
                        args.steps or (2 if tiny else 30), args.warmup or (2 if tiny else 3), args.cap, args.budget,
                        not args.no_compile, args.out, " ".join(["python benchmarks/gpu.py", *argv]))
    return [known[name] for name in names], settings


def main(argv: list[str] | None = None) -> Path:
    global STARTED
    STARTED = time.perf_counter()
    models, settings = parse(argv)
    if settings.device == "cpu":
        log(f"NO CUDA DEVICE IN USE: {CPU_NOTE}")
    run_all(models, settings)
    log(f"done; wrote {settings.out}")
    return settings.out


if __name__ == "__main__":
    main()
