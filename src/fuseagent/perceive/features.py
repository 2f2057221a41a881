"""Measured single-image degradation estimators and the feature vector of the learned classifier.

Every measure is cheap (a few box/morphology filters, one small FFT) so that a 640×480 pair is
perceived in well under a fusion operator's time:

* noise — Immerkær, "Fast noise variance estimation", CVIU 1996: the mean absolute response of
  a Laplacian-difference mask, taken over the flattest blocks so that texture does not count;
  plus the wavelet MAD estimate ``estimate_noise_sigma`` (Donoho & Johnstone 1994);
* blur — edge width: local contrast over the steepest gradient at strong edges (a step blurred
  by a kernel of std ``s`` has peak slope ``C / (s sqrt(2 pi))``); radial power spectrum bands;
  gradient anisotropy (motion blur);
* haze — dark channel prior (He, Sun & Tang, CVPR 2009) and contrast statistics;
* rain / snow — thin bright structures (white top-hat) against thin dark ones;
* low light / over-exposure — luminance statistics and clipping;
* low resolution — down/up-sampling residuals and the spectral fall-off;
* stripe noise — the row-median of horizontal differences (a column pattern) vs rows;
* JPEG — blockiness: mean jump across 8×8 block borders over the jump inside blocks.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from ..io import to_gray

__all__ = ["channel_min", "channel_max", "FEATURE_NAMES", "image_features", "estimate_noise", "estimate_blur_width", "estimate_haze_density",
           "estimate_stripe", "estimate_blockiness", "estimate_precipitation",
           "oriented_streak_energy", "interpolation_periodicity", "highlight_clipping"]

_SQRT_HALF_PI = float(np.sqrt(np.pi / 2))


def channel_min(image: np.ndarray) -> np.ndarray:
    """Per-pixel minimum over the channels (numpy reductions over a short last axis are slow).

    Example:
        >>> channel_min(np.array([[[0.2, 0.1, 0.3]]], np.float32)).tolist()
        [[0.10000000149011612]]
    """
    if image.ndim == 2:
        return image
    return np.minimum(np.minimum(image[..., 0], image[..., 1]), image[..., 2])


def channel_max(image: np.ndarray) -> np.ndarray:
    """Per-pixel maximum over the channels."""
    if image.ndim == 2:
        return image
    return np.maximum(np.maximum(image[..., 0], image[..., 1]), image[..., 2])
_BANDS = np.array([0.02, 0.05, 0.08, 0.11, 0.14, 0.17, 0.2, 0.24, 0.28, 0.32, 0.37, 0.42, 0.5])


def estimate_noise(gray: np.ndarray, block: int = 16, quantile: float | tuple[float, ...] = 0.1) -> float | tuple[float, ...]:
    """Noise std (Immerkær's mask) over the flattest ``quantile`` of blocks (a tuple of quantiles
    gives a tuple of estimates).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = np.clip(0.5 + 0.03 * rng.standard_normal((256, 256)), 0, 1).astype(np.float32)
        >>> round(estimate_noise(x), 2)
        0.03
    """
    mask = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    resp = np.abs(cv2.filter2D(gray.astype(np.float32), -1, mask, borderType=cv2.BORDER_REFLECT101))[1:-1, 1:-1]
    h, w = (resp.shape[0] // block) * block, (resp.shape[1] // block) * block
    if h == 0 or w == 0:
        value = float(resp.mean() * _SQRT_HALF_PI / 6)
        return tuple(value for _ in quantile) if isinstance(quantile, tuple) else value
    blocks = resp[:h, :w].reshape(h // block, block, w // block, block).mean(axis=(1, 3)).ravel()
    # Leave out blocks that are clipped (no noise can show there).
    g = gray[1:-1, 1:-1][:h, :w].reshape(h // block, block, w // block, block)
    clipped = ((g <= 0.002) | (g >= 0.998)).mean(axis=(1, 3)).ravel() > 0.2
    if (~clipped).sum() >= 4:
        blocks = blocks[~clipped]
    if isinstance(quantile, tuple):
        return tuple(float(v) * _SQRT_HALF_PI / 6 for v in np.quantile(blocks, quantile))
    return float(np.quantile(blocks, quantile) * _SQRT_HALF_PI / 6)


def _directional_noise(gray: np.ndarray) -> tuple[float, float]:
    # Second differences along x and along y (every other row/column): a column pattern adds to x only.
    sub = gray[::2, ::2] if min(gray.shape) >= 64 else gray
    dx = np.abs(sub[:, :-2] - 2 * sub[:, 1:-1] + sub[:, 2:])
    dy = np.abs(sub[:-2] - 2 * sub[1:-1] + sub[2:])
    k = _SQRT_HALF_PI / np.sqrt(6.0)
    return float(np.minimum(dx, 0.3).mean() * k), float(np.minimum(dy, 0.3).mean() * k)


def estimate_blur_width(gray: np.ndarray, top: float = 0.02) -> tuple[float, float, float]:
    """Edge-width blur estimates (px): the 25th, 50th and 75th percentiles over the strongest edges.

    Width = local contrast (15×15 range) / (peak slope × sqrt(2 pi)), the std of a Gaussian-blurred
    step; measured after a σ=1 pre-smoothing that is subtracted in quadrature.

    Example:
        >>> x = np.zeros((64, 64), np.float32); x[:, 32:] = 1.0
        >>> blurred = cv2.GaussianBlur(x, (0, 0), 3.0)
        >>> round(estimate_blur_width(blurred)[1])
        3
    """
    g = cv2.GaussianBlur(gray, (0, 0), 1.0)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3) / 8
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3) / 8
    mag = np.hypot(gx, gy)
    # Strong edges: local maxima of the slope among the steepest few per cent.
    cut = np.quantile(mag[::4, ::4], 1 - top * 2)
    peak = (mag >= cut) & (mag >= cv2.dilate(mag, np.ones((3, 3), np.uint8)))
    ys, xs = np.nonzero(peak[7:-7, 7:-7])
    if len(ys) < 20:
        return 0.0, 0.0, 0.0
    if len(ys) > 800:
        order = np.argpartition(mag[ys + 7, xs + 7], -800)[-800:]
        ys, xs = ys[order], xs[order]
    # Local contrast: 15×15 max - min, gathered at the sampled edge points only.
    patches = np.lib.stride_tricks.sliding_window_view(np.clip(g, 0, 1), (15, 15))[ys, xs]
    contrast = np.round((patches.max(axis=(1, 2)) - patches.min(axis=(1, 2))) * 255) / 255.0
    slope = mag[ys + 7, xs + 7]
    keep = contrast > 0.08
    if keep.sum() < 20:
        return 0.0, 0.0, 0.0
    width = contrast[keep] / (slope[keep] * np.sqrt(2 * np.pi) + 1e-6)
    width = np.sqrt(np.maximum(width ** 2 - 1.0, 0.0))
    q = np.quantile(width, [0.25, 0.5, 0.75])
    return float(q[0]), float(q[1]), float(q[2])


def estimate_haze_density(image: np.ndarray, patch: int = 15) -> tuple[float, float]:
    """Dark-channel haze estimate: ``(1 - mean transmission, airlight)`` with ω = 0.95.

    Example:
        >>> clear = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
        >>> hazy = clear * 0.3 + 0.7 * 0.9
        >>> estimate_haze_density(hazy)[0] > estimate_haze_density(clear)[0]
        True
    """
    dark_px = channel_min(image)
    dark8 = cv2.erode(np.round(np.clip(dark_px, 0, 1) * 255).astype(np.uint8), np.ones((patch, patch), np.uint8))
    dark = dark8.astype(np.float32) / 255.0
    n = max(1, dark.size // 1000)
    brightest = np.argpartition(dark.ravel(), -n)[-n:]
    lum = to_gray(image).ravel()
    airlight = float(max(0.3, lum[brightest].max()))
    trans = 1.0 - 0.95 * dark / airlight
    return float(1.0 - np.clip(trans, 0, 1).mean()), airlight


def estimate_stripe(gray: np.ndarray) -> tuple[float, float]:
    """Std of the column pattern and of the row pattern: the row-median of horizontal
    differences (and column-median of vertical ones), divided by sqrt(2).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = np.full((200, 200), 0.5, np.float32) + rng.normal(0, 0.03, (1, 200)).astype(np.float32)
        >>> col, row = estimate_stripe(x)
        >>> round(col, 2), round(row, 2)
        (0.03, 0.0)
    """
    # Clipped means: strong scene edges cannot dominate a column, noise averages out.
    dx = np.clip(gray[:, 1:] - gray[:, :-1], -0.25, 0.25).mean(axis=0)
    dy = np.clip(gray[1:] - gray[:-1], -0.25, 0.25).mean(axis=1)
    # Remove the slow scene trend so only the pixel-to-pixel pattern counts.
    return float(np.std(dx - np.median(dx)) / np.sqrt(2)), float(np.std(dy - np.median(dy)) / np.sqrt(2))


def estimate_blockiness(gray: np.ndarray) -> float:
    """JPEG blockiness: mean |jump| across 8-px block borders / mean |jump| inside blocks, minus 1
    (0 for an image without a block grid).

    Example:
        >>> from fuseagent.degrade.sensor import jpeg_roundtrip
        >>> x = cv2.GaussianBlur(np.random.default_rng(0).random((128, 128)).astype(np.float32), (0, 0), 2)
        >>> estimate_blockiness(jpeg_roundtrip(x, 10)) > estimate_blockiness(x) + 0.3
        True
    """
    g = gray.astype(np.float32)
    dh = np.abs(g[::2, 1:] - g[::2, :-1])
    dv = np.abs(g[1:, ::2] - g[:-1, ::2])
    cols = np.arange(dh.shape[1]) % 8 == 7
    rows = np.arange(dv.shape[0]) % 8 == 7
    border = dh[:, cols].mean() + dv[rows].mean()
    inside = dh[:, ~cols].mean() + dv[~rows].mean()
    return float(border / (inside + 4e-3) - 1.0)


def _component_shapes(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per connected component: pixel count, elongation, length (px) and orientation."""
    n, labels, _, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        empty = np.zeros(0)
        return empty, empty, empty, empty
    ys, xs = np.nonzero(labels)
    lab = labels[ys, xs]
    xs, ys = xs.astype(np.float64), ys.astype(np.float64)
    cnt = np.bincount(lab, minlength=n)[1:].astype(np.float64)
    mx = np.bincount(lab, xs, n)[1:] / cnt
    my = np.bincount(lab, ys, n)[1:] / cnt
    cxx = np.bincount(lab, xs * xs, n)[1:] / cnt - mx ** 2
    cyy = np.bincount(lab, ys * ys, n)[1:] / cnt - my ** 2
    cxy = np.bincount(lab, xs * ys, n)[1:] / cnt - mx * my
    half_trace = (cxx + cyy) / 2
    disc = np.sqrt(np.maximum(half_trace ** 2 - (cxx * cyy - cxy ** 2), 0))
    major, minor = half_trace + disc + 1 / 12, np.maximum(half_trace - disc, 0) + 1 / 12
    return cnt, np.sqrt(major / minor), np.sqrt(12 * major), 0.5 * np.arctan2(2 * cxy, cxx - cyy)


def estimate_precipitation(gray: np.ndarray, size: int = 7) -> tuple[float, ...]:
    """Rain/snow cues from thin bright structures (white top-hat of width ``size``) against thin dark ones.

    Returns the share of bright minus dark thin structures, the orientation coherence of the
    top-hat, the bright share, and per megapixel: bright streaks (elongated components, coherence
    of their directions), bright spots (round, 3..80 px), and dark streaks and spots (the scene's
    own thin structures, as a baseline).

    Example:
        >>> x = np.full((64, 64), 0.3, np.float32); x[::8, :] = 0.9
        >>> estimate_precipitation(x)[0] > 0.05
        True
    """
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    u8 = np.round(np.clip(gray, 0, 1) * 255).astype(np.uint8)
    white_u8 = cv2.morphologyEx(u8, cv2.MORPH_TOPHAT, kernel)
    black = cv2.morphologyEx(u8, cv2.MORPH_BLACKHAT, kernel)
    white = white_u8.astype(np.float32) / 255
    bright = float((white > 0.05).mean())
    dark = float((black > 13).mean())
    gx = cv2.Sobel(white, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(white, cv2.CV_32F, 0, 1, ksize=3)
    jxx, jyy, jxy = float((gx * gx).mean()), float((gy * gy).mean()), float((gx * gy).mean())
    coherence = float(np.sqrt((jxx - jyy) ** 2 + 4 * jxy ** 2) / (jxx + jyy + 1e-9))
    mp = gray.size / 1e6
    counts = []
    for img in (white_u8, black):
        cnt, elong, length, angle = _component_shapes(img > 15)
        scale = size / 7.0
        streak = (elong > 3) & (length >= 6 * scale) & (length <= 60 * scale) & (cnt <= 150 * scale ** 2)
        spot = (elong < 2) & (cnt >= max(2.0, 3 * scale ** 2)) & (cnt <= 80 * scale ** 2)
        coh = float(np.abs(np.exp(2j * angle[streak]).mean())) if streak.sum() > 2 else 0.0
        counts.append((float(streak.sum()) / mp, coh, float(spot.sum()) / mp))
    (w_streaks, w_coh, w_spots), (b_streaks, _, b_spots) = counts
    return bright - dark, coherence, bright, w_streaks, w_coh, w_spots, b_streaks, b_spots


@lru_cache(maxsize=2)
def _line_kernels(length: int = 9, angles: int = 8) -> tuple[np.ndarray, ...]:
    from ..degrade.blur import line_kernel

    return tuple(line_kernel(float(length), 180.0 * k / angles) for k in range(angles))


def oriented_streak_energy(gray: np.ndarray, size: int = 5) -> tuple[float, float]:
    """Directional energy of thin bright structures against thin dark ones: rain streaks are bright
    and share one direction, while a scene's own thin structures are bright and dark alike.

    The white and black top-hats are each averaged along lines of 8 orientations; with ``d(θ)`` the
    white minus the black mean squared response, returns ``max d`` and ``max d - min d``, both over
    the mean energy of the two top-hats.

    Example:
        >>> x = np.full((64, 64), 0.3, np.float32); x[:, ::6] = 0.9
        >>> excess, spread = oriented_streak_energy(x)
        >>> excess > 0.5 and spread > 0.5
        True
    """
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    u8 = np.round(np.clip(gray, 0, 1) * 255).astype(np.uint8)
    white = cv2.morphologyEx(u8, cv2.MORPH_TOPHAT, kernel).astype(np.float32) / 255
    black = cv2.morphologyEx(u8, cv2.MORPH_BLACKHAT, kernel).astype(np.float32) / 255
    e_white = np.array([float(np.square(cv2.filter2D(white, -1, k)).mean()) for k in _line_kernels()])
    e_black = np.array([float(np.square(cv2.filter2D(black, -1, k)).mean()) for k in _line_kernels()])
    d = e_white - e_black
    norm = float(e_white.mean() + e_black.mean()) + 1e-9
    return float(d.max() / norm), float((d.max() - d.min()) / norm)


def interpolation_periodicity(gray: np.ndarray) -> tuple[float, float]:
    """Periodic trace of resampling: images upsampled by interpolation have second differences
    whose strength repeats with the sampling period. Returns, for the column and the row profile of
    ``|second difference|``, the highest spectral peak (frequencies 0.1..0.5) over the median level.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.random((240, 240)).astype(np.float32)
        >>> up = cv2.resize(cv2.resize(x, (80, 80), interpolation=cv2.INTER_AREA), (240, 240), interpolation=cv2.INTER_CUBIC)
        >>> interpolation_periodicity(up)[0] > 3 * interpolation_periodicity(x)[0]
        True
    """
    out = []
    for prof in (np.abs(gray[:, :-2] - 2 * gray[:, 1:-1] + gray[:, 2:]).mean(axis=0),
                 np.abs(gray[:-2] - 2 * gray[1:-1] + gray[2:]).mean(axis=1)):
        if prof.size < 32:
            out.append(0.0)
            continue
        spec = np.abs(np.fft.rfft((prof - prof.mean()) * np.hanning(prof.size)))
        freq = np.fft.rfftfreq(prof.size)
        band = spec[freq >= 0.1]
        out.append(float(band.max() / (np.median(band) + 1e-9)))
    return out[0], out[1]


def highlight_clipping(gray: np.ndarray) -> tuple[float, float, float]:
    """Over-exposure cues: the share of the frame in clipped regions of at least 0.1 % of it, the
    largest clipped region's share, and the texture left in the highlights (mean |gradient| of
    pixels above 0.8 over that of mid-tones 0.2..0.7; low when highlights are washed out).

    Example:
        >>> x = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (64, 1))
        >>> regions, largest, _ = highlight_clipping(np.clip(x * 2, 0, 1))
        >>> regions > 0.4 and largest > 0.4
        True
    """
    clipped = (gray >= 0.98).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(clipped, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA].astype(np.float64) / gray.size if n > 1 else np.zeros(1)
    regions = float(areas[areas >= 1e-3].sum())
    grad = np.abs(gray[:, 1:] - gray[:, :-1])
    left = gray[:, :-1]
    high, mid = left > 0.8, (left > 0.2) & (left < 0.7)
    texture = float(grad[high].mean() / (grad[mid].mean() + 1e-4)) if high.sum() > 50 and mid.sum() > 50 else 1.0
    return regions, float(areas.max()), texture


@lru_cache(maxsize=8)
def _spectrum_layout(s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    window = np.outer(np.hanning(s), np.hanning(s)).astype(np.float32)
    radius = np.hypot(np.fft.fftfreq(s)[:, None], np.fft.rfftfreq(s)[None, :])
    idx = (np.digitize(radius, _BANDS) - 1).ravel()
    keep = (idx >= 0) & (idx < len(_BANDS) - 1)
    counts = np.bincount(idx[keep], minlength=len(_BANDS) - 1)
    return window, idx, keep, counts


def _spectrum_bands(gray: np.ndarray, size: int = 256) -> np.ndarray:
    h, w = gray.shape
    s = min(size, h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    crop = gray[y0:y0 + s, x0:x0 + s].astype(np.float32)
    window, idx, keep, counts = _spectrum_layout(s)
    crop = (crop - crop.mean()) * window
    power = np.abs(np.fft.rfft2(crop)) ** 2
    sums = np.bincount(idx[keep], weights=power.ravel()[keep], minlength=len(_BANDS) - 1)
    mean = sums / np.maximum(counts, 1)
    return np.log10(mean[1:] + 1e-12) - np.log10(mean[0] + 1e-12)


def _resample_residuals(gray: np.ndarray, crop: int = 240) -> np.ndarray:
    h, w = gray.shape
    if min(h, w) > crop + 16:
        y0, x0 = (h - crop) // 2, (w - crop) // 2
        gray = gray[y0:y0 + crop, x0:x0 + crop]
        h, w = gray.shape
    out = []
    base = float(np.abs(gray[:, 1:] - gray[:, :-1]).mean()) + 1e-6
    for k in (1.5, 2.0, 3.0, 4.0):
        small = cv2.resize(gray, (max(2, int(w / k)), max(2, int(h / k))), interpolation=cv2.INTER_AREA)
        up = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        out.append(float(np.abs(up - gray).mean()) / base)
    return np.array(out)


def _gradient_anisotropy(gray: np.ndarray) -> float:
    g = cv2.GaussianBlur(gray, (0, 0), 1.0)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    jxx, jyy, jxy = float((gx * gx).mean()), float((gy * gy).mean()), float((gx * gy).mean())
    return float(np.sqrt((jxx - jyy) ** 2 + 4 * jxy ** 2) / (jxx + jyy + 1e-12))


def _histogram_quantiles(gray: np.ndarray, quantiles: tuple[float, ...], bins: int = 1024) -> np.ndarray:
    """Quantiles of ``gray`` (values in [0, 1]) read from a fine histogram (to 1/``bins``)."""
    codes = np.clip(gray * bins, 0, bins - 1).astype(np.int32)
    cdf = np.cumsum(np.bincount(codes.ravel(), minlength=bins)) / codes.size
    return (np.searchsorted(cdf, quantiles) + 0.5) / bins


FEATURE_NAMES: tuple[str, ...] = (
    "is_ir", "is_colour", "noise_flat", "noise_flat_q30", "noise_wavelet", "noise_dx", "noise_dy", "noise_half",
    "blur_w25", "blur_w50", "blur_w75", "anisotropy",
    *(f"band_{i}" for i in range(len(_BANDS) - 2)),
    "resample_1.5", "resample_2", "resample_3", "resample_4",
    "haze_density", "airlight", "dark_mean", "saturation", "local_contrast", "std",
    "rain_excess", "rain_coherence", "rain_bright", "streaks_bright", "streak_coherence", "spots_bright",
    "streaks_dark", "spots_dark",
    "mean", "p01", "p05", "p50", "p95", "p99", "frac_dark", "frac_black", "frac_bright", "frac_clipped",
    "stripe_col", "stripe_row", "blockiness", "chroma_cast",
    "streak_orient_excess", "streak_orient_spread", "interp_period_col", "interp_period_row",
    "clip_regions", "clip_largest", "highlight_texture",
)


def image_features(image: np.ndarray, modality: str = "vis") -> dict[str, float]:
    """All measured estimates of one image, by name (:data:`FEATURE_NAMES`).

    Args:
        image: ``(H, W)`` or ``(H, W, 3)`` float image in ``[0, 1]``.
        modality: ``"ir"`` or ``"vis"`` (a photograph: visible, or any MEF/MFF input).
    """
    from ..tools.filters import estimate_noise_sigma

    gray = np.ascontiguousarray(to_gray(image), dtype=np.float32)
    half = cv2.resize(gray, (max(2, gray.shape[1] // 2), max(2, gray.shape[0] // 2)), interpolation=cv2.INTER_AREA)
    f: dict[str, float] = {"is_ir": float(modality == "ir"), "is_colour": float(image.ndim == 3)}
    f["noise_flat"], f["noise_flat_q30"] = estimate_noise(gray, quantile=(0.1, 0.3))
    h, w = gray.shape
    f["noise_wavelet"] = float(estimate_noise_sigma(gray[max(0, h // 2 - 160):h // 2 + 160, max(0, w // 2 - 160):w // 2 + 160]))
    f["noise_dx"], f["noise_dy"] = _directional_noise(gray)
    f["noise_half"] = estimate_noise(half)
    f["blur_w25"], f["blur_w50"], f["blur_w75"] = estimate_blur_width(gray)
    f["anisotropy"] = _gradient_anisotropy(half)
    for i, v in enumerate(_spectrum_bands(gray)):
        f[f"band_{i}"] = float(v)
    for k, v in zip(("1.5", "2", "3", "4"), _resample_residuals(gray)):
        f[f"resample_{k}"] = float(v)
    small = cv2.resize(image, (half.shape[1], half.shape[0]), interpolation=cv2.INTER_AREA)
    f["haze_density"], f["airlight"] = estimate_haze_density(small, 9)
    dark = channel_min(small)
    f["dark_mean"] = float(cv2.erode(np.round(dark * 255).astype(np.uint8), np.ones((9, 9), np.uint8)).mean()) / 255.0
    if image.ndim == 3:
        mx, mn = channel_max(small), dark
        f["saturation"] = float(((mx - mn) / (mx + 1e-3)).mean())
        means = np.array(cv2.mean(small)[:3]) + 1e-3
        f["chroma_cast"] = float(np.log(means[0] / means[2]))
    else:
        f["saturation"], f["chroma_cast"] = 0.0, 0.0
    mu = cv2.blur(half, (9, 9))
    var = np.maximum(cv2.blur(half * half, (9, 9)) - mu * mu, 0)
    f["local_contrast"] = float(np.sqrt(var).mean())
    f["std"] = float(gray.std())
    (f["rain_excess"], f["rain_coherence"], f["rain_bright"], f["streaks_bright"], f["streak_coherence"],
     f["spots_bright"], f["streaks_dark"], f["spots_dark"]) = estimate_precipitation(half, 5)
    q = _histogram_quantiles(half, (0.01, 0.05, 0.5, 0.95, 0.99))
    f["mean"] = float(gray.mean())
    f["p01"], f["p05"], f["p50"], f["p95"], f["p99"] = (float(v) for v in q)
    f["frac_dark"] = float((half < 0.1).mean())
    f["frac_black"] = float((half < 0.02).mean())
    f["frac_bright"] = float((half > 0.9).mean())
    f["frac_clipped"] = float((gray >= 0.99).mean())
    f["stripe_col"], f["stripe_row"] = estimate_stripe(gray)
    f["blockiness"] = estimate_blockiness(gray)
    f["streak_orient_excess"], f["streak_orient_spread"] = oriented_streak_energy(half)
    f["interp_period_col"], f["interp_period_row"] = interpolation_periodicity(gray)
    f["clip_regions"], f["clip_largest"], f["highlight_texture"] = highlight_clipping(half)
    return {name: f[name] for name in FEATURE_NAMES}
