"""Quality metrics: fusion metrics matching the published MATLAB code, no-reference IQA, rewards.

Modules register their metrics on import; :func:`load_builtin_metrics` imports them all.
"""

from __future__ import annotations

import importlib

from .base import METRICS, Metric, MetricCard, create_metric, list_metrics, metric_card, register_metric

__all__ = ["METRICS", "Metric", "MetricCard", "create_metric", "list_metrics", "metric_card",
           "register_metric", "load_builtin_metrics", "BUILTIN_MODULES"]

#: modules that register metrics (each adds its own line here)
BUILTIN_MODULES: tuple[str, ...] = (
    "fusion",
    "structural",
    "mefb",
    "mefssim",
    "nr",
    "rewards",
    "fuscore",
)

_loaded = False


def load_builtin_metrics() -> None:
    """Import every built-in metric module once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_MODULES:
        importlib.import_module(f"{__name__}.{module}")
