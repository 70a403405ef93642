"""`archspec train --nnodes K --node-rank R --rdzv-endpoint HOST:PORT`: two "machines" on localhost
meet at torchrun's c10d rendezvous and train as one process does; bad launch flags fail before
anything starts."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from typer.testing import CliRunner  # noqa: E402

from archspec.cli import app  # noqa: E402
from archspec.commands.train import Launch, without_launch_flags  # noqa: E402
from archspec.train import checkpoint as ckpt  # noqa: E402
from archspec.train.config import TrainConfig  # noqa: E402
from archspec.train.loop import train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LENET = str(ROOT / "specs" / "lenet5.yaml")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
STEPS = 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / ckpt.WEIGHTS))


def metrics(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def two_nodes(folders: list[Path], args: list[str]) -> None:
    """Both nodes' `archspec train`, started together; on failure or timeout every process of both
    (launcher, torchrun agent, worker: one session each) is killed."""
    port = free_port()
    nodes = [subprocess.Popen([sys.executable, "-m", "archspec", "train", LENET, *args, "--nnodes", "2", "--node-rank",
                               str(rank), "--rdzv-endpoint", f"127.0.0.1:{port}", "--out", str(folder)],
                              env=ENV, cwd=folder.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
             for rank, folder in enumerate(folders)]
    try:
        outputs = [node.communicate(timeout=180)[0] for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGKILL)
                node.wait()
    for node, output in zip(nodes, outputs):
        assert node.returncode == 0, output


def test_two_nodes_on_localhost_follow_one_process(tmp_path):
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available in this torch build")
    single = tmp_path / "single"
    train(TrainConfig(spec=LENET, data="digits", batch_size=32, optimizer="sgd", lr=0.05, max_steps=STEPS,
                      augment="crop,flip,colour", seed=1, threads=1, out=str(single)), progress=False, echo=lambda line: None)
    folders = [tmp_path / "node0", tmp_path / "node1"]
    two_nodes(folders, ["--data", "digits", "--batch-size", "32", "--optimizer", "sgd", "--lr", "0.05", "--max-steps",
                        str(STEPS), "--augment", "crop,flip,colour", "--seed", "1", "--no-progress", "--threads", "1"])
    # c10d assigns the node ranks itself (by host and pid, not --node-rank): exactly one node holds
    # global rank 0, and only it writes a run folder
    written = [folder for folder in folders if folder.exists()]
    assert len(written) == 1, written
    double = written[0]
    assert ckpt.read_state(double)["step"] == STEPS
    # The same tolerance as the --nproc 2 test (tests/test_train.py): each step the two ranks'
    # gradients are averaged by an all-reduce instead of summed in one mean, which differs in the
    # last bits (measured ~3e-7 relative over 44 steps), far below rtol 1e-4.
    one, two = weights(single), weights(double)
    assert one.keys() == two.keys()
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-5)
    # Test metrics are computed by global rank 0 on the whole test set from those weights: the loss
    # within the same 1e-4; accuracy could only move if a logit margin were below that noise, so
    # allow one test image of the 359 to flip. The training figures are summed over both ranks'
    # halves of every batch (Running.over_ranks): the single process's loss, and the same count of
    # correct training images within the same one-image noise per step.
    [row_one], [row_two] = metrics(single), metrics(double)
    assert row_two["step"] == row_one["step"] == STEPS
    assert row_two["train_loss"] == pytest.approx(row_one["train_loss"], rel=1e-4)
    assert row_two["train_accuracy"] == pytest.approx(row_one["train_accuracy"], abs=STEPS / (STEPS * 32) + 1e-9)  # one image of each step's 32
    assert row_two["test_loss"] == pytest.approx(row_one["test_loss"], rel=1e-4)
    assert row_two["test_accuracy"] == pytest.approx(row_one["test_accuracy"], abs=1 / 359 + 1e-9)


@pytest.mark.parametrize("flags, message", [
    (["--node-rank", "1"], "--node-rank is for a run on several machines: give --nnodes K > 1"),
    (["--rdzv_id", "job"], "--rdzv-id is for a run on several machines"),
    (["--nnodes", "2"], "--nnodes 2 needs --rdzv-endpoint HOST:PORT"),
    (["--nnodes", "2", "--rdzv-endpoint", "10.0.0.1"], "--rdzv-endpoint '10.0.0.1' is not HOST:PORT"),
    (["--nnodes", "2", "--rdzv_endpoint", ":29400"], "--rdzv-endpoint ':29400' is not HOST:PORT"),
    (["--nnodes", "2", "--rdzv-endpoint", "host:65536"], "--rdzv-endpoint 'host:65536' is not HOST:PORT"),
    (["--nnodes", "2", "--rdzv-endpoint", "host:29400", "--node_rank", "2"], "--node-rank 2 with --nnodes 2: node ranks run from 0 to 1"),
    (["--nnodes", "2", "--nproc", "2", "--rdzv-endpoint", "host:29400", "--batch-size", "6"],
     "--batch-size 6 must be a multiple of the 4 processes (--nnodes 2 x --nproc 2)"),
])
def test_bad_launch_flags_fail_before_anything_starts(tmp_path, flags, message):
    out = CliRunner().invoke(app, ["train", LENET, "--epochs", "1", "--out", str(tmp_path / "run"), *flags])
    assert out.exit_code == 1, out.output
    assert message in out.output and "Traceback" not in out.output, out.output
    assert not (tmp_path / "run").exists()


def test_launch_flags_go_to_torchrun_and_not_to_the_ranks():
    argv = ["train", "a.yaml", "--nproc", "2", "--nnodes=2", "--node_rank", "1", "--rdzv-endpoint", "h:29400",
            "--rdzv_id=job", "--out", "r"]
    assert without_launch_flags(argv) == ["train", "a.yaml", "--out", "r"]
    launch = Launch(nproc=2, nnodes=2, node_rank=1, rdzv_endpoint="h:29400", rdzv_id="job").checked(batch_size=64)
    assert launch.torchrun_flags() == ["--nnodes=2", "--nproc-per-node=2", "--rdzv-backend=c10d", "--rdzv-endpoint=h:29400",
                                       "--node-rank=1", "--rdzv-id=job"]
    assert Launch(nproc=3).torchrun_flags() == ["--standalone", "--nproc-per-node=3"]
