"""Sensor degradations: Gaussian and Poisson-Gaussian noise, infrared stripe (fixed-pattern)
noise and JPEG compression.

Noise labels use the standard deviation of the noise actually added (after clipping), so the
ground truth is what an estimator can see.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from .base import Degraded, DegradationCard, register_degradation
from .photometric import add_poisson_gaussian
from .severity import level_of, value_in_level

__all__ = ["jpeg_roundtrip"]


def _noise_result(image: np.ndarray, noisy: np.ndarray, extra: dict[str, Any]) -> Degraded:
    noisy = np.clip(noisy, 0, 1).astype(np.float32)
    std = float(np.std(noisy - image))
    return Degraded(noisy, {**extra, "noise_std": std}, {"noise": level_of("noise", std)} if level_of("noise", std) else {})


def _sample_gaussian(rng: np.random.Generator, level: int) -> dict[str, Any]:
    return {"sigma": value_in_level("noise", level, rng)}


@register_degradation(DegradationCard(
    "noise.gaussian", "sensor", "additive white Gaussian noise of standard deviation sigma",
    labels=("noise",), params={"sigma": None}), _sample_gaussian)
def gaussian(image: np.ndarray, rng: np.random.Generator, sigma: float) -> Degraded:
    return _noise_result(image, image + rng.normal(0.0, float(sigma), image.shape).astype(np.float32), {})


def _sample_poisson(rng: np.random.Generator, level: int) -> dict[str, Any]:
    return {"sigma": value_in_level("noise", level, rng), "read_share": float(rng.uniform(0.2, 0.6))}


@register_degradation(DegradationCard(
    "noise.poisson_gaussian", "sensor",
    "signal-dependent noise: Poisson shot noise plus Gaussian read noise, sigma at the mean level",
    labels=("noise",), params={"sigma": None, "read_share": None}), _sample_poisson)
def poisson_gaussian(image: np.ndarray, rng: np.random.Generator, sigma: float, read_share: float) -> Degraded:
    mean = max(0.05, float(image.mean()))
    read = float(sigma) * float(np.sqrt(read_share))
    peak = mean / max(1e-8, float(sigma) ** 2 - read ** 2)
    noisy = add_poisson_gaussian(image, peak, read, rng)
    return _noise_result(image, noisy, {"peak": peak, "read_sigma": read})


def _sample_stripe(rng: np.random.Generator, level: int) -> dict[str, Any]:
    return {"amplitude": value_in_level("stripe", level, rng), "orientation": "vertical",
            "gain_share": float(rng.uniform(0.0, 0.4))}


@register_degradation(DegradationCard(
    "noise.stripe", "sensor",
    "infrared fixed-pattern stripe noise: per-column (or per-row) offset and gain of std amplitude",
    labels=("stripe",), params={"amplitude": None, "orientation": "vertical", "gain_share": None}), _sample_stripe)
def stripe(image: np.ndarray, rng: np.random.Generator, amplitude: float, orientation: str,
           gain_share: float) -> Degraded:
    h, w = image.shape[:2]
    n = w if orientation == "vertical" else h
    offsets = rng.normal(0.0, float(amplitude) * np.sqrt(1 - gain_share), n).astype(np.float32)
    gains = 1.0 + rng.normal(0.0, float(amplitude) * np.sqrt(gain_share) * 2, n).astype(np.float32)
    shape = (1, w) if orientation == "vertical" else (h, 1)
    off, gain = offsets.reshape(shape), gains.reshape(shape)
    if image.ndim == 3:
        off, gain = off[..., None], gain[..., None]
    out = np.clip(image * gain + off, 0, 1).astype(np.float32)
    # Column (row) pattern actually added, averaged along the stripes.
    pattern = (out - image).mean(axis=0 if orientation == "vertical" else 1)
    std = float(np.std(pattern))
    level = level_of("stripe", std)
    return Degraded(out, {"pattern_std": std}, {"stripe": level} if level else {},
                    arrays={"offsets": offsets, "gains": gains})


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode ``image`` as JPEG at ``quality`` (1..100).

    Example:
        >>> x = np.random.default_rng(0).random((16, 16)).astype(np.float32)
        >>> bool(np.abs(jpeg_roundtrip(x, 95) - x).mean() < np.abs(jpeg_roundtrip(x, 10) - x).mean())
        True
    """
    array = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    bgr = array[..., ::-1] if array.ndim == 3 else array
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(bgr), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    decoded = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if decoded.ndim == 3:
        decoded = decoded[..., ::-1]
    return (decoded.astype(np.float32) / 255.0).astype(np.float32)


def _sample_jpeg(rng: np.random.Generator, level: int) -> dict[str, Any]:
    return {"quality": int(round(100 - value_in_level("jpeg", level, rng)))}


@register_degradation(DegradationCard(
    "sensor.jpeg", "sensor", "JPEG compression at the given quality (1..100)",
    labels=("jpeg",), params={"quality": None}), _sample_jpeg)
def jpeg(image: np.ndarray, rng: np.random.Generator, quality: int) -> Degraded:
    level = level_of("jpeg", 100 - int(quality))
    return Degraded(jpeg_roundtrip(image, int(quality)), {}, {"jpeg": level} if level else {})
