"""Every analysis command works on every spec in the library (the per-command tests check the
figures against independent sources; this checks none of them breaks on any spec)."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from archspec.cli import app
from conftest import LIBRARY

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, f"archspec {' '.join(args)}\n{result.output}"
    return result.output


@pytest.mark.parametrize("spec", LIBRARY, ids=lambda p: p.stem)
def test_analysis_commands_work_on_every_spec(spec, tmp_path):
    path = str(spec)
    report = json.loads(invoke("report", path, "--receptive-field", "--memory", "--format", "json"))
    assert all("receptive_field" in layer and "memory" in layer for layer in report["layers"])
    assert report["memory"]["training_peak"] > report["memory"]["inference_peak"] > 0
    compared = json.loads(invoke("compare", path, path, "--format", "json"))
    assert json.dumps(compared).count(str(report["params"]["total"])) >= 2
    diffed = json.loads(invoke("diff", path, path, "--format", "json"))  # a spec against itself
    assert diffed["counts"]["added"] == diffed["counts"]["removed"] == diffed["counts"]["changed"] == 0
    assert diffed["counts"]["unchanged"] == len(report["layers"]) + len(report["inputs"])  # inputs are nodes too
    assert diffed["totals"]["params"]["delta"] == 0
    summary = diffed["checkpoint"]["summary"]
    assert summary["loads"] == summary["old_tensors"] and summary["loaded_elements"] == report["params"]["total"] + report["buffers"]
    swept = json.loads(invoke("sweep", path, "--batch", "2", "--format", "json"))
    assert swept["rows"][0]["params"] == report["params"]["total"]
    assert swept["rows"][0]["flops"] == 2 * report["flops"]  # batch 2 against batch 1
    explained = invoke("explain", path, "--lang", "en")
    assert "parameters" in explained or "params" in explained
    out = tmp_path / "rewritten.yaml"
    invoke("rewrite", path, "--fold-bn", "--strip-dropout", "--out", str(out))
    assert out.exists()
