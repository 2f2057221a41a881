"""No-reference image quality: BRISQUE, NIQE, PIQE, and learned NR models from local weights.

All three classical scores are *lower = better* and are computed, as in their reference MATLAB
code, on the 8-bit grey image (``rgb2gray`` weights, values rounded to integer levels ``0…255``):

* **BRISQUE** (Mittal, Moorthy & Bovik, "No-reference image quality assessment in the spatial
  domain", IEEE TIP 2012). Our own implementation of the 36 features of the authors' release
  (``brisque_feature.m``): MSCN coefficients with a 7×7 Gaussian window (σ = 7/6, zero padding),
  a GGD fit of the MSCN coefficients (shape α, variance) and AGGD fits of the four pairwise
  products (α, mean, σ_l², σ_r²), at two scales (the second one a MATLAB-style bicubic ×0.5 with
  antialiasing). The features are scaled to ``[-1, 1]`` and fed to the LIVE-trained ε-SVR (RBF)
  shipped by the ``brisque`` PyPI package (``brisque/models/svm.txt`` and ``normalize.pickle``,
  Apache-2.0). The SVR is evaluated here in NumPy (``Σ coef_i · exp(−γ‖x − sv_i‖²) − ρ``), so
  neither the package's feature code nor ``libsvm`` runs (which avoids their numpy-2 issues).
* **NIQE** (Mittal, Soundararajan & Bovik, "Making a 'completely blind' image quality analyzer",
  IEEE SPL 2013), following the authors' ``computequality.m``: 96×96 blocks without overlap, MSCN
  with the same window (replicate padding, ``(I − μ)/(σ + 1)``), 18 AGGD features per block at two
  scales, a multivariate Gaussian fitted to the image's block features and the distance
  ``sqrt((μ_p − μ_d)ᵀ ((Σ_p + Σ_d)/2)⁺ (μ_p − μ_d))`` to the pristine model. The pristine model
  (``data/niqe_pris_params.npz``) is the authors' one as redistributed by BasicSR (see
  ``data/CREDITS.md``).
* **PIQE** (Venkatanath N. et al., "Blind image quality evaluation using perception based
  features", NCC 2015), as MATLAB's ``piqe`` (checked against ``pypiqe``, a port tested against
  MATLAB): the grey image is scaled so that its maximum is 255 and rounded, padded (symmetric) to
  a multiple of 16, turned into MSCN coefficients (replicate padding); spatially active 16×16
  blocks (variance > 0.1) are tested for noticeable blocking/blur artefacts (an edge segment of 6
  pixels with standard deviation < 0.1) and for noise (block σ > 2β, β comparing the block σ with
  the centre/surround σ ratio); the score is ``100 · (Σ_impaired (1 − v) + Σ_noisy v + 1) /
  (N_active + 1)`` with ``v`` the block variance.

Learned NR models (MUSIQ, HyperIQA, CLIP-IQA, or any other) are never downloaded. A user who has
their weights as a self-contained PyTorch program puts the file under ``$FUSEAGENT_WEIGHTS_DIR``
(``musiq.pt2`` / ``musiq.pt``, ``hyperiqa.pt2`` / ``.pt``, ``clipiqa.pt2`` / ``.pt``) or calls
:func:`register_learned_nr` with an explicit path; only then is the metric registered. Two file
formats are read, both carrying the architecture with the weights (a bare state dict cannot be
used without the model's code, which fuseagent does not ship):

* ``.pt2`` — a ``torch.export`` program (``torch.export.save``); export it with dynamic height and
  width, or feed images of the exported size;
* ``.pt`` — a TorchScript module (``torch.jit.save``), TorchScript being deprecated in recent torch.

The program must take a float32 tensor ``(1, 3, H, W)``, RGB in ``[0, 1]`` (grey images are
repeated on three channels; the program does its own resizing/normalisation) and return a tensor
with exactly one element: the model's native score.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from scipy import linalg as scipy_linalg
from scipy import special

from ..errors import InputError, ToolUnavailableError
from ..io import check_image
from .base import METRICS, Metric, MetricCard, register_metric
from .fusion import _RGB2GRAY

__all__ = [
    "brisque", "brisque_features", "niqe", "niqe_features", "piqe",
    "imresize_matlab", "gray_255",
    "LearnedNRSpec", "LEARNED_NR", "WEIGHTS_ENV", "register_learned_nr", "register_learned_from_env",
    "learned_nr_weights", "load_learned_nr", "LEARNED_NR_ERRORS",
]

DATA_DIR = Path(__file__).resolve().parent / "data"

#: shape grid of the reference code: ``gam = 0.2:0.001:10``
_SHAPE_GRID = 0.2 + 0.001 * np.arange(9801)
#: AGGD moment ratio Γ(2/α)² / (Γ(1/α) Γ(3/α)), increasing with α on the grid
_AGGD_RATIO = special.gamma(2 / _SHAPE_GRID) ** 2 / (special.gamma(1 / _SHAPE_GRID) * special.gamma(3 / _SHAPE_GRID))
#: GGD moment ratio Γ(1/α) Γ(3/α) / Γ(2/α)², decreasing with α
_GGD_RATIO = 1.0 / _AGGD_RATIO


# ---------------------------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------------------------

def gray_255(image: np.ndarray, quantize: bool = True) -> np.ndarray:
    """The grey image in MATLAB's 8-bit scale, float64 ``0…255``.

    Args:
        image: (H, W) or (H, W, 3) image in ``[0, 1]``.
        quantize: round to integer levels, as MATLAB does on ``uint8`` input.

    Returns:
        (H, W) float64 array.

    Example:
        >>> gray_255(np.full((2, 2, 3), 128 / 255, np.float32))[0, 0]
        np.float64(128.0)
    """
    image = check_image(image).astype(np.float64)
    grey = image @ _RGB2GRAY if image.ndim == 3 else image
    grey = grey * 255.0
    return np.round(grey) if quantize else grey


def _gaussian_taps(size: int = 7, sigma: float = 7.0 / 6.0) -> np.ndarray:
    """1-D taps whose outer product is MATLAB's ``fspecial('gaussian', size, sigma)``."""
    x = np.arange(size) - (size - 1) / 2.0
    taps = np.exp(-(x**2) / (2.0 * sigma**2))
    return taps / taps.sum()


_TAPS = _gaussian_taps()


def _local_filter(image: np.ndarray, border: int) -> np.ndarray:
    return cv2.sepFilter2D(image, cv2.CV_64F, _TAPS, _TAPS, borderType=border)


def _mscn(image: np.ndarray, border: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean-subtracted contrast-normalised coefficients ``(I − μ)/(σ + 1)`` and the local σ."""
    mu = _local_filter(image, border)
    sigma = _local_filter(image * image, border)
    sigma -= mu * mu
    np.abs(sigma, out=sigma)
    np.sqrt(sigma, out=sigma)
    centred = np.subtract(image, mu, out=mu)
    # flat regions: the reference code's filtering returns exactly μ = I there; the sign of the
    # rounding residue would otherwise move samples between the AGGD's left and right halves
    centred[np.abs(centred) < 1e-8] = 0.0
    centred /= sigma + 1.0
    return centred, sigma


def _nearest_index(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Index of the grid point closest to each value (``grid`` increasing; NaN → 0, as MATLAB)."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    safe = np.where(finite, values, grid[0])
    # np.minimum/np.maximum rather than np.clip: the same indices without clip's Python overhead
    upper = np.minimum(np.maximum(np.searchsorted(grid, safe), 1), len(grid) - 1)
    lower = upper - 1
    pick_upper = np.abs(grid[upper] - safe) < np.abs(safe - grid[lower])
    index = np.where(pick_upper, upper, lower)
    return np.where(finite, index, 0)


def _roll_parts(length: int, shift: int) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """``(destination, source)`` slice pairs of ``np.roll`` by ``shift`` along an axis of ``length``."""
    k = shift % length
    return (slice(k, length), slice(0, length - k)), (slice(0, k), slice(length - k, length))


def _products_with_shifts(image: np.ndarray, shifts: tuple[tuple[int, int], ...]) -> np.ndarray:
    """``image · np.roll(image, shift)`` over the last two axes, one plane per shift, stacked first.

    The products are formed piecewise from slices (the rolled copy is never built): the same
    factors, at the same positions, as the ``np.roll`` expression.
    """
    rows, cols = image.shape[-2:]
    out = np.empty((len(shifts),) + image.shape)
    for plane, (dy, dx) in zip(out, shifts, strict=True):
        for row_to, row_from in _roll_parts(rows, dy):
            for col_to, col_from in _roll_parts(cols, dx):
                np.multiply(image[..., row_to, col_to], image[..., row_from, col_from], out=plane[..., row_to, col_to])
    return out


def _aggd_fit(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Moment-matching AGGD fit of each row of ``samples`` (Lasmar et al., 2009).

    Returns:
        ``(alpha, left_std, right_std)`` per row; the σ's are the raw one-sided RMS values.
    """
    samples = np.ascontiguousarray(np.atleast_2d(samples), dtype=np.float64)
    count = samples.shape[1]
    negative_part = cv2.min(samples, 0.0)  # np.minimum's values on finite samples, faster
    left_squares = np.einsum("ij,ij->i", negative_part, negative_part)
    total_squares = np.einsum("ij,ij->i", samples, samples)
    # counted row by row on boolean masks (popcounts), much faster than on the float rows
    n_negative = np.array([np.count_nonzero(row) for row in samples < 0.0])
    n_positive = np.array([np.count_nonzero(row) for row in samples != 0.0]) - n_negative
    absolute_sum = samples.sum(axis=1) - 2.0 * negative_part.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        left_std = np.sqrt(left_squares / n_negative)
        right_std = np.sqrt(np.maximum(total_squares - left_squares, 0.0) / n_positive)
        gamma_hat = left_std / right_std
        mean_square = total_squares / count
        r_hat = (absolute_sum / count) ** 2 / mean_square
        r_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    alpha = _SHAPE_GRID[_nearest_index(r_norm, _AGGD_RATIO)]
    return alpha, left_std, right_std


def _ggd_fit(samples: np.ndarray) -> tuple[float, float]:
    """Moment-matching GGD fit: shape α and standard deviation (Sharifi & Leon-Garcia, 1995)."""
    samples = samples.ravel()
    variance = float(np.mean(samples * samples))
    rho = variance / float(np.mean(np.abs(samples))) ** 2
    # the grid of Γ(1/α)Γ(3/α)/Γ(2/α)² decreases: search it reversed
    index = len(_GGD_RATIO) - 1 - _nearest_index(np.array([rho]), _GGD_RATIO[::-1])[0]
    return float(_SHAPE_GRID[index]), math.sqrt(variance)


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))


@functools.lru_cache(maxsize=64)
def _resize_matrix(in_length: int, out_length: int, scale: float) -> np.ndarray:
    """Dense (out, in) weights of MATLAB ``imresize`` bicubic along one axis."""
    antialias = scale < 1
    width = 4.0 / scale if antialias else 4.0
    out = np.arange(1, out_length + 1, dtype=np.float64)
    centre = out / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(centre - width / 2)
    taps = int(math.ceil(width)) + 2
    index = left[:, None] + np.arange(taps)[None, :]
    distance = centre[:, None] - index
    weights = scale * _cubic(scale * distance) if antialias else _cubic(distance)
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length)[::-1]])
    source = mirror[np.mod(index.astype(np.int64) - 1, 2 * in_length)]
    matrix = np.zeros((out_length, in_length))
    np.add.at(matrix, (np.repeat(np.arange(out_length), taps), source.ravel()), weights.ravel())
    return matrix


#: MATLAB's antialiased bicubic taps for a factor 0.5: output j reads input 2j − 4 … 2j + 5 (0-based)
_HALF_TAPS = 0.5 * _cubic(0.5 * (4.5 - np.arange(10)))
_HALF_TAPS /= _HALF_TAPS.sum()


def _halve_matlab(image: np.ndarray) -> np.ndarray:
    """``imresize(image, 0.5)`` as a strided separable filter (same weights as the matrix form).

    Every output sample of a ×0.5 resize uses the same ten taps, and MATLAB's index mirroring
    is a symmetric padding (OpenCV's ``BORDER_REFLECT``), so filtering the padded image and
    keeping every second sample is exact: output ``j`` reads input ``2j − 4 … 2j + 5``.
    """
    rows, cols = image.shape
    padded = cv2.copyMakeBorder(image, 4, 5, 4, 5, cv2.BORDER_REFLECT)
    full = cv2.sepFilter2D(padded, cv2.CV_64F, _HALF_TAPS, _HALF_TAPS, anchor=(0, 0),
                           borderType=cv2.BORDER_CONSTANT)
    return full[: rows: 2, : cols: 2].copy()


def imresize_matlab(image: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB ``imresize(image, scale)`` (bicubic, antialiasing when shrinking) of a 2-D array.

    Args:
        image: (H, W) float array.
        scale: resize factor (> 0); the output size is ``ceil(scale · size)``.

    Returns:
        float64 (ceil(scale·H), ceil(scale·W)) array.

    Example:
        >>> imresize_matlab(np.ones((8, 6)), 0.5).shape
        (4, 3)
        >>> float(imresize_matlab(np.ones((8, 6)), 0.5).max())
        1.0
    """
    if image.ndim != 2 or scale <= 0:
        raise InputError("imresize_matlab: expected a 2-D array and a positive scale")
    if scale == 0.5:
        return _halve_matlab(np.ascontiguousarray(image, dtype=np.float64))
    rows = _resize_matrix(image.shape[0], int(math.ceil(image.shape[0] * scale)), float(scale))
    cols = _resize_matrix(image.shape[1], int(math.ceil(image.shape[1] * scale)), float(scale))
    return rows @ np.asarray(image, dtype=np.float64) @ cols.T


# ---------------------------------------------------------------------------------------------
# BRISQUE
# ---------------------------------------------------------------------------------------------

_BRISQUE_SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))


def brisque_features(image: np.ndarray) -> np.ndarray:
    """The 36 BRISQUE features of ``brisque_feature.m`` (two scales × 18).

    Args:
        image: (H, W) or (H, W, 3) image in ``[0, 1]``, at least 16×16, not flat.

    Raises:
        InputError: an image smaller than 16×16, or flat (statistics undefined).

    Returns:
        float64 array of 36 features, per scale: GGD (α, σ²) of the MSCN coefficients, then for
        the horizontal, vertical, main- and anti-diagonal products AGGD (α, mean, σ_l², σ_r²).
    """
    return _brisque_features(gray_255(image))


def _brisque_features(grey: np.ndarray) -> np.ndarray:
    """:func:`brisque_features` of the 8-bit grey image (:func:`gray_255`)."""
    if min(grey.shape) < 16:
        raise InputError(f"brisque: image of size {grey.shape[1]}x{grey.shape[0]} is too small (min 16x16)")
    if float(grey.max() - grey.min()) < 1.0:
        raise InputError("brisque is undefined for a flat image (less than one grey level of contrast): "
                         "its natural-scene statistics need texture")
    features: list[float] = []
    for scale in range(2):
        mscn, _ = _mscn(grey, cv2.BORDER_CONSTANT)
        alpha, std = _ggd_fit(mscn)
        features += [alpha, std * std]
        products = _products_with_shifts(mscn, _BRISQUE_SHIFTS).reshape(len(_BRISQUE_SHIFTS), -1)
        alphas, left, right = _aggd_fit(products)
        spread = np.sqrt(special.gamma(1 / alphas) / special.gamma(3 / alphas))
        means = (right - left) * special.gamma(2 / alphas) / special.gamma(1 / alphas) * spread
        for a, m, lo, hi in zip(alphas, means, left, right, strict=True):
            features += [float(a), float(m), float(lo * lo), float(hi * hi)]
        if scale == 0:
            grey = imresize_matlab(grey, 0.5)
    result = np.asarray(features, dtype=np.float64)
    if not np.isfinite(result).all():
        raise InputError("brisque is undefined for this image: its MSCN statistics are degenerate (almost no texture)")
    return result


@dataclass(frozen=True)
class _SVR:
    support_vectors: np.ndarray
    coefficients: np.ndarray
    gamma: float
    rho: float
    feature_min: np.ndarray
    feature_max: np.ndarray

    def predict(self, features: np.ndarray) -> float:
        scaled = -1.0 + 2.0 * (features - self.feature_min) / (self.feature_max - self.feature_min)
        distances = ((self.support_vectors - scaled) ** 2).sum(axis=1)
        return float(self.coefficients @ np.exp(-self.gamma * distances) - self.rho)


def _brisque_model_dir() -> Path:
    """The ``models`` folder of the installed ``brisque`` package, found without importing it."""
    spec = importlib.util.find_spec("brisque")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        if (Path(folder) / "models" / "svm.txt").is_file():
            return Path(folder) / "models"
    raise ToolUnavailableError("brisque needs the LIVE-trained model of the 'brisque' package: pip install brisque")


@functools.lru_cache(maxsize=1)
def _brisque_svr() -> _SVR:
    """Parse the package's libsvm model (``svm.txt``) and feature ranges (``normalize.pickle``)."""
    model_dir = _brisque_model_dir()
    header: dict[str, str] = {}
    coefficients: list[float] = []
    rows: list[dict[int, float]] = []
    with open(model_dir / "svm.txt", encoding="ascii") as handle:
        for line in handle:
            if line.strip() == "SV":
                break
            key, _, value = line.strip().partition(" ")
            header[key] = value
        for line in handle:
            fields = line.split()
            if not fields:
                continue
            coefficients.append(float(fields[0]))
            rows.append({int(k): float(v) for k, v in (f.split(":") for f in fields[1:])})
    if header.get("svm_type") != "epsilon_svr" or header.get("kernel_type") != "rbf":
        raise ToolUnavailableError(f"brisque: unexpected model type in {model_dir / 'svm.txt'}")
    with open(model_dir / "normalize.pickle", "rb") as handle:
        ranges = pickle.load(handle)  # the package's own data file, shipped beside svm.txt
    n_features = len(ranges["min_"])
    vectors = np.zeros((len(rows), n_features))
    for i, row in enumerate(rows):
        for k, v in row.items():
            vectors[i, k - 1] = v
    return _SVR(vectors, np.asarray(coefficients), float(header["gamma"]), float(header["rho"]),
                np.asarray(ranges["min_"], dtype=np.float64), np.asarray(ranges["max_"], dtype=np.float64))


@register_metric(MetricCard(
    name="brisque", mode="nr", lower_better=True, range=(-math.inf, math.inf),
    reference="Mittal, Moorthy & Bovik, IEEE TIP 2012; LIVE-trained SVR of the 'brisque' package",
    description="BRISQUE: natural-scene-statistics features + SVR trained on LIVE DMOS (≈0 best … 100 worst)",
    requires=("brisque",)))
def brisque(image: np.ndarray) -> float:
    """BRISQUE score (lower = better; about 0–100 on natural images).

    Args:
        image: (H, W) or (H, W, 3) image in ``[0, 1]``.

    Returns:
        The SVR's predicted DMOS-like score.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> smooth = cv2.GaussianBlur(rng.random((96, 96)).astype(np.float32), (0, 0), 3)
        >>> noisy = np.clip(smooth + rng.normal(0, 0.1, smooth.shape), 0, 1)
        >>> brisque(noisy) > brisque(smooth)
        True
    """
    return _brisque_svr().predict(brisque_features(image))


def _brisque_grey(grey: np.ndarray) -> float:
    """:func:`brisque` of the 8-bit grey image (:func:`gray_255`)."""
    return _brisque_svr().predict(_brisque_features(grey))


# ---------------------------------------------------------------------------------------------
# NIQE
# ---------------------------------------------------------------------------------------------

_NIQE_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


@functools.lru_cache(maxsize=1)
def _niqe_pristine() -> tuple[np.ndarray, np.ndarray]:
    path = DATA_DIR / "niqe_pris_params.npz"
    with np.load(path) as params:
        return params["mu_pris_param"].ravel().astype(np.float64), params["cov_pris_param"].astype(np.float64)


def _niqe_block_features(mscn: np.ndarray, block: int) -> np.ndarray:
    """(n_blocks, 18) AGGD features of ``computefeature.m`` for each block of ``mscn``."""
    rows, cols = mscn.shape[0] // block, mscn.shape[1] // block
    blocks = mscn[: rows * block, : cols * block].reshape(rows, block, cols, block).swapaxes(1, 2)
    blocks = blocks.reshape(rows * cols, block, block)
    n = len(blocks)
    alpha, left, right = _aggd_fit(blocks.reshape(n, -1))
    spread = np.sqrt(special.gamma(1 / alpha) / special.gamma(3 / alpha))
    columns = [alpha, (left + right) * spread / 2]
    products = _products_with_shifts(blocks, _NIQE_SHIFTS).reshape(len(_NIQE_SHIFTS) * n, -1)
    alphas, lefts, rights = _aggd_fit(products)
    spreads = np.sqrt(special.gamma(1 / alphas) / special.gamma(3 / alphas))
    beta_left, beta_right = lefts * spreads, rights * spreads
    means = (beta_right - beta_left) * special.gamma(2 / alphas) / special.gamma(1 / alphas)
    for k in range(len(_NIQE_SHIFTS)):
        part = slice(k * n, (k + 1) * n)
        columns += [alphas[part], means[part], beta_left[part], beta_right[part]]
    return np.stack(columns, axis=1)


def niqe_features(image: np.ndarray, block: int = 96) -> np.ndarray:
    """Per-block NIQE features: ``(n_blocks, 36)``, 18 at full scale then 18 at half scale.

    Args:
        image: (H, W) or (H, W, 3) image in ``[0, 1]``, at least ``block`` × ``block``.
        block: block side at full scale (even; the authors use 96).

    Returns:
        float64 feature matrix (rows may hold NaN for flat blocks).
    """
    return _niqe_features(gray_255(image), block)


def _niqe_features(grey: np.ndarray, block: int) -> np.ndarray:
    """:func:`niqe_features` of the 8-bit grey image (:func:`gray_255`)."""
    if block < 8 or block % 2:
        raise InputError(f"niqe: block must be an even size >= 8, got {block}")
    if grey.shape[0] < block or grey.shape[1] < block:
        raise InputError(f"niqe: image of size {grey.shape[1]}x{grey.shape[0]} is smaller than one "
                         f"{block}x{block} block")
    grey = grey[: grey.shape[0] // block * block, : grey.shape[1] // block * block]
    mscn, _ = _mscn(grey, cv2.BORDER_REPLICATE)
    full = _niqe_block_features(mscn, block)
    half_mscn, _ = _mscn(imresize_matlab(grey, 0.5), cv2.BORDER_REPLICATE)
    half = _niqe_block_features(half_mscn, block // 2)
    return np.concatenate([full, half], axis=1)


@register_metric(MetricCard(
    name="niqe", mode="nr", lower_better=True, range=(0.0, math.inf),
    reference="Mittal, Soundararajan & Bovik, IEEE SPL 2013 (pristine model of the authors, via BasicSR)",
    description="NIQE: distance of the image's block NSS statistics to a pristine multivariate Gaussian"))
def niqe(image: np.ndarray, block: int = 96) -> float:
    """NIQE score (lower = better; about 2–4 for pristine photographs, > 8 for strong distortion).

    Args:
        image: (H, W) or (H, W, 3) image in ``[0, 1]``, at least ``block`` × ``block``.
        block: block side at full scale.

    Returns:
        The distance to the pristine model.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> smooth = cv2.GaussianBlur(rng.random((192, 192)).astype(np.float32), (0, 0), 2)
        >>> noisy = np.clip(smooth + rng.normal(0, 0.1, smooth.shape), 0, 1)
        >>> niqe(noisy) > niqe(smooth)
        True
    """
    return _niqe_score(niqe_features(image, block))


def _niqe_grey(grey: np.ndarray, block: int = 96) -> float:
    """:func:`niqe` of the 8-bit grey image (:func:`gray_255`)."""
    return _niqe_score(_niqe_features(grey, block))


def _niqe_score(features: np.ndarray) -> float:
    """Distance of the block features' Gaussian to the pristine model."""
    mu_pristine, cov_pristine = _niqe_pristine()
    missing = np.isnan(features)
    if not missing.any():  # the common case: np.mean is nanmean's value, without its bookkeeping
        mu_image, complete = features.mean(axis=0), features
    else:
        if missing.all(axis=0).any():
            raise InputError("niqe: the image has no textured block (flat image)")
        mu_image = np.nanmean(features, axis=0)
        complete = features[~missing.any(axis=1)]
    cov_image = np.cov(complete, rowvar=False) if len(complete) > 1 else np.zeros_like(cov_pristine)
    difference = mu_pristine - mu_image
    return float(math.sqrt(max(_mahalanobis_square(difference, (cov_pristine + cov_image) / 2), 0.0)))


def _mahalanobis_square(difference: np.ndarray, covariance: np.ndarray) -> float:
    """``dᵀ Σ⁺ d`` (the authors' ``pinv``) by a Cholesky solve when ``Σ`` is positive definite.

    NIQE's ``Σ`` is the pristine covariance (positive definite, condition number ≈ 2·10⁵) plus the
    image's (positive semi-definite), so the Cholesky factor exists and ``Σ⁺ = Σ⁻¹``: the solve
    gives the pseudo-inverse's value to ~1e-12 relative, in a fraction of an SVD's time.
    """
    try:
        factor = np.linalg.cholesky(covariance)
    except np.linalg.LinAlgError:  # not numerically positive definite: the pseudo-inverse decides
        return float(difference @ np.linalg.pinv(covariance) @ difference)
    whitened = scipy_linalg.solve_triangular(factor, difference, lower=True, check_finite=False)
    return float(whitened @ whitened)


# ---------------------------------------------------------------------------------------------
# PIQE
# ---------------------------------------------------------------------------------------------

_PIQE_BLOCK = 16
_PIQE_ACTIVITY = 0.1
_PIQE_IMPAIRED = 0.1
_PIQE_SEGMENT = 6


def _sliding_std(values: np.ndarray, window: int) -> np.ndarray:
    """Sample standard deviation (ddof 1) of each run of ``window`` (≥ 2) values along the last axis.

    The same numbers as ``sliding_window_view(values, window, axis=-1).std(axis=-1, ddof=1)``:
    numpy sums a short axis in order, and so does this (over shifted slices, without the
    per-window reduction overhead).

    Example:
        >>> _sliding_std(np.array([1.0, 2.0, 4.0, 8.0]), 3).round(6).tolist()
        [1.527525, 3.05505]
    """
    count = values.shape[-1] - window + 1
    parts = [values[..., k:k + count] for k in range(window)]
    total = parts[0] + parts[1]
    for part in parts[2:]:
        total += part
    mean = total / window
    squares = parts[0] - mean
    squares *= squares
    for part in parts[1:]:
        deviation = part - mean
        deviation *= deviation
        squares += deviation
    squares /= window - 1
    return np.sqrt(squares, out=squares)


def _piqe_blocks(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-block ``(variance, active, impaired, noisy)`` arrays of MATLAB ``piqe`` (of :func:`gray_255`)."""
    pad_rows = -grey.shape[0] % _PIQE_BLOCK
    pad_cols = -grey.shape[1] % _PIQE_BLOCK
    if pad_rows or pad_cols:
        grey = np.pad(grey, ((0, pad_rows), (0, pad_cols)), mode="symmetric")
    peak = grey.max()
    if peak > 0:
        grey = np.round(grey * (255.0 / peak))
    mscn, _ = _mscn(grey, cv2.BORDER_REPLICATE)
    b = _PIQE_BLOCK
    rows, cols = grey.shape[0] // b, grey.shape[1] // b
    blocks = mscn.reshape(rows, b, cols, b).swapaxes(1, 2).reshape(rows * cols, b, b)
    variance = blocks.reshape(len(blocks), -1).var(axis=1, ddof=1)
    active = variance > _PIQE_ACTIVITY
    edges = np.stack([blocks[:, 0, :], blocks[:, :, b - 1], blocks[:, b - 1, :], blocks[:, :, 0]], axis=1)
    segment_std = _sliding_std(edges, _PIQE_SEGMENT)
    impaired = (segment_std < _PIQE_IMPAIRED).any(axis=(1, 2))
    centre = blocks[:, :, [b // 2 - 1, b // 2]].swapaxes(1, 2).reshape(len(blocks), -1)
    # the reference code deletes column b/2 − 1 and then, in the shrunk block, column b/2: the
    # surround therefore omits original columns b/2 − 1 and b/2 + 1 (and keeps b/2)
    surround = np.delete(blocks, [b // 2 - 1, b // 2 + 1], axis=2).reshape(len(blocks), -1)
    block_sigma = np.sqrt(variance)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = centre.std(axis=1, ddof=1) / surround.std(axis=1, ddof=1)
        ratio = np.where(np.isnan(ratio), 0.0, ratio)
        beta = np.abs(block_sigma - ratio) / np.maximum(block_sigma, ratio)
        noisy = block_sigma > 2 * beta
    return variance, active, impaired & active, noisy & active


@register_metric(MetricCard(
    name="piqe", mode="nr", lower_better=True, range=(0.0, 100.0),
    reference="Venkatanath N. et al., NCC 2015 (as MATLAB piqe)",
    description="PIQE: share of active 16x16 blocks showing blocking/blur or noise, weighted by activity"))
def piqe(image: np.ndarray) -> float:
    """PIQE score in ``[0, 100]`` (lower = better; < 20 excellent … > 80 bad in MATLAB's scale).

    Args:
        image: (H, W) or (H, W, 3) image in ``[0, 1]``.

    Returns:
        The PIQE score.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> smooth = cv2.GaussianBlur(rng.random((64, 64)).astype(np.float32), (0, 0), 2)
        >>> noisy = np.clip(smooth + rng.normal(0, 0.15, smooth.shape), 0, 1)
        >>> piqe(noisy) > piqe(smooth)
        True
    """
    return _piqe_grey(gray_255(image))


def _piqe_grey(grey: np.ndarray) -> float:
    """:func:`piqe` of the 8-bit grey image (:func:`gray_255`)."""
    variance, active, impaired, noisy = _piqe_blocks(grey)
    distortion = float((impaired * (1 - variance)).sum() + (noisy * variance).sum())
    return (distortion + 1.0) / (int(active.sum()) + 1.0) * 100.0


# ---------------------------------------------------------------------------------------------
# learned NR models from local TorchScript weights
# ---------------------------------------------------------------------------------------------

#: environment variable naming the folder that holds learned-metric weights
WEIGHTS_ENV = "FUSEAGENT_WEIGHTS_DIR"


@dataclass(frozen=True)
class LearnedNRSpec:
    """A learned no-reference metric that can be used when its weights are present locally.

    Attributes:
        name: metric name (``"musiq"``).
        stem: file name without suffix looked up in ``$FUSEAGENT_WEIGHTS_DIR`` (``.pt2`` first,
            then ``.pt``).
        lower_better: direction of the model's native score.
        range: native score range.
        reference: paper.
        description: one line.
    """

    name: str
    stem: str
    lower_better: bool
    range: tuple[float, float]
    reference: str
    description: str


#: the learned NR metrics fuseagent knows how to host (weights are never bundled nor downloaded)
LEARNED_NR: dict[str, LearnedNRSpec] = {
    spec.name: spec for spec in (
        LearnedNRSpec("musiq", "musiq", False, (0.0, 100.0),
                      "Ke et al., MUSIQ: multi-scale image quality transformer, ICCV 2021",
                      "MUSIQ (KonIQ-trained scale 0-100) from local weights"),
        LearnedNRSpec("hyperiqa", "hyperiqa", False, (0.0, 1.0),
                      "Su et al., Blindly assess image quality in the wild (HyperIQA), CVPR 2020",
                      "HyperIQA from local weights"),
        LearnedNRSpec("clipiqa", "clipiqa", False, (0.0, 1.0),
                      "Wang, Chan & Loy, Exploring CLIP for assessing the look and feel of images, AAAI 2023",
                      "CLIP-IQA from local weights"),
    )
}


def learned_nr_weights(name: str, weights_path: str | os.PathLike | None = None) -> Path:
    """Locate the weights (``.pt2`` or ``.pt`` program) of a learned NR metric.

    Args:
        name: a key of :data:`LEARNED_NR` (or any name when ``weights_path`` is given).
        weights_path: explicit file; otherwise ``$FUSEAGENT_WEIGHTS_DIR/<stem>.pt2`` or ``.pt``.

    Returns:
        The existing weights file.

    Raises:
        ToolUnavailableError: no weights found (the message says where they are looked for).
    """
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise ToolUnavailableError(f"learned metric '{name}': weights file {path} does not exist")
        return path
    if name not in LEARNED_NR:
        raise ToolUnavailableError(f"learned metric '{name}': unknown; pass weights_path explicitly")
    folder = os.environ.get(WEIGHTS_ENV)
    stem = LEARNED_NR[name].stem
    if not folder:
        raise ToolUnavailableError(f"learned metric '{name}' needs local weights: set ${WEIGHTS_ENV} to a folder "
                                   f"with {stem}.pt2 or {stem}.pt")
    for suffix in (".pt2", ".pt"):
        path = Path(folder).expanduser() / f"{stem}{suffix}"
        if path.is_file():
            return path
    raise ToolUnavailableError(f"learned metric '{name}': {stem}.pt2 / {stem}.pt not found in ${WEIGHTS_ENV}={folder}")


def load_learned_nr(path: str | os.PathLike) -> Callable[[np.ndarray], float]:
    """Load a learned NR model and wrap it as ``score(image) -> float``.

    Args:
        path: a ``torch.export.save`` program (``.pt2``) or a ``torch.jit.save`` module (other
            suffixes) mapping ``(1, 3, H, W)`` float32 RGB in ``[0, 1]`` to a one-element tensor.

    Returns:
        A function scoring one (H, W) or (H, W, 3) image in ``[0, 1]``.

    Raises:
        ToolUnavailableError: torch missing or the file is not a loadable program.
    """
    try:
        import torch
    except ImportError:
        raise ToolUnavailableError("learned NR metrics need torch") from None
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated, still supported
        try:
            if path.suffix == ".pt2":
                module = torch.export.load(str(path)).module()
            else:
                module = torch.jit.load(str(path), map_location="cpu")
                module.eval()
        except Exception as exc:  # torch raises many types for a corrupt archive
            kind = "torch.export program" if path.suffix == ".pt2" else "TorchScript module"
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ToolUnavailableError(f"{path}: not a {kind} ({message})") from None

    def score(image: np.ndarray) -> float:
        image = check_image(image)
        rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image
        tensor = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]
        with torch.inference_mode():
            output = module(tensor)
        if not isinstance(output, torch.Tensor) or output.numel() != 1:
            raise InputError(f"{path}: the model must return one score, got {type(output).__name__}"
                             f"{tuple(output.shape) if isinstance(output, torch.Tensor) else ''}")
        return float(output.reshape(()).item())

    return score


def register_learned_nr(name: str, weights_path: str | os.PathLike | None = None, *,
                        spec: LearnedNRSpec | None = None, replace: bool = True) -> bool:
    """Register a learned NR metric if (and only if) its local weights exist.

    Args:
        name: metric name; a key of :data:`LEARNED_NR` unless ``spec`` is given.
        weights_path: explicit TorchScript file; default ``$FUSEAGENT_WEIGHTS_DIR/<filename>``.
        spec: card data for a model not in :data:`LEARNED_NR`.
        replace: replace an earlier registration of the same name.

    Returns:
        True when the metric was registered, False when no weights were found (it stays absent
        from :func:`~fuseagent.metrics.list_metrics`).

    Raises:
        ToolUnavailableError: the weights exist but cannot be loaded.
    """
    spec = spec or LEARNED_NR.get(name)
    if spec is None:
        raise InputError(f"learned metric '{name}': unknown; pass spec=LearnedNRSpec(...)")
    try:
        path = learned_nr_weights(name, weights_path)
    except ToolUnavailableError:
        return False
    scorer = load_learned_nr(path)
    card = MetricCard(name=name, mode="nr", lower_better=spec.lower_better, range=spec.range,
                      reference=spec.reference, description=f"{spec.description} ({path.name})",
                      variant="learned", requires=("torch",))

    def factory(**params: Any) -> Metric:
        return Metric(card, lambda image: scorer(image), **params)

    METRICS.register(name, card, factory=factory, replace=replace)
    return True


def register_learned_from_env() -> list[str]:
    """Register every known learned metric whose weights are in ``$FUSEAGENT_WEIGHTS_DIR``.

    Returns:
        Names registered (empty when the variable is unset or holds none of the files).
    """
    if not os.environ.get(WEIGHTS_ENV):
        return []
    registered = []
    for name in LEARNED_NR:
        try:
            if register_learned_nr(name):
                registered.append(name)
        except ToolUnavailableError as exc:  # a broken weights file must not break the other metrics
            LEARNED_NR_ERRORS[name] = str(exc)
    return registered


#: learned metrics whose weights were found but could not be loaded: name → reason
LEARNED_NR_ERRORS: dict[str, str] = {}


register_learned_from_env()
