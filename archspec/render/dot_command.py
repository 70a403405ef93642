"""Running graphviz's `dot` on DOT text: the one place the diagram leaves the process."""
from __future__ import annotations

import re
import shutil
import subprocess

from archspec.errors import ArchspecError

DOT_TIMEOUT_S = 120
DOT_MISSING = (
    "graphviz's `dot` program is not installed; install it with `apt-get install graphviz` "
    "(Debian/Ubuntu) or `brew install graphviz` (macOS)"
)


def dot_program() -> str:
    """The path of the system `dot`, or an ArchspecError that says how to install it."""
    found = shutil.which("dot")
    if not found:
        raise ArchspecError(DOT_MISSING)
    return found


def render(source: str, fmt: str, timeout: float = DOT_TIMEOUT_S) -> bytes:
    """Run `dot -T<fmt>` on DOT text and return the image."""
    if fmt not in ("svg", "png", "pdf", "json"):  # json: dot's layout coordinates (tests)
        raise ArchspecError(f"cannot render to '{fmt}': use svg, png or pdf")
    program = dot_program()
    try:
        done = subprocess.run([program, f"-T{fmt}"], input=source.encode(), capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise ArchspecError(f"graphviz's dot took longer than {timeout:g} s; try a smaller --depth") from None
    except OSError as err:
        raise ArchspecError(f"cannot run graphviz's dot ({program}): {err.strerror or err}") from None
    if done.returncode != 0 or not done.stdout:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise ArchspecError("graphviz's dot failed: " + (message[-1] if message else f"exit code {done.returncode}"))
    return done.stdout


def render_svg_text(source: str, timeout: float = DOT_TIMEOUT_S) -> str:
    """SVG ready to inline in HTML: no XML prolog, doctype or comments."""
    svg = render(source, "svg", timeout).decode("utf-8")
    svg = re.sub(r"<\?xml[^>]*\?>", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>", "", svg)
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.DOTALL)
    return svg.strip()
