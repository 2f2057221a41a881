"""Helpers shared by the fusion operators: colour handling and weight maps."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

from ...io import merge_luma, split_luma, to_gray
from ..base import fuse_chroma

__all__ = ["common_colour", "normalise_weights", "apply_weights", "luminances", "select_by_activity"]


def luminances(images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Luminance of each image (grey images pass through)."""
    return [to_gray(im) for im in images]


def common_colour(images: Sequence[np.ndarray]) -> tuple[list[np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    """Bring grey/RGB sources to one form a native-colour operator can fuse.

    All grey or all RGB: the images themselves and an identity finisher. Mixed (IVIF: grey
    infrared, RGB visible): the luminances, and a finisher that re-attaches the fused chroma of
    the colour sources to the fused luminance.

    Example:
        >>> grey, rgb = np.zeros((4, 4), np.float32), np.full((4, 4, 3), 0.5, np.float32)
        >>> planes, finish = common_colour([grey, rgb])
        >>> [p.shape for p in planes], finish(planes[1]).shape
        ([(4, 4), (4, 4)], (4, 4, 3))
    """
    ndims = {im.ndim for im in images}
    if len(ndims) == 1:
        return [np.ascontiguousarray(im, dtype=np.float32) for im in images], lambda fused: fused
    split = [split_luma(im) for im in images]
    chroma = fuse_chroma([s[1] for s in split])
    return [s[0] for s in split], lambda fused: merge_luma(fused, chroma)


def normalise_weights(weights: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Clip ``(K, H, W)`` weights at 0 and make them sum to 1 per pixel (uniform where all are 0).

    Example:
        >>> w = normalise_weights(np.array([[[3.0]], [[1.0]]]))
        >>> w[:, 0, 0].tolist()
        [0.75, 0.25]
        >>> normalise_weights(np.zeros((2, 1, 1)))[:, 0, 0].tolist()
        [0.5, 0.5]
    """
    weights = np.maximum(np.asarray(weights, dtype=np.float64), 0.0)
    total = weights.sum(axis=0, keepdims=True)
    uniform = np.full_like(weights, 1.0 / weights.shape[0])
    return np.where(total > eps, weights / np.maximum(total, eps), uniform)


def apply_weights(images: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Per-pixel weighted sum of ``K`` images (grey or RGB) with ``(K, H, W)`` weights."""
    out = np.zeros(images[0].shape, dtype=np.float64)
    for image, weight in zip(images, weights):
        out += image * (weight[..., None] if image.ndim == 3 else weight)
    return out.astype(np.float32)


def select_by_activity(bands: Sequence[np.ndarray], window: int = 3, consistency: bool = True) -> np.ndarray:
    """Per coefficient, the band value of the most active source (multi-scale selection rule).

    Activity is the local energy (mean of squares over ``window``×``window``; ``window=1`` is the
    plain max-abs rule). With ``consistency``, the choice map is majority-filtered over 3×3 so a
    coefficient follows its neighbours' source (Li, Manjunath & Mitra's consistency check).

    Example:
        >>> a, b = np.zeros((5, 5)), np.ones((5, 5))
        >>> b[2, 2] = 0.0; a[2, 2] = 0.5           # one isolated coefficient where a is larger
        >>> float(select_by_activity([a, b], window=1)[2, 2])   # follows its neighbours: b's value
        0.0
        >>> float(select_by_activity([a, b], window=1, consistency=False)[2, 2])
        0.5
    """
    stack = np.stack([np.asarray(b, dtype=np.float32) for b in bands])
    if window > 1:
        size = (int(window), int(window))
        activity = np.stack([cv2.blur(b * b, size, borderType=cv2.BORDER_REFLECT) for b in stack])
    else:
        activity = stack * stack
    choice = np.argmax(activity, axis=0)
    if consistency and len(bands) > 1 and min(choice.shape) >= 3:
        votes = np.stack([cv2.blur((choice == k).astype(np.float32), (3, 3), borderType=cv2.BORDER_REFLECT)
                          for k in range(len(bands))])
        choice = np.argmax(votes, axis=0)
    return np.take_along_axis(stack, choice[None], axis=0)[0]
