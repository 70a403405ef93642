"""benchmarks/gpu.py on its smallest path, in process, on CPU: the report it writes has a row per
variant, says its figures are not GPU figures, and its memory estimate holds at least the weights,
gradients and momentum that torchvision's own module counts."""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the script loads
    spec.loader.exec_module(module)
    return module


def table_rows(markdown: str, model: str) -> dict[str, list[str]]:
    section = markdown.split(f"## {model} ")[1].split("\n\n")[1]
    rows = [line.strip("|").split(" | ") for line in section.splitlines()[2:]]
    return {cells[0].strip(): [cell.strip() for cell in cells[1:]] for cells in rows}


def test_cpu_tiny_report(tmp_path):
    import torchvision

    out = tmp_path / "gpu.md"
    load_script().main(["--cpu-tiny", "--models", "mobilenet_v2", "--steps", "1", "--warmup", "1",
                        "--no-compile", "--out", str(out)])
    markdown = out.read_text()
    assert "NOT GPU figures" in markdown
    rows = table_rows(markdown, "mobilenet_v2")
    assert list(rows) == ["fp32 eager", "bf16 + channels_last", "bf16 + channels_last + compile"]
    # weights + gradients + SGD momentum, fp32, counted by torchvision: the floor of any training peak
    weights = sum(p.numel() for p in torchvision.models.mobilenet_v2(weights=None).parameters())
    for label in ("fp32 eager", "bf16 + channels_last"):
        ours, theirs, ratio, ours_peak, theirs_peak, estimate, versus, compile_s = rows[label]
        assert float(ours.replace(",", "")) > 0 and float(theirs.replace(",", "")) > 0
        assert re.fullmatch(r"\d+\.\d\d", ratio)
        assert (ours_peak, theirs_peak, versus) == ("n/a", "n/a", "n/a")  # no max_memory_allocated on CPU
        assert float(estimate.replace(",", "")) >= 3 * 4 * weights / 2**20 - 0.5
        assert compile_s == "-"
    assert rows["bf16 + channels_last + compile"][0] == "skipped (--no-compile)"


def test_unknown_model_is_one_line_and_exit_1(capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_script().main(["--models", "resnet5O"])
    assert exit_info.value.code == 1
    message = capsys.readouterr().err.strip()
    assert "\n" not in message and "unknown model 'resnet5O'" in message
