"""Blur degradations: linear motion blur and defocus (disc) blur.

The kernel is returned in ``arrays["kernel"]``; its spatial standard deviation (the
``blur`` scale's quantity, px) is ``length / sqrt(12)`` for a line and ``radius / 2`` for a disc.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from .base import Degraded, DegradationCard, register_degradation
from .severity import level_of, value_in_level

__all__ = ["line_kernel", "disc_kernel", "kernel_std", "convolve"]


def line_kernel(length: float, angle_deg: float) -> np.ndarray:
    """Normalised anti-aliased line of ``length`` px at ``angle_deg`` (0 = horizontal).

    Example:
        >>> k = line_kernel(5, 0)
        >>> round(float(k.sum()), 6), k.shape
        (1.0, (7, 7))
    """
    size = int(np.ceil(length)) // 2 * 2 + 3
    c = size // 2
    kernel = np.zeros((size * 4, size * 4), np.float32)  # drawn 4x larger, then area-averaged
    dx, dy = np.cos(np.deg2rad(angle_deg)), -np.sin(np.deg2rad(angle_deg))
    half = length / 2 * 4
    p0 = (int(round(c * 4 + 1.5 - dx * half)), int(round(c * 4 + 1.5 - dy * half)))
    p1 = (int(round(c * 4 + 1.5 + dx * half)), int(round(c * 4 + 1.5 + dy * half)))
    cv2.line(kernel, p0, p1, 1.0, thickness=4, lineType=cv2.LINE_AA)
    kernel = cv2.resize(kernel, (size, size), interpolation=cv2.INTER_AREA)
    return (kernel / kernel.sum()).astype(np.float32)


def disc_kernel(radius: float) -> np.ndarray:
    """Normalised anti-aliased disc (defocus point-spread function) of ``radius`` px.

    Example:
        >>> round(float(disc_kernel(3).sum()), 6)
        1.0
    """
    size = int(np.ceil(radius)) * 2 + 3
    c = (size - 1) / 2
    sub = 8
    yy, xx = np.mgrid[0:size * sub, 0:size * sub].astype(np.float32)
    inside = (np.hypot((xx + 0.5) / sub - 0.5 - c, (yy + 0.5) / sub - 0.5 - c) <= radius).astype(np.float32)
    kernel = inside.reshape(size, sub, size, sub).mean(axis=(1, 3))
    return (kernel / kernel.sum()).astype(np.float32)


def kernel_std(kernel: np.ndarray) -> float:
    """Spatial standard deviation of a kernel, averaged over the two axes (px).

    Example:
        >>> round(kernel_std(line_kernel(12, 0)) * 2 ** 0.5, 1)   # 12 / sqrt(12) = 3.46, plus the width
        3.7
    """
    k = kernel / kernel.sum()
    yy, xx = np.mgrid[0:k.shape[0], 0:k.shape[1]]
    my, mx = (k * yy).sum(), (k * xx).sum()
    var = (k * ((yy - my) ** 2 + (xx - mx) ** 2)).sum()
    return float(np.sqrt(var / 2))


def convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve every channel with ``kernel`` (reflected borders)."""
    return cv2.filter2D(image, -1, kernel[::-1, ::-1].copy(), borderType=cv2.BORDER_REFLECT101)


def _sample_motion(rng: np.random.Generator, level: int) -> dict[str, Any]:
    return {"std": value_in_level("blur", level, rng), "angle": float(rng.uniform(0, 180))}


@register_degradation(DegradationCard(
    "blur.motion", "blur", "linear motion blur of the given kernel std (px) and angle (degrees)",
    labels=("blur",), params={"std": None, "angle": None}), _sample_motion)
def motion(image: np.ndarray, rng: np.random.Generator, std: float, angle: float) -> Degraded:
    # A line of length L has std L / sqrt(12) along it and ~0 across: averaged over two axes,
    # std_2d = L / sqrt(24); the scale uses the along-line std, L / sqrt(12).
    length = max(2.0, float(std) * np.sqrt(12.0))
    kernel = line_kernel(length, float(angle))
    return Degraded(convolve(image, kernel), {"length": length}, {"blur": level_of("blur", std)},
                    arrays={"kernel": kernel})


def _sample_defocus(rng: np.random.Generator, level: int) -> dict[str, Any]:
    return {"std": value_in_level("blur", level, rng)}


@register_degradation(DegradationCard(
    "blur.defocus", "blur", "defocus blur: a disc point-spread function of the given std (px)",
    labels=("blur",), params={"std": None}), _sample_defocus)
def defocus(image: np.ndarray, rng: np.random.Generator, std: float) -> Degraded:
    # A uniform disc of radius r has per-axis std r / 2.
    radius = max(0.75, 2.0 * float(std))
    kernel = disc_kernel(radius)
    return Degraded(convolve(image, kernel), {"radius": radius}, {"blur": level_of("blur", std)},
                    arrays={"kernel": kernel})
