"""Measured single-image degradation estimators and the feature vector of the learned classifier.

Every measure is cheap (a few box/morphology filters, one small FFT) so that a 640×480 pair is
perceived in less time than a classical fusion operator's call. Pixel-level statistics of
degradations that act on the whole frame (noise, 2-D edge width, column/row patterns, resampling
residuals, the spectrum, the JPEG quantisation step) are read in a central 256×192
:func:`detail_window`; thin structures, haze and texture at half resolution in the same window of
the half-size image (the central 512×384 of a 640×480 frame); luminance statistics and clipping on
the whole half-size image; and the cues whose evidence is sparse — edge widths, the JPEG block grid,
the resampling period, the detail of the sharpest runs and falling streaks — on strided rows and
columns of the whole full-resolution frame:

* noise — Immerkær, "Fast noise variance estimation", CVIU 1996: the mean absolute response of
  a Laplacian-difference mask, taken over the flattest blocks so that texture does not count;
  plus the wavelet MAD estimate ``estimate_noise_sigma`` (Donoho & Johnstone 1994);
* blur — edge width: local contrast over the steepest slope at strong edges (a step blurred
  by a kernel of std ``s`` has peak slope ``C / (s sqrt(2 pi))``), in 2-D in the window and along
  every 8th row and column of the frame (rows against columns: the direction of a motion blur);
  radial power spectrum bands;
* haze — dark channel prior (He, Sun & Tang, CVPR 2009): its mean and its darkest patches, and
  contrast and saturation statistics;
* rain / snow — thin bright structures (white top-hat) against thin dark ones, and thin bright
  lines that fall in one direction within 30° of vertical over 10 px (falling streaks);
* low light / over-exposure — luminance statistics and clipping;
* low resolution — down/up-sampling residuals, the spectral fall-off (the frequency axes, where
  column and row stripes put their energy, left out), the sampling period that interpolation leaves
  in second differences, and the finest detail kept by the sharpest parts of the frame (defocus
  spares the in-focus parts, down-sampling none), also along rows and columns apart (stripes add
  fine detail across themselves only);
* stripe noise — the row-median of horizontal differences (a column pattern) vs rows;
* JPEG — the mean jump across 8-px block borders against the other phases of the grid, with
  clipped areas left out, and the quantisation step of the blocks' DCT coefficients
  (:func:`dct_quantisation`);
* digital re-exposure — combing of the 8-bit histogram (Stamm & Liu, IEEE TIFS 2010);
* pair context — each image's exposure, luminance statistics, histogram combing and (multi-exposure
  pairs) edge width relative to its partner (:data:`PAIR_FEATURES`).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import scipy.fft

from ..io import to_gray

__all__ = ["channel_min", "channel_max", "FEATURE_NAMES", "PAIR_FEATURES", "VISIBLE_ONLY_FEATURES", "detail_window", "image_features", "luminance", "estimate_noise", "estimate_blur_width", "estimate_haze_density",
           "estimate_stripe", "estimate_blockiness", "estimate_precipitation",
           "oriented_streak_energy", "interpolation_periodicity", "highlight_clipping", "histogram_combing",
           "line_edge_widths", "grid_blockiness", "falling_streaks", "segment_sharpness", "pair_context", "dct_quantisation"]

_SQRT_HALF_PI = float(np.sqrt(np.pi / 2))
_SECOND_DIFF = np.array([1.0, -2.0, 1.0], np.float32)
_MAD_TO_SIGMA = 0.6744897501960817


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
    g = np.ascontiguousarray(gray, dtype=np.float32)
    # Immerkær's mask is the outer product of two second differences: one separable pass.
    resp = np.abs(cv2.sepFilter2D(g, -1, _SECOND_DIFF, _SECOND_DIFF, borderType=cv2.BORDER_REFLECT101))[1:-1, 1:-1]
    h, w = (resp.shape[0] // block) * block, (resp.shape[1] // block) * block
    if h == 0 or w == 0:
        value = float(resp.mean() * _SQRT_HALF_PI / 6)
        return tuple(value for _ in quantile) if isinstance(quantile, tuple) else value
    grid = (w // block, h // block)
    # Area resampling by an integer factor is the exact block mean.
    blocks = cv2.resize(np.ascontiguousarray(resp[:h, :w]), grid, interpolation=cv2.INTER_AREA).ravel()
    # Leave out blocks that are clipped (no noise can show there).
    inner = g[1:-1, 1:-1][:h, :w]
    # Share of pixels strictly between 0.002 and 0.998 per block (one pass): the rest is clipped.
    inside = cv2.inRange(inner, float(np.nextafter(np.float32(0.002), 1)), float(np.nextafter(np.float32(0.998), 0)))
    clipped = cv2.resize(inside, grid, interpolation=cv2.INTER_AREA).ravel().astype(np.float32) < 0.8 * 255
    if (~clipped).sum() >= 4:
        blocks = blocks[~clipped]
    if isinstance(quantile, tuple):
        return tuple(float(v) * _SQRT_HALF_PI / 6 for v in np.quantile(blocks, quantile))
    return float(np.quantile(blocks, quantile) * _SQRT_HALF_PI / 6)


def _wavelet_noise(gray: np.ndarray) -> float:
    """Donoho's wavelet MAD noise estimate on the finest diagonal Haar band (float32): blocks near 0
    or 1 and the 70 % most structured blocks (horizontal + vertical detail) are left out, as in
    :func:`fuseagent.tools.filters.estimate_noise_sigma`."""
    h, w = (gray.shape[0] // 2) * 2, (gray.shape[1] // 2) * 2
    if h < 4 or w < 4:
        return 0.0
    p = np.asarray(gray[:h, :w], np.float32)
    a, b, c, d = p[0::2, 0::2], p[0::2, 1::2], p[1::2, 0::2], p[1::2, 1::2]
    ab, cd, a_b, c_d = a + b, c + d, a - b, c - d
    mean = (ab + cd) * 0.25
    diagonal = np.abs(a_b - c_d).ravel() * 0.5
    rough = float(np.median(diagonal)) / _MAD_TO_SIGMA
    usable = ((mean > 2.5 * rough) & (mean < 1.0 - 2.5 * rough)).ravel()
    if usable.sum() < 16:
        usable = np.ones_like(usable)
    activity = cv2.blur(np.abs(ab - cd) + np.abs(a_b + c_d), (3, 3)).ravel() * 0.5
    threshold = np.quantile(activity[usable], 0.3)
    selected = usable & (activity <= threshold)
    return float(np.median(diagonal[selected])) / _MAD_TO_SIGMA


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
    g = cv2.GaussianBlur(np.ascontiguousarray(gray, dtype=np.float32), (0, 0), 1.0)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    mag = cv2.magnitude(gx, gy)
    # Strong edges: local maxima of the slope among the steepest few per cent.
    cut = np.quantile(mag[::4, ::4], 1 - top * 2)
    inner = mag[7:-7, 7:-7]
    # (np.flatnonzero is several times faster than np.nonzero on a 2-D mask)
    ys, xs = np.divmod(np.flatnonzero(inner >= cut), inner.shape[1])
    local_max = cv2.dilate(mag, np.ones((3, 3), np.uint8))[7:-7, 7:-7]
    peak = inner[ys, xs] >= local_max[ys, xs]
    ys, xs = ys[peak], xs[peak]
    if len(ys) < 20:
        return 0.0, 0.0, 0.0
    if len(ys) > 800:
        order = np.argpartition(inner[ys, xs], -800)[-800:]
        ys, xs = ys[order], xs[order]
    # Local contrast: 15×15 max - min, gathered at the sampled edge points only.
    patches = np.lib.stride_tricks.sliding_window_view(g, (15, 15))[ys, xs]
    highest, lowest = np.clip(patches.max(axis=(1, 2)), 0, 1), np.clip(patches.min(axis=(1, 2)), 0, 1)
    contrast = np.round((highest - lowest) * 255) / 255.0
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
    dark8 = _dark_channel_u8(image, patch)
    return _haze_from_dark(dark8, to_gray(image))


def _dark_channel_u8(image: np.ndarray, patch: int) -> np.ndarray:
    """8-bit dark channel: the channel minimum eroded over ``patch``×``patch``."""
    dark_px = channel_min(image)
    return cv2.erode(np.round(np.clip(dark_px, 0, 1) * 255).astype(np.uint8), np.ones((patch, patch), np.uint8))


def _haze_from_dark(dark8: np.ndarray, lum: np.ndarray) -> tuple[float, float]:
    dark = dark8.astype(np.float32) / 255.0
    n = max(1, dark.size // 1000)
    brightest = np.argpartition(dark.ravel(), -n)[-n:]
    airlight = float(max(0.3, lum.ravel()[brightest].max()))
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
    g = np.asarray(gray, np.float32)
    # The column pattern is read on every other row (and the row pattern on every other column).
    rows, cols = (g[::2], g[:, ::2]) if min(g.shape) >= 64 else (g, g)
    dx = np.clip(rows[:, 1:] - rows[:, :-1], -0.25, 0.25)
    dy = np.clip(cols[1:] - cols[:-1], -0.25, 0.25)
    dx, dy = cv2.reduce(dx, 0, cv2.REDUCE_AVG).ravel(), cv2.reduce(dy, 1, cv2.REDUCE_AVG).ravel()
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
    mask = np.ascontiguousarray(mask, dtype=bool)
    # Labels only: the statistics below come from bincounts (OpenCV's own statistics cost far more).
    n, labels = cv2.connectedComponents(mask.view(np.uint8), connectivity=8)
    if n <= 1:
        empty = np.zeros(0)
        return empty, empty, empty, empty
    ys, xs = np.divmod(np.flatnonzero(mask), mask.shape[1])
    lab = labels.ravel()[ys * mask.shape[1] + xs]
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


def _top_hats(gray: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """8-bit white and black top-hats of width ``size`` (elliptic element)."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    u8 = np.round(np.clip(gray, 0, 1) * 255).astype(np.uint8)
    return cv2.morphologyEx(u8, cv2.MORPH_TOPHAT, kernel), cv2.morphologyEx(u8, cv2.MORPH_BLACKHAT, kernel)


def estimate_precipitation(gray: np.ndarray, size: int = 7,
                           hats: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[float, ...]:
    """Rain/snow cues from thin bright structures (white top-hat of width ``size``) against thin dark ones.

    Returns the share of bright minus dark thin structures, the orientation coherence of the
    top-hat, the bright share, and per megapixel: bright streaks (elongated components, coherence
    of their directions), bright spots (round, 3..80 px), and dark streaks and spots (the scene's
    own thin structures, as a baseline). ``hats``: the 8-bit top-hats of ``gray``, when already known.

    Example:
        >>> x = np.full((64, 64), 0.3, np.float32); x[::8, :] = 0.9
        >>> estimate_precipitation(x)[0] > 0.05
        True
    """
    white_u8, black = hats if hats is not None else _top_hats(gray, size)
    n_px = white_u8.size
    bright = cv2.countNonZero((white_u8 > 12.75).view(np.uint8)) / n_px  # white top-hat above 0.05
    dark = cv2.countNonZero((black > 13).view(np.uint8)) / n_px
    gx = cv2.Sobel(white_u8, cv2.CV_32F, 1, 0, ksize=3, scale=1 / 255).ravel()
    gy = cv2.Sobel(white_u8, cv2.CV_32F, 0, 1, ksize=3, scale=1 / 255).ravel()
    jxx, jyy, jxy = float(gx @ gx) / n_px, float(gy @ gy) / n_px, float(gx @ gy) / n_px
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


@lru_cache(maxsize=8)
def _line_transfer(h: int, w: int) -> np.ndarray:
    """Squared gain of every line kernel per frequency of an ``h``×``w`` real FFT, weighted so that
    ``_line_transfer(h, w) @ |rfft2(x)|^2`` is the mean squared filter response (Parseval)."""
    rows = []
    for k in _line_kernels():
        padded = np.zeros((h, w), np.float32)
        padded[:k.shape[0], :k.shape[1]] = k
        rows.append(np.abs(scipy.fft.rfft2(padded, workers=1)) ** 2)
    # The half spectrum stands for its mirror too, except the zero and Nyquist columns.
    weight = np.full(w // 2 + 1, 2.0)
    weight[0] = 1.0
    if w % 2 == 0:
        weight[-1] = 1.0
    return (np.stack(rows) * weight / float(h * w) ** 2).reshape(len(rows), -1).astype(np.float32)


def oriented_streak_energy(gray: np.ndarray, size: int = 5,
                           hats: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[float, float]:
    """Directional energy of thin bright structures against thin dark ones: rain streaks are bright
    and share one direction, while a scene's own thin structures are bright and dark alike.

    The white and black top-hats are each averaged along lines of 8 orientations (the mean squared
    response read from their power spectra, i.e. with periodic borders); with ``d(θ)`` the white
    minus the black mean squared response, returns ``max d`` and ``max d - min d``, both over the
    mean energy of the two top-hats. ``hats``: the 8-bit top-hats of ``gray``, when already known.

    Example:
        >>> x = np.full((64, 64), 0.3, np.float32); x[:, ::6] = 0.9
        >>> excess, spread = oriented_streak_energy(x)
        >>> excess > 0.5 and spread > 0.5
        True
    """
    white_u8, black_u8 = hats if hats is not None else _top_hats(gray, size)
    h, w = white_u8.shape
    if min(h, w) < max(max(k.shape) for k in _line_kernels()):
        return 0.0, 0.0
    transfer = _line_transfer(h, w)
    energies = []
    for hat in (white_u8, black_u8):
        spectrum = scipy.fft.rfft2(hat.astype(np.float32) / 255, workers=1)
        power = (spectrum.real ** 2 + spectrum.imag ** 2).ravel()
        energies.append(transfer @ power)
    e_white, e_black = (np.asarray(e, np.float64) for e in energies)
    d = e_white - e_black
    norm = float(e_white.mean() + e_black.mean()) + 1e-9
    return float(d.max() / norm), float((d.max() - d.min()) / norm)

def interpolation_periodicity(gray: np.ndarray, stride: int = 2) -> tuple[float, float]:
    """Periodic trace of resampling: images upsampled by interpolation have second differences
    whose strength repeats with the sampling period. Returns, for the column and the row profile of
    ``|second difference|``, the highest spectral peak (frequencies 0.1..0.5) over the median level.
    The column profile is averaged over every ``stride``-th row, the row profile over every
    ``stride``-th column.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.random((240, 240)).astype(np.float32)
        >>> up = cv2.resize(cv2.resize(x, (80, 80), interpolation=cv2.INTER_AREA), (240, 240), interpolation=cv2.INTER_CUBIC)
        >>> interpolation_periodicity(up)[0] > 3 * interpolation_periodicity(x)[0]
        True
    """
    g = np.asarray(gray, dtype=np.float32)
    # Profiles along x from every stride-th row, along y from every stride-th column.
    rows, cols = (g[::stride], g[:, ::stride]) if min(g.shape) >= 32 * stride else (g, g)
    across = np.abs(cv2.filter2D(np.ascontiguousarray(rows), -1, _SECOND_DIFF[None, :]))[:, 1:-1]
    down = np.abs(cv2.filter2D(np.ascontiguousarray(cols), -1, _SECOND_DIFF[:, None]))[1:-1]
    out = []
    for prof in (cv2.reduce(np.ascontiguousarray(across), 0, cv2.REDUCE_AVG).ravel(),
                 cv2.reduce(np.ascontiguousarray(down), 1, cv2.REDUCE_AVG).ravel()):
        if prof.size < 32:
            out.append(0.0)
            continue
        spec = np.abs(np.fft.rfft((prof - prof.mean()) * np.hanning(prof.size)))
        freq = np.fft.rfftfreq(prof.size)
        band = spec[freq >= 0.1]
        out.append(float(band.max() / (np.median(band) + 1e-9)))
    return out[0], out[1]


#: directions of falling rain searched by :func:`falling_streaks`, in degrees from vertical
FALL_ANGLES: tuple[int, ...] = (-30, -20, -10, 0, 10, 20, 30)


@lru_cache(maxsize=16)
def _fall_element(slope: float, rows: int = 5, width: int = 3) -> np.ndarray:
    """A ``rows``-row line element that steps ``slope`` px per row, ``width`` px wide (odd)."""
    side = width // 2
    half = int(np.ceil(abs(slope) * (rows - 1) / 2)) + side
    element = np.zeros((rows, 2 * half + 1), np.uint8)
    for i in range(rows):
        centre = half + int(round((i - (rows - 1) / 2) * slope))
        element[i, centre - side:centre + side + 1] = 1
    return element


def falling_streaks(gray: np.ndarray, threshold: int = 5, width: int = 3) -> tuple[float, float, float, float]:
    """Rain cue at full resolution: thin bright lines that fall in one direction within 30° of
    vertical, against thin dark ones (the scene's own thin structures, as a baseline).

    On every other row, the horizontal white (black) top-hat of width 5 marks thin bright (dark)
    structures (above ``threshold`` 8-bit levels); for each direction of :data:`FALL_ANGLES`, a pixel
    counts when such a structure, ``width`` px wide, continues over 5 consecutive sampled rows (10 px
    of height) in that direction (a drop smeared by its fall is a few px wide; single-pixel texture
    and JPEG ringing mostly are not).
    Rain streaks share one direction, so the direction where bright lines most outnumber dark ones
    is read. Returns, in that direction, the share of bright counts and bright minus dark; the
    largest ``log`` ratio of bright to dark counts over the directions; and how far that ratio
    stands above its median over the directions (one direction stands out for rain).

    Example:
        >>> x = np.full((120, 120), 0.3, np.float32)
        >>> for c in range(10, 120, 12): x[:, c:c + 3] = 0.8
        >>> bright, excess, ratio, contrast = falling_streaks(x)
        >>> excess > 0.05 and ratio > 2 and contrast > 1
        True
    """
    u8 = np.round(np.clip(gray[::2], 0, 1) * 255).astype(np.uint8)
    across = cv2.getStructuringElement(cv2.MORPH_RECT, (5, 1))
    slopes = 2.0 * np.tan(np.radians(FALL_ANGLES))  # px per sampled row (every other image row)
    shares = []
    for op in (cv2.MORPH_TOPHAT, cv2.MORPH_BLACKHAT):
        marked = cv2.compare(cv2.morphologyEx(u8, op, across), threshold, cv2.CMP_GT)
        shares.append(np.array([cv2.countNonZero(cv2.erode(marked, _fall_element(float(s), 5, width))) for s in slopes])
                      / marked.size)
    bright, dark = shares
    ratio = np.log((bright + 1e-3) / (dark + 1e-3))
    best = int(np.argmax(bright - dark))
    return (float(bright[best]), float(bright[best] - dark[best]), float(ratio.max()),
            float(ratio.max() - np.median(ratio)))


@lru_cache(maxsize=1)
def _segment_kernels() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1-D Gaussians of σ 0.8 and 1.6 px (x) and the identity (y) for :func:`segment_sharpness`."""
    return (cv2.getGaussianKernel(7, 0.8).astype(np.float32), cv2.getGaussianKernel(11, 1.6).astype(np.float32),
            np.ones((1, 1), np.float32))


def segment_sharpness(gray: np.ndarray, step: int = 4, segment: int = 64) -> tuple[float, float, float, float]:
    """How much of the finest detail the sharpest parts of the frame keep (low resolution vs defocus).

    Along every ``step``-th row and column, each ``segment``-px run gets the ``log`` ratio of its
    energy above about 0.3 cycles/px (the profile minus its Gaussian blur of σ 0.8 px) to its energy
    in the band below (blur of σ 0.8 minus blur of σ 1.6 px). Returns the 90th and 99th percentiles
    over the runs with texture, pooled over both directions, and then the same percentiles read on
    rows alone and on columns alone, the lower of the two. Down-sampling by 1.6× or more removes that
    top band from the whole frame, while the defocus of a multi-focus frame leaves its in-focus parts
    untouched, so the sharpest runs tell the two apart where whole-frame spectra cannot. Fixed-pattern
    stripes add fine detail across the stripes only; the direction along them still shows the loss,
    hence the per-direction minimum.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = cv2.GaussianBlur(rng.random((256, 256)).astype(np.float32), (0, 0), 0.5)
        >>> small = cv2.resize(x, (128, 128), interpolation=cv2.INTER_AREA)
        >>> up = cv2.resize(small, (256, 256), interpolation=cv2.INTER_CUBIC)
        >>> segment_sharpness(up)[0] < segment_sharpness(x)[0] - 1
        True
        >>> striped = up + 0.05 * rng.standard_normal(256).astype(np.float32)[None, :]  # column offsets
        >>> s, u = segment_sharpness(striped), segment_sharpness(up)
        >>> bool(s[0] > u[0] + 0.5), bool(abs(s[2] - u[2]) < 0.01)
        (True, True)
    """
    fine, coarse, identity = _segment_kernels()
    ratios = []
    for profiles in (gray[::step], gray[:, ::step].T):
        profiles = np.ascontiguousarray(profiles, dtype=np.float32)
        n = profiles.shape[1] // segment
        if n == 0:
            continue
        b1 = cv2.sepFilter2D(profiles, -1, fine, identity)
        b2 = cv2.sepFilter2D(profiles, -1, coarse, identity)
        high = cv2.subtract(profiles, b1)[:, :n * segment]
        band = cv2.subtract(b1, b2)[:, :n * segment]
        e_high = (high * high).reshape(-1, n, segment).mean(axis=2)
        e_band = (band * band).reshape(-1, n, segment).mean(axis=2)
        textured = e_band > 1e-5
        if textured.any():
            ratios.append(np.log((e_high[textured] + 1e-7) / e_band[textured]))
    if not ratios:
        return 0.0, 0.0, 0.0, 0.0
    q90, q99 = np.percentile(np.concatenate(ratios), (90, 99))
    least90, least99 = np.min([np.percentile(r, (90, 99)) for r in ratios], axis=0)
    return float(q90), float(q99), float(least90), float(least99)


def line_edge_widths(gray: np.ndarray, step: int = 8, top: float = 0.04) -> tuple[float, float, float, float]:
    """Edge width (px) read on every ``step``-th row and column of the whole frame (1-D profiles).

    Along each profile (pre-smoothed by σ = 1, subtracted in quadrature) the steepest local slope
    maxima (the top ``top`` share) give width = local contrast (15-px range) / (slope × sqrt(2 pi)),
    as :func:`estimate_blur_width` does in 2-D. Rows see blur along x, columns blur along y, so
    their ratio shows a directional (motion) blur. Returns the median width along rows and along
    columns, the pooled 75th percentile and ``|log(row median / column median)|``.

    Example:
        >>> x = np.zeros((64, 64), np.float32); x[:, 32:] = 1.0; x[32:] = x[32:] * 0.5 + 0.25
        >>> blurred = cv2.GaussianBlur(x, (0, 0), sigmaX=3.0, sigmaY=1.0)
        >>> along_x, along_y, _, _ = line_edge_widths(blurred, step=4)
        >>> round(along_x), along_x > along_y
        (3, True)
    """
    g = np.ascontiguousarray(gray, dtype=np.float32)
    kernel = cv2.getGaussianKernel(7, 1.0).astype(np.float32)
    span = np.ones((1, 15), np.uint8)
    medians, pooled = [], []
    for lines in (g[step // 2::step], np.ascontiguousarray(g[:, step // 2::step].T)):
        if lines.shape[1] < 32:
            medians.append(0.0)
            continue
        smooth = cv2.sepFilter2D(lines, -1, kernel, np.ones(1, np.float32), borderType=cv2.BORDER_REFLECT101)
        # slope[:, j] = |smooth[:, j + 2] - smooth[:, j]|, twice the slope at pixel j + 1
        slope = cv2.absdiff(smooth[:, 2:], smooth[:, :-2])
        inner = slope[:, 7:-7]
        sample = inner[:, ::3].ravel()
        k = int(sample.size * (1 - top))
        cut = max(float(np.partition(sample, k)[k]), 0.008)
        ys, xs = np.divmod(np.flatnonzero(inner >= cut), inner.shape[1])
        j = xs + 7
        peak = (slope[ys, j] >= slope[ys, j - 1]) & (slope[ys, j] >= slope[ys, j + 1])
        ys, centre = ys[peak], j[peak] + 1
        # local contrast: the 15-px range around each point
        highest, lowest = cv2.dilate(smooth, span)[ys, centre], cv2.erode(smooth, span)[ys, centre]
        contrast = np.round((np.clip(highest, 0, 1) - np.clip(lowest, 0, 1)) * 255) / 255.0
        keep = contrast > 0.08
        if keep.sum() < 10:
            medians.append(0.0)
            continue
        width = contrast[keep] / (slope[ys[keep], centre[keep] - 1] * (0.5 * np.sqrt(2 * np.pi)) + 1e-6)
        width = np.sqrt(np.maximum(width * width - 1.0, 0.0))
        medians.append(float(np.median(width)))
        pooled.append(width)
    p75 = float(np.quantile(np.concatenate(pooled), 0.75)) if pooled else 0.0
    along_x, along_y = medians
    ratio = float(abs(np.log((along_x + 0.3) / (along_y + 0.3))))
    return along_x, along_y, p75, ratio


def grid_blockiness(gray: np.ndarray, step: int = 4) -> tuple[float, float]:
    """JPEG block grid over the whole frame, read on every ``step``-th row and column: the mean
    |jump| between neighbours at each of the 8 phases of the 8-px grid, clipped pairs (both ≤ 0.02 or
    both ≥ 0.98) left out. Returns the jump across block borders (phase 7) and the largest jump
    at another phase, each over the median phase, minus 1.

    Example:
        >>> from fuseagent.degrade.sensor import jpeg_roundtrip
        >>> x = cv2.GaussianBlur(np.random.default_rng(0).random((128, 128)).astype(np.float32), (0, 0), 2)
        >>> grid_blockiness(jpeg_roundtrip(x, 10))[0] > grid_blockiness(x)[0] + 0.3
        True
    """
    g = np.asarray(gray, np.float32)
    phases = []
    for lines in (g[::step], np.ascontiguousarray(g[:, ::step].T)):
        if lines.shape[1] < 17:
            continue
        left, right = lines[:, :-1], lines[:, 1:]
        jump = cv2.absdiff(right, left)
        # pairs that are not both clipped (dark or bright)
        usable = (cv2.max(left, right) > 0.02) & (cv2.min(left, right) < 0.98)
        weight = cv2.reduce(usable.view(np.uint8), 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel().astype(np.float64)
        total = cv2.reduce(jump * usable, 0, cv2.REDUCE_SUM).ravel().astype(np.float64)
        phase = np.arange(jump.shape[1]) % 8
        phases.append((np.bincount(phase, total, 8), np.bincount(phase, weight, 8)))
    if not phases:
        return 0.0, 0.0
    total = sum(t for t, _ in phases)
    count = sum(c for _, c in phases)
    mean = total / np.maximum(count, 1.0) + 2e-3
    median = float(np.median(mean))
    return float(mean[7] / median - 1.0), float(mean[:7].max() / median - 1.0)


@lru_cache(maxsize=1)
def _dct_matrix() -> np.ndarray:
    """The orthonormal 8-point DCT-II matrix (JPEG's transform)."""
    k = np.arange(8)
    d = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / 16) * np.sqrt(2 / 8)
    d[0] /= np.sqrt(2)
    return d.astype(np.float32)


_DCT_POSITIONS = ((0, 1), (1, 0), (1, 1), (0, 2), (2, 0))
#: The IJG / JPEG Annex K luminance quantisation table at those positions (quality 50).
_DCT_TABLE = np.array([11.0, 12.0, 12.0, 10.0, 14.0])
_DCT_BIN = 0.25


@lru_cache(maxsize=1)
def _dct_step_scores() -> tuple[np.ndarray, np.ndarray]:
    """Candidate quantisation steps (2..128, 3 % apart: decoding to 8-bit RGB and back to luminance
    scales a step slightly, so steps are not only integers) and ``cos(2 pi c / q)`` for every
    candidate and every histogram bin centre ``c`` of |coefficient| (0..128 in bins of 0.25)."""
    steps = (2.0 * 1.03 ** np.arange(141)).astype(np.float32)
    centres = (np.arange(int(128 / _DCT_BIN)) + 0.5) * _DCT_BIN
    return steps, np.cos(2 * np.pi * centres[None, :] / steps[:, None]).astype(np.float32)


def dct_quantisation(gray: np.ndarray) -> tuple[float, float, float]:
    """JPEG compression read from the DCT coefficients of the 8×8 blocks (grid at the window's
    corner): JPEG stores each coefficient as a multiple of its quantisation step ``q`` (Fan &
    de Queiroz, "Identification of bitmap compression history", IEEE TIP 2003), so after decoding
    the non-zero coefficients of a low-frequency position cluster at multiples of ``q``.

    Blocks reaching below 10 or above 245 (of 255) are left out. Per position (the five lowest AC
    frequencies, coefficients on the 0..255 scale), the histogram of the non-zero |coefficients|
    (1.5 < |c| < 128) scores each candidate step by the mean of ``cos(2 pi c / q)``; the estimate is
    the largest ``q`` scoring ≥ 0.5 that the smallest non-zero coefficients allow (``q`` ≤ their
    10th percentile + 1.5). Each step, over the standard (IJG) table's entry at its position, gives
    the table's scaling ``S`` and so the quality ``Q`` (``S = 5000 / Q`` below 50, ``200 - 2 Q``
    above); returns ``100 - Q`` from the median ``S`` (the quantity of the ``jpeg`` severity scale;
    0 where no step is found: never compressed, or resampled since), the mean score at the
    estimates, and the mean share of (near-)zero coefficients. A source saved once at high quality
    reads about 10, a strong recompression 45 and more.

    Example:
        >>> from fuseagent.degrade.sensor import jpeg_roundtrip
        >>> x = cv2.GaussianBlur(np.random.default_rng(0).random((128, 128)).astype(np.float32), (0, 0), 1.5)
        >>> dct_quantisation(x)[0], 60 < dct_quantisation(jpeg_roundtrip(x, 30))[0] < 80
        (0.0, True)
    """
    g = np.asarray(gray, np.float32) * 255.0
    h, w = (g.shape[0] // 8) * 8, (g.shape[1] // 8) * 8
    if h < 16 or w < 16:
        return 0.0, 0.0, 0.0
    g = np.ascontiguousarray(g[:h, :w])
    blocks = g.reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8)
    # Blocks near black or white are left out: colour channels clipped after decoding break the
    # luminance's link to the stored coefficients. (Block maxima and minima: an 8×8 dilation /
    # erosion anchored at the block's corner, read at the corners.)
    square = np.ones((8, 8), np.uint8)
    highest = cv2.dilate(g, square, anchor=(0, 0))[::8, ::8].ravel()
    lowest = cv2.erode(g, square, anchor=(0, 0))[::8, ::8].ravel()
    usable = (highest < 245.0) & (lowest > 10.0)
    if usable.sum() >= 32:
        blocks = blocks[usable]
    low = _dct_matrix()[:3]  # only the lowest frequencies are read
    coef = np.abs(low @ blocks @ low.T)
    steps, table = _dct_step_scores()
    n_bins = table.shape[1]
    scalings, peaks, zeros = [], [], []
    for (u, v), entry in zip(_DCT_POSITIONS, _DCT_TABLE):
        c = coef[:, u, v]
        nz = c[c > 1.5]
        zeros.append(1.0 - nz.size / c.size)
        if nz.size < 20:
            continue
        hist = np.bincount(np.minimum(nz / _DCT_BIN, n_bins).astype(np.int64), minlength=n_bins + 1)[:n_bins]
        score = table @ hist.astype(np.float32) / max(1.0, float(hist.sum()))
        allowed = steps <= float(np.partition(nz, nz.size // 10)[nz.size // 10]) + 1.5
        ok = np.flatnonzero(allowed & (score >= 0.5))
        if ok.size == 0:
            scalings.append(0.0)
            peaks.append(float(score[allowed].max()) if allowed.any() else 0.0)
            continue
        scalings.append(100.0 * float(steps[ok[-1]]) / float(entry))
        peaks.append(float(score[ok[-1]]))
    if not scalings:
        return 0.0, 0.0, float(np.mean(zeros))
    scaling = float(np.median(scalings))
    if scaling <= 0:
        return 0.0, float(np.mean(peaks)), float(np.mean(zeros))
    quality = 5000.0 / scaling if scaling > 100 else (200.0 - scaling) / 2
    return float(np.clip(100.0 - quality, 0.0, 100.0)), float(np.mean(peaks)), float(np.mean(zeros))


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
    clipped = gray >= 0.98
    areas = np.zeros(1)
    inside = np.flatnonzero(clipped)
    if inside.size:
        n, labels = cv2.connectedComponents(clipped.view(np.uint8), connectivity=8)
        areas = np.bincount(labels.ravel()[inside], minlength=n)[1:].astype(np.float64) / gray.size
    regions = float(areas[areas >= 1e-3].sum())
    grad = np.abs(gray[:, 1:] - gray[:, :-1])
    left = gray[:, :-1]
    high, mid = left > 0.8, (left > 0.2) & (left < 0.7)
    texture = float(grad[high].mean() / (grad[mid].mean() + 1e-4)) if high.sum() > 50 and mid.sum() > 50 else 1.0
    return regions, float(areas.max()), texture


def histogram_combing(image: np.ndarray) -> tuple[float, float]:
    """Traces of a tone-curve change on 8-bit data (Stamm & Liu, "Forensic detection of image
    manipulation using statistical intrinsic fingerprints", IEEE TIFS 2010): stretching a range of
    codes leaves empty codes between used ones (gaps), compressing it merges codes into spikes.

    Measured on the 8-bit codes of the green channel (the grey image when single-channel); returns the share of empty codes and of spike codes (more than twice the mean of
    both neighbours) among the codes between the 1st and 99th percentiles.

    Example:
        >>> x = np.round(np.tile(np.linspace(0.2, 0.6, 256, dtype=np.float32), (64, 1)) * 255) / 255
        >>> stretched = np.round(np.clip((x - 0.2) * 2.2 + 0.1, 0, 1) * 255) / 255
        >>> histogram_combing(x)[0], round(histogram_combing(stretched)[0], 2)
        (0.0, 0.54)
    """
    plane = image[..., 1] if image.ndim == 3 else image
    codes = np.clip(plane * 255 + 0.5, 0, 255).astype(np.uint8)
    counts = np.bincount(codes.ravel(), minlength=256).astype(np.float64)
    cdf = np.cumsum(counts) / max(1.0, counts.sum())
    low, high = int(np.searchsorted(cdf, 0.01)), int(np.searchsorted(cdf, 0.99))
    if high - low < 8:
        return 0.0, 0.0
    inner = counts[low:high + 1]
    gaps = float((inner == 0).mean())
    neighbours = 0.5 * (counts[low - 1:high] + counts[low + 1:high + 2]) if low > 0 and high < 255 else None
    if neighbours is None:
        padded = np.concatenate([[counts[0]], counts, [counts[-1]]])
        neighbours = 0.5 * (padded[low:high + 1] + padded[low + 2:high + 3])
    spikes = float((inner > 2 * neighbours + 1).mean())
    return gaps, spikes


@lru_cache(maxsize=8)
def _spectrum_layout(s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Window, band index, kept coefficients and their count per band for :func:`_spectrum_bands`.

    The two frequency axes (within 2 bins, the window's leakage) are left out: column and row
    patterns (fixed-pattern stripes) put all their energy there, and they are measured on their own.
    Crops under 64 px keep them, or the lowest band, the reference of the others, would be empty.
    """
    window = np.outer(np.hanning(s), np.hanning(s)).astype(np.float32)
    fy, fx = np.fft.fftfreq(s)[:, None], np.fft.rfftfreq(s)[None, :]
    radius = np.hypot(fy, fx)
    idx = (np.digitize(radius, _BANDS) - 1).ravel()
    off_axes = ((np.abs(fy) * s >= 2) & (fx * s >= 2)).ravel() if s >= 64 else np.ones(radius.size, bool)
    keep = (idx >= 0) & (idx < len(_BANDS) - 1) & off_axes
    counts = np.bincount(idx[keep], minlength=len(_BANDS) - 1)
    return window, idx, keep, counts


def _spectrum_bands(gray: np.ndarray, size: int = 256) -> np.ndarray:
    h, w = gray.shape
    s = min(size, h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    crop = gray[y0:y0 + s, x0:x0 + s].astype(np.float32)
    window, idx, keep, counts = _spectrum_layout(s)
    crop = (crop - crop.mean()) * window
    spectrum = scipy.fft.rfft2(crop, workers=1)
    power = spectrum.real ** 2 + spectrum.imag ** 2
    sums = np.bincount(idx[keep], weights=power.ravel()[keep], minlength=len(_BANDS) - 1)
    mean = sums / np.maximum(counts, 1)
    return np.log10(mean[1:] + 1e-12) - np.log10(mean[0] + 1e-12)


def _resample_residuals(gray: np.ndarray, crop: int = 240) -> np.ndarray:
    h, w = gray.shape
    if max(h, w) > crop + 16:
        ch, cw = min(h, crop), min(w, crop)
        y0, x0 = (h - ch) // 2, (w - cw) // 2
        gray = gray[y0:y0 + ch, x0:x0 + cw]
        h, w = gray.shape
    out = []
    gray = np.ascontiguousarray(gray, dtype=np.float32)
    base = cv2.norm(gray[:, 1:], gray[:, :-1], cv2.NORM_L1) / (h * (w - 1)) + 1e-6
    for k in (1.5, 2.0, 3.0, 4.0):
        small = cv2.resize(gray, (max(2, int(w / k)), max(2, int(h / k))), interpolation=cv2.INTER_AREA)
        up = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        out.append(cv2.norm(up, gray, cv2.NORM_L1) / (h * w) / base)
    return np.array(out)


def _histogram_cdf(gray: np.ndarray, bins: int = 1024) -> np.ndarray:
    """Cumulative share of ``gray`` (values in [0, 1]) per fine histogram bin (``cdf[k]``: share below
    ``(k + 1) / bins``)."""
    codes = np.clip(gray * bins, 0, bins - 1).astype(np.int32)
    return np.cumsum(np.bincount(codes.ravel(), minlength=bins)) / codes.size


def _half_window(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The :func:`detail_window` of ``shape`` of the half-size ``image``, cropped at full size first
    and then halved (area averaging), so that only the window is resampled."""
    h, w = image.shape[:2]
    half_h, half_w = max(2, h // 2), max(2, w // 2)
    y0, x0 = (half_h - shape[0]) // 2 // 8 * 8, (half_w - shape[1]) // 2 // 8 * 8
    crop = image[2 * y0:2 * (y0 + shape[0]), 2 * x0:2 * (x0 + shape[1])]
    return cv2.resize(crop, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


FEATURE_NAMES: tuple[str, ...] = (
    "is_ir", "is_colour", "noise_flat", "noise_flat_q30", "noise_wavelet", "noise_dx", "noise_dy", "noise_half",
    "blur_w25", "blur_w50", "blur_w75",
    *(f"band_{i}" for i in range(len(_BANDS) - 2)),
    "resample_1.5", "resample_2", "resample_3", "resample_4",
    "haze_density", "airlight", "dark_mean", "saturation", "local_contrast", "std",
    "rain_excess", "rain_coherence", "rain_bright", "streaks_bright", "streak_coherence", "spots_bright",
    "streaks_dark", "spots_dark",
    "mean", "p01", "p05", "p50", "p95", "p99", "frac_dark", "frac_black", "frac_bright", "frac_clipped",
    "stripe_col", "stripe_row", "chroma_cast", "streak_orient_excess", "streak_orient_spread",
    "clip_regions", "clip_largest", "highlight_texture", "hist_gaps", "hist_spikes", "relative_ev",
    "line_w50_x", "line_w50_y", "line_w75", "line_w_direction", "grid_block", "grid_offgrid",
    "falling_bright", "falling_excess", "falling_ratio",
    "interp_period_col", "interp_period_row",
    "pair_mean", "pair_p05", "pair_p95", "pair_clipped", "pair_gaps", "pair_line_w50", "pair_line_w75",
    "dct_quality_loss", "dct_peak", "dct_zero", "dark_p05", "saturation_p90", "pair_spikes", "falling_angle_contrast",
    "streaks_ratio", "spots_ratio", "segment_hf_q90", "segment_hf_q99",
    "pair_bracket", "dark_top", "dark_rise", "segment_hf_least_q90", "segment_hf_least_q99",
)
#: Cues of degradations that only photographs carry (haze, rain and snow, over-exposure and digital
#: re-exposure): the classifier never sees these types on infrared images (no tuning sample has them
#: there), so :func:`image_features` leaves them at 0 for ``modality="ir"`` instead of measuring them.
VISIBLE_ONLY_FEATURES: tuple[str, ...] = (
    "haze_density", "airlight", "dark_mean", "rain_excess", "rain_coherence", "rain_bright", "streaks_bright",
    "streak_coherence", "spots_bright", "streaks_dark", "spots_dark", "streak_orient_excess", "streak_orient_spread",
    "falling_bright", "falling_excess", "falling_ratio", "clip_regions", "clip_largest", "highlight_texture",
    "hist_gaps", "hist_spikes", "dark_p05", "saturation_p90", "falling_angle_contrast", "streaks_ratio",
    "spots_ratio", "dark_top", "dark_rise")
#: Features of an image that depend on the other image of its pair; :func:`image_features` leaves
#: them at 0 (no partner) and :func:`fuseagent.perceive.measure` fills them for same-modality pairs.
PAIR_FEATURES: tuple[str, ...] = ("relative_ev", "pair_mean", "pair_p05", "pair_p95", "pair_clipped", "pair_gaps",
                                   "pair_line_w50", "pair_line_w75", "pair_spikes", "pair_bracket")
_PAIR_DIFFERENCES = {"pair_mean": "mean", "pair_p05": "p05", "pair_p95": "p95", "pair_clipped": "frac_clipped",
                     "pair_gaps": "hist_gaps", "pair_spikes": "hist_spikes"}


def pair_context(features: np.ndarray, relative_ev: float, sharpness: bool = True,
                 bracket: bool = False) -> np.ndarray:
    """Fill the :data:`PAIR_FEATURES` of a same-modality pair's two feature rows (ordered as
    :data:`FEATURE_NAMES`), in place: each image's exposure relative to its partner
    (``relative_ev``: EV of the second image over the first), its luminance statistics minus the
    partner's (which image of a pair is the abnormal one), with ``sharpness`` the log ratio of
    its edge widths to the partner's (a frame blurred by shake next to a sharp one), and with
    ``bracket`` the flag ``pair_bracket``: the pair is an exposure bracket, whose exposure difference
    is its nature (in a focus pair the same difference means one frame was mis-exposed).

    Example:
        >>> rows = np.zeros((2, len(FEATURE_NAMES)))
        >>> rows[:, FEATURE_NAMES.index("mean")] = [0.2, 0.5]
        >>> out = pair_context(rows, 1.3)
        >>> ev, mean = FEATURE_NAMES.index("relative_ev"), FEATURE_NAMES.index("pair_mean")
        >>> out[:, ev].tolist(), out[:, mean].round(2).tolist()
        ([-1.3, 1.3], [-0.3, 0.3])
    """
    column = {name: FEATURE_NAMES.index(name) for name in FEATURE_NAMES}
    features[0, column["relative_ev"]], features[1, column["relative_ev"]] = -relative_ev, relative_ev
    features[:, column["pair_bracket"]] = float(bracket)
    for name, source in _PAIR_DIFFERENCES.items():
        a, b = features[0, column[source]], features[1, column[source]]
        features[0, column[name]], features[1, column[name]] = a - b, b - a
    if sharpness:
        w50 = np.log(np.maximum(features[:, column["line_w50_x"]], features[:, column["line_w50_y"]]) + 0.3)
        w75 = np.log(features[:, column["line_w75"]] + 0.3)
        features[:, column["pair_line_w50"]] = w50 - w50[::-1]
        features[:, column["pair_line_w75"]] = w75 - w75[::-1]
    return features


def luminance(image: np.ndarray) -> np.ndarray:
    """BT.601 luminance as contiguous float32 in ``[0, 1]`` (grey images pass through).

    Example:
        >>> float(luminance(np.ones((2, 2, 3), np.float32))[0, 0])
        1.0
    """
    if image.ndim == 3 and image.shape[2] == 3:
        rgb = np.ascontiguousarray(image, dtype=np.float32)
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        return np.clip(gray, 0, 1, out=gray)
    return np.ascontiguousarray(to_gray(image), dtype=np.float32)


def detail_window(gray: np.ndarray, height: int = 192, width: int = 256) -> np.ndarray:
    """The central ``height``×``width`` window (or the whole image when smaller), its corner on the
    8-px grid so that JPEG block borders keep their phase.

    Example:
        >>> detail_window(np.zeros((480, 640), np.float32)).shape, detail_window(np.zeros((100, 90))).shape
        ((192, 256), (100, 90))
    """
    h, w = gray.shape[:2]
    wh, ww = min(h, height), min(w, width)
    y0, x0 = (h - wh) // 2 // 8 * 8, (w - ww) // 2 // 8 * 8
    return gray[y0:y0 + wh, x0:x0 + ww]


def _visible_features(image: np.ndarray, half: np.ndarray, core: np.ndarray, gray: np.ndarray,
                      f: dict[str, float]) -> None:
    """The :data:`VISIBLE_ONLY_FEATURES` (and the colour statistics) of a photograph, into ``f``."""
    small = _half_window(image, core.shape) if image.ndim == 3 else core
    if image.ndim == 3:
        channels = cv2.split(np.ascontiguousarray(small, dtype=np.float32))
        lowest = cv2.min(cv2.min(channels[0], channels[1]), channels[2])
        highest = cv2.max(cv2.max(channels[0], channels[1]), channels[2])
    else:
        lowest = highest = small
    dark8 = cv2.erode(np.round(np.clip(lowest, 0, 1) * 255).astype(np.uint8), np.ones((9, 9), np.uint8))
    f["haze_density"], f["airlight"] = _haze_from_dark(dark8, core if image.ndim == 2 else luminance(small))
    f["dark_mean"] = float(cv2.mean(dark8)[0]) / 255.0
    # The darkest patches: a veil of airlight lifts even the shadows (a clear scene keeps some near 0).
    sample = dark8[::4, ::4].ravel()
    f["dark_p05"] = float(np.partition(sample, sample.size // 20)[sample.size // 20]) / 255.0
    # Haze thickens with distance, and the far part of a scene is mostly its upper part: a veil lifts
    # the darkest patches of the top third more than those of the bottom third.
    third = max(1, dark8.shape[0] // 3)
    top, bottom = dark8[:third:2, ::2].ravel(), dark8[-third::2, ::2].ravel()
    top_p10 = float(np.partition(top, top.size // 10)[top.size // 10]) / 255.0
    f["dark_top"] = top_p10
    f["dark_rise"] = top_p10 - float(np.partition(bottom, bottom.size // 10)[bottom.size // 10]) / 255.0
    if image.ndim == 3:
        chroma = cv2.divide(cv2.subtract(highest, lowest), cv2.add(highest, 1e-3))
        f["saturation"] = cv2.mean(chroma)[0]
        # The most colourful parts: haze desaturates every colour, a pale scene keeps a few vivid ones.
        sat = chroma[::2, ::2].ravel()
        f["saturation_p90"] = float(np.partition(sat, int(sat.size * 0.9))[int(sat.size * 0.9)])
        means = np.array(cv2.mean(small)[:3]) + 1e-3
        f["chroma_cast"] = float(np.log(means[0] / means[2]))
    else:
        f["saturation"], f["chroma_cast"], f["saturation_p90"] = 0.0, 0.0, 0.0
    hats = _top_hats(core, 5)
    (f["rain_excess"], f["rain_coherence"], f["rain_bright"], f["streaks_bright"], f["streak_coherence"],
     f["spots_bright"], f["streaks_dark"], f["spots_dark"]) = estimate_precipitation(core, 5, hats)
    # Counts per megapixel span four decades (a textured close-up holds thousands of bright specks):
    # the classifier reads them on a log scale, plus bright against dark as a log ratio, so that
    # a scene's own thin structures (bright and dark alike) do not pass for snow or rain.
    for kind in ("streaks", "spots"):
        bright, dark = f[f"{kind}_bright"], f[f"{kind}_dark"]
        f[f"{kind}_bright"], f[f"{kind}_dark"] = float(np.log1p(bright / 100)), float(np.log1p(dark / 100))
        f[f"{kind}_ratio"] = float(np.log((bright + 100) / (dark + 100)))
    f["streak_orient_excess"], f["streak_orient_spread"] = oriented_streak_energy(core, 5, hats)
    f["falling_bright"], f["falling_excess"], f["falling_ratio"], f["falling_angle_contrast"] = falling_streaks(gray)
    f["clip_regions"], f["clip_largest"], f["highlight_texture"] = highlight_clipping(half)
    f["hist_gaps"], f["hist_spikes"] = histogram_combing(detail_window(image))


def image_features(image: np.ndarray, modality: str = "vis", gray: np.ndarray | None = None) -> dict[str, float]:
    """All measured estimates of one image, by name (:data:`FEATURE_NAMES`).

    The :data:`PAIR_FEATURES` (relations to the other image of a pair) are 0 here, and so are the
    :data:`VISIBLE_ONLY_FEATURES` of an infrared image.

    Args:
        image: ``(H, W)`` or ``(H, W, 3)`` float image in ``[0, 1]``.
        modality: ``"ir"`` or ``"vis"`` (a photograph: visible, or any MEF/MFF input).
        gray: the image's :func:`luminance`, when already computed.

    Example:
        >>> x = np.random.default_rng(0).random((64, 80, 3)).astype(np.float32)
        >>> f = image_features(x)
        >>> len(f) == len(FEATURE_NAMES), f["is_colour"]
        (True, 1.0)
    """
    gray = luminance(image) if gray is None else gray
    h, w = gray.shape
    half = cv2.resize(gray, (max(2, w // 2), max(2, h // 2)), interpolation=cv2.INTER_AREA)
    # Statistics of degradations that act on the whole frame are read in a central window: pixel-level
    # ones at full resolution (detail), the others at half resolution (core, the same window of half).
    detail, core = detail_window(gray), detail_window(half)
    f: dict[str, float] = {"is_ir": float(modality == "ir"), "is_colour": float(image.ndim == 3)}
    f["noise_flat"], f["noise_flat_q30"] = estimate_noise(detail, quantile=(0.1, 0.3))
    f["noise_wavelet"] = _wavelet_noise(detail)
    f["noise_dx"], f["noise_dy"] = _directional_noise(detail)
    f["noise_half"] = estimate_noise(core)
    f["blur_w25"], f["blur_w50"], f["blur_w75"] = estimate_blur_width(detail)
    for i, v in enumerate(_spectrum_bands(detail)):
        f[f"band_{i}"] = float(v)
    for k, v in zip(("1.5", "2", "3", "4"), _resample_residuals(detail)):
        f[f"resample_{k}"] = float(v)
    mu = cv2.blur(core, (9, 9))
    var = np.maximum(cv2.blur(core * core, (9, 9)) - mu * mu, 0)
    f["local_contrast"] = float(np.sqrt(var).mean())
    mean, std = cv2.meanStdDev(half)
    f["mean"], f["std"] = float(mean[0, 0]), float(std[0, 0])
    cdf = _histogram_cdf(half)
    q = (np.searchsorted(cdf, (0.01, 0.05, 0.5, 0.95, 0.99)) + 0.5) / cdf.size
    f["p01"], f["p05"], f["p50"], f["p95"], f["p99"] = (float(v) for v in q)
    # shares below 0.1 and 0.02 and above 0.9 (to 1/1024)
    f["frac_dark"], f["frac_black"] = float(cdf[round(0.1 * cdf.size) - 1]), float(cdf[round(0.02 * cdf.size) - 1])
    f["frac_bright"] = 1.0 - float(cdf[round(0.9 * cdf.size) - 1])
    f["frac_clipped"] = float(cv2.countNonZero((gray >= 0.99).view(np.uint8))) / gray.size
    f["stripe_col"], f["stripe_row"] = estimate_stripe(detail)
    f["line_w50_x"], f["line_w50_y"], f["line_w75"], f["line_w_direction"] = line_edge_widths(gray)
    f["grid_block"], f["grid_offgrid"] = grid_blockiness(gray)
    f["interp_period_col"], f["interp_period_row"] = interpolation_periodicity(gray, stride=4)
    f["segment_hf_q90"], f["segment_hf_q99"], f["segment_hf_least_q90"], f["segment_hf_least_q99"] = segment_sharpness(gray)
    f["dct_quality_loss"], f["dct_peak"], f["dct_zero"] = dct_quantisation(detail)
    if modality == "ir":
        f.update(dict.fromkeys(VISIBLE_ONLY_FEATURES, 0.0))
        f["saturation"], f["chroma_cast"] = 0.0, 0.0
    else:
        _visible_features(image, half, core, gray, f)
    for name in PAIR_FEATURES:
        f[name] = 0.0
    return {name: f[name] for name in FEATURE_NAMES}
