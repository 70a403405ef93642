"""Issue 12, the output side: crafted checkpoint metadata (4), dtypes (5), atomic artifact sets (9),
user errors that were internal errors (10), and `--memory-limit nan` (8). Each bad input ends with
exit 1 and one clean `error:` naming the file or option, quickly, before any big allocation."""
from __future__ import annotations

import errno
import json
import os
import resource
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from safetensors.torch import save  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import archspec  # noqa: E402
from archspec.cli import app  # noqa: E402
from archspec.errors import ArchspecError  # noqa: E402
from archspec import files  # noqa: E402
from archspec.train import checkpoint as ckpt  # noqa: E402
from archspec.train import data as data_module  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LENET = str(ROOT / "specs" / "lenet5.yaml")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
GOOD_BUILD = {"spec": LENET, "params": {"num_classes": 10}, "inputs": {"image": [3, 32, 32]}, "task": "classification"}


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def refused(result, *parts: str) -> str:
    """Exit 1 with one clean error holding every part: no internal error, no traceback."""
    text = result.stderr
    assert result.exit_code == 1, result.output
    assert "internal error" not in text and "Traceback" not in text, text
    assert text.startswith("error: ") and text.count("error: ") == 1, text
    for part in parts:
        assert part in text, (part, text)
    return text


@pytest.fixture(scope="module")
def lenet_state() -> dict:
    torch.manual_seed(0)
    model = archspec.build_module(LENET)
    return {k: v.detach().contiguous() for k, v in model.state_dict().items()}


def checkpoint(path: Path, tensors: dict, build) -> Path:
    """A safetensors file as `train` writes it, with `build` as the metadata entry (str: verbatim)."""
    metadata = {"format": "archspec-checkpoint-1"}
    if build is not None:
        metadata["build"] = build if isinstance(build, str) else json.dumps(build)
    path.write_bytes(save(tensors, metadata=metadata))
    return path


@pytest.fixture
def no_data_loaded(monkeypatch):
    """Loading any data set fails the test: the refusals must come before it."""
    def loaded(*args, **kwargs):
        raise AssertionError("a data set was loaded")

    for name in ("digits", "shapes", "fake", "npz", "image_folder"):
        monkeypatch.setattr(data_module, name, loaded)


def quick(call):
    """Run call(): (result, seconds, growth of this process's peak memory in bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    began = time.perf_counter()
    result = call()
    return result, time.perf_counter() - began, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak


# --- finding 4: the checkpoint's build metadata is checked like a spec -------------------------------------
@pytest.mark.parametrize("build, message", [
    ("not json", "metadata 'build' is not JSON"),
    ([1, 2], "metadata 'build' must be a JSON object, not a list"),
    ({**GOOD_BUILD, "inputs": {"image": 5}}, "inputs.image must be a list of 1 to 8 sizes from 1 to 1,000,000"),
    ({**GOOD_BUILD, "inputs": {"image": [3, 0, 32]}}, "inputs.image must be a list"),
    ({**GOOD_BUILD, "inputs": {"image": [3, 2_000_000, 32]}}, "inputs.image must be a list"),
    ({**GOOD_BUILD, "inputs": {"image": [3, True, 32]}}, "inputs.image must be a list"),
    ({**GOOD_BUILD, "inputs": [3, 32, 32]}, "'inputs' must be a mapping of input names to shapes, not a list"),
    ({**GOOD_BUILD, "params": [10]}, "'params' must be a mapping of parameter names to values, not a list"),
    ({**GOOD_BUILD, "params": {"num_classes": 10**30}}, "params.num_classes: 1000000000000000000000000000000"),
    ('{"params": {"num_classes": NaN}}', "params.num_classes: nan is not a finite number"),
    ({**GOOD_BUILD, "evil": 1}, "unknown keys 'evil' (known: spec, params, inputs, task, class_names)"),
    ({**GOOD_BUILD, "task": 3}, "'task' must be a string, not a number"),
    ({**GOOD_BUILD, "class_names": [1, 2]}, "'class_names' must be a list of at most 100,000 names"),
    ({**GOOD_BUILD, "class_names": ["x" * 201]}, "of at most 200 characters"),
    ({**GOOD_BUILD, "params": {"x": "a" * 20_000}}, "params.x: a string of 20,000 characters (the limit is 10,000)"),
    ({**GOOD_BUILD, "inputs": {"i\n" * 5000: 1}}, "inputs.i i i i"),
    ("[" * 100_000 + "]" * 100_000, "metadata 'build' is not JSON"),
    ('{"params": {"x": ' + "[" * 40 + "]" * 40 + "}}", "params.x" + "[0]" * 16),
])
def test_malformed_build_metadata_is_a_clean_error(tmp_path, lenet_state, no_data_loaded, build, message):
    path = checkpoint(tmp_path / "crafted.safetensors", lenet_state, build)
    result, seconds, _ = quick(lambda: invoke("evaluate", LENET, "--weights", str(path), "--data", "digits"))
    refused(result, f"checkpoint {path}: metadata 'build'", message)
    assert seconds < 10


def test_metadata_values_are_named_as_the_checkpoints(tmp_path, lenet_state, no_data_loaded):
    path = checkpoint(tmp_path / "w.safetensors", lenet_state, {**GOOD_BUILD, "inputs": {"nope": [3, 32, 32]}})
    out = refused(invoke("evaluate", LENET, "--weights", str(path)), "'nope', which is not an input of the spec")
    assert f"note: params.num_classes, inputs.nope came from the metadata of checkpoint {path}" in out


TINY = """name: tiny
task: classification
params: {num_classes: 10}
inputs: {image: [3, 32, 32]}
layers:
  - conv: {out: 4, kernel: 3}
  - relu
  - global_avgpool
  - linear: {out: num_classes}
"""


@pytest.mark.parametrize("spec, args", [
    ("lenet5", ("evaluate", "--data", "digits")),  # the metadata says 3x1000x1000: 1,797 digits at that size
    ("lenet5", ("train", "--data", "digits", "--input", "3x1000x1000")),
    ("tiny", ("evaluate", "--data", "fake", "--input", "3x20000x20000")),
    ("tiny", ("train", "--data", "fake", "--input", "3x20000x20000")),
    ("tiny", ("train", "--data", "shapes", "--input", "3x20000x20000")),
])
def test_over_the_memory_limit_is_refused_before_any_data(tmp_path, no_data_loaded, spec, args):
    if spec == "tiny":
        (tmp_path / "tiny.yaml").write_text(TINY)
    path = str(tmp_path / "tiny.yaml") if spec == "tiny" else LENET
    state = {k: v.detach().contiguous() for k, v in archspec.build_module(path).state_dict().items()}
    weights = checkpoint(tmp_path / "big.safetensors", state, {**GOOD_BUILD, "inputs": {"image": [3, 1000, 1000]}})
    command, rest = args[0], list(args[1:])
    extra = ["--weights", str(weights)] if command == "evaluate" else ["--out", str(tmp_path / "run"), "--no-progress"]
    result, seconds, grown = quick(lambda: invoke(command, path, *extra, *rest))
    refused(result, "would need about", "GiB), over the 8 GiB limit", f"the data set {rest[1]} at 3x",
            "hint: use a smaller --input or batch, raise --memory-limit, or pass --force")
    assert seconds < 10 and grown < 200 * 2**20, (seconds, grown)
    assert not (tmp_path / "run").exists()


def test_a_raised_memory_limit_lets_the_check_pass(tmp_path, lenet_state, monkeypatch):
    """--memory-limit moves the refusal; the next refusal is the weights' (they are 32x32 ones)."""
    weights = checkpoint(tmp_path / "w.safetensors", lenet_state, {**GOOD_BUILD, "inputs": {"image": [3, 64, 64]}})
    monkeypatch.setattr(data_module, "digits", lambda *a: pytest.fail("data loaded before the weights were checked"))
    tight = invoke("evaluate", LENET, "--weights", str(weights), "--memory-limit", "0.001")
    refused(tight, "over the 0.001 GiB limit")
    loose = invoke("evaluate", LENET, "--weights", str(weights))
    refused(loose, "does not fit this spec", "fc3.weight (checkpoint (120, 400), model (120, 2704))")
    forced = invoke("evaluate", LENET, "--weights", str(weights), "--memory-limit", "0.001", "--force")
    refused(forced, "does not fit this spec")


def test_no_force_loads_a_data_set_larger_than_the_machine(monkeypatch):
    """load_data itself refuses, before allocating, what cannot fit in this machine's memory."""
    monkeypatch.setattr(data_module, "physical_memory", lambda: 2**30)
    monkeypatch.setattr(data_module, "digits", lambda *a: pytest.fail("the digits were loaded"))
    with pytest.raises(ArchspecError, match=r"--data digits at 3x1000x1000 \(1,797 samples\) would take about "
                                            r"40\.17 GiB, more than this machine's 1\.00 GiB of memory"):
        data_module.load_data("digits", (3, 1000, 1000))


def test_weights_of_another_spec_are_refused_before_the_data(tmp_path, lenet_state, no_data_loaded):
    other = dict(lenet_state, **{"fc3.weight": torch.zeros(100, 400)})
    path = checkpoint(tmp_path / "other.safetensors", other, GOOD_BUILD)
    refused(invoke("evaluate", LENET, "--weights", str(path)),
            "does not fit this spec", "fc3.weight (checkpoint (100, 400), model (120, 400))")


def test_good_metadata_still_evaluates(tmp_path, lenet_state):
    path = checkpoint(tmp_path / "good.safetensors", lenet_state, GOOD_BUILD)
    result = invoke("evaluate", LENET, "--weights", str(path), "--data", "digits")
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "confusion matrix" in result.output


def test_memory_limit_nan_inf_and_negative_are_refused(tmp_path):
    """Finding 8: nan compares false with everything, so it skipped the check."""
    for value in ("nan", "inf", "-1", "0"):
        for command in (["build", LENET, "--out", str(tmp_path / "b")], ["bench", LENET],
                        ["evaluate", LENET, "--weights", str(tmp_path)], ["train", LENET]):
            result = invoke(*command, "--memory-limit", value)
            refused(result, "--memory-limit must be a positive number of GiB")
    assert not (tmp_path / "b").exists()


# --- finding 5: dtypes -----------------------------------------------------------------------------------
def relabelled(source: Path, target: Path, old: bytes, new: bytes) -> Path:
    """The same bytes with the header's dtype names replaced (F32 -> I32: same size, garbage values)."""
    raw = source.read_bytes()
    length = struct.unpack("<Q", raw[:8])[0]
    header = raw[8:8 + length].replace(old, new)
    target.write_bytes(struct.pack("<Q", len(header)) + header + raw[8 + length:])
    return target


def test_relabelled_dtypes_are_refused(tmp_path, lenet_state, no_data_loaded):
    good = checkpoint(tmp_path / "good.safetensors", lenet_state, GOOD_BUILD)
    bad = relabelled(good, tmp_path / "i32.safetensors", b'"F32"', b'"I32"')
    out = refused(invoke("evaluate", LENET, "--weights", str(bad), "--data", "digits"),
                  "10 dtype-mismatched tensors: conv1.weight (checkpoint int32, model float32)",
                  "... (10 in all)", "archspec never casts across kinds")
    assert out.count("(checkpoint int32, model float32)") == 8  # the first 8, then the count
    model = archspec.build_module(LENET)
    with pytest.raises(ArchspecError, match="dtype-mismatched"):
        ckpt.load_weights(model, bad)


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.complex64])
def test_init_with_another_kind_of_dtype_is_refused(tmp_path, lenet_state, dtype, no_data_loaded):
    path = tmp_path / "init.pth"
    torch.save({**lenet_state, "conv1.weight": lenet_state["conv1.weight"].to(dtype)}, path)
    name = str(dtype).removeprefix("torch.")
    with pytest.raises(ArchspecError, match=rf"1 tensor of another kind of dtype .*conv1.weight \(checkpoint {name}"):
        ckpt.init_weights(archspec.build_module(LENET), path)
    result = invoke("train", LENET, "--init", str(path), "--max-steps", "1", "--out", str(tmp_path / "run"),
                    "--no-progress")
    refused(result, f"--init {path}: 1 tensor of another kind of dtype", f"conv1.weight (checkpoint {name}, model float32)")
    assert not (tmp_path / "run").exists()


def test_init_across_float_precisions_still_loads(tmp_path, lenet_state):
    """float16 weights into a float32 model: a real use (half-precision checkpoints), not a kind change."""
    path = tmp_path / "half.pth"
    torch.save({k: v.half() for k, v in lenet_state.items()}, path)
    model = archspec.build_module(LENET)
    loaded, skipped = ckpt.init_weights(model, path)
    assert len(loaded) == len(lenet_state) and not skipped
    assert model.state_dict()["conv1.weight"].dtype == torch.float32
    assert torch.equal(model.state_dict()["conv1.weight"], lenet_state["conv1.weight"].half().float())


@pytest.mark.parametrize("entry, message", [
    (lambda t: torch.empty(t.shape, device="meta"), "conv1.bias (a meta tensor: a shape without values)"),
    (lambda t: t.to_sparse(), "conv1.bias (a sparse tensor, layout sparse_coo)"),
    (lambda t: 3, "'conv1.bias' (a value of type int) is not a tensor"),
    (lambda t: "weights", "'conv1.bias' (a value of type str) is not a tensor"),
])
def test_non_tensors_meta_and_sparse_tensors_are_refused(tmp_path, lenet_state, no_data_loaded, entry, message):
    path = tmp_path / "odd.pth"
    torch.save({**lenet_state, "conv1.bias": entry(lenet_state["conv1.bias"])}, path)
    refused(invoke("evaluate", LENET, "--weights", str(path)), str(path), message)
    refused(invoke("train", LENET, "--init", str(path), "--out", str(tmp_path / "run"), "--no-progress"), message)
    assert not (tmp_path / "run").exists()


# --- finding 9: a build's artifact set is atomic -----------------------------------------------------------
def build_set(folder: Path) -> dict[str, int]:
    """num_classes as each artifact of a build says it (the fc5 output size)."""
    import re

    seen = {"summary.json": json.loads((folder / "summary.json").read_text())["outputs"]["output"][0]}
    seen["module.py"] = int(re.search(r"\(fc5\): Linear\(in_features=84, out_features=(\d+)", (folder / "module.py").read_text())[1])
    seen["summary.md"] = int(re.search(r"\| `fc5` \| linear \| (\d+) \|", (folder / "summary.md").read_text())[1])
    for name in ("diagram.dot", "diagram.svg"):
        if (folder / name).exists():
            seen[name] = int(re.search(r"fc5: linear, output (\d+)", (folder / name).read_text())[1])
    return seen


def test_concurrent_builds_leave_one_builds_set(tmp_path):
    """Unlocked, 3 rounds in 8 of two builds ended with a mixed set; the lock itself is tested below."""
    out = tmp_path / "out"
    runs = [subprocess.Popen([sys.executable, "-m", "archspec", "build", LENET, "--out", str(out), "--set",
                              f"num_classes={classes}"], env=ENV, cwd=tmp_path, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True) for classes in (10, 1000, 37)]
    for run in runs:
        assert run.wait(timeout=300) == 0, run.stderr.read()
    seen = build_set(out)
    assert len(set(seen.values())) == 1 and len(seen) >= 4, seen
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


def test_the_folder_lock_makes_a_second_writer_wait(tmp_path):
    entered = threading.Event()

    def second() -> None:
        with files.locked_folder(tmp_path):
            entered.set()

    with files.locked_folder(tmp_path):
        other = threading.Thread(target=second)
        other.start()
        assert not entered.wait(0.5), "a second writer entered a locked folder"
    other.join(5)
    assert entered.is_set()


def test_stale_temporaries_are_cleaned_by_the_next_build(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    stale = [out / ".summary.json.k3x_9abc.tmp", out / ".diagram.svg.abcdefgh.tmp"]
    kept = [out / ".notes.tmp", out / "summary.json.abcdefgh.tmp", out / ".mine.abcdefgh.tmp.bak"]
    for path in stale + kept:
        path.write_text("left by a SIGKILL")
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    result = invoke("build", LENET, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in kept)  # not write_atomic's pattern: not ours


def test_a_live_writers_temporary_is_kept(tmp_path):
    import fcntl

    live = tmp_path / ".report.html.abcdefgh.tmp"
    live.write_text("being written")
    os.utime(live, (time.time() - 3600, time.time() - 3600))
    with open(live, "rb") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # what write_atomic holds while it writes
        assert files.remove_stale_temporaries(tmp_path) == [] and live.exists()
    young = tmp_path / ".report.md.abcdefgh.tmp"
    young.write_text("just made")
    assert files.remove_stale_temporaries(tmp_path) == [live] and young.exists()


def test_a_build_without_dot_leaves_no_older_diagram(tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert invoke("build", LENET, "--out", str(out), "--set", "num_classes=7").exit_code == 0
    from archspec.render import diagram

    def no_dot(*args, **kwargs):
        raise ArchspecError("graphviz's dot is not installed")

    monkeypatch.setattr(diagram, "render", no_dot)
    result = invoke("build", LENET, "--out", str(out), "--set", "num_classes=9")
    assert result.exit_code == 0, result.output
    assert not (out / "diagram.svg").exists()
    assert set(build_set(out).values()) == {9}


# --- finding 10: user errors, not internal errors ----------------------------------------------------------
@pytest.fixture
def no_analysis(monkeypatch):
    """The output folder is checked before any work."""
    import archspec.cli as cli

    monkeypatch.setattr(cli, "compile_options", lambda *a, **k: pytest.fail("the spec was analysed first"))


def test_out_naming_a_file_is_refused_first(tmp_path, no_analysis):
    target = tmp_path / "file.txt"
    target.write_text("mine")
    refused(invoke("build", LENET, "--out", str(target)), f"--out {target}: exists and is not a folder")
    refused(invoke("build", LENET, "--out", str(target / "sub")),
            f"--out {target / 'sub'}: cannot be created: {target} is not a folder")
    assert target.read_text() == "mine"


def test_train_and_report_check_their_out_first(tmp_path, no_data_loaded):
    target = tmp_path / "file.txt"
    target.write_text("mine")
    refused(invoke("train", LENET, "--out", str(target), "--no-progress"), f"--out {target}: exists and is not a folder")
    refused(invoke("report", LENET, "--format", "html", "--out", str(target)), f"--out {target}: exists and is not a folder")
    refused(invoke("train", LENET, "--out", "/proc/run", "--no-progress"), "--out /proc/run: refusing to write")
    assert target.read_text() == "mine"


@pytest.mark.parametrize("folder, system", [("/proc/archspec-out", "/proc"), ("/sys/kernel/x", "/sys"),
                                            ("/dev/shm/../x", "/dev"), ("/dev/archspec", "/dev")])
def test_out_under_a_system_folder_is_refused(folder, system, no_analysis):
    refused(invoke("build", LENET, "--out", folder), f"--out {folder}: refusing to write artifacts under {system}")


def test_bench_batch_is_bounded_and_estimated(monkeypatch):
    from archspec.train import bench

    monkeypatch.setattr(bench, "_bench_rows", lambda *a, **k: pytest.fail("bench allocated its inputs"))
    refused(invoke("bench", LENET, "--batch", "1000000000000"),
            "--batch 1,000,000,000,000: bench takes batches of at most 1,000,000")
    result, seconds, grown = quick(lambda: invoke("bench", LENET, "--batch", "1000000"))
    refused(result, "benchmarking lenet5 at batch 1,000,000 would need about", "over the 8 GiB limit", "hint: ")
    assert seconds < 10 and grown < 200 * 2**20


def full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_is_a_clean_error_and_the_old_file_survives(tmp_path, monkeypatch):
    target = tmp_path / "summary.json"
    target.write_text("old")
    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(ArchspecError, match=f"no space left on device writing {target}"):
        files.write_atomic(target, "new" * 1000)
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


def test_build_on_a_full_disk_is_a_clean_error(tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert invoke("build", LENET, "--out", str(out)).exit_code == 0
    before = (out / "summary.json").read_text()
    monkeypatch.setattr(os, "fsync", full_disk)
    refused(invoke("build", LENET, "--out", str(out), "--set", "num_classes=5"),
            f"no space left on device writing {out / 'summary.json'}")
    assert (out / "summary.json").read_text() == before
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("code, message", [(errno.EACCES, "permission denied writing"),
                                           (errno.EROFS, "read-only file system writing"),
                                           (errno.EIO, "cannot write")])
def test_any_oserror_while_writing_names_the_path(tmp_path, monkeypatch, code, message):
    target = tmp_path / "module.py"

    def failing(*args):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(ArchspecError, match=f"{message} .*{target.name}"):
        files.write_atomic(target, "x")
    assert list(tmp_path.iterdir()) == []


def test_a_file_where_the_folder_should_be_is_a_clean_error(tmp_path):
    (tmp_path / "runs").write_text("a file")
    with pytest.raises(ArchspecError, match=f"cannot create folder {tmp_path / 'runs' / 'x'}: a file stands in the way"):
        files.write_atomic(tmp_path / "runs" / "x" / "config.json", "{}")


def with_lines(path: Path, **lines: str) -> str:
    """The spec text with each `key:` line replaced by `key: VALUE`."""
    return "".join(f"{key}: {lines[key]}\n" if (key := line.partition(":")[0]) in lines else line
                   for line in path.read_text().splitlines(keepends=True))


def test_markdown_escapes_user_text(tmp_path):
    spec = tmp_path / "evil.yaml"
    spec.write_text(with_lines(Path(LENET), summary='"<script>alert(1)</script> | [x](javascript:y)"',
                               paper="<img src=x onerror=alert(1)> `code` LeCun"))
    result = invoke("report", str(spec), LENET, "--format", "markdown")
    assert result.exit_code == 0, result.output
    assert "<img" not in result.stdout and "| &lt;img src=x onerror=alert(1)&gt; \\`code\\` LeCun |" in result.stdout
    assert "| lenet5 |" in result.stdout  # plain names stay as they were


def test_report_md_escapes_the_summary(tmp_path):
    spec = tmp_path / "evil.yaml"
    spec.write_text(with_lines(Path(LENET), summary='"<script>alert(1)</script> LeNet-5"'))
    result = invoke("report", str(spec), "--format", "markdown", "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    text = (tmp_path / "r" / "report.md").read_text()
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt; LeNet-5" in text
