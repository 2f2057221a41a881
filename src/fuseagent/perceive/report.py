"""The perception report: per-image degradations, relations of the pair, and a caption."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..degrade.base import json_safe
from ..degrade.severity import LEVEL_NAMES, PERCEIVED_TYPES

__all__ = ["DegradationEstimate", "ImagePerception", "PerceptionReport", "caption_for", "unit_of"]

_UNITS = {
    "noise": "sigma", "blur": "px", "haze": "density", "rain": "coverage", "low_light": "EV",
    "over_exposure": "EV", "low_resolution": "factor", "stripe": "sigma", "jpeg": "100-quality",
}
_PHRASES = {
    "noise": "noise", "blur": "blur", "haze": "haze", "rain": "rain or snow", "low_light": "low light",
    "over_exposure": "over-exposure", "low_resolution": "low resolution", "stripe": "stripe noise",
    "jpeg": "JPEG artefacts",
}
_ROLE_NAMES = {"ir": "infrared image", "vis": "visible image"}


@dataclass
class DegradationEstimate:
    """One degradation type in one image.

    Attributes:
        level: 0..5 (none .. very high).
        probability: the classifier's probability that the degradation is present.
        estimate: continuous severity in the type's physical unit (see ``unit``), read from the
            classifier's severity through the type's scale; 0 when absent.
        measured: the raw measured estimator behind it (noise sigma, edge width, dark-channel
            haze density, ...), reported whether or not the type is detected.
        unit: unit of ``estimate``.
    """

    level: int
    probability: float
    estimate: float
    measured: float
    unit: str

    @property
    def level_name(self) -> str:
        return LEVEL_NAMES[self.level]

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "level_name": self.level_name, "probability": round(self.probability, 4),
                "estimate": round(self.estimate, 4), "measured": round(self.measured, 5), "unit": self.unit}


@dataclass
class ImagePerception:
    """Degradations perceived in one image."""

    role: str
    modality: str
    size: tuple[int, int]
    colour: bool
    degradations: dict[str, DegradationEstimate]

    def present(self) -> dict[str, DegradationEstimate]:
        """Detected degradations (level ≥ 1), most severe first."""
        found = {k: v for k, v in self.degradations.items() if v.level > 0}
        return dict(sorted(found.items(), key=lambda kv: (-kv[1].level, -kv[1].probability)))

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "modality": self.modality, "size": list(self.size), "colour": self.colour,
                "degradations": {k: v.to_dict() for k, v in self.degradations.items()}}


@dataclass
class PerceptionReport:
    """What perception sees in a fusion input (JSON-safe through :meth:`to_dict`).

    Attributes:
        task: ``ivif``, ``mef`` or ``mff``.
        images: per-image perception, in input order.
        misalignment: moving/reference roles, ``displacement_px``, ``transform`` (reference →
            moving pixel coordinates), fitted ``model``, ``level`` and ``detected``.
        resolution_mismatch: ``scale`` (moving size / reference size) and ``detected``.
        exposure_mismatch: ``ev`` of each later image relative to the first, and ``level``.
        white_balance_mismatch: ``log_rb`` (log red/blue gain, linear) or None for grey images.
        moving_objects: ``detected``, ``area_fraction``, ``score``.
        complementarity: focus and exposure shares per image.
        caption: a short description.
        seconds: time taken.
        motion_mask: bool mask of moving content in the reference frame (not in ``to_dict``
            unless asked).
    """

    task: str
    images: list[ImagePerception]
    misalignment: dict[str, Any]
    resolution_mismatch: dict[str, Any]
    exposure_mismatch: dict[str, Any]
    white_balance_mismatch: dict[str, Any]
    moving_objects: dict[str, Any]
    complementarity: dict[str, Any]
    caption: str = ""
    seconds: float = 0.0
    motion_mask: np.ndarray | None = field(default=None, repr=False)

    def image(self, role: str) -> ImagePerception:
        """The perception of the image with ``role``."""
        for im in self.images:
            if im.role == role:
                return im
        raise KeyError(role)

    def to_dict(self, include_masks: bool = False) -> dict[str, Any]:
        """JSON-safe dictionary (the motion mask as a list of rows when ``include_masks``)."""
        out = {
            "task": self.task,
            "images": [im.to_dict() for im in self.images],
            "misalignment": self.misalignment,
            "resolution_mismatch": self.resolution_mismatch,
            "exposure_mismatch": self.exposure_mismatch,
            "white_balance_mismatch": self.white_balance_mismatch,
            "moving_objects": self.moving_objects,
            "complementarity": self.complementarity,
            "caption": self.caption,
            "seconds": round(self.seconds, 4),
        }
        if include_masks and self.motion_mask is not None:
            out["motion_mask"] = self.motion_mask.astype(np.uint8)
        return json_safe(out)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)


def _name(role: str, task: str) -> str:
    if task == "ivif":
        return "The " + _ROLE_NAMES.get(role, f"image {role}")
    return f"Image {role.upper()}"


def caption_for(report: PerceptionReport) -> str:
    """A short natural-language description of a report (used as ``report.caption``).

    Example:
        >>> im = ImagePerception("vis", "vis", (4, 4), True,
        ...                      {"noise": DegradationEstimate(3, 0.9, 0.04, 0.04, "sigma")})
        >>> rep = PerceptionReport("ivif", [im], {"displacement_px": 0.0, "detected": False}, {"detected": False},
        ...                        {"ev": [], "level": 0}, {"log_rb": None}, {"detected": False}, {})
        >>> caption_for(rep)
        'An infrared-visible pair. The visible image shows medium noise. The images are aligned.'
    """
    kind = {"ivif": "An infrared-visible pair", "mef": "A multi-exposure pair", "mff": "A multi-focus pair"}[report.task]
    parts = [f"{kind}." if len(report.images) <= 2 else f"{kind[:-5]}stack of {len(report.images)} images."]
    for im in report.images:
        found = im.present()
        name = _name(im.role, report.task)
        if found:
            items = [f"{v.level_name} {_PHRASES[k]}" for k, v in found.items()]
            listed = items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
            parts.append(f"{name} shows {listed}.")
        else:
            parts.append(f"{name} looks clean.")
    mis = report.misalignment
    if mis.get("detected"):
        parts.append(f"The images are misaligned by about {mis['displacement_px']:.0f} px.")
    else:
        parts.append("The images are aligned.")
    if report.resolution_mismatch.get("detected"):
        parts.append(f"One image has {report.resolution_mismatch['scale']:.2f} times the other's resolution.")
    mov = report.moving_objects
    if mov.get("detected"):
        parts.append(f"A moving object covers about {100 * mov['area_fraction']:.0f}% of the frame.")
    if report.task == "mef" and report.exposure_mismatch.get("ev"):
        parts.append("Exposures differ by " + ", ".join(f"{abs(e):.1f}" for e in report.exposure_mismatch["ev"]) + " EV.")
    elif report.exposure_mismatch.get("level", 0) > 0:
        parts.append(f"Exposure differs by {abs(report.exposure_mismatch['ev'][0]):.1f} EV.")
    wb = report.white_balance_mismatch.get("log_rb")
    if report.white_balance_mismatch.get("detected") and wb is not None:
        parts.append(f"The colour balance differs ({'warmer' if wb > 0 else 'cooler'} second image).")
    comp = report.complementarity.get("focus" if report.task == "mff" else "exposure")
    if comp and report.task in ("mef", "mff"):
        what = "in focus" if report.task == "mff" else "well exposed"
        parts.append(f"Image A is better {what} in {100 * comp['a']:.0f}% of the frame, "
                     f"image B in {100 * comp['b']:.0f}%.")
    return " ".join(parts)


def unit_of(kind: str) -> str:
    """Unit of the continuous estimate of a perceived type.

    Example:
        >>> unit_of("blur")
        'px'
    """
    if kind not in PERCEIVED_TYPES:
        raise KeyError(kind)
    return _UNITS[kind]
