"""The file reports' papercuts of issue 17: the layer table scrolls in a box of its own, "saved for
backward" has its own panel, bytes in one unit rule, the charts' stages are the stage pass's, the
headline receptive field follows the main output, squeeze-excitation gates read whole, fractional
jumps are explained, the library scatter's labels never collide, and the library Markdown has one
title. Browser checks use Playwright on Debian's Chromium and skip without them.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import archspec.pipeline
from archspec.cli import app
from conftest import LIBRARY, SPECS

CHROMIUM = Path("/usr/bin/chromium")


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.stderr
    return result


def html_report(spec: Path | str, folder: Path) -> str:
    invoke("report", str(spec), "--format", "html", "--out", str(folder))
    return (folder / "report.html").read_text()


def chart(page: str, stem: str) -> str:
    return re.search(rf'id="chart-{stem}">(<svg.*?</svg>)', page, flags=re.DOTALL).group(1)


def browser():
    """A Playwright Chromium (Debian's, no download), or a skip."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium")
    return sync_api


# --- 1. the layer table scrolls -------------------------------------------------------------------------
def test_layer_table_sits_in_a_scroll_box(tmp_path):
    page = html_report(SPECS / "lenet5.yaml", tmp_path)
    assert re.search(r'<div class="scroll" id="layers"><table class="layers">', page)
    rule = re.search(r"\.scroll \{([^}]*)\}", page).group(1)
    assert "overflow: auto" in rule and "max-height" in rule  # both scrollbars inside the box


PROBE = """() => {
  const box = document.querySelector('table.layers').parentElement, heads = box.querySelectorAll('thead th');
  const last = heads[heads.length - 1];
  box.scrollIntoView();
  const before = {scroll: box.scrollWidth, client: box.clientWidth, height: box.getBoundingClientRect().height};
  box.scrollLeft = box.scrollWidth;
  box.scrollTop = 1500;
  const outer = box.getBoundingClientRect(), cell = last.getBoundingClientRect();
  const hit = document.elementFromPoint((cell.left + cell.right) / 2, (cell.top + cell.bottom) / 2);
  return {...before, text: last.textContent, boxLeft: outer.left, boxRight: outer.right, boxTop: outer.top,
          left: cell.left, right: cell.right, top: cell.top, hit: hit === last || last.contains(hit)};
}"""


@pytest.mark.parametrize("name", ["googlenet", "efficientnet_b0"])
def test_last_column_is_reachable_at_1400_px(tmp_path, name):
    sync_api = browser()
    html_report(SPECS / f"{name}.yaml", tmp_path)
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        view = chromium.new_page(viewport={"width": 1400, "height": 900})
        view.goto((tmp_path / "report.html").as_uri())
        probe = view.evaluate(PROBE)
        chromium.close()
    assert probe["text"] == "RF /jump"  # archspec.render.figures' last column
    assert probe["scroll"] > probe["client"]  # wider than the page: it scrolls sideways...
    assert probe["height"] <= 900  # ...in a box no taller than the window, so its scrollbar is on screen
    assert probe["boxLeft"] - 1 <= probe["left"] and probe["right"] <= probe["boxRight"] + 1, probe
    assert abs(probe["top"] - probe["boxTop"]) <= 2, probe  # scrolled down, the header row stays at the top
    assert probe["hit"], probe  # and nothing covers the last header cell


# --- 2. and 3. the memory chart: its own panel for saved-for-backward, bytes in human_bytes' unit ------
def panels(svg: str) -> dict[str, tuple[float, float]]:
    """Clip rectangle id -> (top, bottom) in SVG units: one per axes."""
    rects = re.findall(r'<clipPath id="([^"]+)">\s*<rect x="[-\d.]+" y="([-\d.]+)" width="[-\d.]+" height="([-\d.]+)"', svg)
    return {key: (float(y), float(y) + float(h)) for key, y, h in rects}


def test_saved_for_backward_has_its_own_panel_with_200_plus_layers(tmp_path):
    import archspec

    compiled = archspec.compile(SPECS / "densenet121.yaml")
    assert len(compiled.analysis.layers) > 200
    from archspec.render.charts import memory_svg

    svg = memory_svg(compiled, compiled.memory())
    clips = panels(svg)
    saved = re.search(r'<g id="saved-for-backward">\s*<path[^>]*clip-path="url\(#([^)]+)\)"', svg).group(1)
    bars = {re.search(r'clip-path="url\(#([^)]+)\)"', patch).group(1)
            for patch in re.findall(r'<g id="patch_\d+">\s*<path[^>]*clip-path[^>]*>', svg)}
    assert saved in clips and len(bars) == 2  # the bars (and the bands under both panels)
    bar_panel = next(iter(bars - {saved}))
    (bar_top, bar_bottom), (saved_top, saved_bottom) = clips[bar_panel], clips[saved]
    assert bar_bottom < saved_top  # one panel above the other: the line never crosses a bar
    assert saved_bottom - saved_top > 80 and bar_bottom - bar_top > 80  # both tall enough to read (points)
    names = {part for stage in compiled.stages for part in (stage.name, stage.name.rsplit(".", 1)[-1])}
    stage_names = label_boxes(svg, names)
    assert len(stage_names) >= 3 and overlapping(stage_names) == []  # the dense blocks named, legibly


def test_small_memories_read_in_kib(tmp_path):
    from archspec.render.figures import human_bytes

    # LeNet-5's largest tensor: conv1's 6x28x28 fp32 output, 18,816 bytes = 18.375 KiB
    assert human_bytes(18_816) == "18.38 KiB" and human_bytes(1000) == "1000 B" and human_bytes(3 << 20) == "3.00 MiB"
    page = html_report(SPECS / "lenet5.yaml", tmp_path / "lenet5")
    memory = chart(page, "memory")
    assert ">output, KiB<" in memory and ">saved, KiB<" in memory and "MiB" not in memory
    ticks = re.findall(r"<text[^>]*>([\d.]+)</text>", memory)
    assert "15" in ticks and not any(t.startswith("0.0") for t in ticks)  # 0 .. 18 KiB, not 0.0175 MiB
    resnet = chart(html_report(SPECS / "resnet18.yaml", tmp_path / "resnet18"), "memory")
    assert ">output, MiB<" in resnet  # conv1's 64x112x112 fp32 output: 3,211,264 bytes = 3.06 MiB


# --- 4. one stage definition ----------------------------------------------------------------------------
def test_charts_take_their_stages_from_the_stage_pass(tmp_path):
    import archspec
    from archspec.passes.stages import stage_runs

    # LeNet-5's stages: its weighted layers (ReLU and pooling in none); every other one shaded
    page = html_report(SPECS / "lenet5.yaml", tmp_path)
    assert re.findall(r'id="stage-band-([^"]+)"', chart(page, "memory")) == ["conv2", "fc4"]
    stages = chart(page, "stages")
    for name in ("conv1", "conv2", "fc3", "fc4", "fc5"):
        assert f">{name}<" in stages
    compiled = archspec.compile(SPECS / "resnet18.yaml")
    runs = stage_runs(compiled.analysis, compiled.stages)
    assert sum(size for _, size in runs) == len(compiled.analysis.layers)
    # torchvision's resnet18 children with parameters, in order; relu and maxpool belong to none
    assert [name for name, _ in runs] == ["conv1", "bn1", None, "layer1", "layer2", "layer3", "layer4", None, "fc"]


# --- 5. and 6. receptive fields: the main output's headline, squeeze-excitation gates -----------------
def headline(page: str) -> tuple[str, str]:
    card = re.search(r'receptive field</div><div class="v">([^<]*)</div><div class="s">([^<]*)', page)
    return card.group(1), card.group(2)


def test_headline_field_follows_the_main_output(tmp_path):
    # googlenet's outputs are {logits: fc, aux1, aux2}: its main path pools after inception5b
    value, where = headline(html_report(SPECS / "googlenet.yaml", tmp_path / "googlenet"))
    assert where.startswith("at inception5b.") and where.endswith("on the way to logits"), where
    assert "aux" not in where
    value, where = headline(html_report(SPECS / "resnet18.yaml", tmp_path / "resnet18"))
    assert (value, where) == ("435x435 /32x32", "at layer4.1.relu2")


SE_GATE = """
name: se_gate
inputs: {image: [3, 16, 16]}
layers:
  - conv: {name: stem, out: 4, kernel: 3, padding: 1}
  - adaptive_avgpool: {name: squeeze, size: 1}
  - conv: {name: excite, out: 4, kernel: 1}
  - sigmoid: {name: gate}
  - mul: {name: scale, from: [gate, stem]}
  - conv: {name: head, out: 2, kernel: 3, padding: 1}
"""


def test_a_squeeze_excitation_gate_reads_the_whole_input(write_spec):
    import torch
    import torch.nn as nn

    torch.manual_seed(0)
    stem, excite, head = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 1), nn.Conv2d(4, 2, 3, padding=1)
    image = torch.rand(1, 3, 16, 16, requires_grad=True)
    features = stem(image)
    squeezed = features.mean((2, 3), keepdim=True)
    scaled = torch.sigmoid(excite(squeezed)) * features
    for output, whole in ((features, False), (squeezed, True), (scaled, True), (head(scaled), True)):
        (grad,) = torch.autograd.grad(output[0, :, 0, 0].sum(), image, retain_graph=True)
        assert bool((grad[0].abs().sum(0) > 0).all()) == whole  # the corner position reads every pixel

    spec = write_spec(SE_GATE)
    report = json.loads(invoke("report", str(spec), "--receptive-field", "--format", "json").stdout)
    layers = {layer["name"]: layer for layer in report["layers"]}
    assert [name for name, layer in layers.items() if layer["global"]] == ["squeeze", "excite", "gate", "scale", "head"]
    assert (layers["stem"]["receptive_field"], layers["stem"]["jump"]) == ([3, 3], [1, 1])
    table = invoke("report", str(spec), "--receptive-field", "--format", "markdown").stdout
    assert re.search(r"\| `head` \| conv \| 2x16x16 \| [^\n]*\(whole\) \|", table)
    from archspec.render.viewer.model import view_model  # the viewer's panel says the same

    nodes = {node["id"]: node for node in view_model(archspec.pipeline.compile(spec))["nodes"]}
    assert [name for name in layers if nodes[name]["field"] and nodes[name]["field"]["global"]] == \
        ["squeeze", "excite", "gate", "scale", "head"]


def test_library_squeeze_excitation_nets_show_whole_fields(tmp_path):
    for name, layer in (("efficientnet_b0", "features.8.2"), ("mobilenet_v3_small", "features.12.2")):
        layers = json.loads(invoke("report", str(SPECS / f"{name}.yaml"), "--receptive-field", "--format", "json").stdout)["layers"]
        field = next(entry for entry in layers if entry["name"] == layer)
        assert field["global"] and field["jump"] == [0, 0], (name, field)
        assert all(entry["jump"] is None or entry["global"] or min(entry["jump"]) >= 1 for entry in layers), name


# --- 7. fractional jumps are explained ------------------------------------------------------------------
UPSAMPLING = """
name: upsampling
inputs: {image: [1, 8, 8]}
layers:
  - conv: {name: down, out: 2, kernel: 2, stride: 2}             # 4x4: position q reads pixels 2q, 2q+1
  - conv_transpose: {name: up, out: 2, kernel: 2, stride: 2}     # 8x8: position r reads down's r // 2
"""


def test_a_fractional_jump_is_explained_where_it_appears(write_spec, tmp_path):
    # up's positions 0 and 7 read pixels 0..1 and 6..7: centres 0.5 and 6.5, so the jump is 6 / 7
    spec = write_spec(UPSAMPLING)
    page = html_report(spec, tmp_path / "up")
    note = re.search(r'<p class="lead" id="jump-note">([^<]*)</p>', page).group(1)
    assert "first at up: 0.8571x0.8571" in note and "upsampling" in note
    cell = re.search(r'<td class="n jump" title="([^"]*)">2x2 /0.8571x0.8571</td>', page)
    assert cell and cell.group(1) == note  # the cell's tooltip is the footnote
    assert '<td class="n">2x2 /2x2</td>' in page  # down's whole jump: no tooltip
    markdown = invoke("report", str(spec), "--receptive-field", "--format", "markdown").stdout
    assert markdown.rstrip().splitlines()[-1].startswith("> A fractional jump (first at up: 0.8571x0.8571)")
    assert "jump-note" not in html_report(SPECS / "resnet18.yaml", tmp_path / "resnet18")


# --- 8. the library scatter's labels ---------------------------------------------------------------------
def label_boxes(svg: str, names: set[str]) -> dict[str, tuple[float, float, float, float]]:
    """Each of these names' ink box in SVG units, from its text, position and size in the SVG,
    measured by the glyph outlines of the font matplotlib writes (DejaVu Sans)."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath

    boxes = {}
    texts = re.findall(r'<text style="font-size: ([\d.]+)px;[^"]*" x="([-\d.]+)" y="([-\d.]+)"[^>]*>([^<]+)</text>', svg)
    for size, x, y, name in texts:
        if name not in names:
            continue
        ink = TextPath((0, 0), name, size=float(size), prop=FontProperties(family="DejaVu Sans")).get_extents()
        boxes[name] = (float(x) + ink.x0, float(y) - ink.y1, float(x) + ink.x1, float(y) - ink.y0)  # y grows down
    return boxes


def overlapping(boxes: dict) -> list[tuple[str, str]]:
    names = sorted(boxes)
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1:]
            if min(boxes[a][2], boxes[b][2]) > max(boxes[a][0], boxes[b][0])
            and min(boxes[a][3], boxes[b][3]) > max(boxes[a][1], boxes[b][1])]


@pytest.fixture(scope="module")
def library_scatter() -> str:
    import archspec
    from archspec.render.charts import scatter_svg

    return scatter_svg([archspec.compile(path) for path in LIBRARY])


def test_library_scatter_labels_do_not_collide(library_scatter):
    boxes = label_boxes(library_scatter, {path.stem for path in LIBRARY})
    assert sorted(boxes) == sorted(path.stem for path in LIBRARY)  # every spec labelled (all have params)
    assert overlapping(boxes) == []


def test_library_scatter_labels_do_not_collide_in_a_browser(library_scatter, tmp_path):
    sync_api = browser()
    (tmp_path / "scatter.html").write_text(f"<!DOCTYPE html><html><body>{library_scatter}</body></html>")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        view = chromium.new_page(viewport={"width": 1000, "height": 800})
        view.goto((tmp_path / "scatter.html").as_uri())
        boxes = view.evaluate("""names => Object.fromEntries(Array.from(document.querySelectorAll('text'))
            .filter(t => names.includes(t.textContent))
            .map(t => { const r = t.getBoundingClientRect(); return [t.textContent, [r.left, r.top, r.right, r.bottom]]; }))""",
                              [path.stem for path in LIBRARY])
        chromium.close()
    assert len(boxes) == len(LIBRARY)
    shrunk = {name: (x0 + 0.5, y0 + 1.5, x1 - 0.5, y1 - 1.5) for name, (x0, y0, x1, y1) in boxes.items()}  # line box -> ink
    assert overlapping(shrunk) == []


# --- 9. the library Markdown ------------------------------------------------------------------------------
def test_library_markdown_has_one_title(tmp_path):
    invoke("report", str(SPECS / "lenet5.yaml"), str(SPECS / "resnet18.yaml"), "--format", "markdown", "--out", str(tmp_path))
    lines = (tmp_path / "report.md").read_text().splitlines()
    assert [line for line in lines if line.startswith("# ")] == ["# archspec spec library"]
    assert lines[2] == "![parameters vs MACs](library.svg)"
    printed = invoke("report", str(SPECS / "lenet5.yaml"), str(SPECS / "resnet18.yaml"), "--format", "markdown").stdout
    assert [line for line in printed.splitlines() if line.startswith("# ")] == ["# archspec spec library"]
