"""What the policy sees: a downscaled image pair, the fusion task, and perception features.

* :func:`pair_tensor` — the first two images as ``(4, S, S)`` float32: the luma of each, resampled
  to ``S×S`` (area), and its Sobel gradient magnitude (scaled to about ``[0, 1]``);
* :data:`TASK_IDS` — the fusion task as an index;
* :func:`perception_vector` — a fixed-length vector from the perception report (per image and
  type: level / 5 and presence probability; for the pair: misalignment level and displacement,
  exposure mismatch, white-balance mismatch, moving objects), or, without a report, from the
  findings' levels alone. Missing entries are 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from ...io import resize_to, to_gray

__all__ = ["TASK_IDS", "PERCEPTION_SIZE", "pair_tensor", "perception_vector"]

TASK_IDS: dict[str, int] = {"ivif": 0, "mef": 1, "mff": 2}


def _types() -> tuple[str, ...]:
    from ...degrade.severity import PERCEIVED_TYPES

    return tuple(PERCEIVED_TYPES)


_RELATIONAL = ("misalignment_level", "displacement", "exposure_level", "exposure_ev", "white_balance",
               "motion", "motion_area", "has_report")

#: length of :func:`perception_vector`
PERCEPTION_SIZE: int = 2 * 2 * len(_types()) + len(_RELATIONAL)


def pair_tensor(images: Sequence[np.ndarray], size: int = 64) -> np.ndarray:
    """The first and last image of a fusion input as the policy's ``(4, size, size)`` input.

    Example:
        >>> a = np.zeros((40, 60), np.float32); b = np.ones((40, 60, 3), np.float32)
        >>> t = pair_tensor([a, b], 16)
        >>> t.shape, float(t[0].max()), float(t[1].min())
        ((4, 16, 16), 0.0, 1.0)
    """
    chosen = [images[0], images[-1]] if len(images) >= 2 else [images[0], images[0]]
    lumas, grads = [], []
    for image in chosen:
        luma = to_gray(np.asarray(image, np.float32))
        small = resize_to(luma, (size, size), "area").astype(np.float32)
        gx = cv2.Sobel(small, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT)
        gy = cv2.Sobel(small, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT)
        lumas.append(small)
        grads.append(np.clip(np.hypot(gx, gy) / 4.0, 0.0, 1.0))
    return np.stack(lumas + grads).astype(np.float32)


def _level(entry: Any) -> float:
    if isinstance(entry, Mapping):
        entry = entry.get("level", 0)
    try:
        return float(entry) / 5.0
    except (TypeError, ValueError):
        return 0.0


def perception_vector(report: Mapping[str, Any] | None, findings: Any, task: str, roles: Sequence[str]) -> np.ndarray:
    """Fixed-length perception features of a pair (see the module docstring).

    Args:
        report: the JSON-safe perception report (:meth:`PerceptionReport.to_dict`), or None.
        findings: :class:`~fuseagent.plan.findings.Findings` (used when there is no report).
        task: fusion task.
        roles: image roles in input order.

    Example:
        >>> from fuseagent.plan.findings import Findings
        >>> v = perception_vector(None, Findings({"vis": {"noise": 5}}), "ivif", ["ir", "vis"])
        >>> v.shape == (PERCEPTION_SIZE,), float(v.max())
        (True, 1.0)
    """
    types = _types()
    pair_roles = [roles[0], roles[-1]]
    per_image = np.zeros((2, len(types), 2), np.float32)
    extra = dict.fromkeys(_RELATIONAL, 0.0)
    if report:
        entries = report.get("images") or []
        by_role = {e.get("role"): e for e in entries if isinstance(e, Mapping)}
        for slot, role in enumerate(pair_roles):
            entry = by_role.get(role)
            if entry is None and slot < len(entries) and isinstance(entries[slot], Mapping):
                entry = entries[slot]
            degradations = entry.get("degradations", {}) if isinstance(entry, Mapping) else {}
            for t, kind in enumerate(types):
                d = degradations.get(kind)
                if isinstance(d, Mapping):
                    per_image[slot, t] = (_level(d), float(d.get("probability", 1.0 if _level(d) > 0 else 0.0)))
        mis = report.get("misalignment") or {}
        extra["misalignment_level"] = _level(mis)
        extra["displacement"] = math.log1p(max(0.0, float(mis.get("displacement_px") or 0.0))) / 4.0
        exposure = report.get("exposure_mismatch") or {}
        extra["exposure_level"] = _level(exposure)
        ev = exposure.get("ev") or [0.0]
        extra["exposure_ev"] = float(np.tanh(abs(float(ev[0] or 0.0)) / 2.0))
        wb = report.get("white_balance_mismatch") or {}
        extra["white_balance"] = float(bool(wb.get("detected")))
        moving = report.get("moving_objects") or {}
        extra["motion"] = float(bool(moving.get("detected")))
        extra["motion_area"] = float(moving.get("area_fraction") or 0.0)
        extra["has_report"] = 1.0
    elif findings is not None:
        for slot, role in enumerate(pair_roles):
            for t, kind in enumerate(types):
                level = findings.level(role, kind) / 5.0
                per_image[slot, t] = (level, 1.0 if level > 0 else 0.0)
        extra["misalignment_level"] = findings.relation("misalignment") / 5.0
        extra["exposure_level"] = findings.relation("exposure_mismatch") / 5.0
        extra["white_balance"] = float(findings.relation("white_balance") > 0)
        extra["motion"] = float(findings.relation("motion") > 0)
    vector = np.concatenate([per_image.reshape(-1), np.array([extra[k] for k in _RELATIONAL], np.float32)])
    return np.nan_to_num(vector.astype(np.float32))
