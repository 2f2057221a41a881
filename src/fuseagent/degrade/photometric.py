"""Photometric degradations: exposure change through a camera response curve, low light,
white-balance shift, vignetting and glare.

Exposure is changed where it physically happens, on scene radiance: the image is linearised by
the inverse of a gamma camera response curve ``f(E) = E^(1/gamma)``, scaled by ``2^ev``, clipped
at the sensor's full well and mapped back through ``f``. In pixel values that is a gain of
``2^(ev/gamma)`` with clipping, so an image shows only ``ev/gamma``: its over-exposure / low-light
label is read from :func:`effective_ev`, the EV that the reference response (gamma 2.2, the one
perception linearises with) needs for the same pixel gain. Labelling by the raw ``ev`` would give
identical images different labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..io import to_gray
from .base import Degraded, DegradationCard, register_degradation
from .severity import level_of, value_in_level

__all__ = ["REFERENCE_GAMMA", "linearise", "apply_response", "change_exposure", "effective_ev", "add_poisson_gaussian",
           "scale_saturation"]

#: Response exponent that exposure labels (and perception) are read on.
REFERENCE_GAMMA = 2.2


def linearise(image: np.ndarray, gamma: float) -> np.ndarray:
    """Inverse camera response: pixel values → relative radiance.

    Example:
        >>> float(linearise(np.array([0.5], np.float32), 2.0)[0])
        0.25
    """
    return np.power(np.clip(image, 0, 1), gamma).astype(np.float32)


def apply_response(radiance: np.ndarray, gamma: float) -> np.ndarray:
    """Camera response: relative radiance (clipped to the full well 1) → pixel values."""
    return np.power(np.clip(radiance, 0, 1), 1.0 / gamma).astype(np.float32)


def change_exposure(image: np.ndarray, ev: float, gamma: float = 2.2) -> np.ndarray:
    """Re-expose ``image`` by ``ev`` stops through a gamma response curve.

    Example:
        >>> out = change_exposure(np.array([[0.25, 0.9]], np.float32), 1.0, gamma=2.0)
        >>> [round(float(v), 3) for v in out[0]]
        [0.354, 1.0]
    """
    return apply_response(linearise(image, gamma) * float(2.0 ** ev), gamma)


def effective_ev(ev: float, gamma: float) -> float:
    """EV through the reference response that gives the same pixel gain as ``ev`` through ``gamma``.

    Example:
        >>> round(effective_ev(0.6, 1.8), 3), round(effective_ev(0.6, 2.2), 3)
        (0.733, 0.6)
    """
    return float(ev) * REFERENCE_GAMMA / float(gamma)


def add_poisson_gaussian(image: np.ndarray, peak: float, read_sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Shot noise (``peak`` photo-electrons at full scale) plus Gaussian read noise."""
    shot = rng.poisson(np.clip(image, 0, 1).astype(np.float64) * peak) / peak
    return (shot + rng.normal(0.0, read_sigma, image.shape)).astype(np.float32)


def scale_saturation(image: np.ndarray, gain: float) -> np.ndarray:
    """Scale a colour image's distance from its grey (luminance) by ``gain``, clipped to ``[0, 1]``:
    the vivid or muted rendering of one scene by different cameras. Grey images pass through.

    Example:
        >>> px = np.array([[[0.6, 0.4, 0.2]]], np.float32)
        >>> [round(float(v), 3) for v in scale_saturation(px, 2.0)[0, 0]]
        [0.763, 0.363, 0.0]
    """
    if image.ndim != 3:
        return image
    gray = to_gray(image)[..., None]
    return np.clip(gray + float(gain) * (image - gray), 0.0, 1.0).astype(np.float32)


def _exposure_labels(ev: float, gamma: float) -> dict[str, int]:
    ev = effective_ev(ev, gamma)
    labels = {"exposure_mismatch": level_of("exposure_mismatch", abs(ev))}
    if ev > 0:
        labels["over_exposure"] = level_of("over_exposure", ev)
    else:
        labels["low_light"] = level_of("low_light", -ev)
    return {k: v for k, v in labels.items() if v > 0}


def _sample_exposure(rng: np.random.Generator, level: int) -> dict[str, Any]:
    if rng.random() < 0.5:
        ev = value_in_level("over_exposure", level, rng)
    else:
        ev = -value_in_level("low_light", level, rng)
    return {"ev": ev, "gamma": float(rng.uniform(1.8, 2.6))}


@register_degradation(DegradationCard(
    "photometric.exposure", "photometric", "exposure change by ev stops through a gamma camera response curve",
    labels=("over_exposure", "low_light", "exposure_mismatch"), params={"ev": None, "gamma": None}), _sample_exposure)
def exposure(image: np.ndarray, rng: np.random.Generator, ev: float, gamma: float) -> Degraded:
    out = change_exposure(image, float(ev), float(gamma))
    clipped = (out >= 0.999) & (image < 0.999) if ev > 0 else np.zeros(image.shape, bool)
    masks = {"clipped": clipped.any(axis=2) if clipped.ndim == 3 else clipped}
    return Degraded(out, {}, _exposure_labels(float(ev), float(gamma)), None, masks)


def _sample_low_light(rng: np.random.Generator, level: int) -> dict[str, Any]:
    return {"ev": -value_in_level("low_light", level, rng), "gamma": float(rng.uniform(1.8, 2.6)),
            "peak": float(rng.uniform(1500, 5000)), "read_sigma": float(rng.uniform(0.001, 0.004))}


@register_degradation(DegradationCard(
    "photometric.low_light", "photometric",
    "low light: exposure lowered by |ev| stops with signal-dependent (Poisson-Gaussian) sensor noise",
    labels=("low_light", "noise"), params={"ev": None, "gamma": None, "peak": None, "read_sigma": None}),
    _sample_low_light)
def low_light(image: np.ndarray, rng: np.random.Generator, ev: float, gamma: float, peak: float,
              read_sigma: float) -> Degraded:
    dark = change_exposure(image, -abs(float(ev)), float(gamma))
    noisy = np.clip(add_poisson_gaussian(dark, float(peak), float(read_sigma), rng), 0, 1)
    noise_std = float(np.std(noisy - dark))
    labels = {"low_light": level_of("low_light", abs(effective_ev(ev, gamma))), "noise": level_of("noise", noise_std)}
    return Degraded(noisy, {"noise_std": noise_std}, {k: v for k, v in labels.items() if v > 0})


def _sample_white_balance(rng: np.random.Generator, level: int) -> dict[str, Any]:
    edges = (0.06, 0.12, 0.2, 0.3, 0.42, 0.56)
    shift = float(rng.uniform(edges[level - 1], edges[level]))
    return {"log_rb": shift * float(rng.choice([-1.0, 1.0])), "log_g": float(rng.uniform(-0.05, 0.05))}


@register_degradation(DegradationCard(
    "photometric.white_balance", "photometric",
    "white-balance shift: per-channel gains in linear radiance (warm/cool cast, log red/blue ratio log_rb)",
    labels=("white_balance",), params={"log_rb": None, "log_g": None, "gamma": 2.2}, needs_colour=True),
    _sample_white_balance)
def white_balance(image: np.ndarray, rng: np.random.Generator, log_rb: float, log_g: float, gamma: float) -> Degraded:
    gains = np.exp(np.array([log_rb / 2, log_g, -log_rb / 2], np.float32))
    gains /= float(gains @ np.array([0.299, 0.587, 0.114], np.float32))  # keep luminance
    out = apply_response(linearise(image, gamma) * gains, gamma)
    level = int(np.clip(np.searchsorted((0.06, 0.12, 0.2, 0.3, 0.42, 0.56), abs(log_rb), side="right"), 0, 5))
    return Degraded(out, {"gains": gains.tolist()}, {"white_balance": level} if level else {})


def _sample_vignetting(rng: np.random.Generator, level: int) -> dict[str, Any]:
    return {"corner_gain": float(1.0 - rng.uniform(0.1 * level, 0.1 * level + 0.1))}


@register_degradation(DegradationCard(
    "photometric.vignetting", "photometric", "vignetting: cos^4 fall-off reaching corner_gain at the corners",
    labels=("vignetting",), params={"corner_gain": None}), _sample_vignetting)
def vignetting(image: np.ndarray, rng: np.random.Generator, corner_gain: float) -> Degraded:
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot(xx - (w - 1) / 2, yy - (h - 1) / 2) / (np.hypot(w - 1, h - 1) / 2)
    # cos^4(atan(r / f)) = 1 / (1 + (r/f)^2)^2; choose f so that the corner (r = 1) gets corner_gain.
    focal = 1.0 / np.sqrt(max(1e-6, corner_gain ** -0.5 - 1.0))
    gain = 1.0 / (1.0 + (r / focal) ** 2) ** 2
    out = image * (gain[..., None] if image.ndim == 3 else gain)
    return Degraded(out, {}, {"vignetting": int(np.clip(round((1 - corner_gain) * 10 - 0.5), 1, 5))},
                    arrays={"gain": gain})


def _sample_glare(rng: np.random.Generator, level: int) -> dict[str, Any]:
    return {"x": float(rng.uniform(0.1, 0.9)), "y": float(rng.uniform(0.1, 0.6)),
            "radius": float(rng.uniform(0.04, 0.08) * (1 + 0.3 * level)), "strength": float(0.3 + 0.14 * level),
            "veil": float(0.02 * level)}


@register_degradation(DegradationCard(
    "photometric.glare", "photometric",
    "glare: a bright light source with a Gaussian bloom (relative radius) and a uniform veil",
    labels=("glare",), params={"x": None, "y": None, "radius": None, "strength": None, "veil": None}), _sample_glare)
def glare(image: np.ndarray, rng: np.random.Generator, x: float, y: float, radius: float, strength: float,
          veil: float) -> Degraded:
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    scale = float(np.hypot(h, w))
    d2 = ((xx - x * (w - 1)) ** 2 + (yy - y * (h - 1)) ** 2) / (radius * scale) ** 2
    bloom = strength * np.exp(-0.5 * d2) + veil
    out = 1.0 - (1.0 - image) * (1.0 - (bloom[..., None] if image.ndim == 3 else bloom))  # screen blend
    mask = to_gray(np.clip(out, 0, 1)) >= 0.98
    return Degraded(out, {}, {"glare": 1 + min(4, int(strength * 5 - 1.5))}, masks={"saturated": mask},
                    arrays={"bloom": bloom})
