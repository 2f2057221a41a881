"""The training-data engine: per-pair trajectory search with no redundant work, rationales,
perturbations, exports for SFT/RL frameworks, and local or Ray executors.

Entry points: :func:`~fuseagent.data.build.build_dataset` (``fuseagent dataset build``) and
:func:`~fuseagent.data.export.export_dataset` (``fuseagent dataset export``).
"""

from __future__ import annotations

from .build import BuildSettings, build_dataset, dataset_stats, load_records
from .search import SearchOptions

__all__ = ["BuildSettings", "SearchOptions", "build_dataset", "dataset_stats", "load_records"]
