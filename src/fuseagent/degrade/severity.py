"""Severity scales shared by the degradation library (ground truth) and perception (estimates).

Each perceivable degradation has one physical quantity and five level bins on it, following the
six-step scale of AgenticIR (Zhu et al., 2024): none, very low, low, medium, high, very high.
A degradation operation draws its strength inside the bin of the requested level, and perception
maps its continuous estimate back through the same bins, so the two agree by construction.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

__all__ = ["LEVEL_NAMES", "PERCEIVED_TYPES", "SCALES", "level_of", "value_in_level", "level_name"]

#: Level names, index = level (0 = none).
LEVEL_NAMES: tuple[str, ...] = ("none", "very low", "low", "medium", "high", "very high")

#: Per-image degradation types that perception reports, with the quantity each scale measures.
PERCEIVED_TYPES: dict[str, str] = {
    "noise": "noise standard deviation (intensity units, image in [0, 1])",
    "blur": "standard deviation of the blur kernel (px)",
    "haze": "haze density 1 - mean transmission",
    "rain": "fraction of pixels covered by rain streaks or snow flakes",
    "low_light": "exposure lowered by this many EV (through a gamma-2.2 camera response)",
    "over_exposure": "exposure raised by this many EV (through a gamma-2.2 camera response)",
    "low_resolution": "downsampling factor",
    "stripe": "standard deviation of the column (fixed-pattern) offsets",
    "jpeg": "100 - JPEG quality",
}

#: Six edges per type: level k covers ``[edges[k-1], edges[k])``; below ``edges[0]`` is none.
SCALES: dict[str, tuple[float, ...]] = {
    "noise": (0.012, 0.02, 0.032, 0.05, 0.075, 0.11),
    "blur": (0.8, 1.2, 1.7, 2.4, 3.3, 4.5),
    "haze": (0.2, 0.32, 0.44, 0.56, 0.68, 0.8),
    "rain": (0.008, 0.016, 0.028, 0.045, 0.065, 0.09),
    "low_light": (1.0, 1.6, 2.2, 2.8, 3.4, 4.0),
    "over_exposure": (0.7, 1.1, 1.5, 1.9, 2.3, 2.7),
    "low_resolution": (1.6, 2.0, 2.6, 3.3, 4.2, 5.5),
    "stripe": (0.01, 0.018, 0.028, 0.04, 0.055, 0.075),
    "jpeg": (45.0, 58.0, 70.0, 80.0, 87.0, 93.0),
    # Relational: mean displacement (px) of a misaligned image, and EV difference of a pair (effective EV,
    # through a gamma-2.2 response: fuseagent.degrade.photometric.effective_ev).
    "misalignment": (1.0, 3.0, 6.0, 10.0, 16.0, 25.0),
    "exposure_mismatch": (0.3, 0.6, 1.0, 1.5, 2.0, 3.0),
}


def _scale(kind: str) -> tuple[float, ...]:
    try:
        return SCALES[kind]
    except KeyError:
        raise InputError(f"unknown degradation type '{kind}' (valid: {', '.join(SCALES)})") from None


def level_of(kind: str, value: float) -> int:
    """Severity level (0..5) of a quantity on the scale of ``kind``.

    Example:
        >>> level_of("noise", 0.0), level_of("noise", 0.04), level_of("noise", 1.0)
        (0, 3, 5)
    """
    edges = _scale(kind)
    if not np.isfinite(value) or value < edges[0]:
        return 0
    return int(min(5, np.searchsorted(edges, value, side="right")))


def value_in_level(kind: str, level: int, rng: np.random.Generator) -> float:
    """Draw a quantity uniformly inside the bin of ``level`` (1..5) on the scale of ``kind``.

    Example:
        >>> v = value_in_level("blur", 3, np.random.default_rng(0))
        >>> level_of("blur", v)
        3
    """
    edges = _scale(kind)
    if not 1 <= int(level) <= 5:
        raise InputError(f"severity level must be 1..5, got {level}")
    lo, hi = edges[int(level) - 1], edges[int(level)]
    # Keep clear of the bin edges so that rounding never moves a value into the next level.
    margin = 0.02 * (hi - lo)
    return float(rng.uniform(lo + margin, hi - margin))


def level_name(level: int) -> str:
    """Name of a level.

    Example:
        >>> level_name(4)
        'high'
    """
    return LEVEL_NAMES[int(np.clip(level, 0, 5))]
