"""The small learned degradation classifier (numpy inference).

A small ensemble of two-hidden-layer perceptrons over the standardised measured features
(:data:`~.features.FEATURE_NAMES`) with two heads per degradation type: a presence logit and a
continuous severity (1..5), averaged over the members. It is trained on synthesised data by
:mod:`fuseagent.perceive.train` and shipped as ``perceive_weights.npz`` (about 150 kB) beside this module, together with the
per-type decision thresholds and the relational thresholds tuned on the same data.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FuseAgentError
from .features import FEATURE_NAMES

__all__ = ["WEIGHTS_PATH", "SCENE_TYPES", "DegradationModel", "load_model", "pool_scene_types"]

#: Degradations of the scene (the atmosphere between it and the camera), not of one capture: the two
#: frames of a same-modality pair (MEF/MFF), taken of one scene together, share them.
SCENE_TYPES: tuple[str, ...] = ("haze",)


def pool_scene_types(prob: np.ndarray, types: tuple[str, ...], task: str) -> np.ndarray:
    """Presence probabilities ``(2, T)`` of a pair with each :data:`SCENE_TYPES` column replaced by
    the mean over the two frames, for same-modality pairs (``task`` ``mef`` or ``mff``); an
    infrared-visible pair (``ivif``) is returned unchanged (haze is not measured on infrared).

    Example:
        >>> pool_scene_types(np.array([[0.9, 0.2], [0.3, 0.6]]), ("haze", "noise"), "mff").tolist()
        [[0.6, 0.2], [0.6, 0.6]]
    """
    out = np.array(prob, dtype=np.float64, copy=True)
    if task == "ivif" or out.shape[0] != 2:
        return out
    for j, kind in enumerate(types):
        if kind in SCENE_TYPES:
            out[:, j] = out[:, j].mean()
    return out

WEIGHTS_PATH = Path(__file__).with_name("perceive_weights.npz")


@dataclass
class DegradationModel:
    """Loaded classifier: standardisation, layers, types, thresholds and relational settings.

    ``layers`` is one perceptron; ``extra_members`` holds further perceptrons of an ensemble
    (same inputs and outputs), whose probabilities and severities are averaged with it.
    """

    feature_names: tuple[str, ...]
    types: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    layers: list[tuple[np.ndarray, np.ndarray]]
    thresholds: np.ndarray
    settings: dict[str, Any]
    extra_members: list[list[tuple[np.ndarray, np.ndarray]]] = field(default_factory=list)

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities ``(N, T)`` and severities ``(N, T)`` (clipped to 1..5) for feature rows
        (ordered as the model's ``feature_names``, or as :data:`~.features.FEATURE_NAMES`).

        Example:
            >>> model = DegradationModel(("a",), ("noise",), np.zeros(1), np.ones(1),
            ...                          [(np.array([[2.0, 0.0]]), np.array([0.0, 3.0]))], np.array([0.5]), {})
            >>> prob, severity = model.predict(np.array([[1.0]]))
            >>> round(float(prob[0, 0]), 3), float(severity[0, 0])
            (0.881, 3.0)
        """
        x = np.atleast_2d(features).astype(np.float64)
        if x.shape[1] != len(self.feature_names):
            # Rows hold every measured feature (FEATURE_NAMES); the model reads the ones it was trained on.
            x = x[:, [FEATURE_NAMES.index(name) for name in self.feature_names]]
        x = np.nan_to_num(np.clip((x - self.mean) / self.std, -8, 8))
        t = len(self.types)
        prob, severity = np.zeros((x.shape[0], t)), np.zeros((x.shape[0], t))
        members = [self.layers, *self.extra_members]
        for layers in members:
            z = x
            for i, (w, b) in enumerate(layers):
                z = z @ w + b
                if i < len(layers) - 1:
                    z = np.maximum(z, 0.0)
            prob += 1.0 / (1.0 + np.exp(-np.clip(z[:, :t], -30, 30)))
            severity += np.clip(z[:, t:2 * t], 1.0, 5.0)
        return prob / len(members), severity / len(members)

    def save(self, path: str | Path) -> None:
        """Write the model as ``.npz`` (arrays + a JSON header), atomically (a temporary file in the
        same folder is renamed over ``path``, so a reader never sees a partial file)."""
        arrays: dict[str, Any] = {"mean": self.mean, "std": self.std, "thresholds": self.thresholds}
        for m, layers in enumerate([self.layers, *self.extra_members]):
            prefix = "" if m == 0 else f"m{m}_"
            for i, (w, b) in enumerate(layers):
                arrays[f"{prefix}w{i}"] = w.astype(np.float32)
                arrays[f"{prefix}b{i}"] = b.astype(np.float32)
        header = {"feature_names": list(self.feature_names), "types": list(self.types),
                  "n_layers": len(self.layers), "n_members": 1 + len(self.extra_members), "settings": self.settings}
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        path = Path(path)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
        try:
            np.savez_compressed(tmp, **arrays)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


@lru_cache(maxsize=4)
def load_model(path: str | None = None) -> DegradationModel:
    """Load the shipped (or another) classifier.

    Raises:
        FuseAgentError: the weights are missing or were trained on features that are no longer measured.
    """
    p = Path(path) if path else WEIGHTS_PATH
    if not p.is_file():
        raise FuseAgentError(f"perception weights not found at '{p}' (train them: python -m fuseagent.perceive.train)")
    with np.load(p) as data:
        header = json.loads(bytes(data["header"]).decode())
        members = []
        for m in range(int(header.get("n_members", 1))):
            prefix = "" if m == 0 else f"m{m}_"
            members.append([(data[f"{prefix}w{i}"].astype(np.float64), data[f"{prefix}b{i}"].astype(np.float64))
                            for i in range(header["n_layers"])])
        model = DegradationModel(tuple(header["feature_names"]), tuple(header["types"]), data["mean"].astype(np.float64),
                                 data["std"].astype(np.float64), members[0], data["thresholds"].astype(np.float64),
                                 header.get("settings", {}), members[1:])
    if not set(model.feature_names) <= set(FEATURE_NAMES):
        raise FuseAgentError(f"perception weights at '{p}' were trained on other features; retrain them")
    return model
