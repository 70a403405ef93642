"""The viewer as HTML: a whole page (`view_page`, what `archspec view` writes) or a fragment for
another page (`viewer_section`, the report's). Self-contained: the CSS, the vendored ELK layout
library, the viewer's scripts and the model's JSON are inlined; the page fetches nothing."""
from __future__ import annotations

import html
import json
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archspec.render.viewer.model import view_model

if TYPE_CHECKING:
    from archspec.pipeline import Compiled

SCRIPTS = ("graph.js", "draw.js", "panel.js", "viewer.js")  # in dependency order: one scope
ELK_SCRIPT = "vendor/elk.bundled.js"
SECTION_HEIGHT_PX = 760


HERE = Path(__file__).resolve().parent  # the scripts, CSS and vendor/ ship beside this module (package data)


@cache
def _asset(name: str) -> str:
    return (HERE / name).read_text(encoding="utf-8")


def _script(source: str) -> str:
    """A <script> element; its text may not close the element early."""
    if "</script" in source.lower() or "<!--" in source:
        raise ValueError("an inlined script holds '</script' or '<!--'")
    return f"<script>{source}</script>"


def _json_script(data: dict[str, Any]) -> str:
    # `<` escaped: no spec name or summary can end the element or open a comment in it
    text = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")
    return f'<script type="application/json" class="av-data">{text}</script>'


def _viewer_script() -> str:
    body = "\n".join(_asset(name) for name in SCRIPTS)
    return _script(f'(function () {{\n"use strict";\n{body}\n}})();')


TOOLBAR = (
    '<div class="av-toolbar"><span class="av-name">{name}</span>'
    '<input class="av-search" type="search" placeholder="search a name, op or shape, then Enter" aria-label="search">'
    '<span class="av-found"></span>'
    '<button type="button" data-action="fit" title="fit the graph in view">fit</button>'
    '<button type="button" data-action="zoom-in" title="zoom in">+</button>'
    '<button type="button" data-action="zoom-out" title="zoom out">&minus;</button>'
    '<button type="button" data-action="expand-all">expand all</button>'
    '<button type="button" data-action="collapse-all">collapse all</button>'
    '<button type="button" data-action="legend" title="show or hide the legend">legend</button>'
    '<span class="av-status">loading…</span></div>'
)
CANVAS = (
    '<svg class="av-canvas" xmlns="http://www.w3.org/2000/svg"><defs>'
    '<marker class="av-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="8" markerHeight="8" '
    'orient="auto-start-reverse"><path d="M0,0L10,5L0,10z"/></marker></defs><g class="av-scene"></g></svg>'
)


def viewer_html(model: dict[str, Any], height: str = "100%") -> str:
    """The viewer's element and scripts for one model (archspec.render.viewer.model.view_model)."""
    return (
        f"<style>{_asset('viewer.css')}</style>\n"
        f'<div class="archspec-viewer" style="height:{height}">'
        + TOOLBAR.format(name=html.escape(model["name"]))
        + f'<div class="av-body">{CANVAS}<aside class="av-panel"></aside><div class="av-legend"></div></div>'
        + _json_script(model)
        + "</div>\n"
        + _script(_asset(ELK_SCRIPT)) + "\n" + _viewer_script() + "\n"
    )


def viewer_section(compiled: "Compiled", depth: int | None = None, height_px: int = SECTION_HEIGHT_PX) -> str:
    """The interactive viewer as an HTML fragment, for another page (the HTML report)."""
    return viewer_html(view_model(compiled, depth), f"{height_px}px")


def view_page(compiled: "Compiled", depth: int | None = None) -> str:
    """The whole viewer page of one compiled spec: what `archspec view` writes."""
    model = view_model(compiled, depth)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<link rel="icon" href="data:,">\n'  # no favicon request
        f"<title>{html.escape(model['name'])} · archspec view</title>\n"
        "<style>html, body { height: 100%; margin: 0; } body > .archspec-viewer { border: 0; border-radius: 0; }</style>\n"
        f"</head>\n<body>\n{viewer_html(model)}</body>\n</html>\n"
    )
