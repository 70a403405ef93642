"""`archspec export`: each format's file, loaded here with the runtime that reads it (onnxruntime,
torch.export.load, torch.jit.load), gives the outputs of the torch module built in the test with
the same weights, at batches other than the export's example; --weights changes the file; bad
input ends with a message and exit 1.

The weights are a state_dict made here (every tensor moved off its initial value, batch-norm
statistics included, so eval mode matters) and passed as `--weights file.pt`."""
from __future__ import annotations

import re

import pytest
import torch
from typer.testing import CliRunner

import archspec
from archspec.cli import app
from conftest import SPECS
from moved_weights import moved_weights

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")

TOLERANCE = {"rtol": 1e-4, "atol": 1e-4}  # the 1e-4, as np.allclose
CHECK_BATCHES = (1, 4)  # the command exports at batch 3 and checks at 2: these are neither

# spec -> (--input, input names, output names as ONNX writes them)
CASES = {
    "lenet5": (None, ["image"], ["output"]),
    "resnet18": ("3x64x64", ["image"], ["output"]),
    "siamese_pair": (None, ["left", "right"], ["left_output", "right_output"]),  # an input is also named left
    "vit_tiny_digits": (None, ["image"], ["output"]),
}


def invoke(*args: str):
    return CliRunner().invoke(app, ["export", *map(str, args)])


class Case:
    """One spec: its torch module with moved weights (eval mode) and those weights as a .pt file."""

    def __init__(self, name: str, folder):
        self.name, (self.input, self.input_names, self.onnx_outputs) = name, CASES[name]
        self.spec = SPECS / f"{name}.yaml"
        self.options = ["--input", self.input] if self.input else []
        shapes = {"": tuple(int(d) for d in self.input.split("x"))} if self.input else None
        compiled = archspec.pipeline.compile(self.spec, {}, shapes)
        self.shapes = {key: tuple(compiled.ir.shapes[value]) for key, value in compiled.ir.inputs.items()}
        self.output_names = list(compiled.ir.outputs)
        self.module = compiled.module().eval()
        self.module.load_state_dict(moved_weights(self.module, seed=1))
        self.weights = folder / f"{name}.pt"
        torch.save(self.module.state_dict(), self.weights)

    def inputs(self, batch: int) -> dict[str, torch.Tensor]:
        return {key: torch.randn(batch, *shape) for key, shape in self.shapes.items()}

    def expected(self, inputs) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            result = self.module(**inputs)
        return result if isinstance(result, dict) else {self.output_names[0]: result}


@pytest.fixture(scope="module")
def case(request, tmp_path_factory) -> Case:
    return Case(request.param, tmp_path_factory.mktemp(request.param))


def run_onnx(path, case: Case, inputs) -> dict[str, torch.Tensor]:
    import onnx
    import onnxruntime

    from archspec.export import ONNX_OPSET

    onnx.checker.check_model(str(path), full_check=True)
    assert [o.version for o in onnx.load(str(path)).opset_import if o.domain in ("", "ai.onnx")] == [ONNX_OPSET]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == case.input_names
    assert {i.shape[0] for i in session.get_inputs()} == {"batch"}  # a symbol: any batch
    assert [o.name for o in session.get_outputs()] == case.onnx_outputs
    results = session.run(None, {key: value.numpy() for key, value in inputs.items()})
    return dict(zip(case.output_names, map(torch.from_numpy, results)))


def run_pt2(path, case: Case, inputs) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        result = torch.export.load(str(path)).module()(**inputs)
    return result if isinstance(result, dict) else {case.output_names[0]: result}


def run_torchscript(path, case: Case, inputs) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        result = torch.jit.load(str(path))(**inputs)
    return result if isinstance(result, dict) else {case.output_names[0]: result}


RUNNERS = {"onnx": run_onnx, "pt2": run_pt2, "torchscript": run_torchscript}


# every spec in ONNX; the cheaper round trips on the specs that differ for them (several inputs and
# outputs; vit_tiny_digits, which TorchScript traces because script refuses a helper's annotation)
EXPORTS = [*((name, "onnx") for name in CASES), ("lenet5", "pt2"), ("siamese_pair", "pt2"),
           ("lenet5", "torchscript"), ("siamese_pair", "torchscript"), ("vit_tiny_digits", "torchscript")]


@pytest.mark.parametrize("case, format_name", EXPORTS, indirect=["case"])
def test_file_gives_the_modules_outputs_at_any_batch(case, format_name, tmp_path):
    out = tmp_path / f"{case.name}.{format_name}"
    result = invoke(case.spec, "--format", format_name, "--out", out, "--weights", case.weights, *case.options)
    assert result.exit_code == 0, result.output
    assert "at batch 2 (traced at 3)" in result.output and ": ok" in result.output
    if format_name == "onnx":  # the opset the command states is the one the file declares (run_onnx)
        from archspec.export import ONNX_OPSET

        assert re.search(rf"opset\s+{ONNX_OPSET}\n", result.output)
    for batch in CHECK_BATCHES:
        inputs = case.inputs(batch)
        got, expected = RUNNERS[format_name](out, case, inputs), case.expected(inputs)
        assert list(got) == list(expected)
        for name in expected:
            assert got[name].shape[0] == batch
            torch.testing.assert_close(got[name], expected[name], **TOLERANCE)


def test_weights_change_the_exported_outputs(tmp_path):
    """A state_dict file, then a run folder as `archspec train` writes it (safetensors and metadata)."""
    from archspec.train.checkpoint import save_checkpoint

    lenet = Case("lenet5", tmp_path)
    other = moved_weights(lenet.module, seed=2)
    run = tmp_path / "run"
    run.mkdir()
    trained = archspec.build_module(lenet.spec)
    trained.load_state_dict(other)
    build = {"spec": str(lenet.spec), "params": {"num_classes": 10}, "inputs": {"image": [3, 32, 32]},
             "task": "classification"}
    save_checkpoint(run, trained, lenet.spec.read_text(), build, None, step=1)
    inputs = lenet.inputs(4)
    outputs = {}
    for label, weights in (("first", lenet.weights), ("second", run)):
        out = tmp_path / f"{label}.pt2"
        assert invoke(lenet.spec, "--format", "pt2", "--out", out, "--weights", weights).exit_code == 0
        outputs[label] = run_pt2(out, lenet, inputs)["output"]
    torch.testing.assert_close(outputs["first"], lenet.expected(inputs)["output"], **TOLERANCE)
    lenet.module.load_state_dict(other)
    torch.testing.assert_close(outputs["second"], lenet.expected(inputs)["output"], **TOLERANCE)
    assert (outputs["first"] - outputs["second"]).abs().max() > 1e-2


def test_a_file_that_disagrees_with_torch_fails_the_command(tmp_path, monkeypatch):
    real_load = torch.jit.load

    class Shifted(torch.nn.Module):  # what a runtime with a wrong kernel would give
        def __init__(self, loaded):
            super().__init__()
            self.loaded = loaded

        def forward(self, **inputs):
            return self.loaded(**inputs) + 1e-2

    monkeypatch.setattr(torch.jit, "load", lambda *args, **kwargs: Shifted(real_load(*args, **kwargs)))
    result = invoke(SPECS / "lenet5.yaml", "--format", "torchscript", "--out", tmp_path / "lenet5.pt")
    assert result.exit_code == 1
    assert "MISMATCH" in result.output and "differ from torch's" in result.output


def test_bad_format_is_refused_before_any_work(tmp_path):
    result = invoke(SPECS / "lenet5.yaml", "--format", "onx", "--out", tmp_path / "x.onnx")
    assert result.exit_code == 1
    assert "--format must be one of onnx, pt2, torchscript, python, not 'onx'" in result.output
    assert "did you mean 'onnx'" in result.output
    assert not (tmp_path / "x.onnx").exists()


def test_spec_and_path_errors_are_located(tmp_path, write_spec):
    bad = write_spec("name: bad\ninputs: {image: [3, 8, 8]}\nlayers:\n  - conv: {out: 4, kernal: 3}\n")
    result = invoke(bad, "--format", "pt2", "--out", tmp_path / "bad.pt2")
    assert result.exit_code == 1 and f"{bad}:4" in result.output and "Traceback" not in result.output
    result = invoke(SPECS / "lenet5.yaml", "--format", "pt2", "--out", tmp_path)
    assert result.exit_code == 1 and "is a folder" in result.output


ROI_SPEC = """
    name: rois_and_bins
    inputs: {features: [4, 13, 11], rois: [3, 5]}
    outputs: {pooled: pooled, bins: bins}
    layers:
      - roi_pool: {name: pooled, from: [features, rois], output: 2, spatial_scale: 0.5}
      - adaptive_maxpool: {name: bins, from: features, size: [4, 3]}
"""


def test_onnx_fills_in_roi_pool_and_adaptive_max_pooling(tmp_path, write_spec):
    # torch 2.14's ONNX translator has neither; uneven bins (13 rows into 4) and boxes reaching
    # past the map test the rounding
    spec = write_spec(ROI_SPEC)
    out = tmp_path / "rois.onnx"
    result = invoke(spec, "--format", "onnx", "--out", out)
    assert result.exit_code == 0, result.output
    assert "roi_pool as ONNX MaxRoiPool" in result.output and "adaptive_max_pool2d as one max per bin" in result.output
    module = archspec.build_module(spec).eval()
    import onnxruntime

    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for batch in (1, 4):
        corners = torch.rand(batch, 3, 4) * 40 - 8  # input pixels at scale 0.5: some boxes leave the map
        index = torch.arange(batch, dtype=torch.float32)[:, None, None].expand(batch, 3, 1)
        inputs = {"features": torch.randn(batch, 4, 13, 11), "rois": torch.cat([index, corners], dim=-1)}
        with torch.no_grad():
            expected = module(**inputs)
        got = session.run(None, {key: value.numpy() for key, value in inputs.items()})
        for name, value in zip(["pooled", "bins"], got):
            torch.testing.assert_close(torch.from_numpy(value), expected[name], **TOLERANCE)


def test_an_exporter_failure_is_one_line_and_a_hint(tmp_path, write_spec, monkeypatch):
    from archspec.export import onnx_gaps

    monkeypatch.setattr(onnx_gaps, "_translations", dict)  # roi_pool as torch's translator alone sees it
    spec = write_spec(ROI_SPEC)
    result = invoke(spec, "--format", "onnx", "--out", tmp_path / "roi.onnx")
    assert result.exit_code == 1
    message = result.output.strip().splitlines()
    assert message[0].startswith("error: torch.onnx.export (dynamo) failed: ") and "roi_pool" in message[0]
    assert message[1].startswith("  hint: ") and len(message) == 2
    assert not (tmp_path / "roi.onnx").exists()


def test_python_format_writes_source_without_archspec(tmp_path):
    out = tmp_path / "lenet5.py"
    result = invoke(SPECS / "lenet5.yaml", "--format", "python", "--out", out)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    compile(text, str(out), "exec")
    assert "import archspec" not in text and "from archspec" not in text


def test_the_library_report_covers_every_spec():
    """reports/export.md (scripts/export_library.py) has a row for each spec in specs/: a new spec
    means running the script again."""
    report = SPECS.parent / "reports" / "export.md"
    rows = {line.split("|")[1].strip() for line in report.read_text().splitlines() if line.startswith("| ")}
    assert {path.stem for path in SPECS.glob("*.yaml")} <= rows
