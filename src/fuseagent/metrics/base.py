"""Metric cards and the metric registry.

Every metric is a plain function (``qabf(a, b, fused)``) plus a registered :class:`Metric` with a
:class:`MetricCard` saying what kind it is (fusion / full-reference / no-reference), whether lower is
better, its range and its reference. ``create_metric(name)`` returns a callable object;
``list_metrics(pattern)`` lists names.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..registry import Registry

__all__ = ["MetricCard", "Metric", "METRICS", "register_metric", "create_metric", "list_metrics", "metric_card"]


@dataclass(frozen=True)
class MetricCard:
    """What a metric measures.

    Attributes:
        name: registry name (``"qabf"``).
        mode: ``"fusion"`` (sources + fused), ``"fr"`` (reference + test), ``"nr"`` (one image).
        lower_better: direction.
        range: (low, high) bounds, ``math.inf`` where unbounded.
        reference: paper / code it follows.
        description: one line.
        variant: which published implementation it matches (``"vifb"``, ``"mefb"``, ``"common"``).
        tasks: fusion tasks it is meant for.
        requires: optional modules.
    """

    name: str
    mode: str
    lower_better: bool
    range: tuple[float, float]
    reference: str
    description: str
    variant: str = "common"
    tasks: tuple[str, ...] = ("ivif", "mef", "mff")
    requires: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["range"] = [None if math.isinf(v) else v for v in self.range]
        return out


class Metric:
    """A registered metric: its card and the function computing it.

    Fusion metrics are called ``metric(sources, fused)`` with ``sources`` a sequence of images;
    full-reference metrics ``metric(reference, test)``; no-reference ``metric(image)``.
    """

    def __init__(self, card: MetricCard, fn: Callable[..., float], **params: Any):
        self.card = card
        self.fn = fn
        self.params = params

    def __call__(self, *args: Any, **kwargs: Any) -> float:
        if self.card.mode == "fusion":
            if len(args) != 2:
                raise InputError(f"metric {self.card.name}: call it as metric(sources, fused)")
            sources, fused = args
            if isinstance(sources, np.ndarray):
                raise InputError(f"metric {self.card.name}: sources must be a sequence of images")
            value = self.fn(list(sources), fused, **{**self.params, **kwargs})
        else:
            value = self.fn(*args, **{**self.params, **kwargs})
        return float(value)

    def __repr__(self) -> str:
        return f"Metric({self.card.name})"


METRICS: Registry[Metric] = Registry("metric", entry_point_group="fuseagent.metrics")


def register_metric(card: MetricCard) -> Callable[[Callable[..., float]], Callable[..., float]]:
    """Decorator registering a function as a metric under ``card.name``.

    The function must take ``(sources, fused)`` for fusion metrics, ``(reference, test)`` for
    full-reference and ``(image)`` for no-reference metrics.
    """

    def _add(fn: Callable[..., float]) -> Callable[..., float]:
        METRICS.register(card.name, card, factory=lambda **params: Metric(card, fn, **params))
        return fn

    return _add


def _load() -> None:
    from . import load_builtin_metrics

    load_builtin_metrics()


def create_metric(name: str, **params: Any) -> Metric:
    """The metric ``name`` as a callable with its card."""
    _load()
    return METRICS.create(name, **params)


def list_metrics(pattern: str = "*", *, mode: str | None = None, variant: str | None = None) -> list[str]:
    """Names of registered metrics matching a pattern, optionally of one mode / variant."""
    _load()
    names = METRICS.names(pattern)
    if mode is not None:
        names = [n for n in names if METRICS.card(n).mode == mode]
    if variant is not None:
        names = [n for n in names if METRICS.card(n).variant == variant]
    return names


def metric_card(name: str) -> MetricCard:
    _load()
    return METRICS.card(name)


def as_sources(sources: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Check a fusion metric's sources: at least two images."""
    sources = list(sources)
    if len(sources) < 2:
        raise InputError(f"fusion metrics need at least 2 source images, got {len(sources)}")
    return sources
