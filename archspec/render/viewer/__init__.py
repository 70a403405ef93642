"""`archspec view`: one self-contained, offline HTML page to explore a compiled spec.

`model` turns a compiled spec into the data the page reads (figures from the passes, no torch);
`page` inlines it with the viewer's scripts and the vendored ELK layout library (vendor/,
VENDORED.md). The page lays out only the shown graph: closed blocks stand for what they hold.
"""
from archspec.render.viewer.model import view_model
from archspec.render.viewer.page import view_page, viewer_section

__all__ = ["view_model", "view_page", "viewer_section"]
