"""Checkpoints: weights as safetensors (with the spec text, its SHA-256 and the build parameters in
the metadata) and the optimizer / scheduler / RNG / position state beside them (torch.save of
tensors and plain data only). Both files are written atomically; they carry the same step so a
mismatched pair is detected.

Nothing is ever unpickled: every torch file (state.pt, an `--init` or `--weights` .pth) is read
with `weights_only=True`, so a crafted run folder or weights file cannot run code."""
from __future__ import annotations

import hashlib
import io
import json
import math
import warnings
from pathlib import Path
from typing import Any

import torch

from archspec.errors import ArchspecError
from archspec.ir.build import MAX_INPUT_SIZE  # the same limits as a spec's inputs and integers
from archspec.passes.shapes import MAX_RANK
from archspec.spec.yaml_source import MAX_INTEGER
from archspec.files import write_atomic

WEIGHTS = "checkpoint.safetensors"
STATE = "state.pt"


def spec_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def save_checkpoint(folder: Path, model: torch.nn.Module, spec_text: str, build: dict[str, Any],
                    state: dict[str, Any] | None, step: int) -> Path:
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {
        "format": "archspec-checkpoint-1",
        "spec": spec_text,
        "spec_sha256": spec_digest(spec_text),
        "build": json.dumps(build),
        "step": str(step),
    }
    if state is not None:  # the state first: a weights file never points at a missing state
        buffer = io.BytesIO()
        torch.save({**state, "step": step}, buffer)
        write_atomic(folder / STATE, buffer.getvalue())
    return write_atomic(folder / WEIGHTS, save(tensors, metadata=metadata))


def weights_path(path: Path) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS
    if not path.is_file():
        raise ArchspecError(f"no checkpoint at {path}")
    return path


def load_plain(path: Path, what: str) -> Any:
    """torch.load of tensors and plain data only (`weights_only=True`): a file that would need
    unpickling of any other object is refused, with one line naming it, and nothing in it runs."""
    try:
        with warnings.catch_warnings():  # torch's notes on the file (sparse checks): the outcome is reported
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        text = str(err)
        refused = next((line.strip() for line in text.splitlines() if "Unsupported global" in line
                        or "Unsupported operand" in line), None)
        if refused or "Weights only load failed" in text:
            detail = f" ({refused})" if refused else ""
            raise ArchspecError(f"{what} {path}: refused: it holds Python objects, not only tensors and plain "
                                f"data{detail}; archspec never unpickles code") from None
        first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
        raise ArchspecError(f"{what} {path}: cannot read it as a torch file: {first}") from None


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a run folder, a .safetensors file or a torch state_dict file (.pt,
    .pth; no metadata)."""
    from safetensors import safe_open

    path = weights_path(path)
    if path.suffix != ".safetensors" and not _is_safetensors(path):
        return _state_dict_of(load_plain(path, "weights file"), path), {}
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except Exception as err:
        raise ArchspecError(f"cannot read checkpoint {path}: {err}") from None
    return _dense_tensors(tensors, path), metadata


def _is_safetensors(path: Path) -> bool:
    """A safetensors file starts with an 8-byte header length and then a JSON object; a torch file
    is a zip (PK) or a pickle (0x80)."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def _state_dict_of(loaded: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict):
        raise ArchspecError(f"{path} does not hold a state_dict (a mapping of names to tensors), "
                            f"but {_kind_of(loaded)}")
    odd = [f"{k!r} ({_kind_of(v)})" for k, v in loaded.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if odd:
        raise ArchspecError(f"{path} does not hold a state_dict (a mapping of names to tensors): "
                            f"{_listed(odd)} {'is' if len(odd) == 1 else 'are'} not a tensor")
    return _dense_tensors(loaded, path)


def _kind_of(value: Any) -> str:
    return "a tensor" if isinstance(value, torch.Tensor) else f"a value of type {type(value).__name__}"


def _listed(names: list[str]) -> str:
    """The first 8 names (each cut at 200 characters), then how many there are in all."""
    return ", ".join(_short(n, 200) for n in names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")


def _short(text: str, limit: int = 80) -> str:
    """A name from a crafted file, on one line and bounded, for a message."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _dense_tensors(tensors: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """Refuse what cannot be loaded into a module's parameters: meta tensors (a shape without
    values), sparse, quantized or nested tensors."""
    odd = []
    for name, tensor in tensors.items():
        if tensor.is_meta:
            odd.append(f"{name} (a meta tensor: a shape without values)")
        elif tensor.layout != torch.strided:
            odd.append(f"{name} (a sparse tensor, layout {str(tensor.layout).removeprefix('torch.')})")
        elif tensor.is_quantized or getattr(tensor, "is_nested", False):
            odd.append(f"{name} (a {'quantized' if tensor.is_quantized else 'nested'} tensor)")
    if odd:
        raise ArchspecError(f"weights file {path}: {len(odd)} tensor{'s' if len(odd) != 1 else ''} "
                            f"archspec cannot load: {_listed(odd)}; save dense tensors with values")
    return tensors


# --- the build metadata: drives evaluate, so it is checked like a spec ------------------------------------
BUILD_KEYS = ("spec", "params", "inputs", "task", "class_names")
MAX_CLASS_NAMES = 100_000
MAX_CLASS_NAME = 200  # characters
MAX_PARAM_VALUES = 10_000
MAX_PARAM_DEPTH = 16
MAX_PARAM_CHARS = 10_000  # one string value, as for a --set value


def build_metadata(metadata: dict[str, str], path: Path) -> dict[str, Any]:
    """The `build` entry of a checkpoint's metadata (what `train` wrote: the spec's path, params,
    input shapes and task), checked: a JSON object of the known keys, `params` a mapping of plain
    values, `inputs` a mapping of input names to lists of 1 to 1,000,000. Missing: empty."""
    where = f"checkpoint {path}: metadata 'build'"
    text = metadata.get("build")
    if text is None:
        return {"params": {}, "inputs": {}, "class_names": []}
    try:
        build = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise ArchspecError(f"{where} is not JSON: {str(err)[:200]}") from None
    if not isinstance(build, dict):
        raise ArchspecError(f"{where} must be a JSON object, not {_json_kind(build)}")
    unknown = [key for key in build if key not in BUILD_KEYS]
    if unknown:
        raise ArchspecError(f"{where}: unknown keys {_listed([repr(k)[:80] for k in unknown])} "
                            f"(known: {', '.join(BUILD_KEYS)})")
    for key in ("spec", "task"):
        if key in build and not isinstance(build[key], str):
            raise ArchspecError(f"{where}: '{key}' must be a string, not {_json_kind(build[key])}")
    params = build.get("params", {})
    if not isinstance(params, dict):
        raise ArchspecError(f"{where}: 'params' must be a mapping of parameter names to values, not {_json_kind(params)}")
    counter = [0]
    for name, value in params.items():
        _check_plain(value, f"{where}: params.{_short(name)}", 1, counter)
    names = build.get("class_names", [])
    if (not isinstance(names, list) or len(names) > MAX_CLASS_NAMES
            or not all(isinstance(n, str) and len(n) <= MAX_CLASS_NAME for n in names)):
        raise ArchspecError(f"{where}: 'class_names' must be a list of at most {MAX_CLASS_NAMES:,} names of "
                            f"at most {MAX_CLASS_NAME} characters")
    return {"params": params, "inputs": _build_inputs(build.get("inputs", {}), where), "class_names": names}


def _build_inputs(inputs: Any, where: str) -> dict[str, tuple[int, ...]]:
    if not isinstance(inputs, dict):
        raise ArchspecError(f"{where}: 'inputs' must be a mapping of input names to shapes, not {_json_kind(inputs)}")
    shapes = {}
    for name, shape in inputs.items():
        ok = (isinstance(shape, list) and 1 <= len(shape) <= MAX_RANK
              and all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= MAX_INPUT_SIZE for d in shape))
        if not ok:
            raise ArchspecError(f"{where}: inputs.{_short(name)} must be a list of 1 to {MAX_RANK} sizes from 1 to {MAX_INPUT_SIZE:,}, "
                                f"like [3, 32, 32], not {json.dumps(shape)[:80]}")
        shapes[name] = tuple(shape)
    return shapes


def _check_plain(value: Any, where: str, depth: int, counter: list[int]) -> None:
    """A parameter value as a spec could hold it: null, a boolean, a bounded number, a string, or
    lists / mappings of those (bounded in depth and count)."""
    counter[0] += 1
    if counter[0] > MAX_PARAM_VALUES or depth > MAX_PARAM_DEPTH:
        raise ArchspecError(f"{where}: too large (over {MAX_PARAM_VALUES:,} values or {MAX_PARAM_DEPTH} levels)")
    if isinstance(value, float) and not math.isfinite(value):
        raise ArchspecError(f"{where}: {value} is not a finite number")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INTEGER:
        raise ArchspecError(f"{where}: {str(value)[:40]}... is beyond 1e18")
    if isinstance(value, str) and len(value) > MAX_PARAM_CHARS:
        raise ArchspecError(f"{where}: a string of {len(value):,} characters (the limit is {MAX_PARAM_CHARS:,})")
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]", depth + 1, counter)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_plain(item, f"{where}.{_short(key)}", depth + 1, counter)
    elif value is not None and not isinstance(value, (bool, int, float, str)):
        raise ArchspecError(f"{where}: {_json_kind(value)} is not a plain value")


def _json_kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


STATE_KEYS = ("optimizer", "scheduler", "rng", "epoch", "step_in_epoch", "step")


def read_state(folder: Path) -> dict[str, Any]:
    path = Path(folder) / STATE
    if not path.is_file():
        raise ArchspecError(f"no training state at {path}; cannot resume")
    state = load_plain(path, "training state")
    missing = [key for key in STATE_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise ArchspecError(f"training state {path} is not one archspec wrote (no {', '.join(missing)}); cannot resume")
    return state


def dtype_kind(dtype: torch.dtype) -> str:
    """floating, complex, bool or integer: a tensor loads into one of the same kind (precision may
    differ: float16 weights load into a float32 model), never across kinds."""
    if dtype.is_complex:
        return "complex"
    if dtype.is_floating_point:
        return "floating"
    return "bool" if dtype == torch.bool else "integer"


def dtype_mismatches(own: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor]) -> list[str]:
    def name(dtype: torch.dtype) -> str:
        return str(dtype).removeprefix("torch.")

    return [f"{k} (checkpoint {name(tensors[k].dtype)}, model {name(own[k].dtype)})"
            for k in own if k in tensors and dtype_kind(tensors[k].dtype) != dtype_kind(own[k].dtype)]


DTYPE_RULE = ("a tensor loads only into one of the same kind of dtype (floating point, integer, bool, "
              "complex); archspec never casts across kinds")


def state_dict_differences(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> list[str]:
    own = model.state_dict()
    missing = [k for k in own if k not in tensors]
    unexpected = [k for k in tensors if k not in own]
    mismatched = [f"{k} (checkpoint {tuple(tensors[k].shape)}, model {tuple(own[k].shape)})"
                  for k in own if k in tensors and tensors[k].shape != own[k].shape]
    lines = []
    for label, names in (("missing", missing), ("unexpected", unexpected), ("shape-mismatched", mismatched),
                         ("dtype-mismatched", dtype_mismatches(own, tensors))):
        if names:
            lines.append(f"{len(names)} {label} tensor{'s' if len(names) != 1 else ''}: {_listed(names)}")
    return lines


def check_fits(model: torch.nn.Module, path: Path, checkpoint: tuple[dict[str, torch.Tensor], dict[str, str]],
               spec_text: str | None = None) -> None:
    """Raise what differs between a checkpoint and a model (built on the meta device will do)."""
    tensors, metadata = checkpoint
    differences = state_dict_differences(model, tensors)
    if differences:
        note = ""
        if spec_text is not None and metadata.get("spec_sha256") and metadata["spec_sha256"] != spec_digest(spec_text):
            note = " (it was trained on a different spec text)"
        rule = f"; {DTYPE_RULE}" if any("dtype-mismatched" in line for line in differences) else ""
        raise ArchspecError(f"checkpoint {weights_path(path)} does not fit this spec{note}: "
                            + "; ".join(differences) + rule)


def load_weights(model: torch.nn.Module, path: Path, spec_text: str | None = None,
                 checkpoint: tuple[dict[str, torch.Tensor], dict[str, str]] | None = None) -> dict[str, str]:
    """Load a checkpoint strictly (`checkpoint`: what read_checkpoint(path) gave, to read it once);
    a checkpoint of another spec, or of other dtypes, fails with what differs."""
    checkpoint = checkpoint or read_checkpoint(path)
    check_fits(model, path, checkpoint, spec_text)
    model.load_state_dict(checkpoint[0])
    return checkpoint[1]


def init_weights(model: torch.nn.Module, path: Path) -> tuple[list[str], list[str]]:
    """--init: load every tensor whose name and shape match (safetensors or a torch .pth state_dict);
    return (loaded, skipped) with the reason for each skip."""
    path = Path(path)
    if not path.is_file():
        raise ArchspecError(f"--init: no file {path}")
    matched, skipped = init_matches(model, path, read_checkpoint(path)[0])
    model.load_state_dict(matched, strict=False)
    return sorted(matched), skipped


def init_matches(model: torch.nn.Module, path: Path, tensors: dict[str, torch.Tensor]):
    """The tensors --init loads (name and shape match) and the skipped ones with why; a matching
    tensor of another kind of dtype (integer, bool or complex for float weights) is an error."""
    own = model.state_dict()
    matched, skipped = {}, []
    for name, tensor in tensors.items():
        if name not in own:
            skipped.append(f"{name} (not in the model)")
        elif tuple(own[name].shape) != tuple(tensor.shape):
            skipped.append(f"{name} (shape {tuple(tensor.shape)}, model {tuple(own[name].shape)})")
        else:
            matched[name] = tensor
    wrong = dtype_mismatches(own, matched)
    if wrong:
        raise ArchspecError(f"--init {path}: {len(wrong)} tensor{'s' if len(wrong) != 1 else ''} of another kind of "
                            f"dtype than the model's: {_listed(wrong)}; {DTYPE_RULE}")
    skipped += [f"{name} (not in the file; kept its initial value)" for name in own if name not in tensors]
    return matched, skipped
