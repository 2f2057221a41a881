"""Task generators: make a fusion input from one clean image.

* :func:`exposure_bracket` — 2..N exposures of one well-exposed image through a camera response
  curve (the clean image is the ground truth of the fused result);
* :func:`multifocus_stack` — 2..N images each focused on one depth layer (depth mode) or the
  pair focused on a foreground region / the background (region mode), by spatially varying
  defocus; ``focus_masks[k]`` marks where image ``k`` is the sharp one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from ..io import check_image
from .base import as_rng
from .blur import convolve, disc_kernel
from .dynamic import random_blob
from .photometric import change_exposure
from .weather import depth_proxy

__all__ = ["Generated", "exposure_bracket", "multifocus_stack"]


@dataclass
class Generated:
    """A generated stack with its ground truth.

    Attributes:
        images: the generated inputs.
        params: JSON-safe parameters (EVs, gamma, blur levels...).
        labels: per image, ground-truth severity labels (as :class:`~fuseagent.degrade.Degraded`).
        masks: per image, named masks (``focus``).
    """

    images: list[np.ndarray]
    params: dict[str, Any] = field(default_factory=dict)
    labels: list[dict[str, int]] = field(default_factory=list)
    masks: list[dict[str, np.ndarray]] = field(default_factory=list)


def _check_n(n: int) -> int:
    if not 2 <= int(n) <= 26:
        raise InputError(f"a stack has 2..26 images, got {n}")
    return int(n)


def exposure_bracket(image: np.ndarray, n: int = 2, seed: int | np.random.Generator | None = 0,
                     ev_step: float | None = None, gamma: float | None = None) -> Generated:
    """An exposure bracket of ``n`` images centred (within ±0.3 EV) on the input's exposure.

    Args:
        image: a well-exposed image.
        n: number of exposures (2..26).
        seed: seed or generator.
        ev_step: EV between neighbours; drawn in ``[1.5, 2.5]`` (n = 2: ``[2.5, 4]``) when None.
        gamma: camera response exponent; drawn in ``[1.8, 2.6]`` when None.

    Example:
        >>> g = exposure_bracket(np.full((8, 8), 0.5, np.float32), 3, seed=0, ev_step=2.0, gamma=2.2)
        >>> [round(float(im.mean()), 2) for im in g.images], g.params["evs"][1] - g.params["evs"][0]
        ([0.27, 0.5, 0.94], 2.0)
    """
    n = _check_n(n)
    rng = as_rng(seed)
    image = check_image(image)
    step = float(ev_step) if ev_step is not None else float(rng.uniform(2.5, 4.0) if n == 2 else rng.uniform(1.5, 2.5))
    g = float(gamma) if gamma is not None else float(rng.uniform(1.8, 2.6))
    centre = float(rng.uniform(-0.3, 0.3)) if ev_step is None else 0.0
    evs = [centre + step * (k - (n - 1) / 2) for k in range(n)]
    images = [change_exposure(image, ev, g) for ev in evs]
    from .photometric import _exposure_labels

    labels = [{k: v for k, v in _exposure_labels(ev, g).items() if k != "exposure_mismatch"} for ev in evs]
    return Generated(images, {"evs": evs, "gamma": g, "ev_step": step}, labels, [{} for _ in evs])


def _blend_by_std(image: np.ndarray, stds: np.ndarray, levels: np.ndarray) -> np.ndarray:
    # Pre-blur at a few kernel sizes, then interpolate each pixel between the two bracketing ones.
    stack = [image] + [convolve(image, disc_kernel(max(0.75, 2.0 * s))) for s in levels[1:]]
    idx = np.clip(np.searchsorted(levels, stds, side="right") - 1, 0, len(levels) - 2)
    lo, hi = levels[idx], levels[idx + 1]
    w = np.clip((stds - lo) / np.maximum(hi - lo, 1e-6), 0, 1)
    out = np.zeros_like(image)
    for k in range(len(levels) - 1):
        sel = idx == k
        if not sel.any():
            continue
        wk = np.where(sel, w, 0.0).astype(np.float32)
        a = np.where(sel, 1.0 - w, 0.0).astype(np.float32)
        if image.ndim == 3:
            wk, a = wk[..., None], a[..., None]
        out += a * stack[k] + wk * stack[k + 1]
    return out.astype(np.float32)


def multifocus_stack(image: np.ndarray, n: int = 2, seed: int | np.random.Generator | None = 0,
                     mode: str = "depth", max_std: float | None = None,
                     depth: np.ndarray | None = None) -> Generated:
    """A multi-focus stack from one all-in-focus image by depth- or region-dependent defocus.

    Args:
        image: a sharp image.
        n: number of images (2..26; region mode makes pairs only).
        seed: seed or generator.
        mode: ``"depth"`` (focus on ``n`` depth layers of :func:`~.weather.depth_proxy` or
            ``depth``) or ``"region"`` (a random foreground blob vs the background).
        max_std: defocus std (px) for the most out-of-focus content; drawn in ``[2, 4.5]`` when None.
        depth: optional depth map ``(H, W)`` in ``[0, 1]``.

    Example:
        >>> x = np.random.default_rng(0).random((64, 64)).astype(np.float32)
        >>> g = multifocus_stack(x, 2, seed=0, mode="region", max_std=3.0)
        >>> m = g.masks[0]["focus"]
        >>> bool(np.abs(g.images[0] - x)[m].mean() < np.abs(g.images[1] - x)[m].mean())
        True
    """
    n = _check_n(n)
    rng = as_rng(seed)
    image = check_image(image)
    h, w = image.shape[:2]
    top = float(max_std) if max_std is not None else float(rng.uniform(2.0, 4.5))
    levels = np.array([0.0, 0.4, 0.8, 1.2, 1.8, 2.6, 3.6, 5.0, 7.0], np.float32)
    levels = levels[: int(np.searchsorted(levels, top)) + 1]
    levels[-1] = max(levels[-1], top)
    if mode == "region":
        if n != 2:
            raise InputError("region mode makes pairs (n = 2)")
        import cv2

        fg = random_blob((h, w), float(rng.uniform(0.15, 0.4)), rng)
        soft = cv2.GaussianBlur(fg.astype(np.float32), (0, 0), 0.01 * max(h, w))
        focus_depth = [1.0, 0.0]
        layer = soft
    elif mode == "depth":
        layer = depth if depth is not None else depth_proxy(image)
        layer = np.clip(np.asarray(layer, np.float32), 0, 1)
        qs = np.quantile(layer, [(k + 0.5) / n for k in range(n)])
        focus_depth = [float(q) for q in qs]
    else:
        raise InputError(f"unknown multi-focus mode '{mode}' (valid: depth, region)")
    spread = max(1e-6, float(layer.max() - layer.min()))
    images, masks, stds_all = [], [], []
    for fd in focus_depth:
        stds = np.clip(np.abs(layer - fd) / spread * top * (1.0 if mode == "region" else 2.0), 0, top).astype(np.float32)
        stds_all.append(stds)
        images.append(_blend_by_std(image, stds, levels))
    sharpest = np.argmin(np.stack(stds_all), axis=0)
    for k in range(n):
        masks.append({"focus": sharpest == k})
    return Generated(images, {"mode": mode, "max_std": top, "focus_depths": focus_depth},
                     [{} for _ in range(n)], masks)
