"""Run `archspec import`'s verified chain on every torchvision classification and segmentation
model and on timm families, and write reports/import.md.

    .venv/bin/python scripts/import_report.py [--only NAME ...] [--out reports/import.md]

Per model (random init, weights=None): import at a reduced input where the model allows one,
then build, strict state_dict load, eval outputs within 1e-5, static FLOPs = FlopCounterMode
(archspec.importer.check). Each model runs in a forked child with a time limit, so one that
crashes or hangs is a row, not the end of the run.
"""
from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMALL = (3, 64, 64)
TIME_LIMIT = 900  # seconds per model
SEGMENTATION = {"weights_backbone": None, "aux_loss": False}
# inputs the models need: fixed image sizes, stages that must divide into 7x7 windows
INPUTS = {"inception_v3": (3, 96, 96), "maxvit_t": (3, 224, 224), "vit_h_14": (3, 56, 56)}
KWARGS = {"vit_b_16": {"image_size": 64}, "vit_b_32": {"image_size": 64}, "vit_l_16": {"image_size": 64},
          "vit_l_32": {"image_size": 64}, "vit_h_14": {"image_size": 56}, "googlenet": {"aux_logits": False, "init_weights": True},
          "inception_v3": {"aux_logits": False, "init_weights": True}}
TIMM = {  # timm name -> input
    "resnet50d": SMALL, "resnext50_32x4d": SMALL, "seresnet50": SMALL, "convnext_tiny": SMALL, "efficientnet_b0": SMALL,
    "mobilenetv3_large_100": SMALL, "regnetz_b16": SMALL, "regnety_016": SMALL, "densenet121": SMALL,
    "vit_small_patch16_224": (3, 224, 224), "deit_tiny_patch16_224": (3, 224, 224), "mixnet_s": SMALL,
    "rexnet_100": SMALL, "dla34": SMALL, "cspresnet50": SMALL, "ghostnet_100": SMALL, "dpn68": SMALL,
}


def models() -> list[tuple[str, str, tuple[int, ...], dict]]:
    """(row name, target, input, factory keywords) for every model the report covers."""
    import torchvision

    rows = []
    for name in torchvision.models.list_models(module=torchvision.models):
        rows.append((name, f"torchvision.models:{name}", INPUTS.get(name, SMALL), {"weights": None, **KWARGS.get(name, {})}))
    for name in torchvision.models.list_models(module=torchvision.models.segmentation):
        rows.append((name, f"torchvision.models.segmentation:{name}", SMALL, {"weights": None, **SEGMENTATION}))
    for name, shape in TIMM.items():
        rows.append((f"timm {name}", f"timm:{name}", shape, {"pretrained": False}))
    return rows


def run_one(target: str, shape: tuple[int, ...], kwargs: dict) -> dict:
    import torch

    from archspec.importer.check import verify
    from archspec.importer.convert import import_model
    from archspec.importer.target import load_model

    torch.manual_seed(0)
    torch.set_num_threads(1)
    started = time.time()
    model = load_model(target, kwargs)
    result = import_model(model, shape, target.rpartition(":")[2], f"{target}, imported by `archspec import`")
    if result.problems:
        kinds = sorted({p.target for p in result.problems})
        return {"imported": False, "reason": f"{len(result.problems)} unsupported node(s): " + ", ".join(kinds[:4])
                + (f" and {len(kinds) - 4} more" if len(kinds) > 4 else ""), "seconds": time.time() - started}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "spec.yaml"
        path.write_text(result.text)
        chain = verify(model, path, shape, keep_model=False)
    return {"imported": True, "passed": chain.passed, "reason": chain.reason, "lines": len(result.text.splitlines()),
            "error": chain.error, "seconds": time.time() - started}


def _child(target, shape, kwargs, pipe) -> None:
    try:
        pipe.send(run_one(target, shape, kwargs))
    except Exception as err:  # the row says what went wrong; the report goes on
        detail = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        pipe.send({"imported": False, "reason": f"{type(err).__name__}: {detail}", "trace": traceback.format_exc()[-800:]})


def run_isolated(target: str, shape: tuple[int, ...], kwargs: dict) -> dict:
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(target, shape, kwargs, send))
    child.start()
    if receive.poll(TIME_LIMIT):
        found = receive.recv()
        child.join()
        return found
    child.kill()
    child.join()
    return {"imported": False, "reason": f"no result within {TIME_LIMIT} s (or the run crashed)"}


def _mark(row: dict, check: str) -> str:
    if not row.get("imported"):
        return "-"
    value = row["passed"].get(check)
    return "-" if value is None else ("yes" if value else "**no**")


def markdown(rows: list[tuple[str, tuple[int, ...], dict]]) -> str:
    from archspec.importer.check import CHECKS

    exact = [name for name, _, row in rows if row.get("imported") and all(row["passed"].get(c) for c in CHECKS)]
    imported = [name for name, _, row in rows if row.get("imported")]
    torchvision_rows = [r for r in rows if not r[0].startswith("timm ")]
    timm_rows = [r for r in rows if r[0].startswith("timm ")]
    lines = [
        "# `archspec import`: every torchvision model, and timm families",
        "",
        "Made by `scripts/import_report.py` (random init, `weights=None`/`pretrained=False`, eval mode). Each model is",
        "imported at the input shown, then checked: **build** (the spec compiles and lowers), **load** (the model's",
        "state_dict loads strictly), **outputs** (eval outputs within 1e-5 of the largest output, after the model's",
        "norm layers get random statistics), **flops** (archspec's static FLOPs equal FlopCounterMode's on the model,",
        "as archspec counts: `archspec.lower.verify.flop_counter`). Inputs are reduced to 3x64x64 where the",
        "model allows it (ViT's `image_size` with it); MaxViT's 7x7 partitions need 3x224x224.",
        "",
        f"**{len(exact)} of {len(rows)} import exactly** (all four checks); {len(imported)} import.",
        f"torchvision: {sum(1 for n, _, _ in torchvision_rows if n in exact)} of {len(torchvision_rows)} exact; "
        f"timm: {sum(1 for n, _, _ in timm_rows if n in exact)} of {len(timm_rows)} exact.",
        "",
        "| model | input | imported | build | load | outputs | flops | spec lines | reason it failed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, shape, row in rows:
        reason = (row.get("reason") or "").replace("|", "\\|")
        lines.append(f"| {name} | {'x'.join(map(str, shape))} | {'yes' if row.get('imported') else '**no**'} | "
                     + " | ".join(_mark(row, c) for c in CHECKS) + f" | {row.get('lines', '-')} | {reason} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="row names to run (the report then holds only those)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "import.md")
    options = parser.parse_args()
    sys.setrecursionlimit(10_000)
    import timm  # noqa: F401  (imported once, before the children fork)
    import torchvision  # noqa: F401

    rows = []
    for name, target, shape, kwargs in models():
        if options.only and name not in options.only:
            continue
        row = run_isolated(target, shape, kwargs)
        print(f"{name}: {'exact' if row.get('passed') and all(row['passed'].values()) and len(row['passed']) == 4 else row.get('reason')}"
              f" ({row.get('seconds', 0):.0f} s)", flush=True)
        rows.append((name, shape, row))
    options.out.write_text(markdown(rows))
    print(f"wrote {options.out}")


if __name__ == "__main__":
    main()
