"""Fusion metrics as VIFB and MEFB compute them: statistics, information and error measures.

Every function takes ``(sources, fused)``: a sequence of source images (visible first, then infrared,
for IVIF; under- then over-exposed for MEF) and the fused image, float ``[0, 1]`` arrays of the same
height and width, grey ``(H, W)`` or colour ``(H, W, 3)``. Values are computed on the 0–255 scale,
as the MATLAB code does on ``uint8`` images (8-bit inputs are exact integers there).

Colour handling follows the benchmark code (``variant``):

* ``"vifb"`` — a colour fused image is scored channel by channel and the channel scores averaged;
  a grey source is used as is for every channel (MATLAB's ``b1 == 1`` branch), a colour source
  contributes its matching channel. A grey fused image with a colour source uses the source's
  ``rgb2gray`` (MATLAB's luma weights, rounded to integers as for ``uint8``).
* ``"mefb"`` — the same, except that when *every* source is grey and the fused image is colour, only
  the fused image's first channel is scored (MEFB's ``fused(:,:,1)``; its average gradient uses
  unrounded ``rgb2gray`` instead).

References: Zhang, Ye & Xiao, "VIFB: A visible and infrared image fusion benchmark", CVPRW 2020
(code: github.com/xingchenzhang/VIFB, ``metrics/``); Zhang, "Benchmarking and comparing
multi-exposure image fusion algorithms", Information Fusion 2021 (github.com/xingchenzhang/MEFB).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from ..errors import InputError
from .base import MetricCard, as_sources, register_metric

__all__ = [
    "prepare",
    "fusion_scores",
    "fusion_scores_or_reasons",
    "to_scaled",
    "Scaled255",
    "channel_triplets",
    "matlab_rgb2gray",
    "en",
    "sd",
    "sf",
    "sf_vifb",
    "ag",
    "ei",
    "ce",
    "mi",
    "psnr",
    "rmse",
    "psnr_vifb",
    "rmse_vifb",
    "PSNR_CAP",
]

#: PSNR reported for identical images (instead of an infinite value).
PSNR_CAP = 100.0

# MATLAB rgb2gray: first row of inv of the NTSC YIQ matrix.
_RGB2GRAY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])

Channel = tuple[list[np.ndarray], np.ndarray]


class Scaled255(np.ndarray):
    """A float64 image already on the 0–255 scale (made by :func:`to_scaled`); metrics of this
    package skip the conversion when given one, so a batch of metrics converts each image once."""


def to_scaled(image: np.ndarray, name: str = "image") -> Scaled255:
    """Convert a float ``[0, 1]`` image once for repeated metric calls (see :func:`fusion_scores`)."""
    return _to_255(image, name).view(Scaled255)


def _to_255(image: np.ndarray, name: str) -> np.ndarray:
    """A float ``[0, 1]`` image as float64 on 0–255; 8-bit data becomes exact integers."""
    if isinstance(image, Scaled255):
        return image.view(np.ndarray)
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise InputError(f"{name}: expected an (H, W) or (H, W, 3) image, got shape {array.shape}")
    if array.dtype == np.uint8:
        return array.astype(np.float64)
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.float64) * (255.0 / float(np.iinfo(array.dtype).max))
    if array.size == 0:
        return array.astype(np.float64)
    # NaN makes min/max NaN and ±inf lies outside [0, 1]: one range test covers both.
    low, high = array.min(), array.max()
    if not (low >= 0 and high <= 1):
        if not np.isfinite(array).all():
            array = np.nan_to_num(array, nan=0.0, posinf=1.0, neginf=0.0)
        array = np.clip(array, 0.0, 1.0)
    scaled = array.astype(np.float64)
    scaled *= 255.0
    if _on_8bit_grid(scaled.reshape(-1)):
        np.rint(scaled, out=scaled)
    return scaled


# Work on images in blocks of this many values: the block buffers stay below malloc's mmap
# threshold and are reused, where whole-image temporaries cost a page fault per 4 KiB.
_BLOCK = 16_000


def _on_8bit_grid(scaled: np.ndarray, unit_scale: bool = False) -> bool:
    """Whether every value of a flat float array lies within 1e-3 of an integer (8-bit data).

    Args:
        scaled: 1-D array on the 0–255 scale, or on 0–1 with ``unit_scale`` (then scaled by 255
            in float64 block by block, exactly as :func:`_to_255` does).
    """
    values = np.empty(min(_BLOCK, scaled.size))
    rounded = np.empty_like(values)
    for start in range(0, scaled.size, _BLOCK):
        block = scaled[start:start + _BLOCK]
        n = block.size
        if unit_scale:
            np.copyto(values[:n], block)
            values[:n] *= 255.0
            block = values[:n]
        np.rint(block, out=rounded[:n])
        if cv2.norm(block, rounded[:n], cv2.NORM_INF) >= 1e-3:
            return False
    return True


def _streamed_squared_errors(sources: Sequence[np.ndarray], fused: np.ndarray) -> list[float] | None:
    """Per source, ``Σ (S − F)²`` on the 0–255 scale of :func:`_to_255`, computed block by block
    without converting whole images; ``None`` where that shortcut does not apply (not float
    ``[0, 1]`` arrays of one shape, :class:`Scaled255` inputs, or inputs :func:`prepare` rejects)."""
    images = [fused, *sources]
    shape = fused.shape if isinstance(fused, np.ndarray) else None
    if shape is None or len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] != 3) or min(shape[:2]) < 2:
        return None
    for image in images:
        if (not isinstance(image, np.ndarray) or isinstance(image, Scaled255) or image.shape != shape
                or image.dtype.kind != "f" or not (image.min() >= 0 and image.max() <= 1)):
            return None
    flats = [np.ascontiguousarray(image).reshape(-1) for image in images]
    snapped = [_on_8bit_grid(flat, unit_scale=True) for flat in flats]
    buffers = [np.empty(min(_BLOCK, flats[0].size)) for _ in flats]
    sums = [0.0] * len(sources)
    for start in range(0, flats[0].size, _BLOCK):
        blocks = []
        for flat, buffer, snap in zip(flats, buffers, snapped, strict=True):
            block = buffer[:flat[start:start + _BLOCK].size]
            np.copyto(block, flat[start:start + _BLOCK])
            block *= 255.0
            if snap:
                np.rint(block, out=block)
            blocks.append(block)
        for k in range(len(sources)):
            sums[k] += cv2.norm(blocks[k + 1], blocks[0], cv2.NORM_L2SQR)
    return sums


def prepare(sources: Sequence[np.ndarray], fused: np.ndarray,
            convert_sources: bool = True) -> tuple[list[np.ndarray], np.ndarray]:
    """Validate a fusion-metric call and convert every image to float64 on 0–255.

    Args:
        sources, fused: float ``[0, 1]`` images (or :class:`Scaled255`).
        convert_sources: ``False`` for metrics of the fused image alone: the sources are only
            checked (shape) and returned as given.

    Raises:
        InputError: fewer than two sources, a bad shape, an image smaller than 2×2, or sizes
            that differ between sources and fused image.

    Example:
        >>> s, f = prepare([np.zeros((4, 4)), np.ones((4, 4))], np.full((4, 4), 0.5))
        >>> float(f[0, 0]), float(s[1][0, 0])
        (127.5, 255.0)
    """
    sources = as_sources(sources)
    fused255 = _to_255(fused, "fused image")
    if convert_sources:
        sources255 = [_to_255(s, f"source {i}") for i, s in enumerate(sources)]
    else:
        sources255 = [np.asarray(s) for s in sources]
        for i, s in enumerate(sources255):
            if s.ndim not in (2, 3):
                raise InputError(f"source {i}: expected an (H, W) or (H, W, 3) image, got shape {s.shape}")
    h, w = fused255.shape[:2]
    if h < 2 or w < 2:
        raise InputError(f"fused image of size {w}x{h} is too small for a fusion metric")
    for i, s in enumerate(sources255):
        if s.shape[:2] != (h, w):
            raise InputError(f"source {i} is {s.shape[1]}x{s.shape[0]} but the fused image is {w}x{h}: "
                             f"sizes must match (resample or register first)")
    return sources255, fused255


def matlab_rgb2gray(image: np.ndarray, rounded: bool = True) -> np.ndarray:
    """MATLAB's ``rgb2gray`` on a 0–255 image; ``rounded`` mimics ``uint8`` input.

    Example:
        >>> float(matlab_rgb2gray(np.array([[[255.0, 0.0, 0.0]]]))[0, 0])
        76.0
    """
    if image.ndim == 2:
        return image
    grey = image @ _RGB2GRAY
    return np.floor(grey + 0.5) if rounded else grey


def channel_triplets(sources: Sequence[np.ndarray], fused: np.ndarray, variant: str = "vifb",
                     grey_fused: str = "first") -> list[Channel]:
    """Split 0–255 images into the per-channel ``(sources, fused)`` pairs the benchmark scores.

    Args:
        sources, fused: 0–255 arrays from :func:`prepare`.
        variant: ``"vifb"`` or ``"mefb"`` (see the module docstring).
        grey_fused: for ``"mefb"`` with grey sources and a colour fused image: ``"first"`` channel
            or ``"luma"`` (unrounded ``rgb2gray``).

    Returns:
        One ``(list of 2-D sources, 2-D fused)`` per scored channel.
    """
    if variant not in ("vifb", "mefb", "common"):
        raise InputError(f"unknown metric variant '{variant}' (valid: vifb, mefb, common)")
    if fused.ndim == 2:
        return [([matlab_rgb2gray(s) for s in sources], fused)]
    if variant == "mefb" and all(s.ndim == 2 for s in sources):
        if grey_fused == "luma":
            return [(list(sources), matlab_rgb2gray(fused, rounded=False))]
        return [(list(sources), fused[:, :, 0])]
    return [([s if s.ndim == 2 else s[:, :, k] for s in sources], fused[:, :, k]) for k in range(3)]


def _per_channel(sources: Sequence[np.ndarray], fused: np.ndarray, variant: str,
                 score: Callable[[list[np.ndarray], np.ndarray], float], grey_fused: str = "first",
                 uses_sources: bool = True) -> float:
    src, fus = prepare(sources, fused, convert_sources=uses_sources)
    if not uses_sources:
        src = [np.broadcast_to(0.0, s.shape) for s in src]  # only their channel count matters
    values = [score(s, f) for s, f in channel_triplets(src, fus, variant, grey_fused)]
    return float(np.mean(values))


def _histogram(channel: np.ndarray) -> np.ndarray:
    """256-bin histogram of a 0–255 channel (values floored, as MATLAB's ``floor(h)+1`` index)."""
    index = np.clip(np.floor(channel), 0, 255).astype(np.int64).ravel()
    return np.bincount(index, minlength=256).astype(np.float64)


def _entropy(counts: np.ndarray, log: Callable[[np.ndarray], np.ndarray] = np.log2) -> float:
    """Shannon entropy of a histogram of counts, in bits (or in nats with ``log=np.log``)."""
    p = counts[counts > 0] / counts.sum()
    return float(-(p * log(p)).sum())


def _joint_counts(first_levels: np.ndarray, second_levels: np.ndarray) -> np.ndarray:
    """256×256 joint histogram (counts, float64) of two integer 0–255 planes; rows index ``first``."""
    flat = (first_levels * 256 + second_levels).ravel()
    return np.bincount(flat, minlength=256 * 256).astype(np.float64).reshape(256, 256)


# --------------------------------------------------------------------------------------------- EN
def en(sources: Sequence[np.ndarray], fused: np.ndarray, variant: str = "vifb") -> float:
    """Entropy (bits) of the fused image's 256-bin histogram, averaged over colour channels.

    Example:
        >>> x = np.tile(np.arange(256) / 255.0, (4, 1))
        >>> round(en([x, x], x), 6)
        8.0
    """
    return _per_channel(sources, fused, variant, lambda s, f: _entropy(_histogram(f)), uses_sources=False)


# --------------------------------------------------------------------------------------------- SD
def sd(sources: Sequence[np.ndarray], fused: np.ndarray, variant: str = "vifb") -> float:
    """Standard deviation (population, 0–255 scale) of the fused image, averaged over channels.

    Example:
        >>> f = np.array([[0.0, 1.0], [0.0, 1.0]])
        >>> sd([f, f], f)
        127.5
    """
    return _per_channel(sources, fused, variant, lambda s, f: float(f.std()), uses_sources=False)


# --------------------------------------------------------------------------------------------- SF
def _spatial_frequency(f: np.ndarray) -> float:
    h, w = f.shape
    row = np.square(np.diff(f, axis=1)).sum() / (h * w)
    col = np.square(np.diff(f, axis=0)).sum() / (h * w)
    return float(math.sqrt(row + col))


def sf(sources: Sequence[np.ndarray], fused: np.ndarray, variant: str = "mefb") -> float:
    """Spatial frequency ``sqrt(RF² + CF²)`` per channel, averaged (MEFB; Eskicioglu & Fisher 1995).

    Example:
        >>> f = np.tile([0.0, 1.0], (2, 1))
        >>> sf([f, f], f)
        180.31222920256963
    """
    return _per_channel(sources, fused, variant, lambda s, f: _spatial_frequency(f), uses_sources=False)


def sf_vifb(sources: Sequence[np.ndarray], fused: np.ndarray) -> float:
    """Spatial frequency as VIFB computes it on a colour image.

    VIFB's ``[m, n] = size(fused)`` folds the channels into the columns, so the three channels are
    scored as one image laid side by side (row differences also cross the channel seams).

    Example:
        >>> f = np.tile([0.0, 1.0], (2, 1))
        >>> sf_vifb([f, f], f) == sf([f, f], f)
        True
    """
    _, fus = prepare(sources, fused, convert_sources=False)
    if fus.ndim == 3:
        fus = np.concatenate([fus[:, :, k] for k in range(fus.shape[2])], axis=1)
    return _spatial_frequency(fus)


# --------------------------------------------------------------------------------------------- AG
def _average_gradient(f: np.ndarray) -> float:
    gy, gx = np.gradient(f)
    h, w = f.shape
    return float(np.sqrt((gx * gx + gy * gy) / 2.0).sum() / ((h - 1) * (w - 1)))


def ag(sources: Sequence[np.ndarray], fused: np.ndarray, variant: str = "vifb") -> float:
    """Average gradient (Cui et al. 2015): mean of ``sqrt((gx² + gy²) / 2)`` with MATLAB's
    ``gradient`` (central differences inside, one-sided at the border), per channel.

    Example:
        >>> f = np.tile(np.linspace(0, 1, 6), (6, 1))
        >>> round(ag([f, f], f), 4)
        51.9299
    """
    return _per_channel(sources, fused, variant, lambda s, f: _average_gradient(f), grey_fused="luma",
                        uses_sources=False)


# --------------------------------------------------------------------------------------------- EI
_SOBEL = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])


def _edge_intensity(f: np.ndarray) -> float:
    gx = cv2.filter2D(f, cv2.CV_64F, _SOBEL, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.filter2D(f, cv2.CV_64F, _SOBEL.T, borderType=cv2.BORDER_REPLICATE)
    return float(np.sqrt(gx * gx + gy * gy).mean())


def ei(sources: Sequence[np.ndarray], fused: np.ndarray, variant: str = "vifb") -> float:
    """Edge intensity (Rajalingam & Priya 2018): mean Sobel magnitude, replicated borders.

    Example:
        >>> f = np.zeros((4, 4)); f[:, 2:] = 1.0
        >>> ei([f, f], f)
        510.0
    """
    return _per_channel(sources, fused, variant, lambda s, f: _edge_intensity(f), uses_sources=False)


# --------------------------------------------------------------------------------------------- CE
def _cross_entropy(source: np.ndarray, fused_counts: np.ndarray) -> float:
    p1 = _histogram(source)
    p1 /= p1.sum()
    p2 = fused_counts / fused_counts.sum()
    both = (p1 > 0) & (p2 > 0)
    return float((p1[both] * np.log2(p1[both] / p2[both])).sum())


def ce(sources: Sequence[np.ndarray], fused: np.ndarray, variant: str = "vifb") -> float:
    """Cross entropy (Bulanon et al. 2009) of each source's histogram against the fused one,
    averaged over sources and channels (bins empty in either histogram are skipped). Lower is
    better.

    Example:
        >>> x = np.tile(np.arange(256) / 255.0, (4, 1))
        >>> ce([x, x], x)
        0.0
    """
    def score(src: list[np.ndarray], f: np.ndarray) -> float:
        fused_counts = _histogram(f)
        return float(np.mean([_cross_entropy(s, fused_counts) for s in src]))

    return _per_channel(sources, fused, variant, score)


# --------------------------------------------------------------------------------------------- MI
def _quantise_minmax(channel: np.ndarray) -> np.ndarray:
    """VIFB's ``mutinf`` normalisation: min–max to [0, 1], ``int16(x * 255)`` (round half away).

    Identical to Z. Liu's ``normalize1`` used by MEFB's NMI / Qncie / TE (a constant plane → zeros).
    """
    low, high = channel.min(), channel.max()
    if high == low:
        return np.zeros(channel.shape, dtype=np.int64)
    unit = (channel - low) / (high - low)
    return np.floor(unit * 255.0 + 0.5).astype(np.int64)


def _mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """Mutual information (nats) of two 0–255 channels from their 256×256 joint histogram."""
    joint = _joint_counts(_quantise_minmax(a), _quantise_minmax(b))
    return (_entropy(joint.sum(axis=1), np.log) + _entropy(joint.sum(axis=0), np.log)
            - _entropy(joint, np.log))


def mi(sources: Sequence[np.ndarray], fused: np.ndarray, variant: str = "vifb") -> float:
    """Mutual information (Qu et al. 2002) summed over sources: ``MI(A,F) + MI(B,F)`` (nats),
    each image min–max normalised to 256 levels first, averaged over channels.

    Example:
        >>> x = np.tile(np.arange(256) / 255.0, (4, 1))
        >>> round(mi([x, x], x), 4) == round(2 * math.log(256), 4)
        True
    """
    return _per_channel(sources, fused, variant,
                        lambda src, f: float(sum(_mutual_information(s, f) for s in src)))


# ------------------------------------------------------------------------------------ PSNR / RMSE
def _vifb_mse(a: np.ndarray, b: np.ndarray) -> float:
    """VIFB's "mse": ``sqrt(sum((a - b)²)) / (M·N)`` — not a mean squared error."""
    return float(math.sqrt(np.square(a - b).sum()) / a.size)


def _psnr_from_mse(mse: float) -> float:
    if mse <= 0:
        return PSNR_CAP
    return min(PSNR_CAP, 20.0 * math.log10(255.0 / math.sqrt(mse)))


def psnr_vifb(sources: Sequence[np.ndarray], fused: np.ndarray, variant: str = "vifb") -> float:
    """PSNR as VIFB/MEFB compute it: ``20·log10(255 / sqrt(E))`` with ``E`` the mean over sources
    of ``sqrt(Σ(S − F)²) / (M·N)``; per channel, averaged. Typical values are near 58 dB.
    Identical images give :data:`PSNR_CAP`.

    Example:
        >>> a = np.zeros((10, 10)); f = np.full((10, 10), 0.1)
        >>> round(psnr_vifb([a, a], f), 4)
        44.0654
    """
    return _per_channel(sources, fused, variant,
                        lambda src, f: _psnr_from_mse(float(np.mean([_vifb_mse(s, f) for s in src]))))


def rmse_vifb(sources: Sequence[np.ndarray], fused: np.ndarray, variant: str = "vifb") -> float:
    """RMSE as VIFB computes it: mean over sources of ``sqrt(Σ(S − F)²) / (M·N)`` (0–255 scale),
    per channel, averaged. Lower is better.

    Example:
        >>> a = np.zeros((10, 10)); f = np.full((10, 10), 0.1)
        >>> round(rmse_vifb([a, a], f), 4)
        2.55
    """
    return _per_channel(sources, fused, variant,
                        lambda src, f: float(np.mean([_vifb_mse(s, f) for s in src])))


def _mean_squared_error(sources: Sequence[np.ndarray], fused: np.ndarray) -> float:
    sources = as_sources(sources)
    streamed = _streamed_squared_errors(sources, fused)
    if streamed is not None:
        return float(np.mean([total / fused.size for total in streamed]))
    src, fus = prepare(sources, fused)
    errors = []
    for s in src:
        if fus.ndim == 3 and s.ndim == 2:
            s = np.repeat(s[:, :, None], 3, axis=2)
        elif fus.ndim == 2 and s.ndim == 3:
            s = matlab_rgb2gray(s)
        errors.append(float(np.square(s - fus).mean()))
    return float(np.mean(errors))


def rmse(sources: Sequence[np.ndarray], fused: np.ndarray) -> float:
    """Root mean squared error (0–255 scale): ``sqrt(mean over sources of MSE(S, F))``.

    Example:
        >>> a = np.zeros((10, 10)); f = np.full((10, 10), 0.1)
        >>> round(rmse([a, a], f), 4)
        25.5
    """
    return math.sqrt(_mean_squared_error(sources, fused))


def psnr(sources: Sequence[np.ndarray], fused: np.ndarray) -> float:
    """PSNR ``10·log10(255² / MSE)`` with MSE averaged over sources (the usual fusion definition).
    Identical images give :data:`PSNR_CAP`.

    Example:
        >>> a = np.zeros((10, 10)); f = np.full((10, 10), 0.1)
        >>> round(psnr([a, a], f), 4)
        20.0
    """
    mse = _mean_squared_error(sources, fused)
    if mse <= 0:
        return PSNR_CAP
    return min(PSNR_CAP, 10.0 * math.log10(255.0 ** 2 / mse))


# ------------------------------------------------------------------------------------ registration
_VIFB_REF = "Zhang, Ye & Xiao, VIFB, CVPRW 2020 (github.com/xingchenzhang/VIFB metrics/)"
_MEFB_REF = "Zhang, MEFB, Information Fusion 2021 (github.com/xingchenzhang/MEFB metrics/)"


def register_pair(name: str, fn: Callable[..., float], *, lower_better: bool, value_range: tuple[float, float],
                  reference: str, description: str, mefb: bool = True, vifb_name: str | None = None,
                  base_variant: str = "vifb") -> None:
    """Register ``fn`` as ``name`` (VIFB colour handling) and ``name_mefb`` (MEFB's).

    Args:
        name: registry name of the VIFB-variant metric.
        fn: function accepting ``variant=``.
        lower_better, value_range, reference, description: card fields.
        mefb: also register ``name + "_mefb"``.
        vifb_name: register the VIFB variant under this name instead of ``name``.
        base_variant: the card's variant for that name (``"common"`` when VIFB does not use it).
    """
    base = vifb_name or name
    register_metric(MetricCard(base, "fusion", lower_better, value_range, f"{reference}; {_VIFB_REF}",
                               description, variant=base_variant))(functools.partial(fn, variant="vifb"))
    if mefb:
        register_metric(MetricCard(f"{name}_mefb", "fusion", lower_better, value_range,
                                   f"{reference}; {_MEFB_REF}", f"{description} (MEFB colour handling)",
                                   variant="mefb"))(functools.partial(fn, variant="mefb"))


register_pair("en", en, lower_better=False, value_range=(0.0, 8.0),
              reference="Van Aardt, J. Appl. Remote Sens. 2008", description="entropy of the fused image (bits)")
register_pair("sd", sd, lower_better=False, value_range=(0.0, 127.5),
              reference="Rao, Meas. Sci. Technol. 1997", description="standard deviation of the fused image")
register_pair("ag", ag, lower_better=False, value_range=(0.0, math.inf),
              reference="Cui et al., Optics Communications 2015", description="average gradient of the fused image")
register_pair("ei", ei, lower_better=False, value_range=(0.0, math.inf),
              reference="Rajalingam & Priya, IJESI 2018", description="edge intensity (mean Sobel magnitude)")
register_pair("ce", ce, lower_better=True, value_range=(0.0, math.inf),
              reference="Bulanon et al., Biosystems Engineering 2009",
              description="cross entropy of source histograms against the fused one")
register_pair("psnr", psnr_vifb, lower_better=False, value_range=(0.0, PSNR_CAP),
              reference="Jagalingam & Hegde, Aquatic Procedia 2015",
              description="PSNR with VIFB's error definition (~58 dB typical)", vifb_name="psnr_vifb")
register_pair("rmse", rmse_vifb, lower_better=True, value_range=(0.0, 255.0),
              reference="Jagalingam & Hegde, Aquatic Procedia 2015",
              description="RMSE with VIFB's error definition sqrt(sum sq)/(M*N)", vifb_name="rmse_vifb")
register_pair("sf", sf, lower_better=False, value_range=(0.0, math.inf),
              reference="Eskicioglu & Fisher, IEEE Trans. Commun. 1995",
              description="spatial frequency, per channel averaged", base_variant="common")
register_metric(MetricCard("sf_vifb", "fusion", False, (0.0, math.inf),
                           f"Eskicioglu & Fisher, IEEE Trans. Commun. 1995; {_VIFB_REF}",
                           "spatial frequency with VIFB's channels-side-by-side layout", variant="vifb"))(sf_vifb)
register_metric(MetricCard("mi", "fusion", False, (0.0, math.inf),
                           f"Qu, Zhang & Yan, Electronics Letters 2002; {_VIFB_REF}",
                           "mutual information MI(A,F) + MI(B,F) in nats", variant="vifb"))(
    functools.partial(mi, variant="vifb"))
register_metric(MetricCard("psnr", "fusion", False, (0.0, PSNR_CAP), "PSNR 10 log10(255^2 / mean-source MSE)",
                           "PSNR of the fused image against the sources (usual definition)"))(psnr)
register_metric(MetricCard("rmse", "fusion", True, (0.0, 255.0), "root mean squared error, 0-255 scale",
                           "RMSE of the fused image against the sources (usual definition)"))(rmse)


_SCALED_MODULES = ("fuseagent.metrics.fusion", "fuseagent.metrics.structural")


def _accepts_scaled(fn: Callable[..., float]) -> bool:
    target = getattr(fn, "func", fn)
    return getattr(target, "__module__", "") in _SCALED_MODULES


def fusion_scores(sources: Sequence[np.ndarray], fused: np.ndarray, metrics: Sequence[str],
                  **params: dict) -> dict[str, float]:
    """Several fusion metrics of one result, converting each image once.

    Args:
        sources: source images, float ``[0, 1]``.
        fused: the fused image.
        metrics: registry names (any fusion metric, including other modules').
        params: per-metric keyword arguments, ``{name: {param: value}}``.

    Returns:
        name → value, in the order asked.

    Raises:
        InputError: the case is invalid, or one of the metrics is not computable for it.

    Example:
        >>> x = np.tile(np.arange(256) / 255.0, (16, 1))
        >>> fusion_scores([x, x], x, ["en", "ssim"])
        {'en': 8.0, 'ssim': 1.0}
    """
    return _score(sources, fused, metrics, params, skip_not_computable=False)[0]


def fusion_scores_or_reasons(sources: Sequence[np.ndarray], fused: np.ndarray, metrics: Sequence[str],
                             **params: dict) -> tuple[dict[str, float], dict[str, str]]:
    """Like :func:`fusion_scores`, but a metric that is not computable for this case (e.g. an
    image smaller than its window) is reported with its reason instead of failing the whole set.

    Returns:
        ``(values, reasons)``: name → value for the computable metrics, in the order asked, and
        name → one-line reason for the others.

    Raises:
        InputError: the case itself is invalid (fewer than two sources, sizes that differ, …).

    Example:
        >>> x = np.tile(np.arange(8) / 7.0, (8, 1))
        >>> values, reasons = fusion_scores_or_reasons([x, x], x, ["en", "ssim"])
        >>> values, list(reasons)
        ({'en': 3.0}, ['ssim'])
    """
    return _score(sources, fused, metrics, params, skip_not_computable=True)


def _score(sources: Sequence[np.ndarray], fused: np.ndarray, metrics: Sequence[str], params: dict[str, dict],
           skip_not_computable: bool) -> tuple[dict[str, float], dict[str, str]]:
    from .base import create_metric

    created = [(name, create_metric(name, **params.get(name, {}))) for name in metrics]
    for name, metric in created:
        if metric.card.mode != "fusion":
            raise InputError(f"metric '{name}' is not a fusion metric (mode {metric.card.mode})")
    scaled: tuple[list[np.ndarray], np.ndarray] | None = None
    if skip_not_computable or any(_accepts_scaled(metric.fn) for _, metric in created):
        src, fus = prepare(sources, fused)  # errors of the case itself are raised here
        scaled = ([s.view(Scaled255) for s in src], fus.view(Scaled255))
    values: dict[str, float] = {}
    reasons: dict[str, str] = {}
    for name, metric in created:
        try:
            if scaled is not None and _accepts_scaled(metric.fn):
                values[name] = metric(*scaled)
            else:
                values[name] = metric(sources, fused)
        except InputError as exc:
            if not skip_not_computable:
                raise
            reasons[name] = str(exc)
    return values, reasons
