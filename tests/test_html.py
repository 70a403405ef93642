"""File reports: `report --format html` (one self-contained page: inline CSS and SVG, no script,
no network), `--format markdown --out` (report.md + SVGs), the library overview, that the plain
report formats stay torch- and matplotlib-free, and the page in headless Chromium (no console
errors; diagram and charts laid out with a non-zero size).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archspec.cli import app
from conftest import LIBRARY, ROOT, SPECS

HAS_DOT = shutil.which("dot") is not None
CHROMIUM = next((found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))), None)
NETWORK_REFERENCE = re.compile(r"""(?:src|href|xlink:href)\s*=\s*["']?\s*(?:https?:)?//|@import|url\(\s*["']?(?:https?:)?//""", re.I)


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def resnet_html(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("resnet18")
    result = invoke("report", str(SPECS / "resnet18.yaml"), "--format", "html", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == f"wrote {out / 'report.html'}"
    return out / "report.html"


def svg_blocks(page: str) -> list[str]:
    """The page's static SVGs (diagram and charts), not the viewer's canvas, which its script fills."""
    return [block for block in re.findall(r"<svg\b.*?</svg>", page, flags=re.DOTALL)
            if not block.startswith('<svg class="av-canvas"')]


# --- HTML report of one spec ------------------------------------------------------------------------
def test_html_report_is_one_self_contained_file(resnet_html):
    page = resnet_html.read_text()
    assert sorted(p.name for p in resnet_html.parent.iterdir()) == ["report.html"]
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not NETWORK_REFERENCE.search(page), NETWORK_REFERENCE.search(page).group(0)
    assert "<link" not in page and "<img" not in page and "<iframe" not in page
    scripts = re.findall(r"<script\b[^>]*>", page)
    assert scripts and all("src=" not in tag for tag in scripts)  # the viewer's scripts, inlined
    assert "<style>" in page
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page  # SVGs are inlined, not pasted as files


def test_html_report_holds_figures_charts_diagram_and_table(resnet_html):
    page = resnet_html.read_text()
    for text in ("11,689,512", "1,814,073,344", "3,628,146,688", "inference peak", "training step peak", "receptive field"):
        assert text in page, text
    blocks = svg_blocks(page)
    assert len(blocks) >= (3 if HAS_DOT else 2)
    charts = {stem: re.search(rf'id="chart-{stem}">\s*<svg', page) for stem in ("stages", "memory")}
    assert all(charts.values()), charts
    for stem in ("layer1", "layer4"):  # stage names on the per-stage chart
        assert f">{stem}<" in page
    if HAS_DOT:
        assert re.search(r'id="diagram"><svg', page)
        assert 'class="node"' in page and "layer4.1" in page
    rows = re.search(r'<table class="layers">.*?</table>', page, flags=re.DOTALL).group(0)
    assert rows.count("<tr>") == 1 + 68  # header + every op
    for column in ("Output memory", "Saved for backward", "RF /jump", "MACs", "FLOPs"):  # archspec.render.figures
        assert f'<th class="n">{column}</th>' in rows
    assert "435x435 /32x32" in rows  # layer4's receptive field


def test_html_without_dot_says_so_and_still_writes(tmp_path, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)  # no graphviz on the PATH
    result = invoke("report", str(SPECS / "lenet5.yaml"), "--format", "html", "--out", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    assert "apt-get install graphviz" in result.stderr
    page = (tmp_path / "report.html").read_text()
    assert 'class="note" id="diagram"' in page and "apt-get install graphviz" in page
    assert len(svg_blocks(page)) == 2  # the charts are still there


def test_markdown_out_writes_report_md_and_svgs(tmp_path):
    result = invoke("report", str(SPECS / "unet.yaml"), "--format", "markdown", "--out", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["report.md", "stages.svg", "memory.svg"] + (["diagram.svg"] if HAS_DOT else []))
    text = (tmp_path / "report.md").read_text()
    assert text.startswith("# unet\n")
    assert "![Parameters and MACs per stage](stages.svg)" in text and "![Activation memory per layer](memory.svg)" in text
    assert ("![diagram](diagram.svg)" in text) == HAS_DOT
    assert "| `dec1.bridge` | concat | 128x392x392 |" in text
    for name in names:
        if name.endswith(".svg"):
            assert (tmp_path / name).read_text().startswith("<svg")


def test_library_overview_html(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = invoke("report", "--format", "html", "--out", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    page = (tmp_path / "report.html").read_text()
    assert not NETWORK_REFERENCE.search(page) and "<script" not in page
    table = re.search(r'<table class="library">.*?</table>', page, flags=re.DOTALL).group(0)
    assert table.count("<tr>") == 1 + len(LIBRARY)
    scatter = re.search(r'id="chart-scatter">(<svg.*?</svg>)', page, flags=re.DOTALL).group(1)
    for path in LIBRARY:  # every point is labelled (text stays text in the SVG)
        assert f">{path.stem}<" in scatter, path.stem
    assert "parameters" in scatter and "MACs" in scatter


def test_library_overview_markdown_out(tmp_path):
    specs = [str(SPECS / "lenet5.yaml"), str(SPECS / "resnet18.yaml")]
    result = invoke("report", *specs, "--format", "markdown", "--out", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["library.svg", "report.md"]
    text = (tmp_path / "report.md").read_text()
    assert "![parameters vs MACs](library.svg)" in text and "| resnet18 |" in text and "| lenet5 |" in text


def test_plain_formats_are_unchanged_and_import_neither_torch_nor_matplotlib():
    code = (
        "import sys\n"
        "from archspec.cli import app\n"
        "app(['report', 'specs/lenet5.yaml', '--format', 'markdown'], standalone_mode=False)\n"
        "app(['report', 'specs/lenet5.yaml', '--format', 'json'], standalone_mode=False)\n"
        "app(['report', 'specs/lenet5.yaml'], standalone_mode=False)\n"
        "bad = [m for m in ('torch', 'matplotlib', 'graphviz') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print('CLEAN')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# lenet5") and result.stdout.rstrip().endswith("CLEAN")


def test_out_needs_a_file_format(tmp_path):
    result = invoke("report", str(SPECS / "lenet5.yaml"), "--format", "json", "--out", str(tmp_path))
    assert result.exit_code == 1 and "html or markdown" in result.stderr
    bad = invoke("report", str(SPECS / "lenet5.yaml"), "--format", "pdf")
    assert bad.exit_code == 1 and "not 'pdf'" in bad.stderr


# --- the page in a browser ------------------------------------------------------------------------------
PROBE_HEAD = """<script>
window.__errors = [];
window.addEventListener('error', function (e) { window.__errors.push(String(e.message || e)); });
var __consoleError = console.error;
console.error = function () { window.__errors.push(Array.prototype.join.call(arguments, ' ')); __consoleError.apply(console, arguments); };
</script>"""
PROBE_TAIL = """<script>
(function () {
  function size(el) { if (!el) return null; var r = el.getBoundingClientRect(); return [r.width, r.height]; }
  var result = {
    errors: window.__errors,
    diagram: size(document.querySelector('#diagram svg')),
    stages: size(document.querySelector('#chart-stages svg')),
    memory: size(document.querySelector('#chart-memory svg')),
    table: size(document.querySelector('table.layers')),
    svgs: document.querySelectorAll('svg:not(.av-canvas)').length,
    broken: Array.prototype.filter.call(document.querySelectorAll('svg:not(.av-canvas)'), function (s) { return !s.getBBox || s.getBBox().width === 0; }).length
  };
  var pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(result);
  document.body.appendChild(pre);
})();
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium(resnet_html, tmp_path):
    """The page as written, plus a probe (in a copy) that records errors and the laid-out sizes of
    the diagram, the charts and the table (the viewer's own drawing: tests/test_view.py)."""
    page = resnet_html.read_text()
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("<head>", "<head>\n" + PROBE_HEAD, 1).replace("</body>", PROBE_TAIL + "\n</body>", 1))
    done = subprocess.run(
        [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage", "--no-first-run",
         "--enable-logging=stderr", "--v=0", "--window-size=1280,2000", f"--user-data-dir={tmp_path / 'profile'}",
         "--dump-dom", probed.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == [], console
    match = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, flags=re.DOTALL)
    assert match, done.stdout[-2000:]
    probe = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert probe["errors"] == []
    for key in ("stages", "memory", "table") + (("diagram",) if HAS_DOT else ()):
        width, height = probe[key]
        assert width > 100 and height > 100, (key, probe[key])
    assert probe["svgs"] >= (3 if HAS_DOT else 2) and probe["broken"] == 0
