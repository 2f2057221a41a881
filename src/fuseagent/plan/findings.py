"""Perception findings in the form planners use: a severity level (0..5) per image and type.

The perception report (:func:`fuseagent.perceive.perceive`) is rich JSON; planners only need the
levels. :meth:`Findings.from_report` reads them from the report, and tests or callers that know
the degradations (a synthetic suite's ground truth) build :class:`Findings` directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Findings", "RELATIONAL_TYPES"]

#: relational findings a planner acts on (pair-level)
RELATIONAL_TYPES: tuple[str, ...] = ("misalignment", "exposure_mismatch", "motion", "white_balance")


def _level(value: Any) -> int:
    if isinstance(value, Mapping):
        value = value.get("level", value.get("severity", 0))
    if isinstance(value, bool):
        return int(value)
    try:
        return max(0, min(5, int(round(float(value)))))
    except (TypeError, ValueError):
        return 0


@dataclass
class Findings:
    """Severity levels 0..5 found by perception.

    Attributes:
        images: ``role -> type -> level`` (types of :data:`fuseagent.degrade.severity.PERCEIVED_TYPES`).
        relational: ``type -> level`` for the pair (``misalignment``, ``exposure_mismatch``, ``motion``).

    Example:
        >>> f = Findings({"vis": {"noise": 3, "haze": 0}}, {"misalignment": 2})
        >>> f.level("vis", "noise"), f.level("ir", "noise"), f.relation("misalignment")
        (3, 0, 2)
    """

    images: dict[str, dict[str, int]] = field(default_factory=dict)
    relational: dict[str, int] = field(default_factory=dict)

    def level(self, role: str, kind: str) -> int:
        return int(self.images.get(role, {}).get(kind, 0))

    def relation(self, kind: str) -> int:
        return int(self.relational.get(kind, 0))

    def detected(self, min_level: int = 1) -> list[tuple[str, str, int]]:
        """``(role, type, level)`` of every per-image finding at or above ``min_level``, worst first.

        Example:
            >>> Findings({"a": {"noise": 2, "blur": 4}, "b": {"noise": 0}}).detected()
            [('a', 'blur', 4), ('a', 'noise', 2)]
        """
        found = [(r, k, v) for r, kinds in self.images.items() for k, v in kinds.items() if v >= min_level]
        return sorted(found, key=lambda x: (-x[2], x[0], x[1]))

    def to_dict(self) -> dict[str, Any]:
        return {"images": {r: dict(k) for r, k in self.images.items()}, "relational": dict(self.relational)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Findings:
        return cls({str(r): {str(k): _level(v) for k, v in kinds.items()} for r, kinds in (data.get("images") or {}).items()},
                   {str(k): _level(v) for k, v in (data.get("relational") or {}).items()})

    @classmethod
    def from_report(cls, report: Mapping[str, Any] | None, roles: list[str]) -> Findings:
        """Levels from a perception report (:meth:`fuseagent.perceive.PerceptionReport.to_dict`).

        Per image: ``images`` (a list in input order, or a mapping by role), each with its types under
        ``degradations`` as a level or a mapping with ``level``. For the pair: ``misalignment`` and
        ``exposure_mismatch`` levels, ``moving_objects`` and ``white_balance_mismatch`` when
        ``detected`` (level 2), or a ready ``relational`` mapping.

        Example:
            >>> rep = {"images": [{"role": "ir", "degradations": {"noise": {"level": 2}}},
            ...                   {"role": "vis", "degradations": {"haze": {"level": 4}}}],
            ...        "misalignment": {"level": 3, "detected": True}, "moving_objects": {"detected": False}}
            >>> Findings.from_report(rep, ["ir", "vis"]).to_dict()
            {'images': {'ir': {'noise': 2}, 'vis': {'haze': 4}}, 'relational': {'misalignment': 3}}
        """
        if not report:
            return cls()
        per_image = report.get("images", {})
        if isinstance(per_image, Mapping):
            items = [(r, per_image[r]) for r in roles if r in per_image]
        else:
            items = [(e.get("role", r) if isinstance(e, Mapping) else r, e) for r, e in zip(roles, per_image)]
        images: dict[str, dict[str, int]] = {}
        for role, entry in items:
            kinds = entry.get("degradations", entry) if isinstance(entry, Mapping) else {}
            images[str(role)] = {str(k): _level(v) for k, v in kinds.items()
                                 if isinstance(v, Mapping) and ("level" in v or "severity" in v)
                                 or isinstance(v, (int, float)) and not isinstance(v, bool)}
        relational = {str(k): _level(v) for k, v in (report.get("relational") or {}).items()}
        for key in ("misalignment", "exposure_mismatch"):
            entry = report.get(key)
            if isinstance(entry, Mapping) and _level(entry) > 0:
                relational[key] = _level(entry)
        for key, kind in (("moving_objects", "motion"), ("white_balance_mismatch", "white_balance")):
            entry = report.get(key)
            if isinstance(entry, Mapping) and entry.get("detected"):
                relational[kind] = max(relational.get(kind, 0), _level(entry) or 2)
        return cls(images, {k: v for k, v in relational.items() if v > 0})
