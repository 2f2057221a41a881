"""Dense optical flow alignment (deghosting): warp the moving image onto the reference pixel by pixel.

Global registration cannot align what moves inside the scene (people, cars, leaves) or parallax;
fusing such pairs leaves ghosts. These tools estimate a dense flow field from the reference to the
moving image, resample the moving image along it (bilinear, colour kept), and flag where that
cannot be trusted.

Pipeline of :class:`FlowTool`:

1. The moving image is resampled to the reference's size if they differ.
2. Intensity normalisation (``normalise="histogram"``, the default): the moving image's luma is
   histogram-matched to the reference's luma before flow estimation, so the two exposures of a
   multi-exposure pair (or an IR/visible pair) look alike to the brightness-constancy assumption
   of optical flow. ``"none"`` uses luma as is. Only the estimation uses the normalised images; the
   warp is applied to the original moving image.
3. Forward (reference → moving) and backward (moving → reference) flows are estimated.
4. ``masks["occlusion"]`` (float32, 1 = untrustworthy) marks pixels where (a) the forward and
   backward flows disagree, ``|f + b(x + f)|² > 0.01 (|f|² + |b(x + f)|²) + consistency²``
   (the test of Sundaram, Brox and Keutzer, ECCV 2010), (b) the warped, normalised moving luma
   differs from the reference luma by more than ``photometric_threshold`` on a 5×5 average, or
   (c) the flow points outside the moving image. The mask is cleaned by a 3×3 opening and dilated
   by ``dilate`` pixels. Inpainting (``[task:inpaint]``) or the fusion rule can then treat these
   pixels as holes.

``info`` reports ``mean_flow`` and ``max_flow`` (pixels), ``occluded_fraction``, what was
normalised, and ``fallback`` (images under 32 pixels a side get a zero flow, not a guess).
"""

from __future__ import annotations

from typing import Any, ClassVar

import cv2
import numpy as np

from ..errors import InputError
from ..io import resize_to, to_gray
from .base import PairTool, ToolCard, ToolResult, register_tool

__all__ = ["FlowTool", "DisFlow", "FarnebackFlow", "match_histogram", "warp_by_flow"]

_MIN_SIDE = 32
_COMMON_PARAMS: dict[str, Any] = {
    "normalise": "histogram",
    "consistency": 1.0,
    "photometric_threshold": 0.1,
    "dilate": 2,
}


def match_histogram(source: np.ndarray, template: np.ndarray, bins: int = 1024) -> np.ndarray:
    """Map grey levels of ``source`` so its histogram matches ``template``'s (both ``[0, 1]``).

    Example:
        >>> dark = np.linspace(0, 0.2, 100, dtype=np.float32).reshape(10, 10)
        >>> bright = np.linspace(0.5, 1.0, 100, dtype=np.float32).reshape(10, 10)
        >>> out = match_histogram(dark, bright)
        >>> bool(abs(out.mean() - bright.mean()) < 0.01)
        True
    """
    edges = np.linspace(0.0, 1.0, bins + 1)
    src_hist, _ = np.histogram(source, bins=edges)
    tpl_hist, _ = np.histogram(template, bins=edges)
    src_cdf = np.cumsum(src_hist).astype(np.float64)
    tpl_cdf = np.cumsum(tpl_hist).astype(np.float64)
    src_cdf /= max(src_cdf[-1], 1.0)
    tpl_cdf /= max(tpl_cdf[-1], 1.0)
    centres = 0.5 * (edges[:-1] + edges[1:])
    # Map every source level to the template level of equal cumulative frequency (midpoint rule).
    src_mid = src_cdf - 0.5 * src_hist / max(src_hist.sum(), 1)
    tpl_mid = tpl_cdf - 0.5 * tpl_hist / max(tpl_hist.sum(), 1)
    keep = np.r_[True, np.diff(tpl_mid) > 0]
    lut = np.interp(src_mid, tpl_mid[keep], centres[keep])
    index = np.clip((source * bins).astype(np.int64), 0, bins - 1)
    return lut[index].astype(np.float32)


def _sample_grid(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return xs + flow[..., 0], ys + flow[..., 1]


def warp_by_flow(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Resample ``image`` at ``x + flow(x)`` (bilinear; outside samples replicate the border).

    Example:
        >>> img = np.tile(np.arange(8, dtype=np.float32), (4, 1)) / 8
        >>> shift = np.zeros((4, 8, 2), np.float32); shift[..., 0] = 1
        >>> float(warp_by_flow(img, shift)[0, 2] * 8)
        3.0
    """
    map_x, map_y = _sample_grid(flow)
    out = cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.astype(np.float32)


def _to_u8(gray: np.ndarray) -> np.ndarray:
    return np.clip(np.round(gray * 255.0), 0, 255).astype(np.uint8)


class FlowTool(PairTool):
    """Shared deghosting pipeline; subclasses implement :meth:`estimate_flow`."""

    presets: ClassVar[tuple[str, ...]] = ()

    def validate_method_params(self, params: dict[str, Any]) -> None:
        """Check the flow method's own parameters (raise :class:`InputError`)."""

    def estimate_flow(self, first: np.ndarray, second: np.ndarray, **params: Any) -> np.ndarray:
        """Flow ``f`` (H, W, 2) with ``first(x) ≈ second(x + f(x))`` for 8-bit grey images."""
        raise TypeError(f"{type(self).__name__} does not implement estimate_flow()")

    def _validate(self, params: dict[str, Any]) -> None:
        name = self.card.name
        if params["normalise"] not in ("histogram", "none"):
            raise InputError(f"tool {name}: normalise must be 'histogram' or 'none', got {params['normalise']!r}")
        for key in ("consistency", "photometric_threshold"):
            if not isinstance(params[key], (int, float)) or not params[key] > 0:
                raise InputError(f"tool {name}: {key} must be > 0, got {params[key]!r}")
        if not isinstance(params["dilate"], (int, np.integer)) or params["dilate"] < 0:
            raise InputError(f"tool {name}: dilate must be an integer >= 0, got {params['dilate']!r}")
        self.validate_method_params(params)

    def process(self, moving: np.ndarray, reference: np.ndarray, **params: Any) -> ToolResult:
        self._validate(params)
        hw = reference.shape[:2]
        resized = moving.shape[:2] != hw
        if resized:
            moving = resize_to(moving, hw)
        ref_luma = to_gray(reference)
        mov_luma = to_gray(moving)
        if params["normalise"] == "histogram":
            mov_luma = match_histogram(mov_luma, ref_luma)
        fallback = None
        if min(hw) < _MIN_SIDE:
            fallback = f"image smaller than {_MIN_SIDE}x{_MIN_SIDE}: zero flow"
            forward = np.zeros((*hw, 2), np.float32)
            backward = np.zeros((*hw, 2), np.float32)
        else:
            ref_u8, mov_u8 = _to_u8(ref_luma), _to_u8(mov_luma)
            forward = self.estimate_flow(ref_u8, mov_u8, **params).astype(np.float32)
            backward = self.estimate_flow(mov_u8, ref_u8, **params).astype(np.float32)
        warped = np.clip(warp_by_flow(moving, forward), 0, 1)
        occlusion = self._occlusion(forward, backward, warp_by_flow(mov_luma, forward), ref_luma, params)
        magnitude = np.linalg.norm(forward, axis=2)
        info = {
            "method": self.card.model,
            "normalise": params["normalise"],
            "mean_flow": float(magnitude.mean()),
            "max_flow": float(magnitude.max()),
            "occluded_fraction": float(occlusion.mean()),
            "resized_moving": resized,
            "fallback": fallback,
        }
        return ToolResult(warped, info, {"occlusion": occlusion})

    @staticmethod
    def _occlusion(forward: np.ndarray, backward: np.ndarray, warped_luma: np.ndarray, ref_luma: np.ndarray,
                   params: dict[str, Any]) -> np.ndarray:
        h, w = forward.shape[:2]
        map_x, map_y = _sample_grid(forward)
        outside = (map_x < 0) | (map_x > w - 1) | (map_y < 0) | (map_y > h - 1)
        back_at_target = warp_by_flow(backward, forward)
        round_trip = forward + back_at_target
        bound = 0.01 * ((forward ** 2).sum(2) + (back_at_target ** 2).sum(2)) + float(params["consistency"]) ** 2
        inconsistent = (round_trip ** 2).sum(2) > bound
        difference = cv2.blur(np.abs(warped_luma - ref_luma), (5, 5))
        mismatch = difference > float(params["photometric_threshold"])
        mask = (inconsistent | mismatch).astype(np.uint8)
        if min(h, w) >= 3:
            mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        mask = mask.astype(bool) | outside
        radius = int(params["dilate"])
        if radius > 0:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
            mask = cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)
        return mask.astype(np.float32)


_DIS_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


@register_tool
class DisFlow(FlowTool):
    """Dense Inverse Search optical flow (OpenCV) for deghosting."""

    card = ToolCard(
        task="flow",
        model="dis",
        description="DIS dense optical flow + forward-backward occlusion mask; aligns moving objects (deghosting)",
        inputs="pair",
        fusion_tasks=("mef", "mff", "ivif"),
        cost="medium",
        credit="T. Kroeger, R. Timofte, D. Dai, L. Van Gool, Fast optical flow using dense inverse search, "
               "ECCV 2016; N. Sundaram, T. Brox, K. Keutzer, Dense point trajectories by GPU-accelerated "
               "large displacement optical flow, ECCV 2010 (consistency test)",
        params={"preset": "medium", **_COMMON_PARAMS},
    )

    def validate_method_params(self, params: dict[str, Any]) -> None:
        if params["preset"] not in _DIS_PRESETS:
            raise InputError(f"tool {self.card.name}: preset must be one of {', '.join(_DIS_PRESETS)}, "
                             f"got {params['preset']!r}")

    def estimate_flow(self, first: np.ndarray, second: np.ndarray, **params: Any) -> np.ndarray:
        dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[params["preset"]])
        return dis.calc(first, second, None)


@register_tool
class FarnebackFlow(FlowTool):
    """Farnebäck polynomial-expansion optical flow (OpenCV) for deghosting."""

    card = ToolCard(
        task="flow",
        model="farneback",
        description="Farneback dense optical flow + forward-backward occlusion mask; smooth motion, deghosting",
        inputs="pair",
        fusion_tasks=("mef", "mff", "ivif"),
        cost="medium",
        credit="G. Farnebäck, Two-frame motion estimation based on polynomial expansion, SCIA 2003; "
               "N. Sundaram, T. Brox, K. Keutzer, ECCV 2010 (consistency test)",
        params={"levels": 5, "window": 21, "iterations": 3, **_COMMON_PARAMS},
    )

    def validate_method_params(self, params: dict[str, Any]) -> None:
        name = self.card.name
        for key, low in (("levels", 1), ("window", 3), ("iterations", 1)):
            if not isinstance(params[key], (int, np.integer)) or params[key] < low:
                raise InputError(f"tool {name}: {key} must be an integer >= {low}, got {params[key]!r}")

    def estimate_flow(self, first: np.ndarray, second: np.ndarray, **params: Any) -> np.ndarray:
        return cv2.calcOpticalFlowFarneback(first, second, None, 0.5, int(params["levels"]), int(params["window"]),
                                            int(params["iterations"]), 7, 1.5, cv2.OPTFLOW_FARNEBACK_GAUSSIAN)
