"""Multi-scale fusion operators, first made for infrared–visible fusion.

* ``fusion.laplacian`` — Laplacian pyramid, detail chosen by local band energy, base averaged.
* ``fusion.gff`` — Guided Filtering based Fusion (Li, Kang & Hu, TIP 2013); suits IVIF, MEF
  and MFF.
* ``fusion.wavelet`` — discrete wavelet transform, max-abs detail, averaged approximation.

All take 2..N sources of any size (odd sizes included) and keep colour (IVIF: the visible
image's chroma on the fused luminance).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from ...errors import InputError
from ..base import FusionTool, ToolCard, ToolResult, register_tool
from ..filters import guided_filter
from .common import apply_weights, common_colour, luminances, normalise_weights, select_by_activity
from .pyramid import collapse, laplacian_pyramid, pyramid_levels

__all__ = ["LaplacianFusion", "GuidedFilterFusion", "WaveletFusion", "gff_weights"]


@register_tool
class LaplacianFusion(FusionTool):
    """Laplacian-pyramid fusion (Burt & Adelson 1983; Burt & Kolczynski 1993 selection rule).

    Each source's luminance is decomposed into a ``levels``-level Laplacian pyramid; at every
    detail level each pixel takes the coefficient of the source with the largest local energy
    (mean of squared coefficients over a ``window``×``window`` neighbourhood: max-abs selection
    made robust to noise), the choice majority-filtered over 3×3 for consistency; the coarse
    residual (1/8 resolution at the default 4 levels) is averaged. Chroma comes from the colour
    sources.

    Example:
        >>> a = np.zeros((40, 40), np.float32); a[:, :20] = 1.0
        >>> out = LaplacianFusion()([a, a]).image
        >>> bool(np.abs(out - a).max() < 1e-3)
        True
    """

    card = ToolCard(
        task="fusion", model="laplacian",
        description="Laplacian pyramid fusion: local-energy max detail, averaged base",
        inputs="stack", fusion_tasks=("ivif", "mff"), colour="luma", cost="low",
        credit="P. J. Burt and E. H. Adelson, 'The Laplacian pyramid as a compact image code', IEEE Trans. "
               "Communications 31(4), 1983; P. J. Burt and R. J. Kolczynski, 'Enhanced image capture through "
               "fusion', ICCV 1993",
        params={"levels": 4, "window": 3},
    )

    def fuse_luma(self, lumas: list[np.ndarray], levels: int = 4, window: int = 3) -> ToolResult:
        if int(window) < 1:
            raise InputError(f"fusion.laplacian: window must be >= 1, got {window}")
        n_levels = pyramid_levels(lumas[0].shape, int(levels) if levels else None)
        pyramids = [laplacian_pyramid(y, n_levels) for y in lumas]
        fused = [select_by_activity([p[i] for p in pyramids], int(window)) for i in range(n_levels - 1)]
        fused.append(np.mean([p[-1] for p in pyramids], axis=0))
        return ToolResult(collapse(fused), {"levels": n_levels})


def gff_weights(lumas: list[np.ndarray], r1: int = 45, eps1: float = 0.3, r2: int = 7,
                eps2: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """GFF base and detail weight maps, each ``(K, H, W)`` summing to 1 per pixel.

    Saliency is the Gaussian-smoothed (11×11, sigma 5) absolute 3×3 Laplacian of each luminance;
    the binary "most salient" maps are refined by guided filtering with the source as guide.

    Args:
        lumas: the sources' luminance planes (saliency and guides).
        r1, eps1: guided filter of the base-layer weights.
        r2, eps2: guided filter of the detail-layer weights.

    Example:
        >>> a = np.random.default_rng(0).random((32, 32)).astype(np.float32)
        >>> wb, wd = gff_weights([a, a * 0.5])
        >>> wb.shape, bool(np.allclose(wb.sum(0), 1.0)), bool(np.allclose(wd.sum(0), 1.0))
        ((2, 32, 32), True, True)
    """
    saliency = []
    for plane in lumas:
        high = np.abs(cv2.Laplacian(plane, cv2.CV_32F, ksize=1, borderType=cv2.BORDER_REFLECT))
        saliency.append(cv2.GaussianBlur(high, (11, 11), 5.0, borderType=cv2.BORDER_REFLECT))
    choice = np.argmax(np.stack(saliency), axis=0)
    base_w, detail_w = [], []
    for k, guide in enumerate(lumas):
        mask = (choice == k).astype(np.float32)
        base_w.append(guided_filter(guide, mask, r1, eps1))
        detail_w.append(guided_filter(guide, mask, r2, eps2))
    return normalise_weights(np.stack(base_w)), normalise_weights(np.stack(detail_w))


@register_tool
class GuidedFilterFusion(FusionTool):
    """Guided Filtering based Fusion, GFF (Li, Kang & Hu, TIP 2013).

    Two-scale decomposition of each source by a 31×31 average filter into base and detail
    layers; per-pixel saliency (smoothed absolute Laplacian) picks the most salient source,
    and those binary maps, refined by a guided filter with the source as guide (base layer:
    ``r1=45, eps1=0.3``; detail layer: ``r2=7, eps2=1e-6``, the paper's values), weight the
    layers. RGB stacks are fused channel by channel with weights from luminance; grey+RGB (IVIF)
    is fused on luminance with the visible chroma re-attached.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> a = rng.random((48, 40, 3)).astype(np.float32)
        >>> bool(np.abs(GuidedFilterFusion()([a, a]).image - a).max() < 1e-3)
        True
    """

    card = ToolCard(
        task="fusion", model="gff",
        description="Guided filtering fusion: two-scale layers weighted by guided-filtered saliency",
        inputs="stack", fusion_tasks=("ivif", "mef", "mff"), colour="native", cost="low",
        credit="S. Li, X. Kang and J. Hu, 'Image fusion with guided filtering', IEEE Trans. Image "
               "Processing 22(7):2864-2875, 2013",
        params={"base_size": 31, "r1": 45, "eps1": 0.3, "r2": 7, "eps2": 1e-6},
    )

    def fuse_images(self, images: list[np.ndarray], base_size: int = 31, r1: int = 45, eps1: float = 0.3,
                    r2: int = 7, eps2: float = 1e-6) -> ToolResult:
        if int(base_size) < 1 or int(r1) < 1 or int(r2) < 1 or not (eps1 > 0 and eps2 > 0):
            raise InputError("fusion.gff: base_size, r1, r2 must be >= 1 and eps1, eps2 > 0")
        planes, finish = common_colour(images)
        guides = luminances(planes)
        size = (int(base_size), int(base_size))
        bases = [cv2.blur(p, size, borderType=cv2.BORDER_REFLECT) for p in planes]
        details = [p - b for p, b in zip(planes, bases)]
        w_base, w_detail = gff_weights(guides, int(r1), float(eps1), int(r2), float(eps2))
        fused = apply_weights(bases, w_base) + apply_weights(details, w_detail)
        return ToolResult(finish(np.clip(fused, 0, 1)))


@register_tool
class WaveletFusion(FusionTool):
    """Discrete wavelet transform fusion (Li, Manjunath & Mitra 1995).

    Each luminance is decomposed by a ``levels``-level 2-D DWT (PyWavelets, symmetric borders);
    every detail coefficient takes the coefficient of the source with the largest activity (local
    energy over ``window``×``window``; 1 = plain max-abs), with the paper's consistency
    verification (3×3 majority filter of the choice); the approximation band is averaged, and the
    inverse DWT gives the fused luminance.

    Example:
        >>> a = np.random.default_rng(0).random((37, 29)).astype(np.float32)
        >>> bool(np.abs(WaveletFusion()([a, a]).image - a).max() < 1e-3)
        True
    """

    card = ToolCard(
        task="fusion", model="wavelet",
        description="DWT fusion: most active detail coefficients (consistency-checked), averaged approximation",
        inputs="stack", fusion_tasks=("ivif", "mff"), colour="luma", cost="low",
        requires=("pywt",),
        credit="H. Li, B. S. Manjunath and S. K. Mitra, 'Multisensor image fusion using the wavelet "
               "transform', Graphical Models and Image Processing 57(3):235-245, 1995",
        params={"wavelet": "db2", "levels": 3, "window": 3},
    )

    def fuse_luma(self, lumas: list[np.ndarray], wavelet: str = "db2", levels: int = 3, window: int = 3) -> ToolResult:
        import pywt

        if wavelet not in pywt.wavelist(kind="discrete"):
            raise InputError(f"fusion.wavelet: unknown discrete wavelet '{wavelet}' (e.g. haar, db2, sym4)")
        if int(window) < 1:
            raise InputError(f"fusion.wavelet: window must be >= 1, got {window}")
        h, w = lumas[0].shape
        max_level = pywt.dwt_max_level(min(h, w), pywt.Wavelet(wavelet).dec_len)
        if max_level < 1:  # image smaller than the filter: the shortest wavelet still fits
            wavelet, max_level = "haar", pywt.dwt_max_level(min(h, w), 2)
        n_levels = max(1, min(int(levels), max_level))
        decompositions = [pywt.wavedec2(y.astype(np.float64), wavelet, mode="symmetric", level=n_levels)
                          for y in lumas]
        fused: list[Any] = [np.mean([d[0] for d in decompositions], axis=0)]
        for level in range(1, n_levels + 1):
            bands = []
            for orientation in range(3):
                bands.append(select_by_activity([d[level][orientation] for d in decompositions], int(window)))
            fused.append(tuple(bands))
        image = pywt.waverec2(fused, wavelet, mode="symmetric")[:h, :w]
        return ToolResult(image.astype(np.float32), {"levels": n_levels, "wavelet": wavelet})
