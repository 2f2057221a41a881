"""In-the-wild degradation library: seeded operations with ground truth, task generators,
benchmark recipes and the suite builder.

Example:
    >>> import numpy as np
    >>> from fuseagent.degrade import degrade
    >>> out = degrade("geometric.homography", np.zeros((48, 64), np.float32), seed=0, level=2)
    >>> out.transform.shape, out.labels
    ((3, 3), {'misalignment': 2})
"""

from __future__ import annotations

from .base import (DEGRADATIONS, Degraded, DegradationCard, degradation_card, degrade, list_degradations,
                   register_degradation)
from .severity import LEVEL_NAMES, PERCEIVED_TYPES, SCALES, level_name, level_of

__all__ = [
    "DEGRADATIONS",
    "Degraded",
    "DegradationCard",
    "LEVEL_NAMES",
    "PERCEIVED_TYPES",
    "SCALES",
    "degradation_card",
    "degrade",
    "level_name",
    "level_of",
    "list_degradations",
    "register_degradation",
]
