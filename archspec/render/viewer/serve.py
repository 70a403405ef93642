"""`archspec serve DIR`: a local web page per spec in DIR, for students writing specs: it reloads
when a YAML file under DIR changes, and shows a spec's located error where its viewer would be.

Pages are made on request from the files as they are (one compile each); the page asks the
server for `/stamp` every second and reloads when it changes. Bound to localhost by default.
"""
from __future__ import annotations

import html
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from archspec.errors import ArchspecError

POLL_MS = 1000
RELOAD_SCRIPT = """<script>(function () {
  const known = %s;
  setInterval(function () {
    fetch("/stamp").then(function (r) { return r.text(); })
      .then(function (now) { if (now !== known) location.reload(); }).catch(function () {});
  }, %d);
})();</script>"""
STYLE = ("<style>body{font:14px/1.5 system-ui,sans-serif;margin:24px;color:#1f2430} a{color:#2c6fbb}"
         " pre.error{background:#fff1f0;border:1px solid #f0b4ae;border-radius:6px;padding:12px;white-space:pre-wrap}</style>")


def stamp(folder: Path) -> str:
    """Changes when a YAML file under `folder` is written, added or removed."""
    seen = []
    for path in sorted(folder.rglob("*.yaml")):
        try:
            info = path.stat()
        except OSError:  # removed while listed: the next poll sees it gone
            continue
        seen.append(f"{path.relative_to(folder)}:{info.st_mtime_ns}:{info.st_size}")
    return str(hash(tuple(seen)))


def _reload(known: str) -> str:
    return RELOAD_SCRIPT % (f'"{known}"', POLL_MS)


def _page(title: str, body: str, known: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">'
            f"<title>{html.escape(title)}</title>{STYLE}</head><body>{body}{_reload(known)}</body></html>\n")


def index_page(folder: Path) -> str:
    known = stamp(folder)
    specs = sorted(folder.glob("*.yaml"))
    items = "".join(f'<li><a href="/spec/{quote(path.name)}">{html.escape(path.name)}</a></li>' for path in specs)
    body = f"<h1>{html.escape(str(folder))}</h1><ul>{items or '<li>no .yaml files yet</li>'}</ul>"
    return _page(f"archspec serve {folder}", body, known)


def spec_page(folder: Path, spec: Path) -> str:
    """The viewer of `spec`, or its located error; both reload when a file changes."""
    from archspec import pipeline
    from archspec.render.viewer.page import view_page

    known = stamp(folder)  # before the compile: a change while it runs reloads the page
    try:
        page = view_page(pipeline.compile(spec))
    except ArchspecError as err:
        body = (f'<p><a href="/">all specs</a></p><h1>{html.escape(spec.name)}</h1>'
                f'<pre class="error">error: {html.escape(str(err))}</pre>')
        return _page(spec.name, body, known)
    head, _, tail = page.rpartition("</body>")
    return head + _reload(known) + "</body>" + tail


class _Handler(BaseHTTPRequestHandler):
    folder: Path  # set per server by make_server

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = unquote(urlsplit(self.path).path)
        if path == "/":
            self._send(200, index_page(self.folder))
        elif path == "/stamp":
            self._send(200, stamp(self.folder), "text/plain")
        elif path.startswith("/spec/") and (spec := self._spec(path[len("/spec/"):])) is not None:
            self._send(200, spec_page(self.folder, spec))
        else:
            self._send(404, "not found", "text/plain")

    def _spec(self, name: str) -> Path | None:
        """A .yaml file inside the folder, never one outside it."""
        path = (self.folder / name).resolve()
        inside = path.is_relative_to(self.folder.resolve())
        return path if inside and path.suffix == ".yaml" and path.is_file() else None

    def _send(self, status: int, text: str, kind: str = "text/html") -> None:
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's signature)
        """Quiet: a page polls every second."""


def make_server(folder: Path, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """A server for `folder` (not yet serving: call serve_forever); port 0 picks a free one."""
    if not folder.is_dir():
        raise ArchspecError(f"{folder}: not a folder of specs")
    handler = type("Handler", (_Handler,), {"folder": folder})
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as err:
        raise ArchspecError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    server.daemon_threads = True
    return server


def serve_in_background(server: ThreadingHTTPServer) -> threading.Thread:
    """For tests and notebooks: serve from a daemon thread; `server.shutdown()` stops it."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread
