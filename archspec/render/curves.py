"""A training run's curves: loss and the main metric per epoch, read from the run's
metrics.jsonl, for the file report (`report --run RUN`) and the run's own curves.png; and a
detection run's sample predictions (predictions.png)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from archspec.errors import ArchspecError
from archspec.render.charts import new_figure, svg_text
from archspec.runs import MAIN_METRICS, PREDICTIONS_FILE


def read_run(run: Path) -> tuple[list[dict[str, Any]], str]:
    """The epoch rows of a training run folder, and its main metric."""
    import json

    from archspec.spec.reading import read_bounded_text  # stat first, bounded: not /dev/zero or a FIFO

    path = Path(run) / "metrics.jsonl"
    try:
        rows = [json.loads(line) for line in read_bounded_text(path).splitlines() if line.strip()]
    except FileNotFoundError:
        raise ArchspecError(f"--run {run}: no metrics.jsonl there (not a training run folder)") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ArchspecError(f"--run {run}: cannot read {path}: {err}") from None
    except RecursionError:  # json.loads of a line nested thousands deep
        raise ArchspecError(f"--run {run}: cannot read {path}: a line is nested too deeply to be a metrics row") from None
    if not rows or not all(isinstance(row, dict) and "epoch" in row for row in rows):
        raise ArchspecError(f"--run {run}: {path} holds no epoch rows yet")
    metric = next((m for m in MAIN_METRICS.values() if f"test_{m}" in rows[-1]), "accuracy")
    return rows, metric


def curves_figure(rows: list[dict[str, Any]], metric: str, figure=None):
    """Loss (train, test) and the main metric per epoch, side by side."""
    figure = figure or new_figure(9, 3.5)
    epochs = [row["epoch"] for row in rows]
    for axes, keys, title in zip(figure.subplots(1, 2), (("train_loss", "test_loss"), (f"train_{metric}", f"test_{metric}")),
                                 ("loss", metric)):
        for key in keys:
            if all(key in row for row in rows):
                axes.plot(epochs, [row[key] for row in rows], marker="o", label=key)
        axes.set_xlabel("epoch")
        axes.set_title(title)
        axes.legend()
    return figure


def training_chart(run: Path) -> tuple[str, str]:
    """(caption, SVG) of a run's curves, the caption giving its final test figures."""
    rows, metric = read_run(run)
    last = rows[-1]
    finals = ", ".join(f"{key.removeprefix('test_')} {value:.4f}" for key, value in last.items()
                       if key.startswith("test_") and isinstance(value, (int, float)))
    caption = f"Training run {run}: {len(rows)} epochs; final test {finals}"
    return caption, svg_text(curves_figure(rows, metric), "training")


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PREDICTIONS_BYTES = 16 << 20


def predictions_chart(run: Path) -> tuple[str, str] | None:
    """(caption, SVG) showing a detection run's predictions.png, or None where the run has none.
    The PNG goes in as a data URI of an <image>: the report never inlines markup read from a file."""
    import base64
    import struct

    from archspec.spec.reading import read_bounded

    path = Path(run) / PREDICTIONS_FILE
    if not path.is_file():
        return None
    try:
        data = read_bounded(path, MAX_PREDICTIONS_BYTES)
    except OSError as err:
        raise ArchspecError(f"--run {run}: cannot read {path}: {err}") from None
    if data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise ArchspecError(f"--run {run}: {path} is not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
           f'height="{height}"><image href="{uri}" width="{width}" height="{height}"/></svg>')
    return "Sample test predictions (coloured: detected, with pc; white: ground truth)", svg
