"""Tool cards, the three tool shapes, and the tool registry.

A tool is one expert operation of the toolbox, addressed in the action protocol as
``[task:<task>][model:<model>]`` and in Python as ``create_tool("<task>.<model>")``.
Three shapes cover the seed paper's eight categories:

* :class:`ImageTool` — restores one image (denoise, dehaze, lighten, ...);
* :class:`PairTool` — changes one image with the other as reference (registration, flow,
  histogram matching);
* :class:`FusionTool` — fuses the pair or stack into one image.

Each returns a :class:`ToolResult`: the output image, JSON-safe ``info`` (estimated parameters,
transforms) and named ``masks`` (validity, occlusion, motion).
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..errors import InputError, ToolUnavailableError
from ..io import check_image, match_sizes, merge_luma, split_luma
from ..registry import Registry

__all__ = [
    "FUSION_TASKS",
    "ToolCard",
    "ToolResult",
    "Tool",
    "ImageTool",
    "PairTool",
    "FusionTool",
    "TOOLS",
    "register_tool",
    "create_tool",
    "list_tools",
    "tool_card",
    "fuse_chroma",
]

FUSION_TASKS = ("ivif", "mef", "mff")


@dataclass(frozen=True)
class ToolCard:
    """What a tool is and where it fits.

    Attributes:
        task: protocol task (``"denoise"``).
        model: protocol model (``"nlm"``); the registry name is ``"task.model"``.
        description: one line for tables and planner prompts.
        inputs: ``"image"``, ``"pair"`` or ``"stack"`` (see module docstring).
        fusion_tasks: fusion tasks it suits.
        modalities: image kinds it suits: ``"vis"`` (visible / photographic), ``"ir"``.
        colour: ``"native"`` (handles grey and RGB itself), ``"luma"`` (works on Y; chroma is
            kept), or ``"per_channel"``.
        cost: ``"low"`` (< 0.1 s on 640×480), ``"medium"`` (< 1 s), ``"high"``.
        requires: importable modules needed (optional dependencies).
        extra: the pip extra that installs them, if any.
        licence: licence of the method's implementation or weights.
        credit: reference to cite.
        params: documented parameters and their defaults.
        ablation_of: for an ablation variant of another tool (a research instrument), that tool's
            model; planners leave such variants out of their choices, the protocol still runs them.
    """

    task: str
    model: str
    description: str
    inputs: str = "image"
    fusion_tasks: tuple[str, ...] = FUSION_TASKS
    modalities: tuple[str, ...] = ("vis", "ir")
    colour: str = "native"
    cost: str = "low"
    requires: tuple[str, ...] = ()
    extra: str | None = None
    licence: str = "Apache-2.0 (fuseagent implementation)"
    credit: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    ablation_of: str | None = None

    @property
    def name(self) -> str:
        return f"{self.task}.{self.model}"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["name"] = self.name
        out["params"] = dict(self.params)
        return out


@dataclass
class ToolResult:
    """Output of one tool call.

    Attributes:
        image: the output image (float32 ``[0, 1]``).
        info: JSON-safe facts about what was done (estimated sigma, transform, fallback...).
        masks: named float/bool masks of the output's size (``valid``, ``occlusion``...).
    """

    image: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    masks: dict[str, np.ndarray] = field(default_factory=dict)


@functools.lru_cache(maxsize=None)
def _installed(module: str) -> bool:
    """Whether ``module`` can be imported (looked up once per process: planners ask for every
    tool's availability at each step)."""
    return importlib.util.find_spec(module) is not None


def _missing_modules(modules: Sequence[str]) -> list[str]:
    return [m for m in modules if not _installed(m)]


class Tool:
    """Base of every tool. Subclasses set ``card`` and implement one ``process`` method."""

    card: ClassVar[ToolCard]

    def __init__(self, **params: Any):
        unknown = set(params) - set(self.card.params)
        if unknown:
            raise InputError(f"tool {self.card.name}: unknown parameter(s) {', '.join(sorted(unknown))} "
                             f"(valid: {', '.join(self.card.params) or 'none'})")
        self.params: dict[str, Any] = {**dict(self.card.params), **params}

    @classmethod
    def available(cls) -> bool:
        """Whether the optional dependencies of this tool are installed."""
        return not _missing_modules(cls.card.requires)

    def _check_available(self) -> None:
        missing = _missing_modules(self.card.requires)
        if missing:
            how = f"pip install 'fuseagent[{self.card.extra}]'" if self.card.extra else f"pip install {' '.join(missing)}"
            raise ToolUnavailableError(f"tool {self.card.name} needs {', '.join(missing)}: {how}")

    def _merged(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        unknown = set(overrides) - set(self.card.params)
        if unknown:
            raise InputError(f"tool {self.card.name}: unknown parameter(s) {', '.join(sorted(unknown))}")
        return {**self.params, **overrides}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.card.name}, {self.params})"


def _as_result(out: np.ndarray | ToolResult) -> ToolResult:
    if isinstance(out, ToolResult):
        out.image = np.clip(out.image, 0, 1).astype(np.float32)
        return out
    return ToolResult(np.clip(out, 0, 1).astype(np.float32))


class ImageTool(Tool):
    """A tool that restores a single image: implement ``process(image, **params)``."""

    def process(self, image: np.ndarray, **params: Any) -> np.ndarray | ToolResult:
        raise TypeError(f"{type(self).__name__} does not implement process()")

    def __call__(self, image: np.ndarray, **overrides: Any) -> ToolResult:
        self._check_available()
        image = check_image(image)
        params = self._merged(overrides)
        if image.ndim == 3 and self.card.colour == "luma":
            luma, chroma = split_luma(image)
            result = _as_result(self.process(luma, **params))
            result.image = merge_luma(result.image, chroma)
            return result
        if image.ndim == 3 and self.card.colour == "per_channel":
            results = [_as_result(self.process(np.ascontiguousarray(image[..., c]), **params)) for c in range(3)]
            merged = results[0]
            merged.image = np.stack([r.image for r in results], axis=2)
            return merged
        return _as_result(self.process(image, **params))


class PairTool(Tool):
    """A tool that changes ``moving`` using ``reference``: implement ``process(moving, reference)``.

    The output has the reference's size (it is what registration means).
    """

    def process(self, moving: np.ndarray, reference: np.ndarray, **params: Any) -> np.ndarray | ToolResult:
        raise TypeError(f"{type(self).__name__} does not implement process()")

    def __call__(self, moving: np.ndarray, reference: np.ndarray, **overrides: Any) -> ToolResult:
        self._check_available()
        moving, reference = check_image(moving, "moving"), check_image(reference, "reference")
        params = self._merged(overrides)
        return _as_result(self.process(moving, reference, **params))


def fuse_chroma(chromas: Sequence[np.ndarray | None], weights: Sequence[np.ndarray] | None = None) -> np.ndarray | None:
    """Fuse the chroma planes of colour sources.

    With one colour source its chroma is used as is (IVIF: the visible image's colour). With
    several, each pixel takes the weighted mean, each source weighted by its colour saturation
    ``|C - 0.5|`` (times ``weights`` when given), the usual rule of exposure fusion papers.
    """
    colour = [(i, c) for i, c in enumerate(chromas) if c is not None]
    if not colour:
        return None
    if len(colour) == 1:
        return colour[0][1]
    num = np.zeros_like(colour[0][1])
    den = np.zeros_like(colour[0][1])
    for i, c in colour:
        w = np.abs(c - 0.5) + 1e-4
        if weights is not None:
            w = w * weights[i][..., None]
        num += w * c
        den += w
    return (num / den).astype(np.float32)


class FusionTool(Tool):
    """A tool that fuses 2..N images into one.

    Implement ``fuse_luma(lumas, **params)`` for grey/luminance fusion (``card.colour == "luma"``:
    the base class fuses Y and re-attaches chroma) or ``fuse_images(images, **params)`` for
    operators that handle colour themselves (``card.colour == "native"``).
    ``max_inputs`` is 2 for pair-only operators.
    """

    max_inputs: ClassVar[int | None] = None

    def fuse_luma(self, lumas: list[np.ndarray], **params: Any) -> np.ndarray | ToolResult:
        raise TypeError(f"{type(self).__name__} does not implement fuse_luma()")

    def fuse_images(self, images: list[np.ndarray], **params: Any) -> np.ndarray | ToolResult:
        raise TypeError(f"{type(self).__name__} does not implement fuse_images()")

    def __call__(self, images: Sequence[np.ndarray], **overrides: Any) -> ToolResult:
        self._check_available()
        if len(images) < 2:
            raise InputError(f"tool {self.card.name} needs at least 2 images, got {len(images)}")
        if self.max_inputs is not None and len(images) > self.max_inputs:
            raise InputError(f"tool {self.card.name} fuses at most {self.max_inputs} images, got {len(images)}")
        params = self._merged(overrides)
        images = match_sizes([check_image(im, f"image {i}") for i, im in enumerate(images)])
        if self.card.colour == "native":
            return _as_result(self.fuse_images(list(images), **params))
        split = [split_luma(im) for im in images]
        result = _as_result(self.fuse_luma([s[0] for s in split], **params))
        chroma = fuse_chroma([s[1] for s in split])
        result.image = merge_luma(result.image, chroma)
        return result


TOOLS: Registry[Tool] = Registry("tool", entry_point_group="fuseagent.tools")


def register_tool(cls: type[Tool]) -> type[Tool]:
    """Class decorator: add a tool class to the registry under its card's name."""
    TOOLS.register(cls.card.name, cls.card, factory=cls)
    return cls


def create_tool(name: str, **params: Any) -> Tool:
    """Build the tool ``"task.model"`` with parameters overriding the card's defaults.

    Example:
        >>> import fuseagent
        >>> fuseagent.create_tool("denoise.nlm").card.task
        'denoise'
    """
    from . import load_builtin_tools

    load_builtin_tools()
    return TOOLS.create(name, **params)


def list_tools(pattern: str = "*", *, available_only: bool = False) -> list[str]:
    """Names of registered tools matching a shell-style pattern.

    Example:
        >>> import fuseagent
        >>> "dehaze.dcp" in fuseagent.list_tools("dehaze*")
        True
    """
    from . import load_builtin_tools

    load_builtin_tools()
    names = TOOLS.names(pattern)
    if available_only:
        names = [n for n in names if TOOLS.get(n).factory.available()]
    return names


def tool_card(name: str) -> ToolCard:
    """The card of tool ``name``."""
    from . import load_builtin_tools

    load_builtin_tools()
    return TOOLS.card(name)
