"""Resolution degradations: low resolution (detail lost, size kept) and a resolution mismatch
between the two images of a pair (the image is smaller)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from .base import Degraded, DegradationCard, register_degradation
from .severity import level_of, value_in_level

__all__ = ["downsample"]


def downsample(image: np.ndarray, factor: float) -> np.ndarray:
    """Area-average ``image`` down by ``factor`` (≥ 1).

    Example:
        >>> downsample(np.ones((40, 60), np.float32), 4.0).shape
        (10, 15)
    """
    h, w = image.shape[:2]
    size = (max(2, int(round(w / factor))), max(2, int(round(h / factor))))
    return np.clip(cv2.resize(image, size, interpolation=cv2.INTER_AREA), 0, 1).astype(np.float32)


def _sample_factor(rng: np.random.Generator, level: int) -> dict[str, Any]:
    return {"factor": value_in_level("low_resolution", level, rng)}


@register_degradation(DegradationCard(
    "resolution.low", "resolution", "low resolution: downsample by a factor, then bicubic back to the size",
    labels=("low_resolution",), params={"factor": None}), _sample_factor)
def low_resolution(image: np.ndarray, rng: np.random.Generator, factor: float) -> Degraded:
    h, w = image.shape[:2]
    small = downsample(image, float(factor))
    up = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return Degraded(up, {"small_size": [small.shape[0], small.shape[1]]},
                    {"low_resolution": level_of("low_resolution", factor)})


@register_degradation(DegradationCard(
    "resolution.mismatch", "resolution", "resolution mismatch: the image is stored smaller by a factor",
    labels=("resolution_mismatch",), params={"factor": None}), _sample_factor)
def resolution_mismatch(image: np.ndarray, rng: np.random.Generator, factor: float) -> Degraded:
    h, w = image.shape[:2]
    small = downsample(image, float(factor))
    sy, sx = small.shape[0] / h, small.shape[1] / w
    # Pixel centres: x' + 0.5 = (x + 0.5) * s.
    transform = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]])
    return Degraded(small, {"scale": [sy, sx]}, {"resolution_mismatch": level_of("low_resolution", factor)},
                    transform)
