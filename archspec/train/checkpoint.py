"""Checkpoints: weights as safetensors (with the spec text, its SHA-256 and the build parameters in
the metadata) and the optimizer / scheduler / RNG / position state beside them (torch.save).
Both files are written atomically; they carry the same step so a mismatched pair is detected."""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import torch

from archspec.errors import ArchspecError
from archspec.render.files import write_atomic

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


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    path = weights_path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except Exception as err:
        raise ArchspecError(f"cannot read checkpoint {path}: {err}") from None
    return tensors, metadata


def read_state(folder: Path) -> dict[str, Any]:
    path = Path(folder) / STATE
    if not path.is_file():
        raise ArchspecError(f"no training state at {path}; cannot resume")
    return torch.load(path, map_location="cpu", weights_only=False)


def state_dict_differences(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> list[str]:
    own = model.state_dict()
    missing = [k for k in own if k not in tensors]
    unexpected = [k for k in tensors if k not in own]
    mismatched = [f"{k} (checkpoint {tuple(tensors[k].shape)}, model {tuple(own[k].shape)})"
                  for k in own if k in tensors and tensors[k].shape != own[k].shape]
    lines = []
    for label, names in (("missing", missing), ("unexpected", unexpected), ("shape-mismatched", mismatched)):
        if names:
            shown = ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
            lines.append(f"{len(names)} {label} tensor{'s' if len(names) != 1 else ''}: {shown}")
    return lines


def load_weights(model: torch.nn.Module, path: Path, spec_text: str | None = None) -> dict[str, str]:
    """Load a checkpoint strictly; a checkpoint of another spec fails with what differs."""
    tensors, metadata = read_checkpoint(path)
    differences = state_dict_differences(model, tensors)
    if differences:
        note = ""
        if spec_text is not None and metadata.get("spec_sha256") and metadata["spec_sha256"] != spec_digest(spec_text):
            note = " (it was trained on a different spec text)"
        raise ArchspecError(f"checkpoint {weights_path(path)} does not fit this spec{note}: " + "; ".join(differences))
    model.load_state_dict(tensors)
    return metadata


def init_weights(model: torch.nn.Module, path: Path) -> tuple[list[str], list[str]]:
    """--init: load every tensor whose name and shape match (safetensors or a torch .pth state_dict);
    return (loaded, skipped) with the reason for each skip."""
    path = Path(path)
    if not path.is_file():
        raise ArchspecError(f"--init: no file {path}")
    if path.suffix == ".safetensors":
        tensors, _ = read_checkpoint(path)
    else:
        try:
            tensors = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ArchspecError(f"--init: cannot read {path}: {err}") from None
        if isinstance(tensors, dict) and "state_dict" in tensors and isinstance(tensors["state_dict"], dict):
            tensors = tensors["state_dict"]
        if not isinstance(tensors, dict):
            raise ArchspecError(f"--init: {path} does not hold a state_dict")
    own = model.state_dict()
    matched, skipped = {}, []
    for name, tensor in tensors.items():
        if name not in own:
            skipped.append(f"{name} (not in the model)")
        elif tuple(own[name].shape) != tuple(tensor.shape):
            skipped.append(f"{name} (shape {tuple(tensor.shape)}, model {tuple(own[name].shape)})")
        else:
            matched[name] = tensor
    skipped += [f"{name} (not in the file; kept its initial value)" for name in own if name not in tensors]
    model.load_state_dict(matched, strict=False)
    return sorted(matched), skipped
