"""Degradation operations: cards, results with ground truth, and the registry.

An operation is a function ``op(image, rng, **params) -> Degraded`` registered with a
:class:`DegradationCard` and a sampler ``sample(rng, level) -> params`` that draws parameters of a
severity level (1..5, :mod:`~fuseagent.degrade.severity`). :func:`degrade` ties them together:
given a name, an image, a seed and a level (or explicit parameters) it returns the degraded image
with everything needed to check it: the parameters used, the geometric transform, masks and the
ground-truth severity labels that perception should recover.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from ..io import check_image
from ..registry import Registry

__all__ = [
    "Degraded",
    "DegradationCard",
    "DEGRADATIONS",
    "register_degradation",
    "degrade",
    "list_degradations",
    "degradation_card",
    "as_rng",
    "json_safe",
]


@dataclass
class Degraded:
    """Output of one degradation with its ground truth.

    Attributes:
        image: degraded image, float32 ``[0, 1]``.
        params: JSON-safe parameters actually used (after sampling).
        labels: ground-truth severity level (1..5) per perceived type this operation caused.
        transform: 3×3 homography mapping input pixel coordinates ``(x, y, 1)`` to output ones,
            for operations that move pixels (None otherwise).
        masks: named masks of the output's size: ``valid`` (pixels seen by the source),
            ``motion`` (moved object, old and new place), ``precipitation``, ``object``, ``hole``...
        arrays: other arrays worth keeping (blur kernel, depth proxy, transmission).
    """

    image: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    transform: np.ndarray | None = None
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class DegradationCard:
    """What a degradation is.

    Attributes:
        name: registry name (``"noise.gaussian"``).
        family: ``geometric``, ``dynamic``, ``photometric``, ``weather``, ``sensor``, ``blur``,
            ``resolution``.
        description: one line.
        labels: perceived types it can cause (keys of :data:`~.severity.PERCEIVED_TYPES`), or
            relational effects (``misalignment``, ``motion``, ``exposure_mismatch``,
            ``white_balance``, ``resolution_mismatch``).
        params: parameters and their defaults (None = drawn from the level).
        needs_colour: the operation only makes sense on colour images.
    """

    name: str
    family: str
    description: str
    labels: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    needs_colour: bool = False


@dataclass(frozen=True)
class _Operation:
    card: DegradationCard
    apply: Callable[..., Degraded]
    sample: Callable[[np.random.Generator, int], dict[str, Any]]


DEGRADATIONS: Registry[_Operation] = Registry("degradation")


def register_degradation(card: DegradationCard, sample: Callable[[np.random.Generator, int], dict[str, Any]]):
    """Decorator: register ``op(image, rng, **params) -> Degraded`` under ``card.name``."""

    def _add(fn: Callable[..., Degraded]) -> Callable[..., Degraded]:
        op = _Operation(card, fn, sample)
        DEGRADATIONS.register(card.name, card, factory=lambda op=op: op)
        return fn

    return _add


def _load() -> None:
    from . import blur, dynamic, geometric, photometric, resolution, sensor, weather  # noqa: F401


def as_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A numpy Generator from a seed (or the generator itself)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def json_safe(value: Any) -> Any:
    """Convert numpy scalars/arrays (and nested containers) to plain JSON types.

    Example:
        >>> json_safe({"a": np.float32(0.5), "b": np.arange(2)})
        {'a': 0.5, 'b': [0, 1]}
    """
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return round(float(value), 6)
    if isinstance(value, float):
        return round(value, 6)
    return value


def degrade(name: str, image: np.ndarray, seed: int | np.random.Generator | None = 0,
            level: int | None = None, **params: Any) -> Degraded:
    """Apply the degradation ``name`` to ``image``.

    Args:
        name: registry name, see :func:`list_degradations`.
        image: ``(H, W)`` or ``(H, W, 3)`` float image.
        seed: seed or generator; equal seeds give equal outputs.
        level: severity 1..5 used to draw the parameters not given; None draws a level.
        **params: explicit parameters (override the drawn ones).

    Returns:
        The :class:`Degraded` result; ``params`` records every parameter used and ``level``.

    Raises:
        InputError: unknown parameter, a level outside 1..5, a colour-only operation on grey.
        UnknownNameError: unknown degradation name.

    Example:
        >>> out = degrade("noise.gaussian", np.full((32, 32), 0.5, np.float32), seed=1, level=3)
        >>> out.labels, out.params["level"]
        ({'noise': 3}, 3)
    """
    _load()
    op = DEGRADATIONS.create(name)
    image = check_image(image, name)
    unknown = set(params) - set(op.card.params)
    if unknown:
        raise InputError(f"degradation {name}: unknown parameter(s) {', '.join(sorted(unknown))} "
                         f"(valid: {', '.join(op.card.params) or 'none'})")
    if op.card.needs_colour and image.ndim != 3:
        raise InputError(f"degradation {name} needs a colour image")
    rng = as_rng(seed)
    if level is None:
        level = int(rng.integers(1, 6))
    if not 1 <= int(level) <= 5:
        raise InputError(f"severity level must be 1..5, got {level}")
    drawn = op.sample(rng, int(level))
    merged = {**{k: v for k, v in op.card.params.items() if v is not None}, **drawn, **params}
    result = op.apply(image, rng, **merged)
    result.image = np.clip(result.image, 0, 1).astype(np.float32)
    result.params = json_safe({**merged, **result.params, "level": int(level)})
    return result


def list_degradations(pattern: str = "*") -> list[str]:
    """Names of registered degradations.

    Example:
        >>> "haze.scattering" in list_degradations("haze*")
        True
    """
    _load()
    return DEGRADATIONS.names(pattern)


def degradation_card(name: str) -> DegradationCard:
    """The card of degradation ``name``."""
    _load()
    return DEGRADATIONS.card(name)
