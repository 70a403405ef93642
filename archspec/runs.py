"""What a training run folder says that its writer (archspec.train) and its readers (the run
curves in archspec.render, `report --run`) both rely on, kept here so neither imports the other:
the optimizers (one table for `train --optimizer` and the memory estimate's `--optimizer`), the
main metric per task, and the facts `report --run` checks a run by. Torch-free."""
from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archspec.errors import ArchspecError, SpecError


@dataclass(frozen=True)
class Optimizer:
    """One optimizer as training builds it and as the memory estimate counts it."""

    name: str
    states: int  # tensors of optimizer state per trainable parameter (momentum; Adam's two moments)
    lr: float  # the default peak learning rate of `archspec train`
    weight_decay: float  # the default weight decay of `archspec train`


# The one list of optimizer names: `train --optimizer` builds them (archspec.train.state) and
# `report/compare/diff/sweep --optimizer` count their state (archspec.passes.memory).
OPTIMIZERS = {
    "sgd": Optimizer("sgd", 1, 0.05, 5e-4),  # with momentum (train --momentum, default 0.9)
    "adam": Optimizer("adam", 2, 1e-3, 0.0),  # torch's defaults; its weight decay is L2 in the gradient
    "adamw": Optimizer("adamw", 2, 3e-3, 1e-2),  # decoupled weight decay
}
OPTIMIZER_NAMES = ", ".join(OPTIMIZERS)


# the metric a task's run is judged and plotted by; its rows hold it as test_<metric>
MAIN_METRICS = {"classification": "accuracy", "segmentation": "iou", "embedding": "triplet_accuracy",
                "detection": "map_50"}

# a detection run's sheet of sample test predictions, which its report.html shows
PREDICTIONS_FILE = "predictions.png"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "checkpoint.safetensors"


@dataclass(frozen=True)
class RunFacts:
    """What a run folder records about how it was trained (None where the folder does not say)."""

    folder: Path
    spec_sha256: str | None = None
    spec: str | None = None  # the spec path it was trained from, as given then
    optimizer: str | None = None
    batch: int | None = None
    params: dict[str, Any] = field(default_factory=dict)  # the build parameters (num_classes from the data)
    inputs: dict[str, tuple[int, ...]] = field(default_factory=dict)


def read_run_facts(folder: Path) -> RunFacts:
    """The run's spec hash and build (from its checkpoint's metadata) and its optimizer and batch
    (from config.json), without torch: the checkpoint's JSON header is all that is read."""
    from archspec.train.metadata import build_metadata, short  # checked like evaluate's: it drives the compile

    config = _run_config(folder)
    weights = folder / WEIGHTS_FILE
    metadata = checkpoint_metadata(weights) if weights.exists() else {}
    build = build_metadata(metadata, weights)
    batch = config.get("batch_size")
    return RunFacts(
        folder,
        spec_sha256=metadata.get("spec_sha256") or None,
        spec=short(build["spec"], 200) if build["spec"] else None,
        optimizer=config.get("optimizer") if config.get("optimizer") in OPTIMIZERS else None,
        batch=batch if isinstance(batch, int) and not isinstance(batch, bool) and batch > 0 else None,
        params=build["params"],
        inputs=build["inputs"],
    )


def spec_digest(text: str) -> str:
    """The SHA-256 a checkpoint records of the spec text it was trained from."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def run_of_spec(folder: Path, spec_path: Path, spec_text: str) -> tuple[RunFacts, list[str]]:
    """The facts of the run in `folder`, refusing a run of another spec text; and notes on what
    could not be checked (a run without a checkpoint, or whose checkpoint records no hash)."""
    facts = read_run_facts(folder)
    if facts.spec_sha256 is None:
        return facts, [f"warning: --run {folder}: no checkpoint with the spec's SHA-256 there (a run from an older "
                       f"archspec, or stopped before its first checkpoint): cannot check that it trained {spec_path}"]
    if facts.spec_sha256 != spec_digest(spec_text):
        trained = f" (it trained {facts.spec})" if facts.spec else ""
        raise SpecError(f"--run {folder} is a run of another spec{trained}: its checkpoint's spec text has "
                        f"SHA-256 {facts.spec_sha256[:12]}..., {spec_path} has {spec_digest(spec_text)[:12]}...",
                        hint=f"report the spec that was trained{': ' + facts.spec if facts.spec else ''}")
    return facts, []


def _run_config(folder: Path) -> dict[str, Any]:
    from archspec.spec.reading import MAX_RUN_FILE_BYTES, read_bounded

    path = folder / CONFIG_FILE
    try:
        values = json.loads(read_bounded(path, MAX_RUN_FILE_BYTES))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, RecursionError) as err:
        raise ArchspecError(f"--run {folder}: cannot read {path}: {err}") from None
    return values if isinstance(values, dict) else {}


def checkpoint_metadata(path: Path) -> dict[str, str]:
    """The `__metadata__` of a safetensors file, read by safetensors itself from the file's header
    (numpy framework: no torch, no tensor is read)."""
    from safetensors import safe_open

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise ArchspecError(f"--run: {path} is not a regular file")
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
    except OSError as err:
        raise ArchspecError(f"--run: cannot read {path}: {err.strerror or err}") from None
    except Exception as err:  # safetensors' own SafetensorError: a header it cannot parse
        raise ArchspecError(f"--run: {path} is not a safetensors checkpoint ({err})") from None
    return {k: v for k, v in metadata.items() if isinstance(v, str)}
