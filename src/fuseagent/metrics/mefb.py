"""Information- and feature-based fusion metrics as computed by MEFB's MATLAB code.

MEFB (X. Zhang, "Benchmarking and comparing multi-exposure image fusion algorithms", Information
Fusion 2021; code ``xingchenzhang/MEFB``, folder ``metrics/``) evaluates colour results channel by
channel on 8-bit values and averages the three channel scores. Every metric here follows that
scheme (see :func:`mefb_planes`) so its numbers can be compared with published tables:

* ``fmi_mefb`` — feature mutual information on Sobel edge maps, 3×3 windows (Haghighat 2011/2014)
* ``nmi_mefb`` — normalised mutual information (Hossny 2008)
* ``qncie_mefb`` — nonlinear correlation information entropy (Wang 2005/2008)
* ``te_mefb`` — Tsallis-entropy mutual information, q = 1.85 (Cvejic 2006)
* ``qp_mefb`` — phase-congruency feature metric (Zhao, Laganière & Liu 2007)
* ``qc_mefb`` — Cvejic's SSIM/covariance-weighted metric (Cvejic 2005)
* ``qw_mefb`` — Piella's edge-dependent weighted fusion quality index (Piella 2003)
* ``qy_mefb`` — Yang's SSIM-based metric (Yang 2008)
* ``vif_mefb`` — fusion VIF (Han, Cai, Cao & Xu 2013)
* ``cc`` — mean correlation coefficient of the fused image with each source
* ``scd`` — sum of the correlations of differences (Aslantas & Bendes 2015)

Images are float ``[0, 1]`` arrays (as :func:`fuseagent.io.read_image` returns them); they are
brought back to the 0–255 integer grid MATLAB sees (``round(x * 255)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache

import cv2
import numpy as np

from ..errors import InputError
from ..io import check_image
from .base import MetricCard, as_sources, register_metric
from .fusion import _entropy, _joint_counts, _quantise_minmax, matlab_rgb2gray

__all__ = [
    "mefb_planes",
    "matlab_rgb2gray",
    "fspecial_gaussian",
    "filter_valid",
    "filter_same",
    "sobel_edges",
    "fmi",
    "nmi",
    "qncie",
    "tsallis_entropy_metric",
    "qp",
    "qc",
    "qw",
    "qy",
    "vif_fusion",
    "vif_maps",
    "correlation_coefficient",
    "scd",
]

_MEFB_REF = "X. Zhang, Information Fusion 2021 (MEFB, github.com/xingchenzhang/MEFB, metrics/)"

# --------------------------------------------------------------------------------------------
# Shared helpers: colour handling, MATLAB-compatible filters
# --------------------------------------------------------------------------------------------


def _to_8bit_grid(image: np.ndarray) -> np.ndarray:
    """float ``[0, 1]`` image → float64 on MATLAB's 0–255 integer grid."""
    return np.round(np.asarray(image, dtype=np.float64) * 255.0)


def _checked(sources: Sequence[np.ndarray], fused: np.ndarray, name: str,
             exactly: int | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    sources = as_sources(sources)
    if exactly is not None and len(sources) != exactly:
        raise InputError(f"{name} is defined for exactly {exactly} source images, got {len(sources)}")
    images = [check_image(s, f"{name} source {i}") for i, s in enumerate(sources)]
    fused = check_image(fused, f"{name} fused image")
    for i, s in enumerate(images):
        if s.shape[:2] != fused.shape[:2]:
            raise InputError(f"{name}: source {i} is {s.shape[1]}x{s.shape[0]} but the fused image is "
                             f"{fused.shape[1]}x{fused.shape[0]}; resample them to one size first")
    return images, fused


def mefb_planes(sources: Sequence[np.ndarray], fused: np.ndarray, name: str = "metric",
                exactly: int | None = None) -> list[tuple[list[np.ndarray], np.ndarray]]:
    """Split a fusion case into the 2-D planes MEFB's per-channel loop evaluates.

    * fused and every source colour → three planes (R, G, B), scores averaged by the caller;
    * grey sources with a colour result → MEFB keeps only the result's first (red) channel;
    * a grey source beside colour ones → replicated to each channel;
    * a grey result with colour sources → the sources are converted with ``rgb2gray``.

    Returns:
        ``[(source_planes, fused_plane), ...]`` as float64 on the 0–255 grid.

    Raises:
        InputError: fewer than 2 sources (or not ``exactly``), or sizes that differ.

    Example:
        >>> a = np.zeros((4, 4, 3), np.float32); f = np.ones((4, 4, 3), np.float32)
        >>> [len(s) for s, _ in mefb_planes([a, a], f)]
        [2, 2, 2]
    """
    images, fused = _checked(sources, fused, name, exactly)
    src = [_to_8bit_grid(s) for s in images]
    fus = _to_8bit_grid(fused)
    if fus.ndim == 3 and all(s.ndim == 2 for s in src):
        return [(src, fus[:, :, 0])]
    if fus.ndim == 2:
        return [([matlab_rgb2gray(s) for s in src], fus)]
    return [([s if s.ndim == 2 else s[:, :, k] for s in src], fus[:, :, k]) for k in range(3)]


def _per_channel(sources: Sequence[np.ndarray], fused: np.ndarray, name: str,
                 plane_metric: Callable[[list[np.ndarray], np.ndarray], float],
                 exactly: int | None = None) -> float:
    planes = mefb_planes(sources, fused, name, exactly)
    return float(np.mean([plane_metric(src, fus) for src, fus in planes]))


@lru_cache(maxsize=32)
def _gaussian_1d(size: int, sigma: float) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    g /= g.sum()
    g.setflags(write=False)
    return g


def fspecial_gaussian(size: int, sigma: float) -> np.ndarray:
    """MATLAB ``fspecial('gaussian', size, sigma)`` (normalised to sum 1).

    Example:
        >>> round(float(fspecial_gaussian(11, 1.5).sum()), 12)
        1.0
    """
    g = _gaussian_1d(size, sigma)
    return np.outer(g, g)


def filter_valid(image: np.ndarray, kernel_1d: np.ndarray) -> np.ndarray:
    """``filter2(outer(k, k), image, 'valid')`` for a symmetric separable kernel (float64)."""
    n = len(kernel_1d)
    h, w = image.shape
    if h < n or w < n:
        raise InputError(f"image of size {w}x{h} is smaller than the {n}x{n} metric window")
    out = cv2.sepFilter2D(np.ascontiguousarray(image, dtype=np.float64), cv2.CV_64F, kernel_1d, kernel_1d,
                          anchor=(n // 2, n // 2), borderType=cv2.BORDER_CONSTANT)
    r = n // 2
    return out[r:h - (n - 1 - r), r:w - (n - 1 - r)]


def filter_same(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``filter2(kernel, image, 'same')``: correlation with zero padding (odd kernel sizes)."""
    return cv2.filter2D(np.ascontiguousarray(image, dtype=np.float64), cv2.CV_64F, np.asarray(kernel, np.float64),
                        borderType=cv2.BORDER_CONSTANT)


# --------------------------------------------------------------------------------------------
# Histogram-based metrics: NMI, Qncie, TE (Z. Liu's imageFusionMetrics code as used by MEFB)
# --------------------------------------------------------------------------------------------


def _mutual_information(first: np.ndarray, second: np.ndarray) -> tuple[float, float, float]:
    """``(MI, H(first), H(second))`` in bits of two planes already quantised to 0–255 levels."""
    joint = _joint_counts(first, second)
    h1 = _entropy(joint.sum(axis=1))
    h2 = _entropy(joint.sum(axis=0))
    return h1 + h2 - _entropy(joint), h1, h2


def _nmi_plane(sources: list[np.ndarray], fused: np.ndarray) -> float:
    f = _quantise_minmax(fused)
    total = 0.0
    for s in sources:
        mi, hs, hf = _mutual_information(_quantise_minmax(s), f)
        denominator = hs + hf
        total += mi / denominator if denominator > 0 else 1.0
    return 2.0 * total


def _qncie_plane(sources: list[np.ndarray], fused: np.ndarray) -> float:
    planes = [_quantise_minmax(s) for s in sources] + [_quantise_minmax(fused)]
    k = len(planes)
    corr = np.eye(k)
    for i in range(k):
        for j in range(i + 1, k):
            corr[i, j] = corr[j, i] = _mutual_information(planes[i], planes[j])[0] / 8.0
    eig = np.linalg.eigvalsh(corr)
    eig = eig[eig > 0]
    hr = -float(np.sum(eig / k * np.log2(eig / k))) / 8.0
    return 1.0 - hr


def _tsallis_plane(sources: list[np.ndarray], fused: np.ndarray, q: float = 1.85) -> float:
    f = _quantise_minmax(fused)
    total = 0.0
    for s in sources:
        counts = _joint_counts(_quantise_minmax(s), f)
        joint = counts / counts.sum()
        p_source = joint.sum(axis=1)
        p_fused = joint.sum(axis=0)
        # MEFB's tsallis() multiplies the marginals with their indices swapped
        # (im1_marg is the fused image's marginal); reproduced as published.
        product = np.outer(p_fused, p_source)
        keep = (product != 0) & (joint != 0)
        value = float(np.sum(joint[keep] ** q / product[keep] ** (q - 1.0)))
        total += (1.0 - value) / (1.0 - q)
    return total


def nmi(sources: Sequence[np.ndarray], fused: np.ndarray) -> float:
    """Normalised mutual information ``2 Σ_s MI(s, F) / (H(s) + H(F))`` (Hossny et al. 2008).

    Each plane is first stretched to 0–255 (``normalize1``). Range ``[0, 2]`` for two sources.

    Example:
        >>> x = np.tile(np.linspace(0, 1, 32, dtype=np.float32), (32, 1))
        >>> round(nmi([x, x], x), 6)
        2.0
    """
    return _per_channel(sources, fused, "nmi_mefb", _nmi_plane)


def qncie(sources: Sequence[np.ndarray], fused: np.ndarray) -> float:
    """Nonlinear correlation information entropy ``Q_NCIE`` (Wang, Shen & Jin 2008).

    Example:
        >>> x = (np.arange(256).reshape(16, 16) / 255).astype(np.float32)  # 8 bits of entropy
        >>> round(qncie([x, x], x), 6)
        1.0
    """
    return _per_channel(sources, fused, "qncie_mefb", _qncie_plane)


def tsallis_entropy_metric(sources: Sequence[np.ndarray], fused: np.ndarray, q: float = 1.85) -> float:
    """Tsallis mutual-information metric ``TE`` with ``q = 1.85`` (Cvejic et al. 2006), summed over sources.

    Example:
        >>> x = np.tile(np.linspace(0, 1, 32, dtype=np.float32), (32, 1))
        >>> tsallis_entropy_metric([x, x], x) > 0
        True
    """
    if q == 1.0:
        raise InputError("te: q must differ from 1")
    return _per_channel(sources, fused, "te_mefb", lambda s, f: _tsallis_plane(s, f, q))


# --------------------------------------------------------------------------------------------
# FMI on Sobel edge maps (Haghighat's fast FMI, 'edge' features, 3x3 windows)
# --------------------------------------------------------------------------------------------


def sobel_edges(plane: np.ndarray) -> np.ndarray:
    """MATLAB ``edge(I)`` (Sobel, automatic threshold, thinning) of a 2-D float plane.

    Gradients by the Sobel masks / 8 with replicated borders, squared magnitude ``b``, cutoff
    ``4·mean(b)``, then the toolbox's directional local-maximum thinning.

    Example:
        >>> step = np.zeros((6, 16)); step[:, 8:] = 1
        >>> np.flatnonzero(sobel_edges(step)[2]).tolist()
        [8]
    """
    plane = np.ascontiguousarray(plane, dtype=np.float64)
    mask = np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]) / 8.0
    bx = np.abs(cv2.filter2D(plane, cv2.CV_64F, mask, borderType=cv2.BORDER_REPLICATE))
    by = np.abs(cv2.filter2D(plane, cv2.CV_64F, np.ascontiguousarray(mask.T), borderType=cv2.BORDER_REPLICATE))
    b = bx * bx + by * by
    cutoff = 4.0 * float(b.mean())
    tol = 100.0 * np.finfo(np.float64).eps
    left = np.ones_like(b, dtype=bool)
    right = np.ones_like(b, dtype=bool)
    up = np.ones_like(b, dtype=bool)
    down = np.ones_like(b, dtype=bool)
    left[:, 1:] = b[:, :-1] <= b[:, 1:]
    right[:, :-1] = b[:, :-1] > b[:, 1:]
    up[1:, :] = b[:-1, :] <= b[1:, :]
    down[:-1, :] = b[:-1, :] > b[1:, :]
    horizontal = (bx >= by - tol) & left & right
    vertical = (by >= bx - tol) & up & down
    return (b > cutoff) & (horizontal | vertical)


_BITS = ((np.arange(512)[:, None] >> np.arange(9)[None, :]) & 1).astype(np.float64)


def _window_codes(edges: np.ndarray) -> np.ndarray:
    """9-bit code of every interior 3×3 window; bit ``k`` is element ``k`` in MATLAB's column-major order."""
    e = edges.astype(np.int64)
    h, w = e.shape
    code = np.zeros((h - 2, w - 2), dtype=np.int64)
    k = 0
    for dc in range(3):
        for dr in range(3):
            code |= e[dr:dr + h - 2, dc:dc + w - 2] << k
            k += 1
    return code


def _pair_fmi(src_codes: np.ndarray, fus_codes: np.ndarray) -> np.ndarray:
    """Haghighat's windowed FMI for pairs of binary 9-vectors (given as codes), vectorised.

    The caller scores windows whose features are equal as 1; here constant windows are
    replaced by ones, as in the MATLAB code, before the copula-based joint entropy.
    """
    a = _BITS[src_codes]
    f = _BITS[fus_codes]
    a = np.where(a.max(axis=1, keepdims=True) == a.min(axis=1, keepdims=True), 1.0, a)
    f = np.where(f.max(axis=1, keepdims=True) == f.min(axis=1, keepdims=True), 1.0, f)
    a_pdf = a / a.sum(axis=1, keepdims=True)
    f_pdf = f / f.sum(axis=1, keepdims=True)
    a_cdf = np.cumsum(a_pdf, axis=1)
    f_cdf = np.cumsum(f_pdf, axis=1)
    a_c = a_pdf - a_pdf.mean(axis=1, keepdims=True)
    f_c = f_pdf - f_pdf.mean(axis=1, keepdims=True)
    cross = (a_c * f_c).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where(cross == 0, 0.0, cross / np.sqrt((a_c * a_c).sum(axis=1) * (f_c * f_c).sum(axis=1)))
    idx = np.arange(1, 10, dtype=np.float64)
    a_sd = np.sqrt(np.maximum((a_pdf * idx ** 2).sum(axis=1) - (a_pdf * idx).sum(axis=1) ** 2, 0.0))
    f_sd = np.sqrt(np.maximum((f_pdf * idx ** 2).sum(axis=1) - (f_pdf * idx).sum(axis=1) ** 2, 0.0))
    fc = f_cdf[:, :, None]
    ac = a_cdf[:, None, :]
    upper = np.minimum(fc, ac)                       # Fréchet upper bound copula
    lower = np.maximum(fc + ac - 1.0, 0.0)           # Fréchet lower bound copula
    product = fc * ac
    positive = c >= 0
    bound = np.where(positive[:, None, None], upper, lower)
    cov_bound = (bound - product).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr_bound = cov_bound / (f_sd * a_sd)
        mix = c / corr_bound
    degenerate = (a_sd == 0) | (f_sd == 0) | (positive & (c == 0))
    mix = np.where(degenerate, 0.0, mix)
    padded = np.zeros((bound.shape[0], 10, 10))
    padded[:, 1:, 1:] = bound
    bound_pdf = padded[:, 1:, 1:] - padded[:, :-1, 1:] - padded[:, 1:, :-1] + padded[:, :-1, :-1]
    jpdf = mix[:, None, None] * bound_pdf + (1.0 - mix[:, None, None]) * f_pdf[:, :, None] * a_pdf[:, None, :]
    magnitude = np.abs(jpdf)
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.where(jpdf != 0, -jpdf * np.log2(np.where(magnitude > 0, magnitude, 1.0)), 0.0)
        joint_entropy = terms.sum(axis=(1, 2))
        a_ent = np.where(a_pdf > 0, -a_pdf * np.log2(np.where(a_pdf > 0, a_pdf, 1.0)), 0.0).sum(axis=1)
        f_ent = np.where(f_pdf > 0, -f_pdf * np.log2(np.where(f_pdf > 0, f_pdf, 1.0)), 0.0).sum(axis=1)
        mi = a_ent + f_ent - joint_entropy
        return np.where(mi == 0, 0.0, 2.0 * mi / (a_ent + f_ent))


def _fmi_lookup(src_codes: np.ndarray, fus_codes: np.ndarray) -> np.ndarray:
    """FMI of every window pair, computed once per distinct (source, fused) pattern pair."""
    keys = src_codes.ravel() * 512 + fus_codes.ravel()
    unique, inverse = np.unique(keys, return_inverse=True)
    values = np.empty(unique.shape[0])
    chunk = 20000
    for start in range(0, unique.shape[0], chunk):
        part = unique[start:start + chunk]
        values[start:start + chunk] = _pair_fmi(part // 512, part % 512)
    return values[inverse].reshape(src_codes.shape)


def _fmi_plane(sources: list[np.ndarray], fused: np.ndarray) -> float:
    if fused.shape[0] < 3 or fused.shape[1] < 3:
        raise InputError("fmi needs images of at least 3x3 pixels")
    f_codes = _window_codes(sobel_edges(fused))
    scores = []
    for source in sources:
        codes = _window_codes(sobel_edges(source))
        differ = codes != f_codes
        value = np.ones(codes.shape)
        if differ.any():
            value[differ] = _fmi_lookup(codes[differ], f_codes[differ])
        scores.append(value)
    return float(np.mean(np.mean(scores, axis=0)))


def fmi(sources: Sequence[np.ndarray], fused: np.ndarray) -> float:
    """Feature mutual information on Sobel edge maps with 3×3 windows (fast FMI, Haghighat 2014).

    The per-window FMI of each source with the fused image is averaged over sources and windows.
    Each source is compared with the fused window as extracted (the published MEFB values
    correspond to this, not to re-using the window ``metricsFMI.m`` normalises in place).

    Example:
        >>> x = np.tile(np.linspace(0, 1, 16, dtype=np.float32), (16, 1))
        >>> fmi([x, x], x)
        1.0
    """
    return _per_channel(sources, fused, "fmi_mefb", _fmi_plane)


# --------------------------------------------------------------------------------------------
# SSIM-family metrics: Qc (Cvejic), Qy (Yang), Qw (Piella)
# --------------------------------------------------------------------------------------------


def _ssim_stats(x: np.ndarray, y: np.ndarray, kernel_1d: np.ndarray) -> tuple[np.ndarray, ...]:
    """Local ``mu_x, mu_y, var_x, var_y, cov_xy`` with a 'valid' Gaussian window (MATLAB form)."""
    mu_x = filter_valid(x, kernel_1d)
    mu_y = filter_valid(y, kernel_1d)
    var_x = filter_valid(x * x, kernel_1d) - mu_x * mu_x
    var_y = filter_valid(y * y, kernel_1d) - mu_y * mu_y
    cov = filter_valid(x * y, kernel_1d) - mu_x * mu_y
    return mu_x, mu_y, var_x, var_y, cov


def _ssim_map(x: np.ndarray, y: np.ndarray, kernel_1d: np.ndarray, c1: float, c2: float) -> tuple[np.ndarray, ...]:
    mu_x, mu_y, var_x, var_y, cov = _ssim_stats(x, y, kernel_1d)
    return _ssim_from_stats(mu_x, mu_y, var_x, var_y, cov, c1, c2)


def _flat_windows(plane: np.ndarray, size: int) -> np.ndarray:
    """Which 'valid' ``size``×``size`` windows of a plane hold a single value."""
    kernel = np.ones((size, size), np.uint8)
    r = size // 2
    same = cv2.dilate(plane, kernel) == cv2.erode(plane, kernel)
    return same[r:plane.shape[0] - r, r:plane.shape[1] - r]


def _yang_ssim_map(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    """``ssim_yang`` of MEFB: 7×7 Gaussian (σ 1.5), ``C1 = C2 = 2e-16``, 'valid' windows.

    With constants this small, windows where an image is flat compare floating-point residues:
    MATLAB's ``filter2`` evaluates every window with the same operations, so a flat patch of
    value ``v`` gets the residue ``var ≈ δ·v²`` (and ``cov ≈ δ·v·μ_y``) of weights summing to
    ``1 − δ``. That residue is modelled explicitly here (flat-window statistics set to
    ``δ·μ_x·μ_y`` with ``δ = 2^-52``); any ``δ`` well above ``C`` gives the same result.
    """
    size, sigma = _YANG_WINDOW
    mu_x, mu_y, var_x, var_y, cov = _ssim_stats(x, y, _gaussian_1d(size, sigma))
    flat_x, flat_y = _flat_windows(x, size), _flat_windows(y, size)
    delta = float(np.finfo(np.float64).eps)
    var_x = np.where(flat_x, 0.0, var_x) + delta * mu_x * mu_x
    var_y = np.where(flat_y, 0.0, var_y) + delta * mu_y * mu_y
    cov = np.where(flat_x | flat_y, 0.0, cov) + delta * mu_x * mu_y
    return _ssim_from_stats(mu_x, mu_y, var_x, var_y, cov, _YANG_C, _YANG_C)


def _ssim_from_stats(mu_x: np.ndarray, mu_y: np.ndarray, var_x: np.ndarray, var_y: np.ndarray, cov: np.ndarray,
                     c1: float, c2: float) -> tuple[np.ndarray, ...]:
    with np.errstate(invalid="ignore", divide="ignore"):
        ssim = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return ssim, var_x, var_y, cov


_YANG_WINDOW = (7, 1.5)
_YANG_C = 2e-16


def _undefined_similarity(sources: list[np.ndarray], fused: np.ndarray) -> float:
    """Score when every window is 0/0 (all planes black): 1 if the result copies a source, else 0.

    MATLAB returns NaN here; a defined value keeps rankings and rewards usable.
    """
    return 1.0 if any(np.array_equal(s, fused) for s in sources) else 0.0


def _qc_plane(sources: list[np.ndarray], fused: np.ndarray) -> float:
    ssim_a, _, _, cov_a = _yang_ssim_map(sources[0], fused)
    ssim_b, _, _, cov_b = _yang_ssim_map(sources[1], fused)
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = cov_a / (cov_a + cov_b)
        sim = weight * ssim_a + (1 - weight) * ssim_b
    sim = np.where(weight < 0, 0.0, sim)
    sim = np.where(weight > 1, 1.0, sim)
    sim = sim[~np.isnan(sim)]
    return float(sim.mean()) if sim.size else _undefined_similarity(sources, fused)


def _qy_plane(sources: list[np.ndarray], fused: np.ndarray) -> float:
    ssim_ab, var_a, var_b, _ = _yang_ssim_map(sources[0], sources[1])
    ssim_af = _yang_ssim_map(sources[0], fused)[0]
    ssim_bf = _yang_ssim_map(sources[1], fused)[0]
    similar = ssim_ab >= 0.75
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = var_a / (var_a + var_b)
        q1 = (weight * ssim_af + (1 - weight) * ssim_bf) * similar
        q2 = np.maximum(ssim_af, ssim_bf) * (~similar)
        total = q1 + q2
    total = total[~np.isnan(total)]
    return float(total.mean()) if total.size else _undefined_similarity(sources, fused)


_PIELLA_C1 = (0.01 * 255) ** 2
_PIELLA_C2 = (0.03 * 255) ** 2


def _qw_plane(sources: list[np.ndarray], fused: np.ndarray) -> float:
    g = _gaussian_1d(11, 1.5)
    horizontal = np.array([[1.0, 0.0, -1.0]] * 3)
    vertical = np.ascontiguousarray(np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -1.0, -1.0]]))

    def edge_strength(plane: np.ndarray) -> np.ndarray:
        return np.hypot(filter_same(plane, horizontal), filter_same(plane, vertical))

    fe, ae, be = edge_strength(fused), edge_strength(sources[0]), edge_strength(sources[1])
    _, var_a, var_b, _ = _ssim_map(ae, be, g, _PIELLA_C1, _PIELLA_C2)
    both_flat = (var_a + var_b) == 0
    var_a = var_a + 0.5 * both_flat
    var_b = var_b + 0.5 * both_flat
    weight = var_a / (var_a + var_b)
    ssim_fa = _ssim_map(fe, ae, g, _PIELLA_C1, _PIELLA_C2)[0]
    ssim_fb = _ssim_map(fe, be, g, _PIELLA_C1, _PIELLA_C2)[0]
    saliency = np.maximum(var_a, var_b)
    total = saliency.sum()
    if total == 0:
        return 1.0
    return float(np.sum(saliency / total * (weight * ssim_fa + (1 - weight) * ssim_fb)))


def qc(sources: Sequence[np.ndarray], fused: np.ndarray) -> float:
    """Cvejic's metric ``Q_C``: local SSIMs weighted by source–fused covariances (7×7 Gaussian).

    Example:
        >>> rng = np.random.default_rng(0); x = rng.random((24, 24)).astype(np.float32)
        >>> round(qc([x, x], x), 6)
        1.0
    """
    return _per_channel(sources, fused, "qc_mefb", _qc_plane, exactly=2)


def qy(sources: Sequence[np.ndarray], fused: np.ndarray) -> float:
    """Yang's metric ``Q_Y``: SSIM-based, switching on the sources' mutual SSIM (≥ 0.75).

    Example:
        >>> rng = np.random.default_rng(0); x = rng.random((24, 24)).astype(np.float32)
        >>> round(qy([x, x], x), 6)
        1.0
    """
    return _per_channel(sources, fused, "qy_mefb", _qy_plane, exactly=2)


def qw(sources: Sequence[np.ndarray], fused: np.ndarray) -> float:
    """Piella's weighted fusion quality index computed on edge-strength images (MEFB's ``Qw``,
    Piella's "edge-dependent" variant with ``alpha = 1``).

    Example:
        >>> rng = np.random.default_rng(0); x = rng.random((24, 24)).astype(np.float32)
        >>> round(qw([x, x], x), 6)
        1.0
    """
    return _per_channel(sources, fused, "qw_mefb", _qw_plane, exactly=2)


# --------------------------------------------------------------------------------------------
# Qp: phase congruency (Kovesi's phasecong3 as revised by Z. Liu)
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _phase_filters(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """Log-Gabor filters (nscale 4 × norient 6) and noise-model constants for one image size."""
    nscale, norient, min_wavelength, mult, sigma_on_f, d_theta = 4, 6, 3.0, 2.1, 0.55, 1.2
    theta_sigma = math.pi / norient / d_theta
    if cols % 2:
        xr = np.arange(-(cols - 1) / 2, (cols - 1) / 2 + 1) / (cols - 1)
    else:
        xr = np.arange(-cols / 2, cols / 2) / cols
    if rows % 2:
        yr = np.arange(-(rows - 1) / 2, (rows - 1) / 2 + 1) / (rows - 1)
    else:
        yr = np.arange(-rows / 2, rows / 2) / rows
    x, y = np.meshgrid(xr, yr)
    radius = np.sqrt(x * x + y * y)
    radius[rows // 2, cols // 2] = 1.0
    theta = np.arctan2(-y, x)
    radius = np.fft.ifftshift(radius)
    theta = np.fft.ifftshift(theta)
    sin_t, cos_t = np.sin(theta), np.cos(theta)
    # lowpassfilter([rows, cols], .45, 15) — built with fftshift as in the MATLAB code
    lx = (np.arange(1, cols + 1)[None, :] - (cols // 2 + 1)) / cols
    ly = (np.arange(1, rows + 1)[:, None] - (rows // 2 + 1)) / rows
    lp = np.fft.fftshift(1.0 / (1.0 + (np.sqrt(lx * lx + ly * ly) / 0.45) ** 30))
    log_gabor = []
    for s in range(nscale):
        fo = 1.0 / (min_wavelength * mult ** s)
        lg = np.exp(-(np.log(radius / fo)) ** 2 / (2 * math.log(sigma_on_f) ** 2)) * lp
        lg[0, 0] = 0.0
        log_gabor.append(lg)
    spread = []
    for o in range(norient):
        angle = o * math.pi / norient
        ds = sin_t * math.cos(angle) - cos_t * math.sin(angle)
        dc = cos_t * math.cos(angle) + sin_t * math.sin(angle)
        spread.append(np.exp(-np.arctan2(ds, dc) ** 2 / (2 * theta_sigma ** 2)))
    filters = np.stack([np.stack([lg * sp for lg in log_gabor]) for sp in spread])  # (orient, scale, r, c)
    # Noise-energy constants depend only on the filters of one orientation set.
    sum_an2, sum_aiaj = [], []
    for o in range(norient):
        spatial = [np.real(np.fft.ifft2(filters[o, s])) * math.sqrt(rows * cols) for s in range(nscale)]
        sum_an2.append(sum(float((sp ** 2).sum()) for sp in spatial))
        sum_aiaj.append(sum(float((spatial[i] * spatial[j]).sum())
                            for i in range(nscale - 1) for j in range(i + 1, nscale)))
    em_n = np.array([float((filters[o, 0] ** 2).sum()) for o in range(norient)])
    filters.setflags(write=False)
    return filters, em_n, np.array(sum_an2), np.array(sum_aiaj), float(norient)


_PC_CACHE: dict[bytes, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
_PC_CACHE_SIZE = 24


def _phase_congruency(plane: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(PC, M, m)`` of a plane, memoised on its content (the same sources are usually scored
    against many fused candidates)."""
    import hashlib

    key = hashlib.blake2b(np.ascontiguousarray(plane).tobytes(), digest_size=16,
                          person=str(plane.shape).encode()[:16]).digest()
    hit = _PC_CACHE.pop(key, None)
    if hit is None:
        hit = _phase_congruency_uncached(plane)
        while len(_PC_CACHE) >= _PC_CACHE_SIZE:
            _PC_CACHE.pop(next(iter(_PC_CACHE)))
    _PC_CACHE[key] = hit  # most recently used last
    return hit


def _phase_congruency_uncached(plane: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(PC, M, m)``: phase congruency, maximum and minimum moments (myphasecong3 defaults)."""
    rows, cols = plane.shape
    filters, em_n, sum_an2, sum_aiaj, _ = _phase_filters(rows, cols)
    norient, nscale = filters.shape[:2]
    k_noise, cut_off, g_sigmoid, epsilon = 2.0, 0.5, 10.0, 1e-4
    spectrum = np.fft.fft2(plane)
    total_energy = np.zeros((rows, cols))
    total_sum_an = np.zeros((rows, cols))
    covx2 = np.zeros((rows, cols))
    covy2 = np.zeros((rows, cols))
    covxy = np.zeros((rows, cols))
    for o in range(norient):
        angle = o * math.pi / norient
        evens, odds = [], []
        sum_an = np.zeros((rows, cols))
        max_an = None
        first_amplitude = None
        for s in range(nscale):
            response = np.fft.ifft2(spectrum * filters[o, s])
            even, odd = response.real.copy(), response.imag.copy()
            amplitude = np.hypot(even, odd)
            evens.append(even)
            odds.append(odd)
            sum_an += amplitude
            if max_an is None:
                max_an, first_amplitude = amplitude.copy(), amplitude
            else:
                np.maximum(max_an, amplitude, out=max_an)
        sum_e = np.sum(evens, axis=0)
        sum_o = np.sum(odds, axis=0)
        x_energy = np.hypot(sum_e, sum_o) + epsilon
        mean_e = sum_e / x_energy
        mean_o = sum_o / x_energy
        energy = np.zeros((rows, cols))
        for even, odd in zip(evens, odds):
            energy += even * mean_e + odd * mean_o - np.abs(even * mean_o - odd * mean_e)
        median_e2n = float(np.median(first_amplitude ** 2))
        mean_e2n = -median_e2n / math.log(0.5)
        noise_power = mean_e2n / em_n[o]
        est_noise_energy2 = 2 * noise_power * sum_an2[o] + 4 * noise_power * sum_aiaj[o]
        tau = math.sqrt(max(est_noise_energy2, 0.0) / 2)
        threshold = (tau * math.sqrt(math.pi / 2) + k_noise * math.sqrt((2 - math.pi / 2) * tau ** 2)) / 1.7
        energy = np.maximum(energy - threshold, 0.0)
        width = sum_an / (max_an + epsilon) / nscale
        weighted = energy / (1.0 + np.exp((cut_off - width) * g_sigmoid))
        total_sum_an += sum_an
        total_energy += weighted
        # no filter response at all (a flat image): no phase congruency, where MATLAB gives 0/0
        pc_o = np.divide(weighted, sum_an, out=np.zeros_like(weighted), where=sum_an > 0)
        covx = pc_o * math.cos(angle)
        covy = pc_o * math.sin(angle)
        covx2 += covx ** 2
        covy2 += covy ** 2
        covxy += covx * covy
    pc = total_energy / (total_sum_an + epsilon)
    covx2 /= norient / 2
    covy2 /= norient / 2
    covxy /= norient
    denom = np.sqrt(covxy ** 2 + (covx2 - covy2) ** 2) + epsilon
    big = (covy2 + covx2 + denom) / 2
    small = (covy2 + covx2 - denom) / 2
    for array in (pc, big, small):
        array.setflags(write=False)
    return pc, big, small


def _zhao_correlation(f1: np.ndarray, f2: np.ndarray, f_max: np.ndarray, f_fused: np.ndarray,
                      m1: np.ndarray, m2: np.ndarray, m3: np.ndarray) -> float:
    g = _gaussian_1d(11, 1.5)
    c = 1e-4
    x1, x2, x3 = m1 * f1, m2 * f2, m3 * f_max

    def blur(u: np.ndarray) -> np.ndarray:
        return cv2.sepFilter2D(np.ascontiguousarray(u), cv2.CV_64F, g, g, borderType=cv2.BORDER_CONSTANT)

    def local(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return blur(u * v)

    mu = {k: blur(v) for k, v in (("1", x1), ("2", x2), ("3", x3), ("f", f_fused))}
    var_f = local(f_fused, f_fused) - mu["f"] ** 2
    result = np.full(f1.shape, -np.inf)
    for key, x, m in (("1", x1, m1), ("2", x2, m2), ("3", x3, m3)):
        var_x = local(x, x) - mu[key] ** 2
        cov = local(x, f_fused) - mu[key] * mu["f"]
        with np.errstate(invalid="ignore", divide="ignore"):
            score = (cov + c) / (np.sqrt(np.abs(var_x * var_f)) + c)
        result = np.fmax(result, np.where(m, score, 0.0))
    area = float(m3.sum())
    if area == 0:
        return 0.0
    return float(result.sum()) / area


def _qp_plane(sources: list[np.ndarray], fused: np.ndarray) -> float:
    pc1, big1, small1 = _phase_congruency(sources[0])
    pc2, big2, small2 = _phase_congruency(sources[1])
    pcf, bigf, smallf = _phase_congruency(fused)
    first = pc1 > pc2
    mask1, mask2 = pc1 > 0.1, pc2 > 0.1
    pc_max = np.where(first, pc1, pc2)
    mask3 = pc_max > 0.1
    out = 1.0
    for a, b, f in ((pc1, pc2, pcf), (big1, big2, bigf), (small1, small2, smallf)):
        out *= _zhao_correlation(a, b, np.where(first, a, b), f, mask1, mask2, mask3)
    return out


def qp(sources: Sequence[np.ndarray], fused: np.ndarray) -> float:
    """Zhao–Laganière–Liu phase-congruency metric ``Q_P``: product of the best local correlations
    of phase congruency and its maximum and minimum moments with the fused image's.

    Example:
        >>> yy, xx = np.mgrid[0:48, 0:48]
        >>> x = ((np.sin(xx / 3.0) + np.cos(yy / 4.0)) / 4 + 0.5).astype(np.float32)
        >>> round(qp([x, x], x), 6)
        1.0
    """
    return _per_channel(sources, fused, "qp_mefb", _qp_plane, exactly=2)


# --------------------------------------------------------------------------------------------
# VIF for fusion (Han et al. 2013)
# --------------------------------------------------------------------------------------------

_VIF_NOISE = 0.005 * 255 * 255
_VIF_SCALE_WEIGHTS = np.array([1.0, 0.0, 0.15, 1.0]) / 2.15
# smallest side for which the 4th scale still holds one 5x5 'valid' window
_VIF_MIN_SIDE = 81


def vif_maps(ref: np.ndarray, dist: np.ndarray,
             noise_variance: float = _VIF_NOISE) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per scale ``(VID, VIND, g)`` maps of Sheikh & Bovik's pixel-domain VIF (4 scales, Gaussian
    windows of ``2^(5-s)+1`` pixels, σ = size/5, 'valid' filtering, dyadic decimation).

    ``VID`` is the information the distorted image keeps, ``VIND`` the reference's; ``g`` the
    local gain. Han et al.'s fusion VIF uses ``noise_variance = 0.005·255²``; the original VIFp 2.
    """
    out = []
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        g = _gaussian_1d(n, n / 5.0)
        if scale > 1:
            ref = filter_valid(ref, g)[::2, ::2]
            dist = filter_valid(dist, g)[::2, ::2]
        mu1, mu2, s1, s2, s12 = _ssim_stats(ref, dist, g)
        s1 = np.maximum(s1, 0.0)
        s2 = np.maximum(s2, 0.0)
        gain = s12 / (s1 + 1e-10)
        sv = s2 - gain * s12
        low1 = s1 < 1e-10
        gain[low1] = 0
        sv[low1] = s2[low1]
        s1[low1] = 0
        low2 = s2 < 1e-10
        gain[low2] = 0
        sv[low2] = 0
        negative = gain < 0
        sv[negative] = s2[negative]
        gain[negative] = 0
        sv[sv <= 1e-10] = 1e-10
        vid = np.log10(1 + gain ** 2 * s1 / (sv + noise_variance))
        vind = np.log10(1 + s1 / noise_variance)
        out.append((vid, vind, gain))
    return out


def _vif_plane(sources: list[np.ndarray], fused: np.ndarray) -> float:
    if min(fused.shape) < _VIF_MIN_SIDE:
        raise InputError(f"vif_mefb needs images of at least {_VIF_MIN_SIDE}x{_VIF_MIN_SIDE} pixels")
    maps = [vif_maps(s, fused) for s in sources]
    c = 1e-7
    total = 0.0
    for scale in range(4):
        gains = np.stack([m[scale][2] for m in maps])
        # MATLAB keeps source 2 unless source 1's gain is strictly smaller; argmin keeps the
        # first minimum, so the source order is reversed to pick the last one on ties.
        choice = len(maps) - 1 - np.argmin(gains[::-1], axis=0)
        vid = np.take_along_axis(np.stack([m[scale][0] for m in maps]), choice[None], 0)[0]
        vind = np.take_along_axis(np.stack([m[scale][1] for m in maps]), choice[None], 0)[0]
        ratio = float(np.sum(vid + c)) / float(np.sum(vind + c))
        total += _VIF_SCALE_WEIGHTS[scale] * ratio
    return total


def vif_fusion(sources: Sequence[np.ndarray], fused: np.ndarray) -> float:
    """Han et al.'s fusion VIF: per scale, the source whose local gain is smallest decides the
    visual information kept; scales weighted ``[1, 0, 0.15, 1] / 2.15``.

    Example:
        >>> rng = np.random.default_rng(0); x = rng.random((96, 96)).astype(np.float32)
        >>> round(vif_fusion([x, x], x), 6)
        1.0
    """
    return _per_channel(sources, fused, "vif_mefb", _vif_plane)


# --------------------------------------------------------------------------------------------
# Correlation metrics (common definitions, used by many IVIF papers)
# --------------------------------------------------------------------------------------------


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    xc = x - x.mean()
    yc = y - y.mean()
    denominator = math.sqrt(float((xc * xc).sum()) * float((yc * yc).sum()))
    if denominator == 0:
        return 1.0 if np.array_equal(x, y) else 0.0
    return float((xc * yc).sum()) / denominator


def correlation_coefficient(sources: Sequence[np.ndarray], fused: np.ndarray) -> float:
    """Mean Pearson correlation of the fused image with each source (per channel, averaged).

    Example:
        >>> x = np.tile(np.linspace(0, 1, 8, dtype=np.float32), (8, 1))
        >>> correlation_coefficient([x, 1 - x], x)
        0.0
    """
    return _per_channel(sources, fused, "cc",
                        lambda src, fus: float(np.mean([_pearson(s, fus) for s in src])))


def _scd_plane(sources: list[np.ndarray], fused: np.ndarray) -> float:
    a, b = sources
    return _pearson(fused - b, a) + _pearson(fused - a, b)


def scd(sources: Sequence[np.ndarray], fused: np.ndarray) -> float:
    """Sum of the correlations of differences ``corr(F − B, A) + corr(F − A, B)`` (Aslantas & Bendes 2015).

    Example:
        >>> rng = np.random.default_rng(0); a, b = rng.random((2, 16, 16)).astype(np.float32)
        >>> round(scd([a, b], (a + b) / 2), 2) > 0
        True
    """
    return _per_channel(sources, fused, "scd", _scd_plane, exactly=2)


# --------------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------------

_CARDS: tuple[tuple[Callable[..., float], MetricCard], ...] = (
    (fmi, MetricCard("fmi_mefb", "fusion", False, (0.0, 1.0),
                     "M. Haghighat & M. A. Razian, Fast-FMI, AICT 2014; " + _MEFB_REF,
                     "feature mutual information of Sobel edge maps, 3x3 windows", "mefb")),
    (nmi, MetricCard("nmi_mefb", "fusion", False, (0.0, 2.0),
                     "M. Hossny et al., Electron. Lett. 44(18) 2008; " + _MEFB_REF,
                     "normalised mutual information between each source and the fused image", "mefb")),
    (qncie, MetricCard("qncie_mefb", "fusion", False, (0.0, 1.0),
                       "Q. Wang, Y. Shen & J. Jin, Image Fusion: Algorithms and Applications 2008; " + _MEFB_REF,
                       "nonlinear correlation information entropy of sources and fused image", "mefb")),
    (tsallis_entropy_metric, MetricCard("te_mefb", "fusion", False, (-math.inf, math.inf),
                                        "N. Cvejic et al., Electron. Lett. 42(11) 2006; " + _MEFB_REF,
                                        "Tsallis-entropy mutual information (q = 1.85), summed over sources",
                                        "mefb")),
    (qp, MetricCard("qp_mefb", "fusion", False, (0.0, 1.0),
                    "J. Zhao, R. Laganiere & Z. Liu, IJICIC 3(6) 2007; " + _MEFB_REF,
                    "phase-congruency feature agreement (PC, max and min moments)", "mefb")),
    (qc, MetricCard("qc_mefb", "fusion", False, (0.0, 1.0),
                    "N. Cvejic, A. Loza, D. Bull & N. Canagarajah, IJSP 2(3) 2005; " + _MEFB_REF,
                    "covariance-weighted local SSIM with each source", "mefb")),
    (qw, MetricCard("qw_mefb", "fusion", False, (-1.0, 1.0),
                    "G. Piella & H. Heijmans, ICIP 2003; " + _MEFB_REF,
                    "saliency-weighted fusion quality index on edge-strength images", "mefb")),
    (qy, MetricCard("qy_mefb", "fusion", False, (0.0, 1.0),
                    "C. Yang, J.-Q. Zhang, X.-R. Wang & X. Liu, Inf. Fusion 9(2) 2008; " + _MEFB_REF,
                    "SSIM-based metric switching on the sources' mutual similarity", "mefb")),
    (vif_fusion, MetricCard("vif_mefb", "fusion", False, (0.0, math.inf),
                            "Y. Han, Y. Cai, Y. Cao & X. Xu, Inf. Fusion 14(2) 2013; " + _MEFB_REF,
                            "visual information fidelity for fusion (multi-scale, min-gain source)", "mefb")),
    (correlation_coefficient, MetricCard("cc", "fusion", False, (-1.0, 1.0),
                                         "Pearson correlation, as used by IVIF benchmarks",
                                         "mean correlation coefficient of the fused image with each source")),
    (scd, MetricCard("scd", "fusion", False, (-2.0, 2.0),
                     "V. Aslantas & E. Bendes, AEU Int. J. Electron. Commun. 69(12) 2015",
                     "sum of the correlations of differences")),
)

for _fn, _card in _CARDS:
    register_metric(_card)(_fn)
