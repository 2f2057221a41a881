"""Inpainting: fill the holes a warp or a moving object left.

Holes come from an explicit ``mask`` (bool, True = hole; the execution environment builds it
from earlier ``valid``/``occlusion``/``motion`` masks) or, when ``mask`` is None, are detected:
pixels whose every channel is ``<= hole_threshold`` (default 0: exactly black, what a warp writes
outside its source) that form connected regions touching the image border (``border_only=True``,
the default, so black objects inside the scene are kept); ``border_only=False`` takes every such
pixel. Only hole pixels change; an image without holes is returned unchanged. Detection cannot
tell a warp's black border from a scene's genuinely black border (letterboxing, some test
images): pass ``mask`` when the holes are known.

=====================  ===================================================================
``inpaint.telea``      fast marching (Telea 2004), OpenCV
``inpaint.ns``         Navier-Stokes (Bertalmio et al. 2001), OpenCV
``inpaint.biharmonic`` biharmonic smooth continuation (scikit-image); its cost grows with the
                       hole, so big holes are solved at a reduced resolution (at most
                       ``max_hole_pixels`` hole pixels) and upsampled
=====================  ===================================================================
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from ..errors import InputError
from ..io import resize_to
from .base import ImageTool, ToolCard, ToolResult, register_tool

__all__ = ["InpaintTool", "TeleaInpaint", "NavierStokesInpaint", "BiharmonicInpaint", "detect_holes"]


def detect_holes(image: np.ndarray, threshold: float = 0.0, border_only: bool = True) -> np.ndarray:
    """Pixels whose every channel is ``<= threshold``; with ``border_only``, only the connected
    (8-neighbour) regions of them that touch the image border.

    Example:
        >>> img = np.ones((6, 6), np.float32); img[:, :2] = 0; img[3, 4] = 0
        >>> detect_holes(img).sum(), detect_holes(img, border_only=False).sum()
        (np.int64(12), np.int64(13))
    """
    dark = image <= threshold
    if dark.ndim == 3:
        dark = dark.all(axis=2)
    if not border_only or not dark.any():
        return dark
    count, labels = cv2.connectedComponents(dark.astype(np.uint8), connectivity=8)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    border = border[border > 0]
    return np.isin(labels, border)


class InpaintTool(ImageTool):
    """Shared hole handling; subclasses implement :meth:`fill` (float32 image, bool hole mask)."""

    def validate_method_params(self, params: dict[str, Any]) -> None:
        """Check the method's own parameters (raise :class:`InputError`)."""

    def fill(self, image: np.ndarray, hole: np.ndarray, **params: Any) -> tuple[np.ndarray, dict[str, Any]]:
        """The image with ``hole`` filled, and method facts for ``info``."""
        raise TypeError(f"{type(self).__name__} does not implement fill()")

    def _hole(self, image: np.ndarray, params: dict[str, Any]) -> tuple[np.ndarray, str]:
        name = self.card.name
        mask = params["mask"]
        if mask is None:
            threshold = params["hole_threshold"]
            if not isinstance(threshold, (int, float)) or not 0 <= threshold < 1:
                raise InputError(f"tool {name}: hole_threshold must be in [0, 1), got {threshold!r}")
            if not isinstance(params["border_only"], (bool, np.bool_)):
                raise InputError(f"tool {name}: border_only must be true or false, got {params['border_only']!r}")
            return detect_holes(image, float(threshold), bool(params["border_only"])), "detected"
        mask = np.asarray(mask)
        if mask.ndim == 3 and mask.shape[2] == 1:
            mask = mask[..., 0]
        if mask.shape != image.shape[:2]:
            raise InputError(f"tool {name}: mask of shape {mask.shape} does not match the image "
                             f"({image.shape[0]}x{image.shape[1]})")
        if mask.dtype == np.bool_:
            return mask, "given"
        if not np.issubdtype(mask.dtype, np.number):
            raise InputError(f"tool {name}: mask must be a bool or numeric array, got {mask.dtype}")
        return np.nan_to_num(mask.astype(np.float32)) > 0.5, "given"

    def process(self, image: np.ndarray, **params: Any) -> ToolResult:
        self.validate_method_params(params)
        hole, source = self._hole(image, params)
        fraction = float(hole.mean())
        info: dict[str, Any] = {"method": self.card.model, "hole_fraction": fraction, "hole_source": source,
                                "fallback": None}
        if not hole.any():
            return ToolResult(image, info)
        if hole.all():
            info["fallback"] = "the whole image is a hole; nothing to fill from"
            return ToolResult(image, info)
        filled, extra = self.fill(image, hole, **params)
        out = image.copy()
        out[hole] = np.clip(filled, 0, 1)[hole]
        info.update(extra)
        return ToolResult(out.astype(np.float32), info)


def _radius_check(tool: InpaintTool, params: dict[str, Any]) -> None:
    radius = params["radius"]
    if not isinstance(radius, (int, np.integer)) or not 1 <= radius <= 64:
        raise InputError(f"tool {tool.card.name}: radius must be an integer in [1, 64], got {radius!r}")


def _opencv_fill(image: np.ndarray, hole: np.ndarray, radius: int, flag: int) -> np.ndarray:
    # OpenCV's float inpainting assumes the 0..255 range (Telea's fill is wrong on 0..1 data);
    # float channels at that scale keep more precision than 8-bit colour.
    mask = hole.astype(np.uint8)
    scaled = image.astype(np.float32) * 255.0
    if image.ndim == 2:
        return cv2.inpaint(scaled, mask, radius, flag) / 255.0
    channels = [cv2.inpaint(np.ascontiguousarray(scaled[..., c]), mask, radius, flag) for c in range(image.shape[2])]
    return np.stack(channels, axis=2) / 255.0


_COMMON_PARAMS: dict[str, Any] = {"mask": None, "hole_threshold": 0.0, "border_only": True}


@register_tool
class TeleaInpaint(InpaintTool):
    """Fast-marching inpainting (OpenCV ``INPAINT_TELEA``)."""

    card = ToolCard(
        task="inpaint",
        model="telea",
        description="fast-marching inpainting of warp borders / occlusions; fast, smooth fill",
        cost="medium",
        credit="A. Telea, An image inpainting technique based on the fast marching method, "
               "Journal of Graphics Tools 2004",
        params={"radius": 5, **_COMMON_PARAMS},
    )

    def validate_method_params(self, params: dict[str, Any]) -> None:
        _radius_check(self, params)

    def fill(self, image: np.ndarray, hole: np.ndarray, **params: Any) -> tuple[np.ndarray, dict[str, Any]]:
        return _opencv_fill(image, hole, int(params["radius"]), cv2.INPAINT_TELEA), {}


@register_tool
class NavierStokesInpaint(InpaintTool):
    """Navier-Stokes based inpainting (OpenCV ``INPAINT_NS``)."""

    card = ToolCard(
        task="inpaint",
        model="ns",
        description="Navier-Stokes inpainting: continues isophotes into the hole",
        cost="medium",
        credit="M. Bertalmio, A. L. Bertozzi, G. Sapiro, Navier-Stokes, fluid dynamics, and image and video "
               "inpainting, CVPR 2001",
        params={"radius": 5, **_COMMON_PARAMS},
    )

    def validate_method_params(self, params: dict[str, Any]) -> None:
        _radius_check(self, params)

    def fill(self, image: np.ndarray, hole: np.ndarray, **params: Any) -> tuple[np.ndarray, dict[str, Any]]:
        return _opencv_fill(image, hole, int(params["radius"]), cv2.INPAINT_NS), {}


@register_tool
class BiharmonicInpaint(InpaintTool):
    """Biharmonic inpainting (scikit-image), solved at reduced resolution for big holes."""

    card = ToolCard(
        task="inpaint",
        model="biharmonic",
        description="biharmonic (smooth) inpainting; best for small holes, slow on big ones",
        cost="medium",
        requires=("skimage",),
        credit="S. B. Damelin, N. S. Hoang, On surface completion and image inpainting by biharmonic functions: "
               "numerical aspects, Int. J. Math. Math. Sci. 2018",
        params={"max_hole_pixels": 20000, **_COMMON_PARAMS},
    )

    def validate_method_params(self, params: dict[str, Any]) -> None:
        limit = params["max_hole_pixels"]
        if not isinstance(limit, (int, np.integer)) or limit < 16:
            raise InputError(f"tool {self.card.name}: max_hole_pixels must be an integer >= 16, got {limit!r}")

    def fill(self, image: np.ndarray, hole: np.ndarray, **params: Any) -> tuple[np.ndarray, dict[str, Any]]:
        from skimage.restoration import inpaint_biharmonic

        h, w = hole.shape
        count = int(hole.sum())
        shrink = min(1.0, float(np.sqrt(params["max_hole_pixels"] / count)))
        if shrink < 1.0:
            small_hw = (max(4, round(h * shrink)), max(4, round(w * shrink)))
            small = resize_to(image, small_hw)
            # A low-resolution pixel is a hole when any full-resolution pixel under it is.
            small_hole = resize_to(hole.astype(np.float32), small_hw) > 0.0
            if small_hole.all():
                small_hole = resize_to(hole.astype(np.float32), small_hw) > 0.5
            solved = inpaint_biharmonic(small, small_hole, channel_axis=-1 if image.ndim == 3 else None)
            filled = resize_to(np.clip(solved, 0, 1).astype(np.float32), (h, w), interpolation="linear")
        else:
            filled = inpaint_biharmonic(image, hole, channel_axis=-1 if image.ndim == 3 else None)
        return filled.astype(np.float32), {"solve_scale": shrink}
