"""Structural-similarity metrics for exposure stacks and fused images.

* ``mef_ssim``  — MEF-SSIM (K. Ma, K. Zeng & Z. Wang, "Perceptual quality assessment for
  multi-exposure image fusion", IEEE TIP 24(11) 2015), three scales, exactly as MEFB computes it
  (``rgb2gray`` to 8-bit, ``mef_ms_ssim`` defaults).
* ``mef_ssimd`` — MEF-SSIMd for dynamic scenes (Y. Fang, H. Zhu, K. Ma, Z. Wang & S. Li,
  "Perceptual evaluation for multi-exposure image fusion of dynamic scenes", IEEE TIP 29, 2020).
* ``ms_ssim`` / ``ms_ssim_fusion`` — multi-scale SSIM (Z. Wang, E. Simoncelli & A. Bovik,
  Asilomar 2003), full-reference, and its fusion form averaged over the sources.
* ``vifp`` / ``vifp_fusion`` — pixel-domain VIF (H. Sheikh & A. Bovik, IEEE TIP 15(2) 2006) and the
  fusion form used by deep infrared–visible fusion papers: the sum of VIF(source, fused) over sources.

Every per-window statistic is computed with separable box / Gaussian filters over the whole image
(no Python loop over windows), so MEF-SSIM of a 640×480 pair takes a fraction of a second.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import InputError
from ..io import check_image
from .base import MetricCard, as_sources, register_metric
from .mefb import _gaussian_1d, _to_8bit_grid, filter_valid, matlab_rgb2gray, vif_maps

__all__ = ["MEFSSIMSources", "mef_ssim", "mef_ssim_sources", "mef_ssim_single_scale", "mef_ssimd", "ms_ssim",
           "ms_ssim_many", "ms_ssim_fusion", "vifp", "vifp_fusion"]

_WINDOW = 11
_GAUSS = _gaussian_1d(11, 1.5)
_BOX = np.full(_WINDOW, 1.0 / _WINDOW)
_MEF_C = (0.03 * 255) ** 2
_MEF_WEIGHTS = np.array([0.0448, 0.2856, 0.3001]) / (0.0448 + 0.2856 + 0.3001)
_MS_WEIGHTS = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
_EPS = float(np.finfo(np.float64).eps)


# --------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------


def _gray255(image: np.ndarray, name: str) -> np.ndarray:
    """float [0, 1] image → 8-bit grey values as MATLAB's ``double(rgb2gray(uint8))`` gives them."""
    return matlab_rgb2gray(_to_8bit_grid(check_image(image, name)))


def _fused_grey(fused: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    """The fused image as 8-bit grey values, checked against the sources' ``shape``."""
    f = _gray255(fused, f"{name} fused image")
    if f.shape != shape:
        raise InputError(f"{name}: the sources are {shape[1]}x{shape[0]} but the fused image is "
                         f"{f.shape[1]}x{f.shape[0]}; resample them to one size first")
    return f


def _grey_stack(sources: Sequence[np.ndarray], name: str, min_side: int) -> np.ndarray:
    """The sources as one ``(K, H, W)`` stack of 8-bit grey values, checked for size."""
    seq = [_gray255(s, f"{name} source {i}") for i, s in enumerate(as_sources(sources))]
    for i, s in enumerate(seq):
        if s.shape != seq[0].shape:
            raise InputError(f"{name}: source {i} is {s.shape[1]}x{s.shape[0]} but source 0 is "
                             f"{seq[0].shape[1]}x{seq[0].shape[0]}; resample them to one size first")
    if min(seq[0].shape) < min_side:
        raise InputError(f"{name} needs images of at least {min_side}x{min_side} pixels, "
                         f"got {seq[0].shape[1]}x{seq[0].shape[0]}")
    return np.stack(seq)


def _stack(sources: Sequence[np.ndarray], fused: np.ndarray, name: str, min_side: int) -> tuple[np.ndarray, np.ndarray]:
    seq = _grey_stack(sources, name, min_side)
    return seq, _fused_grey(fused, seq.shape[1:], name)


def _halve(image: np.ndarray) -> np.ndarray:
    """MATLAB ``imfilter(x, ones(2)/4, 'symmetric', 'same')`` followed by ``x(1:2:end, 1:2:end)``.

    Only the kept samples are computed: sample ``(2i, 2j)`` averages rows ``2i, 2i + 1`` and
    columns ``2j, 2j + 1``, the symmetric padding repeating the last row/column of an odd size.
    """
    rows, cols = image.shape
    if rows % 2 or cols % 2:
        image = np.pad(image, ((0, rows % 2), (0, cols % 2)), mode="edge")
    return (image[0::2, 0::2] + image[1::2, 0::2] + image[0::2, 1::2] + image[1::2, 1::2]) / 4.0


# --------------------------------------------------------------------------------------------
# The structural core shared by MEF-SSIM and MEF-SSIMd
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _DesiredStructure:
    """What :func:`_desired_structure_quality` needs of the blocks alone (not of the fused image)."""

    blocks: list[np.ndarray]
    coeffs: list[np.ndarray]
    g_mean: list[np.ndarray]
    scale: np.ndarray
    var_r: np.ndarray


def _desired_structure(blocks: list[np.ndarray], offsets: list[np.ndarray], coeffs: list[np.ndarray],
                       strength: np.ndarray) -> _DesiredStructure:
    """The desired patches' statistics of :func:`_desired_structure_quality` (blocks only)."""
    n = _WINDOW * _WINDOW
    k_count = len(blocks)
    box_mean = [filter_valid(b, _BOX) for b in blocks]
    g_mean = [filter_valid(b, _GAUSS) for b in blocks]
    norm_sq = np.zeros_like(strength)
    var_r = np.zeros_like(strength)
    for k in range(k_count):
        for l in range(k, k_count):
            product = blocks[k] * blocks[l]
            box_kl = filter_valid(product, _BOX)
            centred = box_kl - offsets[l] * box_mean[k] - offsets[k] * box_mean[l] + offsets[k] * offsets[l]
            g_cov = filter_valid(product, _GAUSS) - g_mean[k] * g_mean[l]
            factor = 1.0 if k == l else 2.0
            norm_sq += factor * coeffs[k] * coeffs[l] * n * centred
            var_r += factor * coeffs[k] * coeffs[l] * g_cov
    norm = np.sqrt(np.maximum(norm_sq, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(norm > 0, strength / norm, 1.0)
    return _DesiredStructure(blocks, coeffs, g_mean, scale, var_r)


def _structure_quality(desired: _DesiredStructure, fused: np.ndarray, c: float) -> np.ndarray:
    """The SSIM-like map of :func:`_desired_structure_quality` from the blocks' part and the fused image."""
    g_f = filter_valid(fused, _GAUSS)
    cov_rf = np.zeros_like(desired.scale)
    for block, coeff, g_mean in zip(desired.blocks, desired.coeffs, desired.g_mean, strict=True):
        cov_rf += coeff * (filter_valid(block * fused, _GAUSS) - g_mean * g_f)
    var_f = filter_valid(fused * fused, _GAUSS) - g_f * g_f
    sigma1 = np.maximum(desired.scale * desired.scale * desired.var_r, 0.0)
    sigma12 = desired.scale * cov_rf
    return (2.0 * sigma12 + c) / (sigma1 + var_f + c)


def _desired_structure_quality(blocks: list[np.ndarray], offsets: list[np.ndarray], coeffs: list[np.ndarray],
                               strength: np.ndarray, fused: np.ndarray, c: float) -> np.ndarray:
    """SSIM-like map between the fused image and the desired patch of every 11×11 window.

    The desired patch is ``r = Σ_k a_k (B_k − m_k)`` rescaled to norm ``strength`` (when its norm is
    positive), where ``B_k`` are the block images, ``m_k`` per-window offsets and ``a_k``
    per-window coefficients. Its Gaussian-weighted statistics against the fused patch follow from
    box and Gaussian filters of the products ``B_k B_l`` and ``B_k F`` alone.
    """
    return _structure_quality(_desired_structure(blocks, offsets, coeffs, strength), fused, c)


def _local_strength(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Box-window mean, standard deviation and signal strength ``‖x − μ‖ + 0.001``."""
    mu = filter_valid(image, _BOX)
    var = np.maximum(filter_valid(image * image, _BOX) - mu * mu, 0.0)
    sigma = np.sqrt(var)
    return mu, sigma, sigma * _WINDOW + 0.001


@dataclass(frozen=True)
class _MEFScale:
    """One scale of MEF-SSIM's source side: the stack's mean and its desired structure."""

    centre: float
    desired: _DesiredStructure


def _mef_scale(sequence: np.ndarray) -> _MEFScale:
    """What MEF-SSIM needs of an 8-bit grey stack ``(K, H, W)`` at one scale (see
    :func:`mef_ssim_single_scale`)."""
    centre = float(sequence.mean())
    seq = [s - centre for s in sequence]
    stats = [_local_strength(s) for s in seq]
    mus = [m for m, _, _ in stats]
    eds = np.stack([e for _, _, e in stats])
    denominator = np.sum([sd * _WINDOW for _, sd, _ in stats], axis=0)
    total = np.sum(seq, axis=0)
    _, total_sd, _ = _local_strength(total)
    consistency = (total_sd * _WINDOW + _EPS) / (denominator + _EPS)
    consistency = np.where(consistency > 1, 1 - _EPS, consistency)
    consistency = np.where(consistency < 0, _EPS, consistency)
    exponent = np.minimum(np.tan(math.pi / 2 * consistency), 10.0)
    weights = (eds / _WINDOW) ** exponent[None] + _EPS
    weights /= weights.sum(axis=0, keepdims=True)
    coeffs = list(weights / eds)
    return _MEFScale(centre, _desired_structure(seq, mus, coeffs, eds.max(axis=0)))


def _mef_scale_score(scale: _MEFScale, fused: np.ndarray) -> float:
    return float(_structure_quality(scale.desired, fused - scale.centre, _MEF_C).mean())


def mef_ssim_single_scale(sequence: np.ndarray, fused: np.ndarray) -> float:
    """Ma et al.'s single-scale MEF-SSIM of an 8-bit grey stack ``(K, H, W)`` and fused ``(H, W)``.

    Follows ``mef_ssim.m``: 11×11 box windows for the patch statistics and the structure
    consistency ``R``, ``p = min(tan(πR/2), 10)``, weights ``(‖x_k − μ_k‖/11)^p``, an 11×11
    Gaussian (σ 1.5) for the final comparison with ``C = (0.03·255)²``.
    """
    return _mef_scale_score(_mef_scale(sequence), fused)


@dataclass(frozen=True)
class MEFSSIMSources:
    """The source side of MEF-SSIM (:func:`mef_ssim_sources`), to score several fused images of one
    stack without analysing the stack again."""

    shape: tuple[int, int]
    scales: list[_MEFScale]


def mef_ssim_sources(sources: Sequence[np.ndarray]) -> MEFSSIMSources:
    """Analyse an exposure stack once for :func:`mef_ssim` (its ``prepared`` argument).

    Raises:
        InputError: fewer than 2 sources, mismatched sizes, or images smaller than 44×44.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> stack = [rng.random((64, 64)).astype(np.float32) for _ in range(2)]
        >>> fused = (stack[0] + stack[1]) / 2
        >>> mef_ssim(stack, fused, mef_ssim_sources(stack)) == mef_ssim(stack, fused)
        True
    """
    seq = _grey_stack(sources, "mef_ssim", _WINDOW * 4)
    shape = seq.shape[1:]
    scales = []
    for level in range(3):
        scales.append(_mef_scale(seq))
        if level < 2:
            seq = np.stack([_halve(s) for s in seq])
    return MEFSSIMSources(shape, scales)


def mef_ssim(sources: Sequence[np.ndarray], fused: np.ndarray, prepared: MEFSSIMSources | None = None) -> float:
    """MEF-SSIM (Ma, Zeng & Wang 2015) of a fused image against its exposure stack.

    Colour images are converted with MATLAB's ``rgb2gray`` on 8-bit values; three scales
    (2×2 mean + decimation), weights ``[0.0448, 0.2856, 0.3001]`` normalised, combined as
    ``Π Q_l^{w_l}`` (a negative scale score is clipped to 0). Images need ≥ 44 px per side.
    ``prepared``: the stack's analysis (:func:`mef_ssim_sources` of ``sources``), computed here when None.

    Raises:
        InputError: fewer than 2 sources, mismatched sizes, or images smaller than 44×44.

    Example:
        >>> rng = np.random.default_rng(0); x = rng.random((64, 64)).astype(np.float32)
        >>> round(mef_ssim([x, x], x), 6)
        1.0
    """
    if prepared is None:
        prepared = mef_ssim_sources(sources)
    f = _fused_grey(fused, prepared.shape, "mef_ssim")
    scores = []
    for level, scale in enumerate(prepared.scales):
        scores.append(_mef_scale_score(scale, f))
        if level < 2:
            f = _halve(f)
    return float(np.prod(np.maximum(scores, 0.0) ** _MEF_WEIGHTS))


# --------------------------------------------------------------------------------------------
# MEF-SSIMd (dynamic scenes)
# --------------------------------------------------------------------------------------------


def _histogram_match(image: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Map ``image``'s 8-bit grey levels so its histogram matches ``target``'s (MATLAB ``histeq``
    rule: each level goes to the first target level whose cumulative count reaches the middle of
    the level's own cumulative step)."""
    source_counts = np.bincount(image.astype(np.int64).ravel(), minlength=256).astype(np.float64)
    target_counts = np.bincount(target.astype(np.int64).ravel(), minlength=256).astype(np.float64)
    source_cdf = np.cumsum(source_counts)
    target_cdf = np.cumsum(target_counts) * image.size / target_counts.sum()
    tolerance = source_counts / 2.0
    tolerance[0] = tolerance[-1] = 0.0
    levels = np.searchsorted(target_cdf, source_cdf - tolerance - 1e-9 * image.size, side="left")
    levels = np.clip(levels, 0, 255).astype(np.float64)
    return levels[image.astype(np.int64)]


def _mef_ssimd_single_scale(sequence: np.ndarray, fused: np.ndarray, p: float, threshold: float) -> float:
    k_count = sequence.shape[0]
    stats = [_local_strength(s) for s in sequence]
    mus = [m for m, _, _ in stats]
    sigmas = [sd for _, sd, _ in stats]
    eds = [e for _, _, e in stats]
    # static / dynamic segmentation: structure term between every pair, opened with a disk
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * _WINDOW + 1, 2 * _WINDOW + 1))
    static = np.ones(mus[0].shape, dtype=bool)
    for i in range(k_count):
        for j in range(i + 1, k_count):
            cross = filter_valid(sequence[i] * sequence[j], _BOX) - mus[i] * mus[j]
            consistent = ((cross + _MEF_C) / (sigmas[i] * sigmas[j] + _MEF_C) >= threshold).astype(np.uint8)
            static &= cv2.morphologyEx(consistent, cv2.MORPH_OPEN, disk).astype(bool)
    static_count = int(static.sum())
    dynamic_count = static.size - static_count
    static_score = math.nan
    dynamic_scores = []
    for ref in range(k_count):
        pseudo = {i: _histogram_match(sequence[ref], sequence[i]) for i in range(k_count) if i != ref}
        pseudo_stats = {i: _local_strength(img) for i, img in pseudo.items()}
        # weights over the extended sequence (originals then pseudo exposures), per region
        def weights(region_static: bool) -> tuple[list[np.ndarray], np.ndarray]:
            masks_orig = [np.ones_like(eds[0]) if (region_static or i == ref) else np.zeros_like(eds[0])
                          for i in range(k_count)]
            raw = [e ** p * m + 0.001 for e, m in zip(eds, masks_orig)]
            strength = np.max([e * m for e, m in zip(eds, masks_orig)], axis=0)
            for i, (_, _, e) in pseudo_stats.items():
                mask = 0.0 if region_static else 1.0
                raw.append(e ** p * mask + 0.001)
                strength = np.maximum(strength, e * mask)
            normaliser = np.sum(raw, axis=0)
            return [raw[i] / normaliser for i in range(k_count)], strength

        if ref == 0 and static_count:
            w, strength = weights(True)
            qmap = _desired_structure_quality(list(sequence), mus, [w[i] / eds[i] for i in range(k_count)],
                                              strength, fused, _MEF_C)
            static_score = float(qmap[static].sum()) / static_count
        if dynamic_count:
            w, strength = weights(False)
            blocks = [sequence[i] if i == ref else pseudo[i] for i in range(k_count)]
            qmap = _desired_structure_quality(blocks, mus, [w[i] / eds[i] for i in range(k_count)],
                                              strength, fused, _MEF_C)
            dynamic_scores.append(float(qmap[~static].sum()) / dynamic_count)
    if not dynamic_count:
        return static_score
    if not static_count:
        return max(dynamic_scores)
    return (static_score + max(dynamic_scores)) / 2.0


def mef_ssimd(sources: Sequence[np.ndarray], fused: np.ndarray, p: float = 4.0, threshold: float = 0.5) -> float:
    """MEF-SSIMd (Fang et al., TIP 2020): MEF-SSIM that detects moving content.

    Windows where every source pair is structurally consistent (SSIM structure term ≥
    ``threshold`` after a morphological opening with a disk) are scored as in MEF-SSIM (weights
    ``ed^p``); elsewhere each exposure in turn is the reference, the others are replaced by its
    histogram-matched copies, and the best reference's score is kept. The final score averages
    the static and dynamic parts (single scale, the published default).

    Deviations from the authors' MATLAB: ``strel('disk', 11)`` is a true disk here (MATLAB uses a
    line-segment approximation) and ``imhistmatch`` follows ``histeq``'s mapping rule.

    Example:
        >>> rng = np.random.default_rng(0); x = rng.random((48, 48)).astype(np.float32)
        >>> round(mef_ssimd([x, x], x), 6)
        1.0
    """
    seq, f = _stack(sources, fused, "mef_ssimd", _WINDOW)
    return _mef_ssimd_single_scale(seq, f, p, threshold)


# --------------------------------------------------------------------------------------------
# MS-SSIM and VIFp
# --------------------------------------------------------------------------------------------


def _luma255(image: np.ndarray, name: str) -> np.ndarray:
    from ..io import to_gray

    return to_gray(check_image(image, name)).astype(np.float64) * 255.0


def _pair(reference: np.ndarray, test: np.ndarray, name: str, min_side: int) -> tuple[np.ndarray, np.ndarray]:
    ref = _luma255(reference, f"{name} reference")
    tst = _luma255(test, f"{name} test image")
    if ref.shape != tst.shape:
        raise InputError(f"{name}: the reference is {ref.shape[1]}x{ref.shape[0]} but the test image is "
                         f"{tst.shape[1]}x{tst.shape[0]}")
    if min(ref.shape) < min_side:
        raise InputError(f"{name} needs images of at least {min_side}x{min_side} pixels, got {ref.shape[1]}x{ref.shape[0]}")
    return ref, tst


def _ms_ssim_255(x: np.ndarray, y: np.ndarray) -> float:
    return _ms_ssim_255_many([x], y)[0]


Moments = tuple[np.ndarray, np.ndarray]


def _ms_ssim_255_many(references: Sequence[np.ndarray], y: np.ndarray,
                      first_moments: Sequence[Moments | None] | None = None) -> list[float]:
    """MS-SSIM of each reference against ``y``, the statistics of ``y`` computed once per scale.

    ``first_moments`` optionally gives, per reference, its local Gaussian mean and variance at
    full scale (``filter_valid(x)`` and ``filter_valid(x²) − mean²``) when already known.
    """
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    xs = list(references)
    known = list(first_moments) if first_moments is not None else [None] * len(xs)
    values: list[list[float]] = [[] for _ in xs]
    for level in range(5):
        mu_y = filter_valid(y, _GAUSS)
        var_y = filter_valid(y * y, _GAUSS) - mu_y ** 2
        for k, (x, scores) in enumerate(zip(xs, values, strict=True)):
            if level == 0 and known[k] is not None:
                mu_x, var_x = known[k]
            else:
                mu_x = filter_valid(x, _GAUSS)
                var_x = filter_valid(x * x, _GAUSS) - mu_x ** 2
            cov = filter_valid(x * y, _GAUSS) - mu_x * mu_y
            cs = (2 * cov + c2) / (var_x + var_y + c2)
            if level < 4:
                scores.append(float(cs.mean()))
            else:
                scores.append(float((((2 * mu_x * mu_y + c1) / (mu_x ** 2 + mu_y ** 2 + c1)) * cs).mean()))
        if level < 4:
            xs, y = [_halve(x) for x in xs], _halve(y)
    return [float(np.prod(np.maximum(scores, 0.0) ** _MS_WEIGHTS)) for scores in values]


def ms_ssim(reference: np.ndarray, test: np.ndarray) -> float:
    """Multi-scale SSIM (Wang, Simoncelli & Bovik 2003) on luma: 5 scales, 11×11 Gaussian (σ 1.5),
    ``K = (0.01, 0.03)``, weights ``[0.0448, 0.2856, 0.3001, 0.2363, 0.1333]``; negative scale
    terms are clipped to 0. Needs ≥ 176 px per side (11 px at the coarsest scale).

    Example:
        >>> rng = np.random.default_rng(0); x = rng.random((176, 176)).astype(np.float32)
        >>> round(ms_ssim(x, x), 6)
        1.0
    """
    ref, tst = _pair(reference, test, "ms_ssim", _WINDOW * 16)
    return _ms_ssim_255(ref, tst)


def ms_ssim_many(references: Sequence[np.ndarray], test: np.ndarray,
                 first_moments: Sequence[Moments | None] | None = None) -> list[float]:
    """``[ms_ssim(r, test) for r in references]``, the test image's pyramid analysed once.

    Args:
        references: reference images (each the size of ``test``).
        test: the image compared with each reference.
        first_moments: per reference, its full-scale local mean and variance on the 0–255 luma
            (:func:`fuseagent.metrics.structural.local_moments`, the same window) when already
            computed, or None.

    Returns:
        One MS-SSIM per reference.

    Example:
        >>> rng = np.random.default_rng(0); x = rng.random((176, 176)).astype(np.float32)
        >>> y = np.sqrt(x)
        >>> ms_ssim_many([x, y], y) == [ms_ssim(x, y), ms_ssim(y, y)]
        True
    """
    refs = [_pair(r, test, "ms_ssim", _WINDOW * 16)[0] for r in references]
    if first_moments is not None and len(first_moments) != len(refs):
        raise InputError(f"ms_ssim_many: {len(first_moments)} moments given for {len(refs)} references")
    return _ms_ssim_255_many(refs, _luma255(test, "ms_ssim test image"), first_moments)


def ms_ssim_fusion(sources: Sequence[np.ndarray], fused: np.ndarray) -> float:
    """Mean MS-SSIM between the fused image and each source.

    Example:
        >>> rng = np.random.default_rng(0); x = rng.random((176, 176)).astype(np.float32)
        >>> round(ms_ssim_fusion([x, x], x), 6)
        1.0
    """
    return float(np.mean(ms_ssim_many(as_sources(sources), fused)))


def vifp(reference: np.ndarray, test: np.ndarray) -> float:
    """Pixel-domain VIF (Sheikh & Bovik 2006, ``vifp_mscale``) of a test image against a reference
    on the 0–255 luma scale (noise variance 2). 1 for identical images; > 1 for contrast gain.

    Example:
        >>> rng = np.random.default_rng(0); x = rng.random((96, 96)).astype(np.float32)
        >>> round(vifp(x, x), 6)
        1.0
    """
    ref, tst = _pair(reference, test, "vifp", 81)
    maps = vif_maps(ref, tst, noise_variance=2.0)
    information = sum(float(vid.sum()) for vid, _, _ in maps)
    reference_information = sum(float(vind.sum()) for _, vind, _ in maps)
    if reference_information == 0:
        return 1.0 if np.array_equal(ref, tst) else 0.0
    return information / reference_information


def vifp_fusion(sources: Sequence[np.ndarray], fused: np.ndarray) -> float:
    """Fusion VIF as reported by deep IVIF papers: ``Σ_s VIFp(s, fused)``.

    Example:
        >>> rng = np.random.default_rng(0); x = rng.random((96, 96)).astype(np.float32)
        >>> round(vifp_fusion([x, x], x), 6)
        2.0
    """
    return float(sum(vifp(s, fused) for s in as_sources(sources)))


register_metric(MetricCard(
    "mef_ssim", "fusion", False, (0.0, 1.0),
    "K. Ma, K. Zeng & Z. Wang, IEEE TIP 24(11) 2015; MEFB metricsMEF_SSIM.m",
    "MEF-SSIM: structure of the best-exposed desired patch vs the fused image, 3 scales",
    "mefb", tasks=("mef",)))(mef_ssim)
register_metric(MetricCard(
    "mef_ssimd", "fusion", False, (0.0, 1.0),
    "Y. Fang, H. Zhu, K. Ma, Z. Wang & S. Li, IEEE TIP 29 2020",
    "MEF-SSIM for dynamic scenes (static/dynamic regions scored separately)",
    "common", tasks=("mef",)))(mef_ssimd)
register_metric(MetricCard(
    "ms_ssim", "fr", False, (0.0, 1.0), "Z. Wang, E. Simoncelli & A. Bovik, Asilomar 2003",
    "multi-scale structural similarity (5 scales) on luma"))(ms_ssim)
register_metric(MetricCard(
    "ms_ssim_fusion", "fusion", False, (0.0, 1.0), "Z. Wang, E. Simoncelli & A. Bovik, Asilomar 2003",
    "mean MS-SSIM between the fused image and each source"))(ms_ssim_fusion)
register_metric(MetricCard(
    "vifp", "fr", False, (0.0, math.inf), "H. Sheikh & A. Bovik, IEEE TIP 15(2) 2006",
    "pixel-domain visual information fidelity (4 scales)"))(vifp)
register_metric(MetricCard(
    "vifp_fusion", "fusion", False, (0.0, math.inf),
    "H. Sheikh & A. Bovik 2006, summed over sources as in deep IVIF papers (e.g. SeAFusion, U2Fusion)",
    "sum over sources of VIFp(source, fused)", tasks=("ivif", "mff")))(vifp_fusion)
