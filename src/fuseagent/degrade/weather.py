"""Weather degradations: haze by atmospheric scattering, rain streaks and snow.

* Haze follows Koschmieder's model (used by He et al.'s dark channel prior, CVPR 2009):
  ``I = J t + A (1 - t)`` with transmission ``t = exp(-beta d)``. The depth proxy ``d`` mixes the
  row position (far at the top) with the smoothed brightness (sky and distant scenery are bright);
  ``beta`` is solved so that the haze density ``1 - mean(t)`` hits the requested value.
* Rain: sparse drops smeared along one direction (a line kernel), screen-blended.
* Snow: flakes of two sizes, softened and screen-blended.

Both precipitation types report the same perceived type, ``rain`` (coverage = fraction of pixels
brightened by more than 0.1, i.e. visibly), and the mask ``precipitation``.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from ..io import to_gray
from .base import Degraded, DegradationCard, register_degradation
from .blur import line_kernel
from .severity import level_of, value_in_level

__all__ = ["depth_proxy", "add_haze"]

_COVERAGE_THRESHOLD = 0.1


def depth_proxy(image: np.ndarray) -> np.ndarray:
    """Relative depth in ``[0, 1]`` (1 = far): row position blended with smoothed brightness.

    Example:
        >>> d = depth_proxy(np.zeros((10, 4), np.float32))
        >>> bool(d[0, 0] > d[-1, 0])
        True
    """
    h, w = image.shape[:2]
    rows = np.linspace(1.0, 0.0, h, dtype=np.float32)[:, None] * np.ones((1, w), np.float32)
    sigma = 0.05 * max(h, w)
    bright = cv2.GaussianBlur(to_gray(image), (0, 0), sigma)
    span = float(bright.max() - bright.min())
    bright = (bright - bright.min()) / span if span > 1e-6 else np.zeros_like(bright)
    depth = 0.65 * rows + 0.35 * bright
    return ((depth - depth.min()) / max(1e-6, float(depth.max() - depth.min()))).astype(np.float32)


def add_haze(image: np.ndarray, transmission: np.ndarray, airlight: np.ndarray | float) -> np.ndarray:
    """Atmospheric scattering ``I = J t + A (1 - t)``."""
    t = transmission[..., None] if image.ndim == 3 else transmission
    return (image * t + np.asarray(airlight, np.float32) * (1.0 - t)).astype(np.float32)


def _sample_haze(rng: np.random.Generator, level: int) -> dict[str, Any]:
    return {"density": value_in_level("haze", level, rng), "airlight": float(rng.uniform(0.75, 0.95)),
            "tint": float(rng.uniform(-0.04, 0.04))}


@register_degradation(DegradationCard(
    "haze.scattering", "weather", "haze by atmospheric scattering over a depth proxy, density = 1 - mean transmission",
    labels=("haze",), params={"density": None, "airlight": None, "tint": 0.0}), _sample_haze)
def haze(image: np.ndarray, rng: np.random.Generator, density: float, airlight: float, tint: float) -> Degraded:
    depth = 0.15 + 0.85 * depth_proxy(image)
    target = 1.0 - float(density)
    sub = depth[::4, ::4]
    lo, hi = 0.0, 50.0
    for _ in range(30):  # mean(exp(-beta d)) decreases with beta: bisection (on a subsample)
        beta = 0.5 * (lo + hi)
        if float(np.exp(-beta * sub).mean()) > target:
            lo = beta
        else:
            hi = beta
    transmission = np.exp(-beta * depth).astype(np.float32)
    air = np.array([airlight - tint, airlight, airlight + tint], np.float32) if image.ndim == 3 else np.float32(airlight)
    out = add_haze(image, transmission, air)
    real_density = float(1.0 - transmission.mean())
    return Degraded(out, {"beta": beta, "density": real_density}, {"haze": level_of("haze", real_density)},
                    arrays={"transmission": transmission, "depth": depth})


def _screen(image: np.ndarray, layer: np.ndarray) -> np.ndarray:
    layer = np.clip(layer, 0, 1)
    return 1.0 - (1.0 - image) * (1.0 - (layer[..., None] if image.ndim == 3 else layer))


def _fit_coverage(make_layer: Any, coverage: float) -> tuple[np.ndarray, float]:
    # Coverage grows about linearly with the seed density at these low densities: a few secant
    # steps from a first guess, keeping the closest result.
    p = float(coverage) / 40.0
    best: tuple[float, np.ndarray, float] | None = None
    for _ in range(5):
        layer = make_layer(p)
        got = float((layer > _COVERAGE_THRESHOLD).mean())
        if best is None or abs(got - coverage) < best[0]:
            best = (abs(got - coverage), layer, p)
        if got <= 0:
            p *= 4.0
            continue
        if abs(got - coverage) < 0.01 * coverage:
            break
        p = float(np.clip(p * coverage / got, 1e-7, 0.5))
    return best[1], best[2]


def _sample_rain(rng: np.random.Generator, level: int) -> dict[str, Any]:
    return {"coverage": value_in_level("rain", level, rng), "angle": float(rng.uniform(-30, 30)),
            "length": float(rng.uniform(12, 30)), "brightness": float(rng.uniform(0.5, 0.85))}


@register_degradation(DegradationCard(
    "weather.rain", "weather", "rain streaks: drops smeared along a direction, covering a fraction of the frame",
    labels=("rain",), params={"coverage": None, "angle": None, "length": None, "brightness": None}), _sample_rain)
def rain(image: np.ndarray, rng: np.random.Generator, coverage: float, angle: float, length: float,
         brightness: float) -> Degraded:
    h, w = image.shape[:2]
    field = rng.random((h, w)).astype(np.float32)
    strength = rng.uniform(0.5, 1.0, (h, w)).astype(np.float32)
    kernel = line_kernel(float(length), 90.0 + float(angle))
    kernel = kernel / kernel.max()
    widen = np.array([[0.5, 1.0, 0.5]], np.float32)

    def make(p: float) -> np.ndarray:
        drops = np.where(field < p, strength, 0).astype(np.float32)
        streaks = cv2.filter2D(cv2.filter2D(drops, -1, widen), -1, kernel)
        return np.clip(streaks, 0, 1) * float(brightness)

    layer, density = _fit_coverage(make, float(coverage))
    mask = layer > _COVERAGE_THRESHOLD
    real = float(mask.mean())
    return Degraded(_screen(image, layer), {"drop_density": density, "coverage": real},
                    {"rain": level_of("rain", real)}, masks={"precipitation": mask})


def _sample_snow(rng: np.random.Generator, level: int) -> dict[str, Any]:
    return {"coverage": value_in_level("rain", level, rng), "flake_radius": float(rng.uniform(1.0, 2.5)),
            "brightness": float(rng.uniform(0.75, 1.0))}


@register_degradation(DegradationCard(
    "weather.snow", "weather", "snow: soft bright flakes of two sizes covering a fraction of the frame",
    labels=("rain",), params={"coverage": None, "flake_radius": None, "brightness": None}), _sample_snow)
def snow(image: np.ndarray, rng: np.random.Generator, coverage: float, flake_radius: float,
         brightness: float) -> Degraded:
    h, w = image.shape[:2]
    field = rng.random((h, w)).astype(np.float32)
    big = rng.random((h, w)) < 0.25
    strength = rng.uniform(0.6, 1.0, (h, w)).astype(np.float32)
    r_small, r_big = float(flake_radius), float(flake_radius) * 2.0

    def make(p: float) -> np.ndarray:
        seeds = field < p
        small = cv2.GaussianBlur(np.where(seeds & ~big, strength, 0).astype(np.float32), (0, 0), r_small)
        large = cv2.GaussianBlur(np.where(seeds & big, strength, 0).astype(np.float32), (0, 0), r_big)
        # A blurred point of unit height peaks at 1 / (2 pi r^2): renormalise each size to height
        # ~1.5 (clipped), so that a flake is a solid disc with a soft rim.
        gain = 1.5 * 2 * np.pi
        return np.clip(small * gain * r_small ** 2 + large * gain * r_big ** 2, 0, 1) * float(brightness)

    layer, density = _fit_coverage(make, float(coverage))
    mask = layer > _COVERAGE_THRESHOLD
    real = float(mask.mean())
    return Degraded(_screen(image, layer), {"flake_density": density, "coverage": real},
                    {"rain": level_of("rain", real)}, masks={"precipitation": mask})
