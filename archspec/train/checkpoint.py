"""Checkpoints: weights as safetensors (with the spec text, its SHA-256 and the build parameters in
the metadata) and the optimizer / scheduler / RNG / position state beside them (torch.save of
tensors and plain data only). Both files are written atomically; they carry the same step so a
mismatched pair is detected.

Nothing is ever unpickled: every torch file (state.pt, an `--init` or `--weights` .pth) is read
with `weights_only=True`, so a crafted run folder or weights file cannot run code."""
from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch

from archspec.errors import ArchspecError
from archspec.files import write_atomic
from archspec.train.metadata import build_metadata, listed  # noqa: F401  (build_metadata: re-exported)
from archspec.runs import WEIGHTS_FILE as WEIGHTS, spec_digest  # noqa: F401  (spec_digest: re-exported)

STATE = "state.pt"


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
                            f"{listed(odd)} {'is' if len(odd) == 1 else 'are'} not a tensor")
    return _dense_tensors(loaded, path)


def _kind_of(value: Any) -> str:
    return "a tensor" if isinstance(value, torch.Tensor) else f"a value of type {type(value).__name__}"


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
                            f"archspec cannot load: {listed(odd)}; save dense tensors with values")
    return tensors


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
            lines.append(f"{len(names)} {label} tensor{'s' if len(names) != 1 else ''}: {listed(names)}")
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
                            f"dtype than the model's: {listed(wrong)}; {DTYPE_RULE}")
    skipped += [f"{name} (not in the file; kept its initial value)" for name in own if name not in tensors]
    return matched, skipped
