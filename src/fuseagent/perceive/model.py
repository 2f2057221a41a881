"""The small learned degradation classifier (numpy inference).

A two-hidden-layer perceptron over the standardised measured features
(:data:`~.features.FEATURE_NAMES`) with two heads per degradation type: a presence logit and a
continuous severity (1..5). It is trained on synthesised data by :mod:`fuseagent.perceive.train`
and shipped as ``perceive_weights.npz`` (a few tens of kB) beside this module, together with the
per-type decision thresholds and the relational thresholds tuned on the same data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FuseAgentError
from .features import FEATURE_NAMES

__all__ = ["WEIGHTS_PATH", "DegradationModel", "load_model"]

WEIGHTS_PATH = Path(__file__).with_name("perceive_weights.npz")


@dataclass
class DegradationModel:
    """Loaded classifier: standardisation, layers, types, thresholds and relational settings."""

    feature_names: tuple[str, ...]
    types: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    layers: list[tuple[np.ndarray, np.ndarray]]
    thresholds: np.ndarray
    settings: dict[str, Any]

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities ``(N, T)`` and severities ``(N, T)`` (clipped to 1..5) for feature rows."""
        x = (np.atleast_2d(features).astype(np.float64) - self.mean) / self.std
        x = np.nan_to_num(np.clip(x, -8, 8))
        for i, (w, b) in enumerate(self.layers):
            x = x @ w + b
            if i < len(self.layers) - 1:
                x = np.maximum(x, 0.0)
        t = len(self.types)
        prob = 1.0 / (1.0 + np.exp(-np.clip(x[:, :t], -30, 30)))
        severity = np.clip(x[:, t:2 * t], 1.0, 5.0)
        return prob, severity

    def save(self, path: str | Path) -> None:
        """Write the model as ``.npz`` (arrays + a JSON header)."""
        arrays: dict[str, Any] = {"mean": self.mean, "std": self.std, "thresholds": self.thresholds}
        for i, (w, b) in enumerate(self.layers):
            arrays[f"w{i}"] = w.astype(np.float32)
            arrays[f"b{i}"] = b.astype(np.float32)
        header = {"feature_names": list(self.feature_names), "types": list(self.types),
                  "n_layers": len(self.layers), "settings": self.settings}
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        np.savez_compressed(path, **arrays)


@lru_cache(maxsize=4)
def load_model(path: str | None = None) -> DegradationModel:
    """Load the shipped (or another) classifier.

    Raises:
        FuseAgentError: the weights are missing or were trained on other features.
    """
    p = Path(path) if path else WEIGHTS_PATH
    if not p.is_file():
        raise FuseAgentError(f"perception weights not found at '{p}' (train them: python -m fuseagent.perceive.train)")
    with np.load(p) as data:
        header = json.loads(bytes(data["header"]).decode())
        layers = [(data[f"w{i}"].astype(np.float64), data[f"b{i}"].astype(np.float64)) for i in range(header["n_layers"])]
        model = DegradationModel(tuple(header["feature_names"]), tuple(header["types"]), data["mean"].astype(np.float64),
                                 data["std"].astype(np.float64), layers, data["thresholds"].astype(np.float64),
                                 header.get("settings", {}))
    if model.feature_names != FEATURE_NAMES:
        raise FuseAgentError(f"perception weights at '{p}' were trained on other features; retrain them")
    return model
