"""Structure-based fusion metrics as VIFB and MEFB compute them: SSIM, Q^AB/F, N^AB/F, Qcb, Qcv.

Inputs, scale and colour handling are those of :mod:`fuseagent.metrics.fusion`: float ``[0, 1]``
images scored on the 0–255 scale channel by channel. Every metric accepts any number (≥ 2) of
sources; with two it is exactly the published two-source formula.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TypeVar

import cv2
import numpy as np

from ..errors import InputError
from .base import MetricCard, register_metric
from .fusion import _per_channel, register_pair
from .mefb import _gaussian_1d, filter_valid

__all__ = ["ssim", "ssim_vifb", "qabf", "nabf", "qcb", "qcv", "ssim_map_mean", "local_moments", "ssim_with_moments"]

T = TypeVar("T")


# ------------------------------------------------------------------------------------------- memo
_MEMO: OrderedDict[tuple, object] = OrderedDict()
_MEMO_SIZE = 48


def _memo(tag: str, channel: np.ndarray, compute: Callable[[np.ndarray], T], *extra: object) -> T:
    """``compute(channel)``, remembered by content: sources shared by many fused results (a
    benchmark's methods, a planner's candidates) are analysed once. Small LRU of recent maps."""
    digest = hashlib.sha1(np.ascontiguousarray(channel).view(np.uint8), usedforsecurity=False).digest()
    key = (tag, channel.shape, digest, *extra)
    if key in _MEMO:
        _MEMO.move_to_end(key)
        return _MEMO[key]  # type: ignore[return-value]
    value = compute(channel)
    _MEMO[key] = value
    if len(_MEMO) > _MEMO_SIZE:
        _MEMO.popitem(last=False)
    return value


# -------------------------------------------------------------------------------------------- SSIM
_SSIM_WINDOW = _gaussian_1d(11, 1.5)


def _valid_blur(x: np.ndarray) -> np.ndarray:
    """``filter2(w, x, 'valid')`` with the 11×11 Gaussian window."""
    return filter_valid(x, _SSIM_WINDOW)


def _local_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local Gaussian mean and variance over the 'valid' region."""
    mu = _valid_blur(x)
    return mu, _valid_blur(x * x) - mu * mu


def ssim_map_mean(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004) of two 0–255 channels: 11×11 Gaussian window (σ = 1.5),
    ``K = (0.01, 0.03)``, ``L = 255``, over the 'valid' region only (as VIFB's ``filter2(..., 'valid')``).

    Raises:
        InputError: an image smaller than the 11×11 window.
    """
    h, w = a.shape
    if h < 11 or w < 11:
        raise InputError(f"SSIM needs images of at least 11x11 pixels, got {w}x{h}")
    return ssim_with_moments(a, b, _memo("ssim", a, _local_moments), _local_moments(b))


def local_moments(channel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local Gaussian mean and variance of a 0–255 channel, as :func:`ssim_map_mean` uses them.

    Computing them once lets :func:`ssim_with_moments` compare many images with the same one.

    Example:
        >>> mu, var = local_moments(np.full((16, 16), 3.0))
        >>> mu.shape, round(float(mu[0, 0]), 9), abs(float(var[0, 0])) < 1e-9
        ((6, 6), 3.0, True)
    """
    if min(channel.shape) < 11:
        raise InputError(f"SSIM needs images of at least 11x11 pixels, got {channel.shape[1]}x{channel.shape[0]}")
    return _local_moments(channel)


def ssim_with_moments(a: np.ndarray, b: np.ndarray, moments_a: tuple[np.ndarray, np.ndarray],
                      moments_b: tuple[np.ndarray, np.ndarray]) -> float:
    """:func:`ssim_map_mean` of ``a`` and ``b`` given their :func:`local_moments` (the same value).

    The formula is symmetric: ``ssim_with_moments(b, a, mb, ma)`` is the same number.

    Example:
        >>> x = np.random.default_rng(0).random((16, 16)) * 255
        >>> y = np.sqrt(x) * 16
        >>> ssim_with_moments(x, y, local_moments(x), local_moments(y)) == ssim_map_mean(x, y)
        True
    """
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, var_a = moments_a
    mu_b, var_b = moments_b
    ab = mu_a * mu_b
    aa, bb = mu_a * mu_a, mu_b * mu_b
    cov = _valid_blur(a * b) - ab
    ssim_map = ((2 * ab + c1) * (2 * cov + c2)) / ((aa + bb + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def ssim_vifb(sources: Sequence[np.ndarray], fused: np.ndarray, variant: str = "vifb") -> float:
    """VIFB's SSIM: the *sum* ``SSIM(A, F) + SSIM(B, F)`` per channel, averaged (range 0–2 for two
    sources).

    Example:
        >>> x = np.random.default_rng(0).random((16, 16))
        >>> round(ssim_vifb([x, x], x), 6)
        2.0
    """
    return _per_channel(sources, fused, variant, lambda src, f: float(sum(ssim_map_mean(s, f) for s in src)))


def ssim(sources: Sequence[np.ndarray], fused: np.ndarray, variant: str = "vifb") -> float:
    """SSIM of the fused image averaged over sources (and channels): range −1…1.

    Example:
        >>> x = np.random.default_rng(0).random((16, 16))
        >>> round(ssim([x, x], x), 6)
        1.0
    """
    return _per_channel(sources, fused, variant,
                        lambda src, f: float(np.mean([ssim_map_mean(s, f) for s in src])))


# -------------------------------------------------------------------------------------- Qabf, Nabf
_SOBEL_Y = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])
_SOBEL_X = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
_TG, _KG, _DG = 0.9994, -15.0, 0.5
_TA, _KA, _DA = 0.9879, -22.0, 0.8


def _sobel_zero_padded(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sobel responses with zero padding ('same'); returns (gx, gy, magnitude)."""
    gx = cv2.filter2D(x, cv2.CV_64F, _SOBEL_X, borderType=cv2.BORDER_CONSTANT)
    gy = cv2.filter2D(x, cv2.CV_64F, _SOBEL_Y, borderType=cv2.BORDER_CONSTANT)
    return gx, gy, np.sqrt(gx * gx + gy * gy)


def _edge_maps(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edge strength and orientation ``atan(gy / gx)`` (π/2 where ``gx == 0``)."""
    gx, gy, g = _sobel_zero_padded(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        angle = np.where(gx == 0, math.pi / 2, np.arctan(gy / np.where(gx == 0, 1.0, gx)))
    return g, angle


def _edge_preservation(g_s: np.ndarray, a_s: np.ndarray, g_f: np.ndarray, a_f: np.ndarray) -> np.ndarray:
    """Q^{SF} map of Xydeas & Petrović with the published code's branches (``gS == gF`` gives ``gF``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(g_s > g_f, g_f / np.where(g_s > g_f, g_s, 1.0),
                            np.where(g_s == g_f, g_f, g_s / np.where(g_f > 0, g_f, 1.0)))
    orientation = 1.0 - np.abs(a_s - a_f) / (math.pi / 2)
    q_g = _TG / (1.0 + np.exp(_KG * (relative - _DG)))
    q_a = _TA / (1.0 + np.exp(_KA * (orientation - _DA)))
    return q_g * q_a


def _qabf_nabf_channel(sources: list[np.ndarray], f: np.ndarray) -> tuple[float, float]:
    g_f, a_f = _edge_maps(f)
    numerator = denominator = artefacts = 0.0
    strengths = []
    preserved = []
    for s in sources:
        g_s, a_s = _memo("edges", s, _edge_maps)
        q = _edge_preservation(g_s, a_s, g_f, a_f)
        strengths.append(g_s)
        preserved.append(q)
        numerator += float((q * g_s).sum())
        denominator += float(g_s.sum())
    stronger = np.all([g_f > g for g in strengths], axis=0)
    for g_s, q in zip(strengths, preserved):
        artefacts += float((stronger * (1.0 - q) * g_s).sum())
    if denominator == 0:
        return 0.0, 0.0
    return numerator / denominator, artefacts / denominator


def qabf(sources: Sequence[np.ndarray], fused: np.ndarray, variant: str = "vifb") -> float:
    """Q^AB/F (Xydeas & Petrović 2000): edge strength and orientation preserved from the sources,
    weighted by source edge strength; per channel, averaged. 0 when no source has any edge.

    Example:
        >>> x = np.zeros((8, 8)); x[:, 4:] = 1.0
        >>> round(qabf([x, x], x), 4)
        0.9753
    """
    return _per_channel(sources, fused, variant, lambda src, f: _qabf_nabf_channel(src, f)[0])


def nabf(sources: Sequence[np.ndarray], fused: np.ndarray, variant: str = "vifb") -> float:
    """N^AB/F, the modified artefact measure of Kumar (SIViP 2013): loss ``1 − Q^SF`` weighted by
    source edge strength, counted only where the fused gradient exceeds every source's. Lower is
    better; 0 when no source has any edge.

    Example:
        >>> x = np.zeros((8, 8)); x[:, 4:] = 0.5
        >>> nabf([x, x], x)
        0.0
    """
    return _per_channel(sources, fused, variant, lambda src, f: _qabf_nabf_channel(src, f)[1])


# ------------------------------------------------------------------------------------ normalise1
def _normalise_255(x: np.ndarray, prescale: bool = False) -> np.ndarray:
    """Z. Liu's ``normalize1``: min–max to 0–255 and rounded; a constant image becomes zeros.

    ``prescale`` mimics MEFB's Qcb, which divides by 255 (``im2double``) first.
    """
    if prescale:
        x = x / 255.0
    high, low = x.max(), x.min()
    if high == low:
        return np.zeros_like(x) if high != 0 or low != 0 else x
    return np.round((x - low) / (high - low) * 255.0)


def _freqspace(n: int) -> np.ndarray:
    """MATLAB ``freqspace`` 1-D frequencies: ``(k − ⌊n/2⌋) · 2/n``."""
    return (np.arange(n) - n // 2) * (2.0 / n)


@functools.lru_cache(maxsize=16)
def _radius(h: int, w: int, scale_h: float, scale_w: float) -> np.ndarray:
    """Radial frequency grid ``sqrt(u² + v²)`` with ``u`` scaled by ``w/scale_w``, ``v`` by ``h/scale_h``,
    laid out for an unshifted FFT (i.e. ``ifftshift`` of MATLAB's centred grid)."""
    u = _freqspace(w) * (w / scale_w)
    v = _freqspace(h) * (h / scale_h)
    r = np.sqrt(u[None, :] ** 2 + v[:, None] ** 2)
    out = np.fft.ifftshift(r)
    out.setflags(write=False)
    return out


def _frequency_filter(x: np.ndarray, response: np.ndarray) -> np.ndarray:
    """``ifft2(fft2(x) · response)`` for a real image and a real (not necessarily symmetric)
    response laid out unshifted; complex result as an ``(H, W, 2)`` real/imaginary array."""
    spectrum = cv2.dft(np.ascontiguousarray(x, dtype=np.float64), flags=cv2.DFT_COMPLEX_OUTPUT)
    spectrum *= response[:, :, None]
    return cv2.idft(spectrum, flags=cv2.DFT_COMPLEX_OUTPUT | cv2.DFT_SCALE)


# --------------------------------------------------------------------------------------------- Qcb
_QCB_F0, _QCB_F1, _QCB_A = 15.3870, 1.3456, 0.7622
_QCB_Z = 1e-4  # contrast masking C^p / (C^q + Z) with p = 3, q = 2


def _unnormalised_gaussian(sigma: float) -> np.ndarray:
    x = np.arange(-15, 16, dtype=np.float64)
    return np.exp(-(x * x) / (2.0 * sigma * sigma))


_G2, _G4 = _unnormalised_gaussian(2.0), _unnormalised_gaussian(4.0)


def _gauss_same(x: np.ndarray, g: np.ndarray, sigma: float) -> np.ndarray:
    """``filter2(G, x, 'same')`` with the 31×31 Gaussian ``exp(−r²/2σ²)/(2πσ²)``, zero padding."""
    scale = 1.0 / (2.0 * math.pi * sigma * sigma)
    out = cv2.sepFilter2D(x, cv2.CV_64F, g, g, borderType=cv2.BORDER_CONSTANT)
    return out * scale


def _local_contrast(x: np.ndarray) -> np.ndarray:
    """``|G2 * x / G4 * x − 1|`` on a complex ``(H, W, 2)`` image, then the masking ``C³ / (C² + Z)``."""
    fine = _gauss_same(x, _G2, 2.0)
    coarse = _gauss_same(x, _G4, 4.0)
    diff = fine - coarse  # |fine / coarse − 1| = |fine − coarse| / |coarse|
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.hypot(diff[:, :, 0], diff[:, :, 1]) / np.hypot(coarse[:, :, 0], coarse[:, :, 1])
    c = np.nan_to_num(c, nan=0.0, posinf=0.0)
    c2 = c * c  # p = 3, q = 2
    return c2 * c / (c2 + _QCB_Z)


def _ratio_min_max(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``min(a, b) / max(a, b)`` elementwise, 1 where both are 0."""
    low, high = np.minimum(a, b), np.maximum(a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(high > 0, low / np.where(high > 0, high, 1.0), 1.0)


@functools.lru_cache(maxsize=8)
def _qcb_response(h: int, w: int) -> np.ndarray:
    """Chen–Blum's difference-of-Gaussians CSF on the ``freqspace`` grid scaled by size/30."""
    r = _radius(h, w, 30.0, 30.0)
    out = np.exp(-(r / _QCB_F0) ** 2) - _QCB_A * np.exp(-(r / _QCB_F1) ** 2)
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=8)
def _mannos_sakrison(h: int, w: int) -> np.ndarray:
    """Mannos–Sakrison CSF on the ``freqspace`` grid scaled by size/8 (Qcv's 'filter 1')."""
    r = _radius(h, w, 8.0, 8.0)
    out = 2.6 * (0.0192 + 0.144 * r) * np.exp(-((0.144 * r) ** 1.1))
    out.setflags(write=False)
    return out


def _qcb_channel(sources: list[np.ndarray], f: np.ndarray, prescale: bool) -> float:
    response = _qcb_response(*f.shape)
    contrast_f = _local_contrast(_frequency_filter(_normalise_255(f, prescale), response))
    contrasts = [_memo("qcb", s, lambda x: _local_contrast(_frequency_filter(_normalise_255(x, prescale), response)),
                       prescale) for s in sources]
    weights = np.array([c * c for c in contrasts])
    total = weights.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        saliency = np.where(total > 0, weights / np.where(total > 0, total, 1.0), 1.0 / len(sources))
    quality = sum(sal * _ratio_min_max(c, contrast_f) for sal, c in zip(saliency, contrasts))
    return float(np.mean(quality))


def qcb(sources: Sequence[np.ndarray], fused: np.ndarray, variant: str = "vifb") -> float:
    """Qcb (Chen & Blum 2009): contrast preservation after a CSF (difference of Gaussians) in the
    frequency domain, weighted by source contrast saliency; per channel, averaged. Range 0–1.

    Example:
        >>> x = np.random.default_rng(1).random((32, 32))
        >>> round(qcb([x, x], x), 6)
        1.0
    """
    return _per_channel(sources, fused, variant,
                        lambda src, f: _qcb_channel(src, f, prescale=(variant == "mefb")))


# --------------------------------------------------------------------------------------------- Qcv
_QCV_WINDOW = 16  # regions of 16×16; saliency exponent α = 5


def _block_reduce_sum(x: np.ndarray, block: int) -> np.ndarray:
    """Sums over ``block × block`` tiles, zero padding at the right/bottom (MATLAB ``blkproc``)."""
    h, w = x.shape
    ph, pw = (-h) % block, (-w) % block
    if ph or pw:
        x = np.pad(x, ((0, ph), (0, pw)))
    hb, wb = x.shape[0] // block, x.shape[1] // block
    return x.reshape(hb, block, wb, block).sum(axis=(1, 3))


def _qcv_source(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A source's normalised image and its region saliency ``Σ G^α`` per 16×16 block."""
    x_norm = _normalise_255(x)
    _, _, g = _sobel_zero_padded(x_norm)
    g2 = g * g
    return x_norm, _block_reduce_sum(g2 * g2 * g, _QCV_WINDOW)  # G^α with α = 5


def _qcv_channel(sources: list[np.ndarray], f: np.ndarray) -> float:
    h, w = f.shape
    f_norm = _normalise_255(f)
    mannos_sakrison = _mannos_sakrison(h, w)
    numerator = 0.0
    denominator = 0.0
    for s in sources:
        s_norm, saliency = _memo("qcv", s, _qcv_source)
        filtered = _frequency_filter(s_norm - f_norm, mannos_sakrison)
        real_square = filtered[:, :, 0] ** 2 - filtered[:, :, 1] ** 2  # real part of the complex square
        distortion = _block_reduce_sum(real_square, _QCV_WINDOW) / (_QCV_WINDOW * _QCV_WINDOW)
        numerator += float((saliency * distortion).sum())
        denominator += float(saliency.sum())
    if denominator == 0:
        return 0.0
    return numerator / denominator


def qcv(sources: Sequence[np.ndarray], fused: np.ndarray, variant: str = "vifb") -> float:
    """Qcv (Chen & Varshney 2007): saliency-weighted, CSF-filtered (Mannos–Sakrison) squared
    difference between sources and fused image over 16×16 regions. Lower is better; 0 for a
    fused image equal to every source; 0 when no source has any edge.

    Example:
        >>> x = np.random.default_rng(2).random((32, 32))
        >>> qcv([x, x], x)
        0.0
    """
    return _per_channel(sources, fused, variant, _qcv_channel)


# ------------------------------------------------------------------------------------ registration
register_pair("qabf", qabf, lower_better=False, value_range=(0.0, 1.0),
              reference="Xydeas & Petrovic, Electronics Letters 2000",
              description="edge information transferred from the sources (Q^AB/F)")
register_pair("qcb", qcb, lower_better=False, value_range=(0.0, 1.0),
              reference="Chen & Blum, Image and Vision Computing 2009",
              description="human-perception contrast preservation (Chen-Blum)")
register_pair("qcv", qcv, lower_better=True, value_range=(0.0, math.inf),
              reference="Chen & Varshney, Information Fusion 2007",
              description="region-saliency weighted CSF-filtered difference (Chen-Varshney)")
register_metric(MetricCard("nabf", "fusion", True, (0.0, 1.0),
                           "Kumar, Signal Image and Video Processing 2013 (modified N^AB/F)",
                           "artefacts / noise added by fusion where the fused gradient exceeds the sources'"))(
    functools.partial(nabf, variant="vifb"))
register_metric(MetricCard("ssim_vifb", "fusion", False, (-2.0, 2.0),
                           "Wang et al., IEEE TIP 2004; sum form of Zhang et al., VIFB, CVPRW 2020",
                           "SSIM(A,F) + SSIM(B,F) as VIFB reports it", variant="vifb"))(
    functools.partial(ssim_vifb, variant="vifb"))
register_metric(MetricCard("ssim", "fusion", False, (-1.0, 1.0), "Wang et al., IEEE TIP 2004",
                           "SSIM of the fused image averaged over the sources"))(
    functools.partial(ssim, variant="vifb"))
