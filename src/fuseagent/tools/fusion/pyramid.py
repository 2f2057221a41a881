"""Gaussian and Laplacian pyramids (Burt & Adelson, 1983) for images of any size.

Levels are built with OpenCV's 5×5 binomial ``pyrDown``/``pyrUp``; each expansion is given the
exact size of the finer level, so odd widths and heights round-trip: :func:`collapse` of
:func:`laplacian_pyramid` returns the input up to float rounding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["pyramid_levels", "gaussian_pyramid", "laplacian_pyramid", "collapse", "expand_to"]

# The coarsest level keeps at least this many pixels on its shorter side.
_MIN_COARSEST_SIDE = 8


def pyramid_levels(shape: Sequence[int], max_levels: int | None = None) -> int:
    """Number of pyramid levels (including the finest) for an image of ``shape``.

    Halves the shorter side until it would drop below 8 pixels; at least 1 level.

    Example:
        >>> pyramid_levels((480, 640)), pyramid_levels((77, 101)), pyramid_levels((4, 4))
        (6, 4, 1)
    """
    short = min(int(shape[0]), int(shape[1]))
    levels = 1 + max(0, int(math.floor(math.log2(max(short, 1) / _MIN_COARSEST_SIDE))))
    return levels if max_levels is None else max(1, min(levels, int(max_levels)))


def expand_to(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Upsample one pyramid level to ``size = (H, W)`` (binomial interpolation).

    Example:
        >>> expand_to(np.ones((39, 51), np.float32), (77, 101)).shape
        (77, 101)
    """
    h, w = size
    return cv2.pyrUp(np.ascontiguousarray(image, dtype=np.float32), dstsize=(w, h))


def gaussian_pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """Gaussian pyramid, finest first: ``levels`` float32 arrays.

    Example:
        >>> [g.shape for g in gaussian_pyramid(np.zeros((77, 101), np.float32), 3)]
        [(77, 101), (39, 51), (20, 26)]
    """
    out = [np.ascontiguousarray(image, dtype=np.float32)]
    for _ in range(int(levels) - 1):
        out.append(cv2.pyrDown(out[-1]))
    return out


def laplacian_pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """Laplacian pyramid, finest first; the last entry is the coarse Gaussian residual.

    Example:
        >>> x = np.random.default_rng(0).random((77, 101, 3)).astype(np.float32)
        >>> bool(np.abs(collapse(laplacian_pyramid(x, 4)) - x).max() < 1e-5)
        True
    """
    gauss = gaussian_pyramid(image, levels)
    bands = [fine - expand_to(coarse, fine.shape[:2]) for fine, coarse in zip(gauss[:-1], gauss[1:])]
    bands.append(gauss[-1])
    return bands


def collapse(pyramid: Sequence[np.ndarray]) -> np.ndarray:
    """Rebuild an image from a Laplacian pyramid (finest first)."""
    image = pyramid[-1]
    for band in reversed(pyramid[:-1]):
        image = band + expand_to(image, band.shape[:2])
    return image.astype(np.float32)
