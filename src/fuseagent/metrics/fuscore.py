"""FuScore: a learned fusion-quality score trained on human opinions (MEF) and graded orderings.

FuScore follows the idea of scoring fused images with a model that learns human preference
instead of hand-crafted statistics or "sources as pseudo ground truth": it predicts a distribution
over five quality levels (bad, poor, fair, good, excellent) whose expectation is a continuous
score in ``[1, 5]``, plus four task-specific sub-dimension scores. No multimodal LLM is available
offline, so the model here is compact: a fixed feature extractor
(:mod:`fuseagent.learned.fuscore.features`) and a small MLP ensemble, trained with soft labels and
a tripartite Thurstone-fidelity loss (:mod:`fuseagent.learned.fuscore.model`,
:mod:`fuseagent.train.fuscore`).

What it may claim (details and numbers in ``docs/FUSCORE.md``):

* ``mef`` — trained on the Waterloo MEF human scores; cross-validated by scene.
* ``ivif`` and ``mff`` — trained on controlled, graded degradations of fused images only (no
  human scores of IVIF or MFF fusion exist here): they rank "clean vs degraded" and "less vs more
  degraded", and their absolute scale is a convention, not a human opinion.

Registered metrics (``mode="fusion"``, higher is better, range ``[1, 5]``): ``fuscore_ivif``,
``fuscore_mef``, ``fuscore_mff`` and ``fuscore`` (task given as ``task=`` or guessed by
:func:`guess_task`). Weights are the small files ``fuseagent/weights/fuscore_<task>.pt``, loaded
offline (``weights_only``); :func:`with_fuscore` adds FuScore as a term of a reward (the intrinsic
reward of a fused image or HQA).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, ToolUnavailableError
from ..io import check_image
from .base import MetricCard, register_metric

__all__ = ["FuScoreResult", "FuScoreModel", "WEIGHTS_DIR", "load_fuscore", "fuscore", "fuscore_details",
           "guess_task", "fuscore_reward", "with_fuscore", "FUSCORE_TASKS"]

#: folder of the shipped weights
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
FUSCORE_TASKS: tuple[str, ...] = ("ivif", "mef", "mff")
_LEVEL_NAMES = ("bad", "poor", "fair", "good", "excellent")


@dataclass(frozen=True)
class FuScoreResult:
    """FuScore of one fused image.

    Attributes:
        score: continuous score in ``[1, 5]`` (expectation of the level distribution).
        sigma: standard deviation of the level distribution (the model's uncertainty).
        distribution: probability of each level name.
        subscores: the four task-specific sub-dimension scores in ``[1, 5]``.
        task: the task whose model scored it.
    """

    score: float
    sigma: float
    distribution: dict[str, float] = field(default_factory=dict)
    subscores: dict[str, float] = field(default_factory=dict)
    task: str = "mef"

    @property
    def unit(self) -> float:
        """The score mapped to ``[0, 1]``: ``(score − 1) / 4``."""
        return (self.score - 1.0) / 4.0


class FuScoreModel:
    """A loaded FuScore ensemble.

    Args:
        payload: the dictionary written by :func:`fuseagent.train.fuscore.save_weights`.
    """

    def __init__(self, payload: dict[str, Any]):
        import torch

        from ..learned.fuscore.features import FEATURE_NAMES
        from ..learned.fuscore.model import FuScoreNet

        if payload.get("format") != "fuscore-1":
            raise ToolUnavailableError("fuscore: weights file of an unknown format")
        self.task: str = payload["task"]
        self.feature_names: list[str] = list(payload["feature_names"])
        unknown = [n for n in self.feature_names if n not in FEATURE_NAMES]
        if unknown:
            raise ToolUnavailableError(f"fuscore: the weights use unknown features {', '.join(unknown)}")
        self.columns = np.array([FEATURE_NAMES.index(n) for n in self.feature_names])
        self.subdimensions: list[str] = list(payload["subdimensions"])
        self.side: int = int(payload["side"])
        self.record: dict[str, Any] = json.loads(payload.get("record", "{}"))
        self.members = []
        for state in payload["members"]:
            net = FuScoreNet(len(self.feature_names), int(payload["hidden"]), float(payload["dropout"]),
                             len(self.subdimensions))
            net.load_state_dict(state)
            net.eval()
            self.members.append(net)
        self._torch = torch

    def assess_features(self, features: np.ndarray) -> list[FuScoreResult]:
        """Score rows of the full feature vector ``(N, len(FEATURE_NAMES))``."""
        from ..learned.fuscore.model import expectation_and_sigma

        torch = self._torch
        x = torch.as_tensor(np.atleast_2d(np.asarray(features, dtype=np.float32))[:, self.columns])
        with torch.no_grad():
            outputs = [m(x) for m in self.members]
            probabilities = torch.stack([expectation_and_sigma(logits)[0] for logits, _ in outputs]).mean(dim=0)
            subscores = torch.stack([sub for _, sub in outputs]).mean(dim=0)
        _, mean, variance = expectation_and_sigma(torch.log(probabilities.clamp_min(1e-12)))
        results = []
        for row in range(x.shape[0]):
            results.append(FuScoreResult(
                float(mean[row]), float(variance[row].sqrt()),
                {name: float(probabilities[row, k]) for k, name in enumerate(_LEVEL_NAMES)},
                {name: float(subscores[row, k]) for k, name in enumerate(self.subdimensions)}, self.task))
        return results

    def assess(self, sources: Sequence[np.ndarray], fused: np.ndarray) -> FuScoreResult:
        """Score one fused image against its sources."""
        from ..learned.fuscore.features import fuscore_features

        return self.assess_features(fuscore_features(sources, fused, self.side)[None])[0]


def _weights_path(task: str) -> Path:
    folder = os.environ.get("FUSEAGENT_FUSCORE_DIR")
    return (Path(folder).expanduser() if folder else WEIGHTS_DIR) / f"fuscore_{task}.pt"


@functools.lru_cache(maxsize=8)
def _load(path: str) -> FuScoreModel:
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ToolUnavailableError(f"fuscore: weights {path} not found (train them: fuseagent train fuscore)") from None
    except Exception as exc:  # torch raises many types for a corrupt archive
        raise ToolUnavailableError(f"fuscore: cannot read weights {path} ({type(exc).__name__})") from None
    return FuScoreModel(payload)


def load_fuscore(task: str, weights_path: str | os.PathLike | None = None) -> FuScoreModel:
    """The FuScore model of a task (cached).

    Args:
        task: ``"ivif"``, ``"mef"`` or ``"mff"``.
        weights_path: explicit weights file; default ``fuseagent/weights/fuscore_<task>.pt``
            (or ``$FUSEAGENT_FUSCORE_DIR/fuscore_<task>.pt``).

    Raises:
        InputError: unknown task.
        ToolUnavailableError: missing or unreadable weights.
    """
    if task not in FUSCORE_TASKS:
        raise InputError(f"fuscore: unknown task '{task}' (valid: {', '.join(FUSCORE_TASKS)})")
    path = Path(weights_path) if weights_path is not None else _weights_path(task)
    return _load(str(path))


def guess_task(sources: Sequence[np.ndarray]) -> str:
    """Guess the fusion task of a stack: a grey source beside a colour one → ``ivif``; sources
    whose mean luma differ by more than 0.15 (or more than two sources) → ``mef``; else ``mff``.

    Example:
        >>> grey, colour = np.full((8, 8), 0.5, np.float32), np.full((8, 8, 3), 0.5, np.float32)
        >>> guess_task([colour, grey]), guess_task([colour * 0.2, colour]), guess_task([colour, colour])
        ('ivif', 'mef', 'mff')
    """
    images = [check_image(s, f"source {i}") for i, s in enumerate(sources)]
    if len(images) < 2:
        raise InputError(f"fuscore needs at least 2 source images, got {len(images)}")
    if len({im.ndim for im in images}) > 1:
        return "ivif"
    means = [float(im.mean()) for im in images]
    if len(images) > 2 or max(means) - min(means) > 0.15:
        return "mef"
    return "mff"


def fuscore_details(sources: Sequence[np.ndarray], fused: np.ndarray, task: str | None = None) -> FuScoreResult:
    """FuScore of a fused image with its distribution and sub-dimension scores.

    Args:
        sources: ≥ 2 source images of the fused image's size (visible first, then infrared, for IVIF).
        fused: the fused image, grey or RGB in ``[0, 1]``, at least 48×48.
        task: ``"ivif"``, ``"mef"``, ``"mff"``; None guesses it (:func:`guess_task`).

    Returns:
        :class:`FuScoreResult`.
    """
    return load_fuscore(task or guess_task(sources)).assess(sources, fused)


def fuscore(sources: Sequence[np.ndarray], fused: np.ndarray, task: str | None = None) -> float:
    """FuScore in ``[1, 5]`` (higher is better) of a fused image against its sources.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> import cv2
        >>> scene = cv2.GaussianBlur(rng.random((96, 128, 3)).astype(np.float32), (0, 0), 2)
        >>> noisy = np.clip(scene + rng.normal(0, 0.08, scene.shape), 0, 1).astype(np.float32)
        >>> fuscore([scene * 0.5, np.clip(scene * 1.6, 0, 1)], scene, "mef") > 1.0
        True
    """
    return fuscore_details(sources, fused, task).score


def fuscore_reward(sources: Sequence[np.ndarray], fused: np.ndarray, task: str | None = None) -> float:
    """FuScore mapped to a reward in ``[0, 1]``: ``(score − 1) / 4``."""
    return fuscore_details(sources, fused, task).unit


def with_fuscore(reward: Any, sources: Sequence[np.ndarray], fused: np.ndarray, *, weight: float = 1.0,
                 base_weight: float = 1.0, task: str | None = None) -> Any:
    """Add FuScore as a term of a reward of the fused image (intrinsic reward, fusion RQR or HQA).

    ``value = (base_weight · reward.value + weight · (FuScore − 1)/4) / (base_weight + weight)``;
    the returned :class:`~fuseagent.metrics.rewards.Reward` keeps the original terms and adds
    ``"fuscore"`` (the unit score) and ``"fuscore_sigma"``.

    Args:
        reward: a :class:`~fuseagent.metrics.rewards.Reward` in ``[0, 1]``.
        sources, fused: the images the reward was computed on.
        weight: weight of the FuScore term.
        base_weight: weight of the original reward.
        task: fusion task (None: guessed).

    Raises:
        InputError: negative weights or both zero.
    """
    from .rewards import Reward

    if weight < 0 or base_weight < 0 or weight + base_weight <= 0:
        raise InputError("with_fuscore: weights must be non-negative and not both 0")
    result = fuscore_details(sources, fused, task)
    value = (base_weight * float(reward.value) + weight * result.unit) / (base_weight + weight)
    return Reward(float(value), {**reward.terms, "fuscore": result.unit, "fuscore_sigma": result.sigma})


def _register(task: str | None) -> None:
    name = "fuscore" if task is None else f"fuscore_{task}"
    if task is None:
        description = "learned fusion quality in [1, 5] (task given as task= or guessed from the sources)"
        tasks = FUSCORE_TASKS
    elif task == "mef":
        description = "learned MEF quality in [1, 5], trained on Waterloo MEF human scores"
        tasks = (task,)
    else:
        description = f"learned {task.upper()} quality in [1, 5], trained on graded synthetic orderings (no human data)"
        tasks = (task,)
    card = MetricCard(name, "fusion", False, (1.0, 5.0),
                      "fuseagent FuScore (docs/FUSCORE.md); idea after the FuScore seed paper; MEF data: "
                      "Ma, Zeng & Wang, IEEE TIP 2015", description, variant="learned", tasks=tasks,
                      requires=("torch",))

    def score(sources: Sequence[np.ndarray], fused: np.ndarray, task: str | None = task) -> float:
        return fuscore(sources, fused, task)

    register_metric(card)(score)


for _task in (None, *FUSCORE_TASKS):
    _register(_task)
