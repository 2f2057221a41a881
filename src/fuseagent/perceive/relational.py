"""Relational estimates of a pair: exposure and white-balance mismatch, moving objects and
complementarity (which image is in focus / well exposed where).

Everything works on a reduced copy (width ``work_width``) of the two images after the moving one
has been brought into the reference frame by the estimated alignment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from ..degrade.photometric import REFERENCE_GAMMA
from ..io import resize_to, to_gray
from .align import Alignment, structure_map
from .features import channel_max, channel_min

__all__ = ["exposure_mismatch_ev", "white_balance_mismatch", "MotionEstimate", "detect_motion", "complementarity",
           "warp_to_reference"]

# Inverse camera response by table: 8-bit code → relative radiance.
_LINEAR = np.power(np.arange(256, dtype=np.float64) / 255.0, REFERENCE_GAMMA)


def _linear(values: np.ndarray) -> np.ndarray:
    return _LINEAR[np.round(np.clip(values, 0, 1) * 255).astype(np.uint8)]


def warp_to_reference(moving: np.ndarray, alignment: Alignment, size: tuple[int, int]) -> np.ndarray:
    """Resample ``moving`` into the reference frame (``size = (H, W)``) with the estimated transform."""
    h, w = size
    mov = resize_to(moving, (h, w)) if moving.shape[:2] != (h, w) else moving
    return cv2.warpPerspective(mov, alignment.transform, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REFLECT101)


def exposure_mismatch_ev(a: np.ndarray, b: np.ndarray) -> float:
    """EV of ``b`` relative to ``a`` (positive: ``b`` brighter), from the median linearised
    luminance of the pixels that are neither black nor clipped in both.

    Example:
        >>> from fuseagent.degrade.photometric import change_exposure
        >>> x = np.linspace(0.1, 0.6, 400, dtype=np.float32).reshape(20, 20)
        >>> round(exposure_mismatch_ev(x, change_exposure(x, 1.0)), 1)
        1.0
    """
    ga, gb = to_gray(a), to_gray(b)
    if ga.shape != gb.shape:
        gb = resize_to(gb, ga.shape)
    ok = (ga > 0.02) & (ga < 0.98) & (gb > 0.02) & (gb < 0.98)
    if ok.sum() < 50:
        ok = np.ones_like(ga, bool)
    return float(np.log2(_linear_median(gb[ok]) + 1e-6) - np.log2(_linear_median(ga[ok]) + 1e-6))


def _linear_median(values: np.ndarray) -> float:
    """Median of the linearised values (the table is monotonic: read it at the median codes)."""
    codes = np.round(np.clip(values, 0, 1) * 255).astype(np.uint8)
    cdf = np.cumsum(np.bincount(codes, minlength=256))
    n = codes.size
    low, high = np.searchsorted(cdf, [(n - 1) // 2 + 1, n // 2 + 1])
    return float(0.5 * (_LINEAR[low] + _LINEAR[high]))


def _log_rb(image: np.ndarray) -> float:
    lin = _linear(image)
    ok = (channel_min(image) > 5 / 255) & (channel_max(image) < 250 / 255)
    if ok.sum() < 50:
        ok = np.ones(image.shape[:2], bool)
    red, blue = float(lin[..., 0][ok].mean()) + 1e-6, float(lin[..., 2][ok].mean()) + 1e-6
    return float(np.log(red / blue))


def white_balance_mismatch(a: np.ndarray, b: np.ndarray) -> float | None:
    """Log red/blue gain of ``b`` relative to ``a`` in linear radiance (grey-world), or None when
    either image is grey.

    Example:
        >>> from fuseagent.degrade import degrade
        >>> x = np.random.default_rng(0).uniform(0.2, 0.7, (32, 32, 3)).astype(np.float32)
        >>> y = degrade("photometric.white_balance", x, seed=0, log_rb=0.3, log_g=0.0).image
        >>> round(white_balance_mismatch(x, y), 1)
        0.3
    """
    if a.ndim != 3 or b.ndim != 3:
        return None
    return _log_rb(b) - _log_rb(a)


@dataclass
class MotionEstimate:
    """Moving-object estimate: a mask in the reference frame, its area and a detection score."""

    mask: np.ndarray
    area_fraction: float
    score: float
    features: dict[str, float] = field(default_factory=dict)


def _block_sum(x: np.ndarray, block: int) -> np.ndarray:
    h, w = (x.shape[0] // block) * block, (x.shape[1] // block) * block
    return x[:h, :w].reshape(h // block, block, w // block, block).sum(axis=(1, 3))


def _match_histogram(source: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Map ``source`` intensities so that their distribution matches ``template``'s (CDF matching)."""
    src_sorted = np.sort(source.ravel())
    tpl_sorted = np.sort(template.ravel())
    quantiles = np.searchsorted(src_sorted, source.ravel(), side="left") / max(1, src_sorted.size - 1)
    return np.interp(quantiles, np.linspace(0, 1, tpl_sorted.size), tpl_sorted).reshape(source.shape).astype(np.float32)


def detect_motion(reference: np.ndarray, moving_aligned: np.ndarray, work_width: int = 320, block: int = 12,
                  z_threshold: float = 3.0, same_modality: bool = True) -> MotionEstimate:
    """Blocks where the aligned images disagree far more than they typically do.

    Same modality (MEF, MFF): the moving image's intensities are matched to the reference's by
    histogram (exposure-invariant), both are smoothed (σ = 2 px, so focus differences matter
    little) and each block scores its mean absolute difference over the blocks' contrast; blocks
    with clipped or black pixels in either image are not evidence. Infrared-visible: each block
    scores the disagreement of the normalised gradient fields (:func:`~.align.structure_map`) plus
    their energy asymmetry (an inpainted hole is flat where the other image has structure).
    Blocks scoring more than ``z_threshold`` robust deviations above the median form candidate
    regions; the largest excess wins.

    Returns:
        The estimate; ``score`` is the summed excess z of the winning region (0 when nothing
        stands out).
    """
    h, w = reference.shape[:2]
    scale = min(1.0, work_width / w)
    sw, sh = max(block * 4, int(round(w * scale))), max(block * 4, int(round(h * scale)))
    ra = cv2.resize(to_gray(reference), (sw, sh), interpolation=cv2.INTER_AREA)
    ma = cv2.resize(to_gray(moving_aligned), (sw, sh), interpolation=cv2.INTER_AREA)
    n = block * block
    border = np.zeros((sh // block, sw // block), bool)
    border[1:-1, 1:-1] = True
    if same_modality:
        clipped = ((ra <= 0.02) | (ra >= 0.98) | (ma <= 0.02) | (ma >= 0.98)).astype(np.float32)
        matched = _match_histogram(ma, ra)
        rs, ms = cv2.GaussianBlur(ra, (0, 0), 2.0), cv2.GaussianBlur(matched, (0, 0), 2.0)
        diff = _block_sum(np.abs(rs - ms), block) / n
        mean_r, mean_m = _block_sum(rs, block) / n, _block_sum(ms, block) / n
        std_r = np.sqrt(np.maximum(_block_sum(rs * rs, block) / n - mean_r ** 2, 0))
        std_m = np.sqrt(np.maximum(_block_sum(ms * ms, block) / n - mean_m ** 2, 0))
        score = diff / (0.5 * (std_r + std_m) + 0.03)
        valid = border & (_block_sum(clipped, block) / n < 0.25)
    else:
        zr, zm = structure_map(ra, 1.5), structure_map(ma, 1.5)
        cross = _block_sum(np.real(zr * np.conj(zm)), block)
        er, em = _block_sum(np.abs(zr) ** 2, block), _block_sum(np.abs(zm) ** 2, block)
        disagree = 1.0 - cross / (np.sqrt(er * em) + 1e-6)
        asym = np.abs(er - em) / (er + em + 1e-6)
        score = 0.5 * disagree + asym
        valid = border & (np.maximum(er, em) / n > 0.05)
    if valid.sum() < 8:
        empty = np.zeros((h, w), bool)
        return MotionEstimate(empty, 0.0, 0.0, {"max_z": 0.0, "component": 0.0, "median": 0.0})
    med = float(np.median(score[valid]))
    mad = float(np.median(np.abs(score[valid] - med))) * 1.4826 + 0.03
    z = np.where(valid, (score - med) / mad, 0.0)
    hot = (z > z_threshold).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(hot, connectivity=8)
    best_score, best = 0.0, 0
    for k in range(1, count):
        s = float(z[labels == k].sum() - z_threshold * stats[k, cv2.CC_STAT_AREA])
        if stats[k, cv2.CC_STAT_AREA] >= 2 and s > best_score:
            best_score, best = s, k
    blocks = (labels == best) if best else np.zeros_like(hot, bool)
    bh, bw = blocks.shape
    small = np.zeros((sh, sw), np.uint8)
    small[:bh * block, :bw * block] = np.kron(blocks.astype(np.uint8), np.ones((block, block), np.uint8))
    mask = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    feats = {"max_z": float(z.max()), "component": best_score, "median": med,
             "component_blocks": float(blocks.sum())}
    return MotionEstimate(mask, float(mask.mean()), best_score, feats)


def complementarity(a: np.ndarray, b_aligned: np.ndarray, work_width: int = 320, block: int = 16) -> dict[str, Any]:
    """Which image is in focus and which is well exposed, as shares of the frame.

    Focus: per block, the mean |Laplacian| of each image; a block belongs to the image whose value
    is ≥ 1.25 times the other's. Exposure: per block, Mertens et al.'s well-exposedness
    ``exp(-(mean - 0.5)^2 / (2 * 0.2^2))`` with the same rule.

    Example:
        >>> x = np.random.default_rng(0).random((64, 64)).astype(np.float32)
        >>> c = complementarity(x, cv2.GaussianBlur(x, (0, 0), 2))
        >>> c["focus"]["a"] > 0.9
        True
    """
    h, w = a.shape[:2]
    scale = min(1.0, work_width / w)
    sw, sh = max(block * 2, int(round(w * scale))), max(block * 2, int(round(h * scale)))
    ga = cv2.resize(to_gray(a), (sw, sh), interpolation=cv2.INTER_AREA)
    gb = cv2.resize(to_gray(b_aligned), (sw, sh), interpolation=cv2.INTER_AREA)
    n = block * block
    sharp_a = _block_sum(np.abs(cv2.Laplacian(ga, cv2.CV_32F)), block) / n
    sharp_b = _block_sum(np.abs(cv2.Laplacian(gb, cv2.CV_32F)), block) / n
    well_a = np.exp(-((_block_sum(ga, block) / n - 0.5) ** 2) / (2 * 0.2 ** 2))
    well_b = np.exp(-((_block_sum(gb, block) / n - 0.5) ** 2) / (2 * 0.2 ** 2))

    def shares(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        better_a = x >= 1.25 * y + 1e-6
        better_b = y >= 1.25 * x + 1e-6
        return {"a": round(float(better_a.mean()), 4), "b": round(float(better_b.mean()), 4),
                "similar": round(float((~better_a & ~better_b).mean()), 4)}

    return {"focus": shares(sharp_a, sharp_b), "exposure": shares(well_a, well_b)}
