"""Dynamic scene degradation: an object moved between the two captures of a pair.

A region (a smooth random blob, or a segment grown from a seed over the smoothed image) is cut
out, pasted ``(dx, dy)`` px away with a feathered edge, and its old place is filled by inpainting
(the ``inpaint.telea`` tool when registered, otherwise OpenCV's Telea inpainting). Ground truth:
``masks["motion"]`` (old ∪ new place), ``masks["object"]`` (new place), ``masks["hole"]``
(old place not covered by the new one).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from ..io import to_gray
from .base import Degraded, DegradationCard, register_degradation

__all__ = ["random_blob", "grow_segment", "fill_hole"]

_AREA_EDGES = (0.01, 0.02, 0.035, 0.05, 0.07, 0.1)


def random_blob(size: tuple[int, int], area: float, rng: np.random.Generator, centre: tuple[float, float] | None = None) -> np.ndarray:
    """Boolean mask of a smooth random blob covering about ``area`` of the frame.

    Example:
        >>> m = random_blob((100, 100), 0.05, np.random.default_rng(0))
        >>> 0.04 < float(m.mean()) < 0.06
        True
    """
    h, w = size
    radius = np.sqrt(area * h * w / np.pi)
    cy, cx = centre if centre is not None else (rng.uniform(0.25, 0.75) * h, rng.uniform(0.25, 0.75) * w)
    angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    harmonics = sum(rng.normal(0, 0.12 / k) * np.cos(k * angles + rng.uniform(0, 2 * np.pi)) for k in range(2, 5))
    aspect = rng.uniform(0.6, 1.6)
    r = radius * (1 + harmonics)
    pts = np.stack([cx + r * np.cos(angles) * np.sqrt(aspect), cy + r * np.sin(angles) / np.sqrt(aspect)], axis=1)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    return mask.astype(bool)


def grow_segment(image: np.ndarray, area: float, rng: np.random.Generator, tries: int = 8) -> np.ndarray | None:
    """A connected segment of roughly uniform colour, grown from a random seed by flood fill.

    Returns None when no segment between half and twice ``area`` is found.
    """
    h, w = image.shape[:2]
    gray = cv2.GaussianBlur(to_gray(image), (0, 0), 2.0)
    u8 = np.round(gray * 255).astype(np.uint8)
    for _ in range(tries):
        seed = (int(rng.uniform(0.2, 0.8) * w), int(rng.uniform(0.2, 0.8) * h))
        for tol in (4, 8, 12, 16):
            mask = np.zeros((h + 2, w + 2), np.uint8)
            cv2.floodFill(u8.copy(), mask, seed, 0, tol, tol, flags=4 | cv2.FLOODFILL_MASK_ONLY | (1 << 8))
            region = mask[1:-1, 1:-1].astype(bool)
            frac = float(region.mean())
            if 0.5 * area <= frac <= 2 * area:
                region = cv2.morphologyEx(region.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
                return region.astype(bool)
            if frac > 2 * area:
                break
    return None


def fill_hole(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Fill ``hole`` (True = missing) by inpainting: the ``inpaint.telea`` tool when registered,
    otherwise OpenCV's implementation of Telea (2004)."""
    from ..tools import TOOLS, load_builtin_tools

    load_builtin_tools()
    if "inpaint.telea" in TOOLS:
        from ..tools import create_tool

        return create_tool("inpaint.telea")(image, mask=hole).image
    u8 = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    filled = cv2.inpaint(u8, hole.astype(np.uint8), 5, cv2.INPAINT_TELEA)
    return filled.astype(np.float32) / 255.0


def _sample_move(rng: np.random.Generator, level: int) -> dict[str, Any]:
    area = float(rng.uniform(_AREA_EDGES[level - 1], _AREA_EDGES[level]))
    return {"area": area, "shift": float(rng.uniform(0.6, 1.2)), "angle": float(rng.uniform(0, 360)),
            "shape": "segment" if rng.random() < 0.5 else "blob"}


@register_degradation(DegradationCard(
    "dynamic.move_object", "dynamic",
    "an object (blob or segment covering `area` of the frame) moved by `shift` object diameters; old place inpainted",
    labels=("motion",), params={"area": None, "shift": None, "angle": None, "shape": "blob"}), _sample_move)
def move_object(image: np.ndarray, rng: np.random.Generator, area: float, shift: float, angle: float,
                shape: str) -> Degraded:
    h, w = image.shape[:2]
    region = grow_segment(image, float(area), rng) if shape == "segment" else None
    used_shape = "segment" if region is not None else "blob"
    if region is None:
        region = random_blob((h, w), float(area), rng)
    diameter = 2 * np.sqrt(region.sum() / np.pi)
    dx = float(np.cos(np.deg2rad(angle)) * shift * diameter)
    dy = float(np.sin(np.deg2rad(angle)) * shift * diameter)
    ys, xs = np.nonzero(region)
    # Keep the moved object inside the frame.
    dx = float(np.clip(dx, -xs.min(), w - 1 - xs.max()))
    dy = float(np.clip(dy, -ys.min(), h - 1 - ys.max()))
    move = np.array([[1, 0, dx], [0, 1, dy]], np.float64)
    alpha = cv2.GaussianBlur(region.astype(np.float32), (0, 0), 1.0)
    moved_alpha = cv2.warpAffine(alpha, move, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    moved_pixels = np.clip(cv2.warpAffine(image, move, (w, h), flags=cv2.INTER_LANCZOS4,
                                          borderMode=cv2.BORDER_REFLECT101), 0, 1)  # detail kept, as warp_image
    new_place = moved_alpha > 0.5
    hole = cv2.dilate(region.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~new_place
    background = fill_hole(image, hole) if hole.any() else image
    a = moved_alpha[..., None] if image.ndim == 3 else moved_alpha
    out = background * (1 - a) + moved_pixels * a
    # Every pixel the move changed: the feathered new place, the filled hole, the old place.
    motion = (moved_alpha > 0.01) | hole | region
    level = int(np.clip(np.searchsorted(_AREA_EDGES, float(region.mean()), side="right"), 1, 5))
    return Degraded(out, {"dx": dx, "dy": dy, "shape": used_shape, "object_area": float(region.mean()),
                          "motion_area": float(motion.mean())},
                    {"motion": level}, None, {"motion": motion, "object": new_place, "hole": hole})
