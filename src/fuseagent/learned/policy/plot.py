"""Training curves as a PNG, drawn with Pillow (matplotlib is not a dependency)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["plot_curves"]

_COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (23, 190, 207))


def plot_curves(path: str | os.PathLike, series: Mapping[str, Sequence[tuple[float, float]]], title: str = "",
                size: tuple[int, int] = (720, 420), x_label: str = "step") -> Path:
    """Draw ``name -> [(x, y), …]`` line series on one set of axes and write a PNG.

    Each series is drawn in its own colour with its name in the legend; y limits span all series.

    Example:
        >>> import tempfile
        >>> p = plot_curves(Path(tempfile.mkdtemp()) / "c.png", {"loss": [(0, 2.0), (1, 1.0), (2, 0.5)]}, "SFT")
        >>> from PIL import Image; Image.open(p).size
        (720, 420)
    """
    from PIL import Image, ImageDraw

    from ...io import atomic_write

    width, height = size
    left, right, top, bottom = 64, 16, 28, 40
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    points = [(float(x), float(y)) for s in series.values() for x, y in s if np.isfinite(y)]
    if points:
        xs, ys = zip(*points)
        x0, x1 = min(xs), max(xs)
        y0, y1 = min(ys), max(ys)
    else:
        x0 = y0 = 0.0
        x1 = y1 = 1.0
    if x1 <= x0:
        x1 = x0 + 1.0
    if y1 <= y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pad = 0.05 * (y1 - y0)
    y0, y1 = y0 - pad, y1 + pad

    def to_px(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x0) / (x1 - x0) * (width - left - right),
                height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom))

    draw.rectangle([left, top, width - right, height - bottom], outline=(0, 0, 0))
    for k in range(5):
        yv = y0 + (y1 - y0) * k / 4
        _, py = to_px(x0, yv)
        draw.line([left - 4, py, left, py], fill=(0, 0, 0))
        draw.text((4, py - 6), f"{yv:.3g}", fill=(0, 0, 0))
        xv = x0 + (x1 - x0) * k / 4
        px, _ = to_px(xv, y0)
        draw.line([px, height - bottom, px, height - bottom + 4], fill=(0, 0, 0))
        draw.text((px - 10, height - bottom + 8), f"{xv:.3g}", fill=(0, 0, 0))
    draw.text((left, 8), title, fill=(0, 0, 0))
    draw.text((width - right - 40, height - 16), x_label, fill=(0, 0, 0))
    for n, (name, values) in enumerate(series.items()):
        colour = _COLOURS[n % len(_COLOURS)]
        pts = [to_px(float(x), float(y)) for x, y in values if np.isfinite(y)]
        if len(pts) >= 2:
            draw.line(pts, fill=colour, width=2)
        elif pts:
            draw.ellipse([pts[0][0] - 2, pts[0][1] - 2, pts[0][0] + 2, pts[0][1] + 2], fill=colour)
        ly = top + 12 + 14 * n
        draw.line([width - right - 200, ly, width - right - 180, ly], fill=colour, width=2)
        draw.text((width - right - 174, ly - 6), name, fill=colour)
    path = Path(path)
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))
    return path
