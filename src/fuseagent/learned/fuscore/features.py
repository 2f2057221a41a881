"""The fixed, cheap feature extractor of FuScore.

A fused image and its sources are shrunk (area resampling) so that the longer side is at most
``side`` pixels (320 by default), then described by :data:`FEATURE_NAMES` (28 numbers):

* **structure** — the three single-scale MEF-SSIM scores (Ma, Zeng & Wang 2015) of the shrunk
  stack, computed by :func:`fuseagent.metrics.mefssim.mef_ssim_single_scale` (fine → coarse);
  the coarse scale reacts to halos and low-frequency artefacts;
* **relation to the sources** — gradient retention ``mean(min(|∇F| / max_k |∇S_k|, 2))``,
  gradient overshoot (share of pixels where ``|∇F| > 1.5 max_k |∇S_k| + 0.02``), the local
  (7×7 Gaussian) correlation of ``F`` with each source, weighted by where that source is the
  most contrasted one (mean and minimum over sources: the contribution of every source, e.g. the
  thermal targets of an infrared image or the focused region of a multi-focus source), the
  sharpness retention ``log(var ∇²F / max_k var ∇²S_k)``;
* **exposure** — mean and standard deviation of luma, clipped-dark and clipped-bright shares,
  well-exposedness ``mean(exp(−(Y − 0.5)² / (2·0.2²)))``, 64-bin luma entropy (bits / 6), and the
  relation of the fused luma to a Mertens-like reference ``Y_ref = Σ w_k Y_k / Σ w_k``
  (``w_k`` the well-exposedness of source ``k``) at a coarse scale (σ = 8 px): correlation and
  mean absolute difference;
* **colour** (zeros for grey images, plus a colour flag) — mean chroma ``|Cb, Cr|`` of ``F``,
  Hasler & Süsstrunk colourfulness, ``log`` ratio of fused to reference chroma, mean chroma
  distance to the reference;
* **natural-scene statistics** — MSCN variance, MSCN peakedness ``E[m²] / E[|m|]²``, horizontal
  MSCN product mean, mean 7×7 local standard deviation;
* **artefacts** — coarse band-pass energy ratio ``log(std(G₂F − G₈F) / std(G₂Y_ref − G₈Y_ref))``
  (halos), 8×8 blockiness and column-stripe energy measured at full resolution on the luma.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from ...errors import InputError
from ...io import check_image, resize_to
from ...metrics.mefssim import mef_ssim_single_scale
from ...metrics.nr import gray_255

__all__ = ["FEATURE_NAMES", "DEFAULT_SIDE", "fuscore_features", "shrink_stack"]

#: longer side (px) of the images the features are computed on
DEFAULT_SIDE = 320

FEATURE_NAMES: tuple[str, ...] = (
    "mefssim_fine", "mefssim_mid", "mefssim_coarse",
    "gradient_retention", "gradient_overshoot", "source_corr_mean", "source_corr_min", "sharpness_retention",
    "luma_mean", "luma_std", "clip_dark", "clip_bright", "well_exposedness", "entropy",
    "tone_corr", "tone_diff",
    "colour_flag", "chroma", "colourfulness", "chroma_ratio", "chroma_diff",
    "mscn_var", "mscn_peak", "mscn_pair_h", "local_std",
    "halo_band", "blockiness", "stripes",
)

_BT601 = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_EPS = 1e-6


def _luma(image: np.ndarray) -> np.ndarray:
    return (image @ _BT601).astype(np.float32) if image.ndim == 3 else image.astype(np.float32)


def _chroma(image: np.ndarray) -> np.ndarray:
    """(H, W, 2) BT.601 Cb, Cr (centred on 0) of an RGB image."""
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b
    return np.stack([cb, cr], axis=-1).astype(np.float32)


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(x, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def _gradient(y: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(y, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT)
    gy = cv2.Sobel(y, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT)
    return np.sqrt(gx * gx + gy * gy) / 8.0


def shrink_stack(sources: Sequence[np.ndarray], fused: np.ndarray,
                 side: int = DEFAULT_SIDE) -> tuple[list[np.ndarray], np.ndarray]:
    """Check a stack and shrink every image so that its longer side is at most ``side``.

    Args:
        sources: ≥ 2 source images of the fused image's height and width.
        fused: fused image, ``(H, W)`` or ``(H, W, 3)`` in ``[0, 1]``.
        side: longer side after shrinking (images already smaller are kept).

    Returns:
        ``(sources, fused)`` float32 images.

    Raises:
        InputError: fewer than 2 sources, size mismatch, or images under 48 px per side.

    Example:
        >>> x = np.zeros((480, 640), np.float32)
        >>> [s.shape for s in shrink_stack([x, x], x, 320)[0]]
        [(240, 320), (240, 320)]
    """
    sources = [check_image(s, f"source {i}") for i, s in enumerate(sources)]
    if len(sources) < 2:
        raise InputError(f"fuscore needs at least 2 source images, got {len(sources)}")
    fused = check_image(fused, "fused image")
    size = fused.shape[:2]
    for i, s in enumerate(sources):
        if s.shape[:2] != size:
            raise InputError(f"fuscore: source {i} is {s.shape[1]}x{s.shape[0]} but the fused image is "
                             f"{size[1]}x{size[0]}; resample them to one size first")
    if min(size) < 48:
        raise InputError(f"fuscore needs images of at least 48x48 pixels, got {size[1]}x{size[0]}")
    scale = side / max(size)
    if scale >= 1:
        return [s.astype(np.float32) for s in sources], fused.astype(np.float32)
    new = (max(48, round(size[0] * scale)), max(48, round(size[1] * scale)))
    return [resize_to(s, new, "area") for s in sources], resize_to(fused, new, "area")


def _halve(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    x = image[:h, :w]
    return 0.25 * (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2])


def _structure(sources: list[np.ndarray], fused: np.ndarray) -> list[float]:
    stack = np.stack([gray_255(s) for s in sources])
    f = gray_255(fused)
    scores = []
    for level in range(3):
        scores.append(mef_ssim_single_scale(stack, f) if min(f.shape) >= 11 else 1.0)
        if level < 2:
            stack = np.stack([_halve(s) for s in stack])
            f = _halve(f)
    return scores


def _mscn(y: np.ndarray) -> np.ndarray:
    y255 = y.astype(np.float64) * 255.0
    mu = _blur(y255, 7.0 / 6.0)
    sigma = np.sqrt(np.abs(_blur(y255 * y255, 7.0 / 6.0) - mu * mu))
    return (y255 - mu) / (sigma + 1.0)


def _blockiness(y: np.ndarray) -> float:
    """Mean absolute step across 8-px block borders over the mean step elsewhere, minus 1."""
    if min(y.shape) < 32:
        return 0.0
    steps = np.abs(np.diff(y.astype(np.float32), axis=1))
    columns = np.arange(steps.shape[1])
    border = steps[:, columns % 8 == 7].mean()
    inner = steps[:, columns % 8 != 7].mean()
    rows = np.abs(np.diff(y.astype(np.float32), axis=0))
    index = np.arange(rows.shape[0])
    border += rows[index % 8 == 7].mean()
    inner += rows[index % 8 != 7].mean()
    return float(border / (inner + 1e-4) - 1.0)


def _stripes(y: np.ndarray) -> float:
    """Standard deviation of the column means of the high-pass luma (×100)."""
    high = y.astype(np.float32) - cv2.blur(y.astype(np.float32), (9, 9), borderType=cv2.BORDER_REFLECT)
    return float(high.mean(axis=0).std() * 100.0)


def fuscore_features(sources: Sequence[np.ndarray], fused: np.ndarray, side: int = DEFAULT_SIDE) -> np.ndarray:
    """The :data:`FEATURE_NAMES` vector of a fused image and its sources.

    Args:
        sources: ≥ 2 source images (any number: exposure stacks may hold 30), same size as ``fused``.
        fused: fused image, grey or RGB, float in ``[0, 1]``, at least 48×48.
        side: longer side the images are shrunk to before most features are computed.

    Returns:
        float32 array of ``len(FEATURE_NAMES)`` finite values.

    Raises:
        InputError: fewer than 2 sources, mismatched sizes, images under 48×48.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> a = cv2.GaussianBlur(rng.random((96, 96)).astype(np.float32), (0, 0), 2)
        >>> v = fuscore_features([a, a], a)
        >>> v.shape, round(float(v[0]), 4), round(float(v[5]), 3)
        ((28,), 1.0, 1.0)
    """
    fused_full = check_image(fused, "fused image")
    full_luma = _luma(fused_full)
    srcs, f = shrink_stack(sources, fused_full, side)
    lumas = [_luma(s) for s in srcs]
    y = _luma(f)
    values: list[float] = _structure(srcs, f)

    # relation to the sources
    grad_f = _gradient(y)
    grads = np.stack([_gradient(s) for s in lumas])
    grad_max = grads.max(axis=0)
    values.append(float(np.minimum(grad_f / (grad_max + 0.01), 2.0).mean()))
    values.append(float((grad_f > 1.5 * grad_max + 0.02).mean()))
    mu_f = _blur(y, 1.5)
    var_f = np.maximum(_blur(y * y, 1.5) - mu_f * mu_f, 0.0)
    contrasts, correlations = [], []
    for s in lumas:
        mu_s = _blur(s, 1.5)
        var_s = np.maximum(_blur(s * s, 1.5) - mu_s * mu_s, 0.0)
        cov = _blur(s * y, 1.5) - mu_s * mu_f
        correlations.append((cov + 1e-4) / (np.sqrt(var_s * var_f) + 1e-4))
        contrasts.append(var_s)
    contrast = np.stack(contrasts)
    dominance = (contrast == contrast.max(axis=0, keepdims=True)) & (contrast > 1e-4)
    per_source = []
    for k, corr in enumerate(correlations):
        mask = dominance[k]
        per_source.append(float(corr[mask].mean()) if mask.any() else float(corr.mean()))
    values += [float(np.mean(per_source)), float(np.min(per_source))]
    laplacian = lambda img: float(cv2.Laplacian(img, cv2.CV_32F, borderType=cv2.BORDER_REFLECT).var())  # noqa: E731
    values.append(math.log((laplacian(y) + _EPS) / (max(laplacian(s) for s in lumas) + _EPS)))

    # exposure
    values += [float(y.mean()), float(y.std()), float((y <= 2 / 255).mean()), float((y >= 253 / 255).mean())]
    values.append(float(np.exp(-((y - 0.5) ** 2) / (2 * 0.2**2)).mean()))
    hist = np.histogram(y, bins=64, range=(0.0, 1.0))[0].astype(np.float64)
    p = hist[hist > 0] / hist.sum()
    values.append(float(-(p * np.log2(p)).sum() / 6.0))
    weights = np.stack([np.exp(-((s - 0.5) ** 2) / (2 * 0.2**2)) for s in lumas]) + 1e-6
    weights /= weights.sum(axis=0, keepdims=True)
    reference = (weights * np.stack(lumas)).sum(axis=0).astype(np.float32)
    coarse_f, coarse_r = _blur(y, 8.0), _blur(reference, 8.0)
    cf, cr = coarse_f - coarse_f.mean(), coarse_r - coarse_r.mean()
    norm = math.sqrt(float((cf * cf).sum()) * float((cr * cr).sum()))
    values.append(float((cf * cr).sum() / norm) if norm > 0 else 0.0)
    values.append(float(np.abs(coarse_f - coarse_r).mean()))

    # colour
    if f.ndim == 3:
        chroma_f = _chroma(f)
        chroma_ref = sum(w[..., None] * (_chroma(s) if s.ndim == 3 else np.zeros_like(chroma_f))
                         for w, s in zip(weights, srcs))
        magnitude_f = float(np.hypot(chroma_f[..., 0], chroma_f[..., 1]).mean())
        magnitude_ref = float(np.hypot(chroma_ref[..., 0], chroma_ref[..., 1]).mean())
        rg = f[..., 0] - f[..., 1]
        yb = 0.5 * (f[..., 0] + f[..., 1]) - f[..., 2]
        colourfulness = math.hypot(float(rg.std()), float(yb.std())) + 0.3 * math.hypot(float(rg.mean()), float(yb.mean()))
        values += [1.0, magnitude_f, colourfulness, math.log((magnitude_f + 0.005) / (magnitude_ref + 0.005)),
                   float(np.hypot(*(chroma_f - chroma_ref).transpose(2, 0, 1)).mean())]
    else:
        values += [0.0, 0.0, 0.0, 0.0, 0.0]

    # natural-scene statistics
    mscn = _mscn(y)
    values += [float(mscn.var()), float((mscn**2).mean() / (np.abs(mscn).mean() ** 2 + _EPS)),
               float((mscn[:, 1:] * mscn[:, :-1]).mean()), float(np.sqrt(var_f).mean())]

    # artefacts
    band_f = float((_blur(y, 2.0) - coarse_f).std())
    band_r = float((_blur(reference, 2.0) - coarse_r).std())
    values.append(math.log((band_f + 1e-3) / (band_r + 1e-3)))
    values += [_blockiness(full_luma), _stripes(full_luma)]
    out = np.asarray(values, dtype=np.float32)
    return np.nan_to_num(out, nan=0.0, posinf=10.0, neginf=-10.0)
