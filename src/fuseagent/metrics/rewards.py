r"""Quality rewards of the agent: intrinsic (IQR), relational (RQR) and holistic (HQA).

Every reward and every term is a number in ``[0, 1]`` where **higher is better**; the direction of
each underlying metric is fixed here, once. A reward is returned as :class:`Reward` (``value`` and
the named ``terms`` it was combined from); weights and normalisation constants live in frozen
dataclasses (:class:`IntrinsicConfig`, :class:`RelationalConfig`, :class:`HQAConfig`) so a planner
can be tuned without touching code.

**Intrinsic quality reward** (IQR) of one image ``I`` — run after every agent step::

    R_int(I) = Σ_k w_k q_k(I) / Σ_k w_k

    q_brisque  = 1 − clip(BRISQUE(I) / 100, 0, 1)
    q_niqe     = 1 / (1 + exp((NIQE(I) − c) / s))          c = 5.5, s = 1.0 (logistic: pristine
                                                             photographs, NIQE ≈ 3, give ≈ 0.92)
    q_piqe     = 1 − PIQE(I) / 100
    q_exposure = (1 − f_clip) · exp(−(μ_Y − 0.5)² / (2 · 0.25²))   f_clip: share of luma pixels
                                                             ≤ 2/255 or ≥ 253/255; μ_Y mean luma
    q_contrast = 1 − exp(−σ_Y / 0.1)                        σ_Y: standard deviation of luma

Terms of weight 0 are not computed; NIQE is left out (its weight renormalised away) for images
smaller than one 96×96 block. ``max_side`` optionally shrinks large images (area resampling) before
scoring, to bound the cost.

**Relational quality reward** (RQR) ``relational_reward(kind, before, after, other)`` — what an
action changed with respect to the other inputs:

* ``"enhancement"`` (denoise, dehaze, lighten …: ``before``/``after`` one source, ``other`` the
  other source): compatibility ``C(x, o) = Σ_t w_t c_t(x, o) / Σ w_t`` with
  ``c_ssim = SSIM(x, o)`` (11×11 Gaussian SSIM, Wang et al. 2004, on luma),
  ``c_grad = corr(|∇x|, |∇o|)`` (Pearson correlation of Sobel gradient magnitudes) and
  ``c_hist = Σ_b sqrt(h_x(b) h_o(b))`` (Bhattacharyya coefficient of 64-bin luma histograms).
  The reward is the *gain* ``G = C(after, o) − C(before, o)`` mapped by
  ``R = 0.5 + 0.5 tanh(G / τ)`` (τ = 0.05): 0.5 means no change, above 0.5 the action made the
  source more compatible with the other one.
* ``"alignment"`` (``before`` the moving image, ``after`` the registered one, ``other`` the
  reference, ``transform`` the 3×3 homography of the registration tool's ``info["homography"]``,
  moving → reference pixel coordinates): similarity ``A(x, r) = Σ w_t a_t / Σ w_t`` with
  ``a_ncc = |NCC(x, r)|`` (zero-mean normalised cross-correlation of the lumas; its magnitude,
  as infrared and visible contrasts may be reversed), ``a_orientation`` the normalised gradient
  field similarity (Haber & Modersitzki 2006) ``mean((∇x·∇r)² / ((|∇x|² + ε²)(|∇r|² + ε²)))``
  (ε = 0.05 on Sobel gradients of ``[0, 1]`` luma; insensitive to contrast reversal) and
  ``a_mi = (H(x) + H(r)) / H(x, r) − 1`` (normalised mutual information, Studholme et al. 1999,
  64×64-bin joint histogram), all over the ``valid`` pixels (eroded by one pixel);
  ``R = (0.5 + 0.5 tanh((A(after, r) − A(before', r)) / τ_a)) · P(H)`` (τ_a = 0.02) where
  ``before'`` is the moving image resampled to the reference's size (the nominal, untransformed
  alignment) and ``P`` the plausibility of the residual transform ``H N⁻¹`` (``N`` the nominal
  stretch):
  ``P = [finite, convex, orientation kept] · exp(−(ln s / 0.3)²) · exp(−(ln κ / 0.3)²) ·
  exp(−(d / 0.25)²)`` with ``s`` the linear scale (square root of the area ratio of the warped
  frame), ``κ`` the anisotropy (ratio of singular values of the Jacobian at the centre) and
  ``d`` the largest corner displacement divided by the image diagonal.
* ``"fusion"`` (``before`` the sequence of sources, ``after`` the fused image): an absolute score
  ``R = Σ w_t f_t / Σ w_t`` with ``f_struct`` the geometric mean over sources of
  ``clip(MS-SSIM(s, F), 0, 1)`` (MEF-SSIM of the stack for ``task="mef"``; single-scale SSIM for
  images under 176 px), ``f_sf = min(1, SF(F) / max_s SF(s))`` and ``f_ag = min(1, AG(F) / max_s
  AG(s))`` (spatial frequency and average gradient of :mod:`fuseagent.metrics.fusion`) and
  ``f_iqr = R_int(F)``.

**Holistic quality assessment** (HQA) ranks whole trajectories::

    HQA = (w_fusion · R_fusion(sources, F) + w_steps · mean_i r_i + w_fuscore · (FuScore − 1)/4)
          / (w_fusion + w_steps + w_fuscore)          (w_fuscore = 0 by default)

with ``r_i`` the rewards (IQR or RQR, each in ``[0, 1]``) collected at the trajectory's steps; the
steps term is left out when there are none.

A :class:`RewardCache` shared by the rewards of one run (the agent's reflector keeps one) computes
each image's analyses once: the other source's, each state's compatibility with it, the sources'
SSIM moments that HQA's MS-SSIM needs again. The values are the same with or without it.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

import cv2
import numpy as np

from ..errors import InputError
from ..io import check_image, resize_to, to_gray
from .base import MetricCard, register_metric
from .fusion import ag, sf, to_scaled
from .mefssim import mef_ssim, mef_ssim_sources, ms_ssim_many
from .nr import _brisque_grey, _niqe_grey, _piqe_grey, gray_255
from .structural import local_moments, ssim_map_mean, ssim_with_moments

__all__ = [
    "Reward", "IntrinsicConfig", "RelationalConfig", "HQAConfig",
    "intrinsic_reward", "relational_reward", "hqa", "transform_plausibility",
    "RELATIONAL_KINDS", "FUSION_TASKS", "Homography", "RewardCache",
]

RELATIONAL_KINDS = ("enhancement", "alignment", "fusion")
FUSION_TASKS = ("ivif", "mef", "mff")

#: a 3×3 homography as an array or nested lists (the registration tool's ``info["homography"]``)
Homography = np.ndarray | Sequence[Sequence[float]]


@dataclass(frozen=True)
class Reward:
    """A reward in ``[0, 1]`` (higher = better) and the named terms it combines.

    Attributes:
        value: the reward.
        terms: each term's value in ``[0, 1]`` (for gains: the mapped gain) and, for relational
            rewards, the raw gain under ``"gain"``.
    """

    value: float
    terms: dict[str, float] = field(default_factory=dict)

    def __float__(self) -> float:
        return self.value


T = TypeVar("T")

#: local Gaussian mean and variance of a 0–255 luma (:func:`~fuseagent.metrics.structural.local_moments`)
Moments = tuple[np.ndarray, np.ndarray]


class RewardCache:
    """Analyses reused across the rewards of one run, keyed by image content (bounded, oldest out).

    An agent rates every restoration step of a source against the same other source, every
    candidate of a rolled-back step against the same input, and finally the fused image against
    the sources: with one cache passed to successive :func:`relational_reward` and :func:`hqa`
    calls, the other image's analysis, each image's compatibility with it and each source's SSIM
    moments are computed once (the values are those computed without a cache). Images must not be
    modified in place while a cache knows them.

    Args:
        max_entries: analyses (and content digests) kept.

    Example:
        >>> cache = RewardCache()
        >>> rng = np.random.default_rng(0)
        >>> a, b, o = (rng.random((32, 32)).astype(np.float32) for _ in range(3))
        >>> first = relational_reward("enhancement", a, b, o, cache=cache)
        >>> again = relational_reward("enhancement", a, b, o, cache=cache)
        >>> again == first, cache.hits
        (True, 3)
    """

    def __init__(self, max_entries: int = 64) -> None:
        self.max_entries = int(max_entries)
        self.hits = 0
        self._digests: OrderedDict[int, tuple[np.ndarray, str]] = OrderedDict()
        self._values: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()  # two threads may share a cache
        self._computing: dict[Hashable, Future[Any]] = {}  # values being computed, for other threads to wait on

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_lock", "_computing")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock, self._computing = threading.Lock(), {}

    def key(self, image: np.ndarray) -> str:
        """Content digest (shape, dtype, bytes) of ``image``, computed once per array object."""
        with self._lock:
            known = self._digests.get(id(image))
            if known is not None and known[0] is image:
                self._digests.move_to_end(id(image))
                return known[1]
        data = np.ascontiguousarray(image)
        hasher = hashlib.blake2b(str((data.shape, data.dtype.str)).encode(), digest_size=16)
        hasher.update(data.reshape(-1).view(np.uint8))
        digest = hasher.hexdigest()
        with self._lock:
            self._digests[id(image)] = (image, digest)  # holding the array keeps its id unique
            while len(self._digests) > self.max_entries:
                self._digests.popitem(last=False)
        return digest

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The value stored under ``key``, computing (and storing) it the first time (a thread asking
        for a value another thread is computing waits for it)."""
        with self._lock:
            if key in self._values:
                self.hits += 1
                self._values.move_to_end(key)
                return self._values[key]
            computing = self._computing.get(key)
            if computing is None:
                self._computing[key] = mine = Future()
        if computing is not None:
            return computing.result()
        try:
            value = compute()
        except BaseException as exc:
            with self._lock:
                del self._computing[key]
            mine.set_exception(exc)
            raise
        with self._lock:
            self._values[key] = value
            while len(self._values) > self.max_entries:
                self._values.popitem(last=False)
            del self._computing[key]
        mine.set_result(value)
        return value


def _weighted(terms: Mapping[str, float], weights: Mapping[str, float]) -> float:
    used = {k: w for k, w in weights.items() if w > 0 and k in terms}
    total = sum(used.values())
    if total <= 0:
        raise InputError("rewards: every weight is 0")
    return float(sum(w * terms[k] for k, w in used.items()) / total)


def _gain_to_unit(gain: float, tau: float) -> float:
    return float(0.5 + 0.5 * math.tanh(gain / tau))


# ------------------------------------------------------------------------------------------ IQR
@dataclass(frozen=True)
class IntrinsicConfig:
    """Weights and normalisation of the intrinsic reward (see the module docstring).

    Attributes:
        brisque, niqe, piqe, exposure, contrast: term weights (0 = skip the term).
        niqe_centre, niqe_scale: logistic mapping of NIQE.
        exposure_sigma: tolerance of the mean luma around 0.5.
        contrast_scale: luma standard deviation giving ``1 − 1/e``.
        max_side: shrink images whose longer side exceeds this before scoring (None = never).
    """

    brisque: float = 1.0
    niqe: float = 1.0
    piqe: float = 0.5
    exposure: float = 0.5
    contrast: float = 0.25
    niqe_centre: float = 5.5
    niqe_scale: float = 1.0
    exposure_sigma: float = 0.25
    contrast_scale: float = 0.1
    max_side: int | None = None

    def weights(self) -> dict[str, float]:
        return {"brisque": self.brisque, "niqe": self.niqe, "piqe": self.piqe,
                "exposure": self.exposure, "contrast": self.contrast}


def _shrink(image: np.ndarray, max_side: int | None) -> np.ndarray:
    if max_side is None or max(image.shape[:2]) <= max_side:
        return image
    scale = max_side / max(image.shape[:2])
    size = (max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale)))
    return resize_to(image, size, "area")


def intrinsic_reward(image: np.ndarray, config: IntrinsicConfig | None = None) -> Reward:
    """Intrinsic quality reward (IQR) of one image: weighted, normalised NR-IQA.

    Args:
        image: (H, W) or (H, W, 3) image in ``[0, 1]``, at least 16×16.
        config: weights and normalisation; defaults to :class:`IntrinsicConfig()`.

    Returns:
        :class:`Reward` with terms ``brisque``, ``niqe``, ``piqe``, ``exposure``, ``contrast``
        (those of non-zero weight).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> clean = cv2.GaussianBlur(rng.random((128, 128)).astype(np.float32), (0, 0), 2) * 0.5 + 0.25
        >>> noisy = np.clip(clean + rng.normal(0, 0.08, clean.shape), 0, 1).astype(np.float32)
        >>> intrinsic_reward(noisy).value < intrinsic_reward(clean).value
        True
    """
    config = config or IntrinsicConfig()
    image = _shrink(check_image(image), config.max_side)
    weights = config.weights()
    terms: dict[str, float] = {}
    # the three NR metrics start from the same 8-bit grey image: convert it once
    grey = gray_255(image) if weights["brisque"] > 0 or weights["niqe"] > 0 or weights["piqe"] > 0 else None
    if weights["brisque"] > 0:
        try:
            terms["brisque"] = 1.0 - float(np.clip(_brisque_grey(grey) / 100.0, 0.0, 1.0))
        except InputError:
            if min(image.shape[:2]) < 16:
                raise
            terms["brisque"] = 0.0  # a flat image: no natural-scene statistics, the worst BRISQUE term
    if weights["niqe"] > 0 and min(image.shape[:2]) >= 96:
        z = (_niqe_grey(grey) - config.niqe_centre) / config.niqe_scale
        terms["niqe"] = float(1.0 / (1.0 + math.exp(min(z, 700.0))))
    if weights["piqe"] > 0:
        terms["piqe"] = 1.0 - _piqe_grey(grey) / 100.0
    luma = to_gray(image)
    if weights["exposure"] > 0:
        clipped = float(np.mean((luma <= 2 / 255) | (luma >= 253 / 255)))
        mean = float(luma.mean())
        terms["exposure"] = (1.0 - clipped) * math.exp(-((mean - 0.5) ** 2) / (2 * config.exposure_sigma**2))
    if weights["contrast"] > 0:
        terms["contrast"] = 1.0 - math.exp(-float(luma.std()) / config.contrast_scale)
    return Reward(_weighted(terms, weights), terms)


# ------------------------------------------------------------------------------------------ RQR
@dataclass(frozen=True)
class RelationalConfig:
    """Weights and normalisation of the relational rewards (see the module docstring).

    Attributes:
        ssim, gradient, histogram: enhancement compatibility weights.
        ncc, orientation, mutual_information: alignment similarity weights.
        structure, spatial_frequency, average_gradient, iqa: fusion weights.
        tau: enhancement gain giving ``0.5 + 0.5 tanh(1) ≈ 0.88``.
        alignment_tau: the same for the alignment gain.
        gradient_epsilon: ε of the normalised gradient fields.
        scale_tolerance, anisotropy_tolerance, shift_tolerance: plausibility scales.
        histogram_bins: bins of the luma histograms.
        intrinsic: configuration of the IQR used by the fusion term ``iqa``.
    """

    ssim: float = 1.0
    gradient: float = 1.0
    histogram: float = 0.5
    ncc: float = 1.0
    orientation: float = 1.0
    mutual_information: float = 1.0
    structure: float = 2.0
    spatial_frequency: float = 0.5
    average_gradient: float = 0.5
    iqa: float = 1.0
    tau: float = 0.05
    alignment_tau: float = 0.02
    gradient_epsilon: float = 0.05
    scale_tolerance: float = 0.3
    anisotropy_tolerance: float = 0.3
    shift_tolerance: float = 0.25
    histogram_bins: int = 64
    intrinsic: IntrinsicConfig = field(default_factory=IntrinsicConfig)


def _luma(image: np.ndarray, name: str, size: tuple[int, int] | None = None) -> np.ndarray:
    image = check_image(image, name)
    if size is not None:
        image = resize_to(image, size)
    return to_gray(image).astype(np.float64)


def _sobel(luma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gx = cv2.Sobel(luma, cv2.CV_64F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT)
    gy = cv2.Sobel(luma, cv2.CV_64F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT)
    return gx, gy


def _gradient_magnitude(luma: np.ndarray) -> np.ndarray:
    """``|∇luma|`` of the Sobel responses (``sqrt(gx² + gy²)``: ``np.hypot`` is 8× slower and the
    values differ by at most one ulp)."""
    gx, gy = _sobel(luma)
    gx *= gx
    gy *= gy
    gx += gy
    return np.sqrt(gx, out=gx)


def _centred(values: np.ndarray) -> tuple[np.ndarray, float]:
    """``values`` minus their mean, and the sum of squares of the result (one side of a Pearson r)."""
    centred = values - values.mean()
    return centred, float((centred * centred).sum())


def _pearson_centred(a: np.ndarray, centred_b: tuple[np.ndarray, float]) -> float:
    """Pearson correlation of ``a`` with a sample already centred by :func:`_centred`."""
    b, b_squares = centred_b
    a = a - a.mean()
    norm = math.sqrt(float((a * a).sum()) * b_squares)
    return float((a * b).sum() / norm) if norm > 0 else 0.0


def _uniform_bins(values: np.ndarray, bins: int) -> np.ndarray:
    """Bin of each value (all in ``[0, 1]``) among ``bins`` equal bins, as ``np.histogram`` assigns it.

    The last bin holds 1.0; a product that misses an edge by one ulp is corrected by comparing
    with the edges themselves, as numpy does.
    """
    index = (values * bins).astype(np.intp)
    index[index == bins] -= 1
    if bins & (bins - 1):  # with a power of two the product and the edges k / bins are exact
        edges = np.linspace(0.0, 1.0, bins + 1)
        index[values < edges[index]] -= 1
        index[(values >= edges[index + 1]) & (index != bins - 1)] += 1
    return index


def _histogram(values: np.ndarray, bins: int) -> np.ndarray:
    """``np.histogram(values, bins, (0, 1))[0]`` as float64: a bincount of the same bins.

    Example:
        >>> _histogram(np.array([0.0, 0.2, 0.5, 1.0, 1.5]), 2).tolist()
        [2.0, 2.0]
    """
    values = values.ravel()
    inside = (values >= 0.0) & (values <= 1.0)
    if not inside.all():
        values = values[inside]
    return np.bincount(_uniform_bins(values, bins), minlength=bins).astype(np.float64)


def _joint_histogram(x: np.ndarray, y: np.ndarray, bins: int, y_bins: np.ndarray | None = None) -> np.ndarray:
    """``np.histogram2d(x, y, bins, [[0, 1], [0, 1]])[0]`` (rows: bins of ``x``), by one bincount.

    ``y_bins`` optionally gives ``_uniform_bins(y, bins)`` already computed (``y`` inside ``[0, 1]``).

    Example:
        >>> _joint_histogram(np.array([0.1, 0.9, 0.9]), np.array([0.1, 0.1, 2.0]), 2).tolist()
        [[1.0, 0.0], [1.0, 0.0]]
    """
    x, y = x.ravel(), y.ravel()
    inside = (x >= 0.0) & (x <= 1.0) & (y >= 0.0) & (y <= 1.0)
    if not inside.all():
        x, y, y_bins = x[inside], y[inside], None
    flat = _uniform_bins(x, bins) * bins
    flat += _uniform_bins(y, bins) if y_bins is None else y_bins
    return np.bincount(flat, minlength=bins * bins).astype(np.float64).reshape(bins, bins)


def _ssim_luma(a: np.ndarray, b: np.ndarray) -> float:
    _check_ssim_size(a)
    return ssim_map_mean(a * 255.0, b * 255.0)


def _check_ssim_size(luma: np.ndarray) -> None:
    if min(luma.shape) < 11:
        raise InputError(f"rewards: images of at least 11x11 pixels are needed, got {luma.shape[1]}x{luma.shape[0]}")


def _moments_255(luma_255: np.ndarray, cache: RewardCache | None, image_key: str | None) -> Moments:
    """SSIM local moments of a 0–255 luma, shared through ``cache`` under the source image's key.

    The luma of an image at a given size is a function of the image, so ``(image_key, shape)``
    identifies it: the moments of a source computed by one reward serve the next ones.
    """
    if cache is None or image_key is None:
        return local_moments(luma_255)
    return cache.get(("luma255.moments", image_key, luma_255.shape), lambda: local_moments(luma_255))


@dataclass(frozen=True)
class _ImageAnalysis:
    """What the enhancement compatibility needs of one luma (either side), computed once per image."""

    luma_255: np.ndarray | None = None
    moments: Moments | None = None
    gradient: tuple[np.ndarray, float] | None = None
    histogram: np.ndarray | None = None
    histogram_total: float = 0.0

    @classmethod
    def analyse(cls, luma: np.ndarray, config: RelationalConfig, cache: RewardCache | None = None,
                image_key: str | None = None) -> _ImageAnalysis:
        luma_255 = moments = gradient = histogram = None
        total = 0.0
        if config.ssim > 0:
            _check_ssim_size(luma)
            luma_255 = luma * 255.0
            moments = _moments_255(luma_255, cache, image_key)
        if config.gradient > 0:
            gradient = _centred(_gradient_magnitude(luma))
        if config.histogram > 0:
            histogram = _histogram(luma, config.histogram_bins)
            total = float(histogram.sum())
        return cls(luma_255, moments, gradient, histogram, total)


def _compatibility(x: _ImageAnalysis, other: _ImageAnalysis, config: RelationalConfig) -> dict[str, float]:
    terms: dict[str, float] = {}
    if config.ssim > 0:
        terms["ssim"] = ssim_with_moments(x.luma_255, other.luma_255, x.moments, other.moments)
    if config.gradient > 0:
        (a, a_squares), (b, b_squares) = x.gradient, other.gradient
        norm = math.sqrt(a_squares * b_squares)
        terms["gradient"] = float((a * b).sum() / norm) if norm > 0 else 0.0
    if config.histogram > 0:
        terms["histogram"] = float(np.sqrt(x.histogram / x.histogram_total * other.histogram
                                           / other.histogram_total).sum())
    return terms


def _enhancement(before: np.ndarray, after: np.ndarray, other: np.ndarray, config: RelationalConfig,
                 cache: RewardCache | None = None) -> Reward:
    after_l = _luma(after, "after")
    size = after_l.shape
    weights = {"ssim": config.ssim, "gradient": config.gradient, "histogram": config.histogram}
    if cache is None:
        after_a = _ImageAnalysis.analyse(after_l, config)
        before_a = _ImageAnalysis.analyse(_luma(before, "before", size), config)
        other_a = _ImageAnalysis.analyse(_luma(other, "other", size), config)
        c_after = _compatibility(after_a, other_a, config)
        c_before = _compatibility(before_a, other_a, config)
    else:
        keys = {"before": cache.key(before), "after": cache.key(after), "other": cache.key(other)}
        lumas = {"before": lambda: _luma(before, "before", size), "after": lambda: after_l,
                 "other": lambda: _luma(other, "other", size)}

        def analysis(role: str) -> _ImageAnalysis:
            return cache.get(("enhancement.image", keys[role], size, config),
                             lambda: _ImageAnalysis.analyse(lumas[role](), config, cache, keys[role]))

        def compatibility(role: str) -> dict[str, float]:
            return cache.get(("enhancement.compatibility", keys[role], keys["other"], size, config),
                             lambda: _compatibility(analysis(role), analysis("other"), config))

        c_after = compatibility("after")
        c_before = compatibility("before")
    gain = _weighted(c_after, weights) - _weighted(c_before, weights)
    terms = {k: _gain_to_unit(c_after[k] - c_before[k], config.tau) for k in c_after}
    terms["gain"] = gain
    return Reward(_gain_to_unit(gain, config.tau), terms)


def transform_plausibility(homography: Homography, moving_size: tuple[int, int],
                           reference_size: tuple[int, int], config: RelationalConfig | None = None) -> float:
    """Plausibility ``P ∈ [0, 1]`` of a registration homography (1 = the nominal stretch).

    Args:
        homography: 3×3 matrix mapping moving pixel coordinates (x, y) to reference ones.
        moving_size: (H, W) of the moving image.
        reference_size: (H, W) of the reference image.
        config: tolerances; defaults to :class:`RelationalConfig()`.

    Returns:
        0 for a non-finite, singular, mirrored or folding transform; otherwise the product of
        Gaussian penalties on the log scale, log anisotropy and corner displacement.

    Example:
        >>> round(transform_plausibility(np.eye(3), (100, 100), (100, 100)), 6)
        1.0
        >>> shear = np.array([[1.0, 0.8, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        >>> transform_plausibility(shear, (100, 100), (100, 100)) < 0.2
        True
    """
    config = config or RelationalConfig()
    matrix = np.asarray(homography, dtype=np.float64)
    if matrix.shape != (3, 3):
        raise InputError(f"transform: expected a 3x3 homography, got shape {matrix.shape}")
    if not np.isfinite(matrix).all() or abs(matrix[2, 2]) < 1e-12:
        return 0.0
    matrix = matrix / matrix[2, 2]
    (hm, wm), (hr, wr) = moving_size, reference_size
    sx, sy = wr / wm, hr / hm
    # nominal stretch of moving onto reference pixel centres: x_r = (x_m + 0.5) s − 0.5
    nominal = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
    residual = matrix @ np.linalg.inv(nominal)
    corners = np.array([[0.0, 0.0, 1.0], [wr - 1.0, 0.0, 1.0], [wr - 1.0, hr - 1.0, 1.0], [0.0, hr - 1.0, 1.0]])
    mapped = corners @ residual.T
    if np.any(mapped[:, 2] <= 1e-9):
        return 0.0
    mapped = mapped[:, :2] / mapped[:, 2:3]
    edges = np.roll(mapped, -1, axis=0) - mapped
    turns = edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1] - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
    if not (np.all(turns > 0) or np.all(turns < 0)):
        return 0.0
    area = 0.5 * abs(float(np.sum(mapped[:, 0] * np.roll(mapped[:, 1], -1) - np.roll(mapped[:, 0], -1) * mapped[:, 1])))
    frame_area = (wr - 1.0) * (hr - 1.0)
    if area <= 0 or frame_area <= 0 or np.linalg.det(residual[:2, :2]) <= 0:
        return 0.0
    log_scale = 0.5 * math.log(area / frame_area)
    # Jacobian of the projective map at the frame centre
    cx, cy = (wr - 1.0) / 2, (hr - 1.0) / 2
    w = residual[2, 0] * cx + residual[2, 1] * cy + residual[2, 2]
    u = residual[0, 0] * cx + residual[0, 1] * cy + residual[0, 2]
    v = residual[1, 0] * cx + residual[1, 1] * cy + residual[1, 2]
    jacobian = np.array([[residual[0, 0] * w - u * residual[2, 0], residual[0, 1] * w - u * residual[2, 1]],
                         [residual[1, 0] * w - v * residual[2, 0], residual[1, 1] * w - v * residual[2, 1]]]) / (w * w)
    singular = np.linalg.svd(jacobian, compute_uv=False)
    if singular[1] <= 0:
        return 0.0
    log_anisotropy = math.log(singular[0] / singular[1])
    shift = float(np.max(np.hypot(*(mapped - corners[:, :2]).T))) / math.hypot(wr - 1.0, hr - 1.0)
    return float(math.exp(-((log_scale / config.scale_tolerance) ** 2))
                 * math.exp(-((log_anisotropy / config.anisotropy_tolerance) ** 2))
                 * math.exp(-((shift / config.shift_tolerance) ** 2)))


@dataclass(frozen=True)
class _Reference:
    """What the alignment similarity needs of the reference, computed once per reward."""

    mask: np.ndarray
    masked: np.ndarray
    masked_bins: np.ndarray | None
    centred: tuple[np.ndarray, float]
    gradient: tuple[np.ndarray, np.ndarray]
    gradient_norm: np.ndarray

    @classmethod
    def analyse(cls, luma: np.ndarray, mask: np.ndarray, config: RelationalConfig) -> _Reference:
        masked = luma[mask]
        inside = bool(((masked >= 0.0) & (masked <= 1.0)).all())
        rx, ry = _sobel(luma)
        rx, ry = rx[mask], ry[mask]
        eps2 = config.gradient_epsilon**2
        return cls(mask, masked, _uniform_bins(masked, _MI_BINS) if inside else None, _centred(masked), (rx, ry),
                   rx * rx + ry * ry + eps2)


#: bins of the luma axes of the joint histogram of the alignment's mutual information
_MI_BINS = 64


def _similarity(x: np.ndarray, ref: _Reference, config: RelationalConfig) -> dict[str, float]:
    terms: dict[str, float] = {}
    masked = x[ref.mask]
    if config.ncc > 0:
        terms["ncc"] = abs(_pearson_centred(masked, ref.centred))
    if config.orientation > 0:
        gx, gy = _sobel(x)
        gx, gy = gx[ref.mask], gy[ref.mask]
        rx, ry = ref.gradient
        eps2 = config.gradient_epsilon**2
        dot = gx * rx + gy * ry
        norms = (gx * gx + gy * gy + eps2) * ref.gradient_norm
        terms["orientation"] = float(np.mean(dot * dot / norms))
    if config.mutual_information > 0:
        joint = _joint_histogram(masked, ref.masked, _MI_BINS, ref.masked_bins)
        joint /= joint.sum()
        terms["mutual_information"] = _normalised_mi(joint)
    return terms


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _normalised_mi(joint: np.ndarray) -> float:
    """``(H(x) + H(r)) / H(x, r) − 1`` of a normalised joint histogram, in ``[0, 1]``."""
    joint_entropy = _entropy(joint)
    if joint_entropy <= 0:
        return 1.0
    return float((_entropy(joint.sum(axis=1)) + _entropy(joint.sum(axis=0))) / joint_entropy - 1.0)


def _alignment(before: np.ndarray, after: np.ndarray, other: np.ndarray, transform: Homography | None,
               valid: np.ndarray | None, config: RelationalConfig) -> Reward:
    ref_l = _luma(other, "other (reference)")
    size = ref_l.shape
    after_l = _luma(after, "after (registered)")
    if after_l.shape != size:
        raise InputError(f"alignment: the registered image is {after_l.shape[1]}x{after_l.shape[0]} but the "
                         f"reference is {size[1]}x{size[0]}")
    before_checked = check_image(before, "before (moving)")
    before_l = _luma(before_checked, "before (moving)", size)
    if valid is None:
        mask = np.ones(size, bool)
    else:
        mask = np.asarray(valid)
        mask = mask > 0.5 if mask.dtype.kind == "f" else mask.astype(bool)
    if mask.shape != size:
        raise InputError(f"alignment: the valid mask is {mask.shape[1]}x{mask.shape[0]}, expected {size[1]}x{size[0]}")
    # a 1-pixel erosion keeps the warp's black border out of the gradients
    mask = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE).astype(bool)
    if mask.sum() < 16:
        return Reward(0.0, {"gain": -1.0, "plausibility": 0.0})
    reference = _Reference.analyse(ref_l, mask, config)
    weights = {"ncc": config.ncc, "orientation": config.orientation, "mutual_information": config.mutual_information}
    s_after = _similarity(after_l, reference, config)
    s_before = _similarity(before_l, reference, config)
    gain = _weighted(s_after, weights) - _weighted(s_before, weights)
    plausibility = 1.0
    if transform is not None:
        plausibility = transform_plausibility(np.asarray(transform, dtype=np.float64), before_checked.shape[:2],
                                              size, config)
    terms = {k: _gain_to_unit(s_after[k] - s_before[k], config.alignment_tau) for k in s_after}
    terms.update(gain=gain, plausibility=plausibility)
    return Reward(_gain_to_unit(gain, config.alignment_tau) * plausibility, terms)


def _fusion(sources: Sequence[np.ndarray], fused: np.ndarray, task: str, config: RelationalConfig,
            cache: RewardCache | None = None, fused_iqa: float | Callable[[], float] | None = None) -> Reward:
    if isinstance(sources, np.ndarray) or len(sources) < 2:
        raise InputError("fusion reward: 'before' must be a sequence of at least 2 source images")
    if task not in FUSION_TASKS:
        raise InputError(f"fusion reward: unknown task '{task}', expected one of {', '.join(FUSION_TASKS)}")
    fused = check_image(fused, "fused")
    size = fused.shape[:2]
    keys = [cache.key(s) for s in sources] if cache is not None else [None] * len(sources)
    sources = [check_image(s, f"source {i}") for i, s in enumerate(sources)]
    for i, s in enumerate(sources):
        if s.shape[:2] != size:
            raise InputError(f"fusion reward: source {i} is {s.shape[1]}x{s.shape[0]} but the fused image is "
                             f"{size[1]}x{size[0]}")
    lumas = [to_gray(s) for s in sources]
    fused_l = to_gray(fused)
    terms: dict[str, float] = {}
    if config.structure > 0:
        if task == "mef" and min(size) >= 44:
            prepared = None  # the stack's analysis, shared by every fused image of these sources
            if cache is not None:
                prepared = cache.get(("mef_ssim_sources", *keys), lambda: mef_ssim_sources(lumas))
            terms["structure"] = float(np.clip(mef_ssim(lumas, fused_l, prepared), 0.0, 1.0))
        else:
            if min(size) >= 176:
                first = None
                if cache is not None:  # the sources' full-scale moments, shared with the steps' rewards
                    first = [_moments_255(luma.astype(np.float64) * 255.0, cache, key)
                             for luma, key in zip(lumas, keys, strict=True)]
                similar = ms_ssim_many(lumas, fused_l, first)
            else:
                similar = [_ssim_luma(s.astype(np.float64), fused_l.astype(np.float64)) for s in lumas]
            clipped = np.clip(similar, 1e-6, 1.0)
            terms["structure"] = float(np.exp(np.mean(np.log(clipped))))
    if config.spatial_frequency > 0 or config.average_gradient > 0:
        # converted to the metrics' 0–255 scale once for the six calls below (the same values)
        lumas_255 = [to_scaled(s, f"source {i}") for i, s in enumerate(lumas)]
        fused_255 = to_scaled(fused_l, "fused")
    if config.spatial_frequency > 0:
        best = max(sf(lumas_255, s) for s in lumas_255)
        terms["spatial_frequency"] = min(1.0, sf(lumas_255, fused_255) / best) if best > 0 else 1.0
    if config.average_gradient > 0:
        best = max(ag(lumas_255, s) for s in lumas_255)
        terms["average_gradient"] = min(1.0, ag(lumas_255, fused_255) / best) if best > 0 else 1.0
    if config.iqa > 0:
        if fused_iqa is None:
            terms["iqa"] = intrinsic_reward(fused, config.intrinsic).value
        else:
            terms["iqa"] = float(fused_iqa() if callable(fused_iqa) else fused_iqa)
    weights = {"structure": config.structure, "spatial_frequency": config.spatial_frequency,
               "average_gradient": config.average_gradient, "iqa": config.iqa}
    return Reward(_weighted(terms, weights), terms)


def relational_reward(kind: str, before: np.ndarray | Sequence[np.ndarray], after: np.ndarray,
                      other: np.ndarray | None = None, *, transform: Homography | None = None,
                      valid: np.ndarray | None = None, task: str = "ivif",
                      config: RelationalConfig | None = None, cache: RewardCache | None = None) -> Reward:
    """Relational quality reward (RQR) of one action (see the module docstring for the formulas).

    Args:
        kind: ``"enhancement"``, ``"alignment"`` or ``"fusion"``.
        before: the image before the action (the moving image for alignment; the sequence of
            sources for fusion).
        after: the image after the action (registered image; fused image).
        other: the other source (enhancement) or the reference (alignment); unused for fusion.
        transform: alignment only: 3×3 homography, moving → reference pixel coordinates (the
            registration tool's ``info["homography"]``); None skips the plausibility penalty.
        valid: alignment only: mask of pixels covered by the warp (``masks["valid"]``; float
            masks are thresholded at 0.5). With fewer than 16 valid pixels the reward is 0.
        task: fusion only: ``"ivif"``, ``"mef"`` or ``"mff"`` (MEF uses MEF-SSIM for structure).
        config: weights and normalisation; defaults to :class:`RelationalConfig()`.
        cache: a :class:`RewardCache` shared by successive calls (enhancement and fusion: the
            same values, each image analysed once).

    Returns:
        :class:`Reward` in ``[0, 1]``; 0.5 = no change for enhancement and alignment.

    Raises:
        InputError: unknown kind, missing ``other``, or images of incompatible sizes.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> scene = cv2.GaussianBlur(rng.random((64, 64)).astype(np.float32), (0, 0), 2)
        >>> noisy = np.clip(scene + rng.normal(0, 0.05, scene.shape), 0, 1).astype(np.float32)
        >>> denoised = cv2.GaussianBlur(noisy, (5, 5), 1.0)
        >>> relational_reward("enhancement", noisy, denoised, scene).value > 0.5
        True
    """
    config = config or RelationalConfig()
    if kind == "fusion":
        return _fusion(before, after, task, config, cache)  # type: ignore[arg-type]
    if kind not in RELATIONAL_KINDS:
        raise InputError(f"relational reward: unknown kind '{kind}', expected one of {', '.join(RELATIONAL_KINDS)}")
    if other is None:
        raise InputError(f"relational reward '{kind}' needs the other image (other=...)")
    if kind == "enhancement":
        return _enhancement(np.asarray(before), after, other, config, cache)
    return _alignment(np.asarray(before), after, other, transform, valid, config)


# ------------------------------------------------------------------------------------------ HQA
@dataclass(frozen=True)
class HQAConfig:
    """Weights of the holistic score.

    Attributes:
        fusion: weight of the fusion RQR of the final image.
        steps: weight of the mean step reward.
        fuscore: weight of the learned FuScore of the final image, ``(score − 1) / 4`` (0 = off).
        relational: configuration of the fusion RQR (and its IQR).
    """

    fusion: float = 3.0
    steps: float = 1.0
    fuscore: float = 0.0
    relational: RelationalConfig = field(default_factory=RelationalConfig)


def hqa(sources: Sequence[np.ndarray], fused: np.ndarray, step_rewards: Sequence[float | Reward] = (), *,
        task: str = "ivif", config: HQAConfig | None = None, cache: RewardCache | None = None,
        fused_iqa: float | Callable[[], float] | None = None) -> Reward:
    """Holistic quality assessment (HQA) of a trajectory's result, used to rank trajectories.

    Args:
        sources: the trajectory's source images (as given to the fusion step).
        fused: its final fused image (same size as the sources).
        step_rewards: rewards in ``[0, 1]`` collected at its steps (IQR / RQR); may be empty.
        task: ``"ivif"``, ``"mef"`` or ``"mff"``.
        config: weights; defaults to :class:`HQAConfig()`.
        cache: a :class:`RewardCache` shared with the trajectory's step rewards (the same value;
            the sources' analyses are reused).
        fused_iqa: the fused image's :func:`intrinsic_reward` (with ``config``'s intrinsic
            configuration) when it is computed elsewhere, or a function giving it, called when
            the term is needed (e.g. waiting for another process that computes it meanwhile).

    Returns:
        :class:`Reward` with the fusion terms, ``fusion`` (its combined value) and ``steps``.

    Raises:
        InputError: a step reward outside ``[0, 1]``.
    """
    config = config or HQAConfig()
    fusion = _fusion(sources, fused, task, config.relational, cache, fused_iqa)
    terms = {**fusion.terms, "fusion": fusion.value}
    weights = {"fusion": config.fusion}
    values = [float(r) for r in step_rewards]
    if values:
        if not all(0.0 <= v <= 1.0 for v in values):
            raise InputError("hqa: step rewards must lie in [0, 1]")
        terms["steps"] = float(np.mean(values))
        weights["steps"] = config.steps
    if config.fuscore > 0:
        from .fuscore import fuscore_reward

        terms["fuscore"] = fuscore_reward(sources, fused, task)
        weights["fuscore"] = config.fuscore
    return Reward(_weighted(terms, weights), terms)


@register_metric(MetricCard(
    name="iqr", mode="nr", lower_better=False, range=(0.0, 1.0),
    reference="fuseagent intrinsic quality reward: BRISQUE, NIQE, PIQE, exposure, contrast (see rewards.py)",
    description="intrinsic quality reward: normalised weighted NR-IQA in [0, 1]"))
def iqr_metric(image: np.ndarray) -> float:
    """:func:`intrinsic_reward` with default weights, as a registered metric."""
    return intrinsic_reward(image).value


@register_metric(MetricCard(
    name="hqa", mode="fusion", lower_better=False, range=(0.0, 1.0),
    reference="fuseagent holistic quality: MS-SSIM / MEF-SSIM, SF, AG vs sources and IQR (see rewards.py)",
    description="holistic quality of a fused image in [0, 1] (no step rewards)"))
def hqa_metric(sources: Sequence[np.ndarray], fused: np.ndarray, task: str = "ivif") -> float:
    """:func:`hqa` of a fused image without step rewards, as a registered metric."""
    return hqa(sources, fused, task=task).value
