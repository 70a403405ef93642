"""`archspec view`: the viewer's data (no browser), the command's options and errors, and the page
itself in Debian's Chromium driven by Playwright (no browser download).

The browser tests skip only where /usr/bin/chromium or the playwright package is missing; CI has
both. One browser serves the whole module; each page is written once."""
from __future__ import annotations

import hashlib
import io
import re
import tomllib
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import archspec
from archspec import pipeline
from archspec.commands import view
from archspec.render.viewer import view_model, view_page, viewer_section
from archspec.render.viewer.model import START_VISIBLE
from conftest import ROOT, SPECS

RESNET18 = SPECS / "resnet18.yaml"
VIEWER = Path(archspec.__file__).resolve().parent / "render" / "viewer"
CHROMIUM = "/usr/bin/chromium"


def cli():
    app = typer.Typer()
    app.command("view")(view.command)
    app.callback()(lambda: None)  # keeps `view` a sub-command, as in archspec's own app
    return app


def run_view(*args: str):
    return CliRunner().invoke(cli(), ["view", *map(str, args)])


@pytest.fixture(scope="module")
def resnet18():
    return view_model(pipeline.compile(RESNET18))


def by_id(items):
    return {item["id"]: item for item in items}


# --- the data the page reads ---------------------------------------------------------------------
def test_a_node_carries_its_figures_and_source(resnet18):
    node = by_id(resnet18["nodes"])["layer3.1.conv2"]
    assert node["params"] == 256 * 256 * 3 * 3  # 3x3 conv, 256 -> 256 channels, no bias
    assert node["macs"] == 256 * 256 * 3 * 3 * 14 * 14 and node["flops"] == 2 * node["macs"]
    assert node["shape"] == "256x14x14" and node["args"]["kernel"] == 3 and node["args"]["bias"] is False
    assert node["parent"] == "layer3.1"
    file, line = node["source"].rsplit(":", 1)
    lines = Path(file).read_text().splitlines()[: int(line)]
    start = max(i for i, text in enumerate(lines) if text.strip() == "basic:")
    assert [text for text in lines[start:] if "- conv:" in text][1:] == [lines[-1]]  # the block's second conv


def test_receptive_fields_by_hand(resnet18):
    nodes = by_id(resnet18["nodes"])
    # conv 7x7/2 then maxpool 3x3/2: 7 + (3 - 1) * 2 = 11 pixels, jump 2 * 2 = 4
    assert nodes["conv1"]["field"] == {"size": [7, 7], "jump": [2, 2], "offset": [0, 0], "global": False}
    assert nodes["maxpool1"]["field"]["size"] == [11, 11] and nodes["maxpool1"]["field"]["jump"] == [4, 4]
    assert nodes["fc"]["field"]["global"] is True


def test_repeats_are_folded_and_nested(resnet18):
    blocks = by_id(resnet18["blocks"])
    assert blocks["layer1"]["label"] == "layer1 · 2× basic"  # resnet18: [2, 2, 2, 2] basic blocks
    assert blocks["layer3.1"]["parent"] == "layer3" and blocks["layer3"]["parent"] is None
    assert blocks["layer2.0.downsample"]["parent"] == "layer2.0"
    assert blocks["layer3.1"]["params"] == 2 * 256 * 256 * 9 + 2 * 2 * 256  # two convs, two bns


def test_edges_follow_the_ir_and_mark_the_shortcut(resnet18):
    edges = {(source, target): kind for source, target, kind, _ in resnet18["edges"]}
    assert edges[("maxpool1", "layer1.0.add1")] == "shortcut"  # out = out + identity
    assert edges[("layer1.0.bn2", "layer1.0.add1")] == "data"
    assert edges[("fc", "output:output")] == "data"
    assert len(edges) == len(resnet18["edges"])  # one per pair


def test_saved_for_backward_matches_autograd():
    torch = pytest.importorskip("torch")
    from saved_tensors import saved_bytes_measured

    compiled = pipeline.compile(RESNET18)
    model = view_model(compiled)
    measured = saved_bytes_measured(compiled.module().train(), torch.randn(1, 3, 224, 224))
    assert sum(node.get("saved", 0) for node in model["nodes"]) == model["totals"]["saved"] == measured


def test_a_big_model_opens_with_a_small_overview():
    model = view_model(pipeline.compile(SPECS / "resnet152.yaml"))
    depth = model["start_depth"]
    blocks = by_id(model["blocks"])
    open_depth = lambda node: blocks[node["parent"]]["depth"] if node["parent"] else 0  # noqa: E731
    shown = sum(open_depth(n) <= depth for n in model["nodes"]) + sum(b["depth"] == depth + 1 for b in blocks.values())
    deeper = sum(open_depth(n) <= depth + 1 for n in model["nodes"]) + sum(b["depth"] == depth + 2 for b in blocks.values())
    assert shown <= START_VISIBLE < deeper
    assert view_model(pipeline.compile(SPECS / "resnet152.yaml"), depth=3)["start_depth"] == 3


def test_the_page_is_self_contained_and_escapes_the_data(write_spec):
    spec = write_spec("""
        name: tricky
        summary: "</script><!-- a summary that tries to end the data"
        inputs: {image: [3, 8, 8]}
        layers:
          - conv: {out: 4, kernel: 3}
    """)
    page = view_page(pipeline.compile(spec))
    assert "</script><!--" not in page and "\\u003c/script>" in page
    assert not re.search(r"""\b(src|href)\s*=\s*["']?(?!["']|data:|#)""", page, re.I)  # no file or URL is loaded
    assert "https://" not in page.replace("https://www.eclipse.org/legal/epl-2.0", "").replace(
        "https://www.gnu.org/licenses/gpl-3.0-standalone.html", "")  # only the licence notices name a site
    section = viewer_section(pipeline.compile(spec))
    assert section.count('class="archspec-viewer"') == 1 and "<html" not in section and "<script>" in section


def test_the_assets_ship_in_the_wheel_and_the_vendored_file_is_as_recorded():
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["archspec"]
    package = VIEWER.parents[1]
    shipped = {path.resolve() for pattern in globs for path in package.glob(pattern)}
    assets = [path for path in VIEWER.rglob("*") if path.is_file() and path.suffix not in (".py", ".pyc")]
    assert len(assets) >= 7 and [str(p) for p in assets if p.resolve() not in shipped] == []
    recorded = re.search(r"`elk.bundled.js` sha256: `([0-9a-f]{64})`", (VIEWER / "vendor" / "VENDORED.md").read_text())
    assert hashlib.sha256((VIEWER / "vendor" / "elk.bundled.js").read_bytes()).hexdigest() == recorded.group(1)
    assert "Eclipse Public License - v 2.0" in (VIEWER / "vendor" / "elkjs-LICENSE.md").read_text()


# --- the command -----------------------------------------------------------------------------------
def test_view_writes_the_page(tmp_path):
    out = tmp_path / "resnet.html"
    result = run_view(RESNET18, "--out", out, "--set", "num_classes=10", "--depth", "0")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"wrote {out}"
    text = out.read_text()
    assert '"id":"output:output"' in text and '"shape":"10"' in text and '"start_depth":0' in text


def test_view_into_a_folder_and_by_default(tmp_path, monkeypatch):
    assert run_view(RESNET18, "--out", tmp_path).exit_code == 0
    assert (tmp_path / "view.html").stat().st_size > 100_000
    monkeypatch.chdir(tmp_path)
    assert run_view(RESNET18).exit_code == 0
    assert (tmp_path / "reports" / "resnet18" / "view.html").is_file()


def test_view_open_starts_the_browser_on_the_file(tmp_path, monkeypatch):
    opened = []
    monkeypatch.setattr("webbrowser.open", opened.append)
    assert run_view(RESNET18, "--out", tmp_path / "v.html", "--open").exit_code == 0
    assert opened == [(tmp_path / "v.html").resolve().as_uri()]


@pytest.mark.parametrize("args, message", [
    (["missing.yaml"], "error: no such file: missing.yaml"),
    ([RESNET18, "--out", "{tmp}/no/such/folder/v.html"], "the folder {tmp}/no/such/folder does not exist"),
    ([RESNET18, "--out", "{tmp}/view.svg"], "the viewer is an HTML page"),
    ([RESNET18, "--set", "num_classes"], "--set expects NAME=VALUE"),
    ([RESNET18, "--input", "3xlarge"], "--input expects CxHxW"),
])
def test_view_refuses_bad_input_in_one_line(tmp_path, args, message):
    result = run_view(*[str(a).replace("{tmp}", str(tmp_path)) for a in args])
    assert result.exit_code == 1
    assert message.replace("{tmp}", str(tmp_path)) in result.stderr
    assert "Traceback" not in result.output and not list(tmp_path.glob("**/*.html"))


def test_a_spec_error_is_located(write_spec, tmp_path):
    spec = write_spec("""
        name: broken
        inputs: {image: [3, 8, 8]}
        layers:
          - conv: {out: 4, kernel: 3, strid: 2}
    """)
    result = run_view(spec, "--out", tmp_path / "v.html")
    assert result.exit_code == 1
    assert re.match(rf"error: {re.escape(str(spec))}:5:\d+ .*strid", result.stderr)


# --- the page in a browser -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (Debian's chromium package; CI installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing (CI installs it)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    folder = tmp_path_factory.mktemp("views")

    def page_of(name: str) -> Path:
        path = folder / f"{name}.html"
        if not path.exists():
            path.write_text(view_page(pipeline.compile(SPECS / f"{name}.yaml")), encoding="utf-8")
        return path

    return page_of


class Opened:
    """A loaded viewer page with what it logged and what it asked the network for."""

    def __init__(self, browser, path: Path):
        self.page = browser.new_page(viewport={"width": 1280, "height": 800})
        self.errors, self.requests = [], []
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.route("**/*", self._route)
        self.page.goto(path.as_uri())
        self.ready()

    def _route(self, route):
        url = route.request.url
        if url.startswith(("file:", "data:")):
            route.continue_()
        else:
            self.requests.append(url)
            route.abort()

    def ready(self, timeout_s: float = 20):
        """Wait for the current layout to be drawn (a generous ceiling, not a timing check)."""
        self.page.wait_for_selector(".archspec-viewer[data-state=ready]", timeout=timeout_s * 1000)

    def shown(self, node_id: str) -> bool:
        return self.page.locator(f'.av-scene [data-id="{node_id}"]').count() == 1

    def search(self, query: str, expect: str | None = None) -> None:
        """Type `query` and Enter; wait until `expect` (the query itself by default) is selected."""
        self.page.fill(".av-search", query)
        self.page.press(".av-search", "Enter")
        self.page.wait_for_selector(f'.archspec-viewer[data-state=ready] .av-selected[data-id="{expect or query}"]')

    def panel_value(self, key: str) -> int:
        return int(self.page.get_attribute(f'.av-panel tr[data-key="{key}"] td', "data-value"))


@pytest.fixture
def opened(browser, pages):
    made = []

    def open_page(name: str) -> Opened:
        made.append(Opened(browser, pages(name)))
        return made[-1]

    yield open_page
    for page in made:
        assert page.errors == [] and page.requests == []  # no console errors, nothing fetched
        page.page.close()


def test_the_page_loads_offline_with_a_legend(opened):
    page = opened("resnet18").page
    legend = page.inner_text(".av-legend")
    assert "convolution" in legend and "normalisation" in legend and "shortcut" in legend
    assert page.locator(".av-scene .av-box").count() == int(page.get_attribute(".archspec-viewer", "data-boxes")) > 10


def test_expanding_a_block_shows_its_children(opened):
    viewer = opened("resnet18")
    assert viewer.shown("layer1.0") and not viewer.shown("layer1.0.conv1")
    viewer.page.click('.av-scene [data-id="layer1.0"]')
    viewer.ready()
    assert viewer.shown("layer1.0.conv1") and viewer.shown("layer1.0.add1")
    frame = viewer.page.locator('.av-frame[data-id="layer1.0"]')
    width = float(frame.locator("rect").first.get_attribute("width"))
    label = viewer.page.evaluate("e => e.getBBox().width", frame.locator(".av-frame-label").element_handle())
    assert width >= label + 8  # the frame holds its label (ELK's minimum size, see graph.js)
    viewer.page.click('.av-frame[data-id="layer1.0"] .av-frame-head')  # and closing it again
    viewer.ready()
    assert viewer.shown("layer1.0") and not viewer.shown("layer1.0.conv1")


def test_search_opens_selects_and_centres_the_match(opened):
    viewer = opened("resnet18")
    viewer.search("layer3.1.conv2")
    assert viewer.page.inner_text(".av-panel h3") == "layer3.1.conv2"
    box = viewer.page.locator('.av-scene [data-id="layer3.1.conv2"]').bounding_box()
    canvas = viewer.page.locator(".av-canvas").bounding_box()
    centre = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    assert abs(centre[0] - (canvas["x"] + canvas["width"] / 2)) < 5 and abs(centre[1] - (canvas["y"] + canvas["height"] / 2)) < 5


def test_search_by_op_and_by_shape(opened):
    viewer = opened("resnet18")
    viewer.search("linear", expect="fc")  # resnet18's one linear layer
    assert viewer.page.inner_text(".av-found") == "1 of 1"
    viewer.search("64x112x112", expect="conv1")  # the stem: conv1, bn1, relu1 in order
    viewer.page.press(".av-search", "Enter")  # Enter again: the next match
    viewer.page.wait_for_selector('.archspec-viewer[data-state=ready] .av-selected[data-id="bn1"]')
    assert viewer.page.inner_text(".av-found") == "2 of 3"


def test_clicking_shows_the_params_torch_counts(opened):
    module = archspec.build_module(RESNET18)
    viewer = opened("resnet18")
    viewer.search("layer3.1.conv2")
    viewer.page.click('.av-scene [data-id="layer3.1.bn2"]')
    assert viewer.page.inner_text(".av-panel h3") == "layer3.1.bn2"
    assert viewer.panel_value("params") == sum(p.numel() for p in module.get_submodule("layer3.1.bn2").parameters())
    viewer.page.click('.av-scene [data-id="layer3.1.conv2"]')
    assert viewer.panel_value("params") == sum(p.numel() for p in module.get_submodule("layer3.1.conv2").parameters())
    assert "specs/blocks/resnet.yaml:" in viewer.page.inner_text('.av-panel tr[data-key="source"]')
    frame = viewer.page.locator('.av-frame[data-id="layer3.1"] > rect')
    frame.click(position={"x": 4, "y": frame.bounding_box()["height"] - 4})  # its padding: a block's panel
    assert viewer.panel_value("params") == sum(p.numel() for p in module.get_submodule("layer3.1").parameters())


def test_hover_highlights_inputs_and_outputs(opened):
    viewer = opened("resnet18")
    viewer.search("layer3.1.conv2")
    viewer.page.hover('.av-scene [data-id="layer3.1.conv2"]')
    assert "av-in" in viewer.page.get_attribute('.av-scene [data-id="layer3.1.relu1"]', "class")
    assert "av-out" in viewer.page.get_attribute('.av-scene [data-id="layer3.1.bn2"]', "class")
    assert viewer.page.locator(".av-edge.av-in").count() == 1 and viewer.page.locator(".av-edge.av-out").count() == 1


def test_a_screenshot_has_real_size_and_colour(opened):
    image_module = pytest.importorskip("PIL.Image")
    viewer = opened("resnet18")
    image = image_module.open(io.BytesIO(viewer.page.screenshot())).convert("RGB")
    assert image.size == (1280, 800)
    colours = {colour for _, colour in image.getcolors(maxcolors=1 << 20)}
    assert len(colours) > 50
    for fill in ("#cfe2f3", "#fff2cc", "#d9ead3"):  # convolution, normalisation, activation boxes
        assert tuple(int(fill[i:i + 2], 16) for i in (1, 3, 5)) in colours


@pytest.mark.parametrize("name", ["resnet152", "densenet169"])
def test_big_models_open_at_full_depth(opened, name):
    compiled = pipeline.compile(SPECS / f"{name}.yaml")
    viewer = opened(name)
    viewer.page.click("[data-action=expand-all]")
    viewer.ready(timeout_s=20)  # ELK on ~600 boxes: about 2 s on a busy 2-core box
    every_node = len(compiled.ir.nodes()) + len(compiled.ir.outputs)
    assert int(viewer.page.get_attribute(".archspec-viewer", "data-boxes")) == every_node
    last = compiled.analysis.layers[-1].name
    viewer.search(last)  # still answers
    assert viewer.page.inner_text(".av-panel h3") == last


def test_the_report_section_works_inside_the_report_page(browser, tmp_path):
    from archspec.render.html_page import page

    path = tmp_path / "report.html"
    section = viewer_section(pipeline.compile(SPECS / "lenet5.yaml"))
    path.write_text(page("lenet5", f"<h1>lenet5</h1><h2>Explore</h2>{section}<p>after</p>"), encoding="utf-8")
    viewer = Opened(browser, path)
    viewer.page.click('.av-scene [data-id="fc3"]')
    assert viewer.panel_value("params") == 400 * 120 + 120  # LeNet-5's first linear layer, by hand
    assert viewer.page.locator(".archspec-viewer").bounding_box()["height"] == 760
    assert [viewer.errors, viewer.requests] == [[], []]
    viewer.page.close()


# --- the stretch: `archspec serve DIR` -------------------------------------------------------------
def test_serve_shows_specs_errors_in_place_and_a_changing_stamp(tmp_path):
    from urllib.error import HTTPError
    from urllib.request import urlopen

    from archspec.render.viewer.serve import make_server, serve_in_background

    spec = tmp_path / "net.yaml"
    spec.write_text("name: net\ninputs: {image: [3, 8, 8]}\nlayers:\n  - conv: {out: 4, kernel: 3}\n")
    server = make_server(tmp_path, port=0)
    serve_in_background(server)
    get = lambda path: urlopen(f"http://127.0.0.1:{server.server_address[1]}{path}", timeout=10).read().decode()  # noqa: E731
    try:
        assert 'href="/spec/net.yaml"' in get("/")
        assert 'class="archspec-viewer"' in get("/spec/net.yaml") and 'fetch("/stamp")' in get("/spec/net.yaml")
        before = get("/stamp")
        spec.write_text("name: net\ninputs: {image: [3, 8, 8]}\nlayers:\n  - conv: {out: 4, kernal: 3}\n")
        assert get("/stamp") != before  # the page polls this and reloads
        assert f"error: {spec.resolve()}:4:" in get("/spec/net.yaml") and "kernal" in get("/spec/net.yaml")
        with pytest.raises(HTTPError, match="404"):
            get("/spec/..%2F..%2Fetc%2Fpasswd")
    finally:
        server.shutdown()
        server.server_close()
    assert "not a folder of specs" in CliRunner().invoke(_serve_cli(), ["serve", str(spec)]).stderr


def _serve_cli():
    app = typer.Typer()
    app.command("serve")(view.serve_command)
    app.callback()(lambda: None)
    return app
