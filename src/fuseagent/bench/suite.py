"""Reading a suite built by ``fuseagent synth``: degraded inputs, clean sources and ground truth."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..io import read_image
from ..plan.findings import RELATIONAL_TYPES, Findings

__all__ = ["SuiteSample", "open_suite", "findings_from_labels"]


def findings_from_labels(labels: dict[str, dict[str, int]], roles: list[str], inherent: list[str] | None = None) -> Findings:
    """Ground-truth :class:`Findings` from a suite record's ``labels`` (relational types lifted to the pair).

    Example:
        >>> f = findings_from_labels({"ir": {"misalignment": 3, "stripe": 2}, "vis": {"noise": 1}}, ["ir", "vis"])
        >>> f.to_dict()
        {'images': {'ir': {'stripe': 2}, 'vis': {'noise': 1}}, 'relational': {'misalignment': 3}}
    """
    skip = set(inherent or ())
    images: dict[str, dict[str, int]] = {r: {} for r in roles}
    relational: dict[str, int] = {}
    for role, kinds in labels.items():
        for kind, level in kinds.items():
            if kind in RELATIONAL_TYPES:
                relational[kind] = max(relational.get(kind, 0), int(level))
            elif kind not in skip and role in images:
                images[role][kind] = int(level)
    return Findings(images, relational)


@dataclass
class SuiteSample:
    """One sample of a suite; images are read on access."""

    folder: Path
    record: dict[str, Any]
    _cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def id(self) -> str:
        return str(self.record["id"])

    @property
    def task(self) -> str:
        return str(self.record["task"])

    @property
    def roles(self) -> list[str]:
        return list(self.record["roles"])

    def _read(self, key: str) -> np.ndarray:
        if key not in self._cache:
            self._cache[key] = read_image(self.folder / self.record["files"][key])
        return self._cache[key]

    @property
    def images(self) -> dict[str, np.ndarray]:
        """Degraded inputs by role."""
        return {r: self._read(r) for r in self.roles}

    @property
    def clean(self) -> dict[str, np.ndarray]:
        """The inputs before degradation."""
        return {r: self._read(f"clean_{r}") for r in self.roles}

    @property
    def reference(self) -> np.ndarray | None:
        """The clean image a generated MEF/MFF pair came from (None for real pairs)."""
        return self._read("reference") if "reference" in self.record["files"] else None

    @property
    def findings(self) -> Findings:
        """Ground-truth degradation levels."""
        return findings_from_labels(self.record.get("labels", {}), self.roles, self.record.get("inherent"))


def open_suite(folder: str | os.PathLike, limit: int | None = None) -> tuple[dict[str, Any], list[SuiteSample]]:
    """Settings and samples of a suite folder (``suite.json`` + ``manifest.jsonl``)."""
    from ..degrade.suite import read_manifest

    folder = Path(folder)
    settings_path = folder / "suite.json"
    if not settings_path.is_file():
        raise InputError(f"'{folder}' is not a suite (no suite.json; build one with 'fuseagent synth')")
    try:
        settings = json.loads(settings_path.read_text())
    except ValueError as exc:
        raise InputError(f"cannot read '{settings_path}': {exc}") from None
    records = sorted(read_manifest(folder / "manifest.jsonl"), key=lambda r: r.get("index", 0))
    if not records:
        raise InputError(f"suite '{folder}' has no samples")
    samples = [SuiteSample(folder, r) for r in records]
    return settings, samples[:limit] if limit else samples
