#!/usr/bin/env python3
"""Write tests/data/torchvision_state_dicts.json: for each torchvision counterpart of a spec,
its state_dict entries (name, shape) in order, plus parameter and buffer totals.

The structural half of the torchvision-equivalence test reads this file, so it runs in CI
without torchvision. Regenerate with torchvision installed:
    python scripts/dump_torchvision_params.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torchvision

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from torchvision_counterparts import COUNTERPARTS  # noqa: E402

OUT = ROOT / "tests" / "data" / "torchvision_state_dicts.json"


def main() -> None:
    data = {"torch": torch.__version__, "torchvision": torchvision.__version__, "models": {}}
    for name, counterpart in COUNTERPARTS.items():
        model = torchvision.models.get_model(counterpart.builder, **counterpart.kwargs)
        data["models"][name] = {
            "builder": counterpart.builder,
            "kwargs": counterpart.kwargs,
            "params": sum(p.numel() for p in model.parameters()),
            "buffers": sum(b.numel() for b in model.buffers()),
            "state_dict": [[key, list(value.shape)] for key, value in model.state_dict().items()],
        }
        print(f"{name:20s} {data['models'][name]['params']:>12,} params")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, indent=0) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
