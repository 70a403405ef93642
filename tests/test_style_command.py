"""`archspec style-transfer` as a real process: G.png and its cost curve, --weights, and bad input
ending in one `error:` line. The expected costs are written out in plain torch from the course's
formulas here, independently of archspec.style."""
import csv

import numpy as np
import pytest
import torch
from matplotlib import image as mpimg
from typer.testing import CliRunner

from archspec.cli import app
from conftest import SPECS, run_cli

TINY = """\
name: tiny_style
inputs: {image: [3, 8, 8]}
layers:
  - seq:
      name: features
      index_names: true
      layers:
        - conv: {out: 4, kernel: 3, padding: 1}
        - relu
        - conv: {out: 4, kernel: 3, padding: 1}
        - relu
"""
TWO_INPUTS = """\
name: two_inputs
inputs: {left: [3, 16, 16], right: [3, 16, 16]}
layers:
  - conv: {name: a, out: 4, kernel: 3, from: left}
  - conv: {name: b, out: 4, kernel: 3, from: right}
"""


@pytest.fixture
def files(tmp_path):
    """The tiny spec (declared 3x8x8: the content image's 16x16 must win), a 16x16 content PNG and
    a 16x16 style PNG of random pixels."""
    rng = np.random.default_rng(0)
    (tmp_path / "tiny.yaml").write_text(TINY)
    mpimg.imsave(tmp_path / "c.png", rng.random((16, 16, 3)))
    mpimg.imsave(tmp_path / "s.png", rng.random((16, 16, 3)))
    return tmp_path


def transfer_args(folder, *extra):
    return ("style-transfer", "--spec", str(folder / "tiny.yaml"), "--content", str(folder / "c.png"),
            "--style", str(folder / "s.png"), "--content-layer", "features.1",
            "--style-layers", "features.1,features.3", "--out", str(folder / "out" / "G.png"), *extra)


def read_curve(folder):
    with open(folder / "out" / "G_costs.csv") as handle:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(handle)]


def test_five_steps_write_g_and_a_falling_cost_curve(files):
    result = run_cli(*transfer_args(files, "--steps", "5", "--alpha", "10", "--beta", "40"))
    assert result.returncode == 0, result.stderr
    assert "random weights" in result.stderr and "5/5" in result.stderr  # the warning, the progress bar
    generated = mpimg.imread(files / "out" / "G.png")
    assert generated.shape[:2] == (16, 16) and generated.shape[2] in (3, 4)
    assert generated.min() >= 0.0 and generated.max() <= 1.0
    rows = read_curve(files)
    assert [row["step"] for row in rows] == [0, 1, 2, 3, 4, 5]  # the start, then after each update
    for row in rows:  # J(G) = alpha J_content + beta J_style, row by row
        assert row["J"] == pytest.approx(10 * row["J_content"] + 40 * row["J_style"], rel=1e-5)
    assert rows[-1]["J"] < rows[0]["J"]
    plot = mpimg.imread(files / "out" / "G_costs.png")
    assert plot.ndim == 3 and plot.shape[0] > 100


def _course_style_cost(state, content, style):
    """J_style over relu1 and relu3 of the two convs with these weights, from the course's formulas."""
    def features(x):
        relu1 = torch.relu(torch.conv2d(x, state["features.0.weight"], state["features.0.bias"], padding=1))
        return relu1, torch.relu(torch.conv2d(relu1, state["features.2.weight"], state["features.2.bias"], padding=1))

    def gram(a):
        return torch.einsum("kij,lij->kl", a[0], a[0])

    total = 0.0
    for s, g in zip(features(style), features(content)):
        _, n_c, n_h, n_w = s.shape
        total += (((gram(s) - gram(g)) ** 2).sum() / (2 * n_h * n_w * n_c) ** 2).item()
    return total


def _as_input(path):
    return torch.tensor(mpimg.imread(path)[:, :, :3], dtype=torch.float32).permute(2, 0, 1)[None]


def test_weights_from_a_saved_state_dict_are_the_ones_used(files):
    from archspec.pipeline import compile

    torch.manual_seed(3)
    module = compile(files / "tiny.yaml", inputs={"": (3, 16, 16)}).module()
    state = {name: tensor.clone() for name, tensor in module.state_dict().items()}
    torch.save(state, files / "w.pth")
    result = run_cli(*transfer_args(files, "--steps", "1", "--init", "content", "--weights", str(files / "w.pth")))
    assert result.returncode == 0, result.stderr
    assert "random weights" not in result.stderr
    start = read_curve(files)[0]
    # G starts as C: J_content is exactly 0 and J_style is the style cost of C with the saved weights
    assert start["J_content"] == 0.0
    with torch.no_grad():
        expected = _course_style_cost(state, _as_input(files / "c.png"), _as_input(files / "s.png"))
    assert start["J_style"] == pytest.approx(expected, rel=1e-5)


def _one_error_line(result, *words):
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0]


def test_a_state_dict_of_another_network_names_the_keys(files):
    torch.save({"features.0.weight": torch.zeros(4, 3, 3, 3), "classifier.weight": torch.zeros(2, 4)}, files / "w.pth")
    result = run_cli(*transfer_args(files, "--steps", "1", "--weights", str(files / "w.pth")))
    # neither by name nor by order: the names that differ and the first tensor out of line
    _one_error_line(result, "classifier.weight", "features.2.weight", "tensor 2, features.0.bias (4,)",
                    "torchvision")


def _bad_spec(folder):
    (folder / "two.yaml").write_text(TWO_INPUTS)
    args = list(transfer_args(folder, "--steps", "1"))
    args[args.index("--spec") + 1] = str(folder / "two.yaml")
    return args, ("one image input", "left, right")


def _replaced(folder, option, value, words):
    args = list(transfer_args(folder, "--steps", "1"))
    args[args.index(option) + 1] = value(folder)
    return args, words


BAD_INPUTS = {
    "missing content": lambda f: _replaced(f, "--content", lambda f: str(f / "nothing.png"), ("--content", "no such file")),
    "missing spec": lambda f: _replaced(f, "--spec", lambda f: str(f / "nothing.yaml"), ("--spec", "no such file")),
    "missing weights": lambda f: (list(transfer_args(f, "--weights", str(f / "none.pth"))), ("--weights", "no such file")),
    "unknown node": lambda f: _replaced(f, "--style-layers", lambda f: "features.1,features.9", ("features.9",)),
    "several inputs": _bad_spec,
    "not an image": lambda f: _replaced(f, "--style", lambda f: _text_file(f), ("--style", "cannot read it as an image")),
    "not a png out": lambda f: _replaced(f, "--out", lambda f: str(f / "G.jpg"), ("--out", "PNG")),
}


def _text_file(folder):
    (folder / "notes.png").write_text("not a picture\n")
    return str(folder / "notes.png")


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_error_line(files, case):
    args, words = BAD_INPUTS[case](files)
    _one_error_line(run_cli(*args), *words)
    assert not (files / "out" / "G.png").exists()


# --- torchvision's VGG-19 checkpoint (archspec.lower.foreign_weights) ----------------------------------
@pytest.fixture(scope="module")
def vgg19_checkpoint(tmp_path_factory):
    """torchvision's vgg19 (random init: the mapping, not the pictures, is under test) and its
    state_dict saved as the README says: torch.save(torchvision.models.vgg19().state_dict(), W)."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(7)
    reference = torchvision.models.vgg19().eval()
    path = tmp_path_factory.mktemp("vgg19") / "vgg19.pth"
    torch.save(reference.state_dict(), path)
    return path, reference


def _vgg19_features_spec(folder):
    """VGG-19's 16 convs and 5 pools under the names of the style-transfer papers (conv1_1 ...), not
    torchvision's features.N: its tensors line up with torchvision's only by order and shape."""
    lines = ["name: vgg19_features", "inputs: {image: [3, 32, 32]}", "layers:"]
    for stage, (convs, width) in enumerate(zip([2, 2, 4, 4, 4], [64, 128, 256, 512, 512]), start=1):
        for k in range(1, convs + 1):
            lines += [f"  - conv: {{name: conv{stage}_{k}, out: {width}, kernel: 3, padding: 1}}",
                      f"  - relu: {{name: relu{stage}_{k}}}"]
        lines.append(f"  - maxpool: {{name: pool{stage}, kernel: 2, stride: 2}}")
    (folder / "vgg19_features.yaml").write_text("\n".join(lines) + "\n")
    return folder / "vgg19_features.yaml"


def test_torchvision_vgg19_loads_into_specs_vgg19(vgg19_checkpoint, capsys):
    from archspec.commands.style import _module
    from archspec.style.transfer import tap
    path, reference = vgg19_checkpoint
    module = _module(SPECS / "vgg19.yaml", None, (32, 32), path).eval()
    assert "loaded 38 tensors by name" in capsys.readouterr().err  # the spec keeps torchvision's names
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        features = tap(module, ["features.36"])(x)["features.36"]
        torch.testing.assert_close(features, reference.features(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(module(x), reference(x), rtol=1e-5, atol=1e-5)


def test_torchvision_vgg19_maps_by_order_onto_other_names(vgg19_checkpoint, tmp_path, capsys):
    from archspec.commands.style import _module

    path, reference = vgg19_checkpoint
    module = _module(_vgg19_features_spec(tmp_path), None, (32, 32), path).eval()
    said = capsys.readouterr().err
    assert "loaded 32 tensors by order and shape (conv1_1.weight <- features.0.weight" in said
    assert "6 checkpoint tensors unused: classifier.0.weight" in said  # the classifier it has no place for
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(module(x), reference.features(x), rtol=1e-5, atol=1e-5)


def _vgg19_args(files, weights):
    """The command on specs/vgg19.yaml with 32x32 images (VGG's five 2x2 poolings need 32 at least)."""
    rng = np.random.default_rng(1)
    mpimg.imsave(files / "c.png", rng.random((32, 32, 3)))
    mpimg.imsave(files / "s.png", rng.random((32, 32, 3)))
    args = list(transfer_args(files, "--steps", "1", "--weights", str(weights)))
    args[args.index("--spec") + 1] = str(SPECS / "vgg19.yaml")
    return args


def test_style_transfer_runs_on_torchvisions_vgg19(vgg19_checkpoint, files):
    args = _vgg19_args(files, vgg19_checkpoint[0])
    args[args.index("--content-layer") + 1] = "features.22"  # conv4_2's ReLU
    args[args.index("--style-layers") + 1] = "features.1,features.6,features.11,features.20,features.29"
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "by name" in result.stderr and (files / "out" / "G.png").is_file()


def test_a_checkpoint_of_another_architecture_is_refused(files):
    torchvision = pytest.importorskip("torchvision")
    torch.save(torchvision.models.resnet18().state_dict(), files / "resnet18.pth")
    result = CliRunner().invoke(app, _vgg19_args(files, files / "resnet18.pth"))
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # an error, not a crash
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output
    error = errors[0]
    assert error.startswith("error: --weights") and "missing features.0.weight" in error
    assert "tensor 1, features.0.weight (64, 3, 3, 3), meets the checkpoint's conv1.weight (64, 3, 7, 7)" in error
    assert not (files / "out" / "G.png").exists()


def _tensors(*shapes, dtype=torch.float32):
    return {f"t{index}": torch.zeros(shape, dtype=dtype) for index, shape in enumerate(shapes)}


def test_too_few_tensors_or_another_dtype_are_refused():
    from archspec.errors import ArchspecError
    from archspec.lower.foreign_weights import match_weights

    own = {"a.weight": torch.zeros(4, 3), "a.bias": torch.zeros(4), "b.num_batches_tracked": torch.zeros((), dtype=torch.long)}
    with pytest.raises(ArchspecError, match="too few tensors: 2 for the module's 3"):
        match_weights(own, _tensors((4, 3), (4,)))
    # a float where the module counts in integers lines up by shape but not by kind
    with pytest.raises(ArchspecError, match=r"tensor 3, b.num_batches_tracked \(\) int64, meets the checkpoint's t2 \(\)"):
        match_weights(own, _tensors((4, 3), (4,), ()))
    matched = match_weights(own, {**_tensors((4, 3), (4,)), "t2": torch.tensor(5)})
    assert matched.mapping == "by order and shape" and matched.state["b.num_batches_tracked"].item() == 5
