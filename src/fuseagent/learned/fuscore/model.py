r"""FuScore's model, soft labels and tripartite loss.

**Model.** A standardised feature vector (:mod:`~fuseagent.learned.fuscore.features`) goes
through one hidden layer (``hidden`` units, GELU, dropout) into two heads: five logits over the
quality levels 1 (bad) … 5 (excellent) and four task-specific sub-dimension scores in ``[1, 5]``
(``1 + 4·sigmoid``). The continuous score is the expectation ``s = Σ_l l·p_l``; its uncertainty
the standard deviation ``σ = sqrt(Σ_l p_l (l − s)²)`` of the predicted distribution.

**Soft labels.** A target score ``t ∈ [1, 5]`` with sub-dimension targets ``d_1..d_4`` becomes a
distribution over the five levels. Its spread grows with the disagreement of the sub-dimensions::

    σ_t = spread_base + spread_scale · std(d_1, …, d_4)        (population standard deviation)

If ``σ_t ≥ min_spread`` the label is a Gaussian ``N(t, σ_t²)`` integrated over the level bins
``[l − ½, l + ½]``, the two outer bins open-ended (``(−∞, 1.5]`` and ``[4.5, ∞)``). If
``σ_t < min_spread`` (the sub-dimensions agree), it falls back to the two adjacent levels around
``t``: ``p_⌊t⌋ = ⌊t⌋ + 1 − t``, ``p_⌊t⌋+1 = t − ⌊t⌋`` (whose expectation is exactly ``t``).

**Tripartite loss** (weights in the config)::

    L = w_dist · KL(q ‖ p) + w_within · F(pairs of the same source set)
        + w_cross · F(pairs of different source sets) + w_sub · mean((d̂ − d)² / 16)

with the Thurstone (case V) preference ``p̂_ij = Φ((s_i − s_j) / sqrt(σ_i² + σ_j²))`` and the
fidelity loss ``F = mean(1 − sqrt(p_ij p̂_ij) − sqrt((1 − p_ij)(1 − p̂_ij)))`` (Tsai et al.,
"FRank", SIGIR 2007). The target preferences ``p_ij`` come from the data (human scores through the
same Thurstone model with the label spreads, or 1 for a known "worse than" relation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ...errors import InputError

__all__ = ["LEVELS", "FuScoreNet", "soft_label", "label_spread", "thurstone_preference", "fidelity_loss",
           "LossWeights", "tripartite_loss", "expectation_and_sigma"]

#: the five quality levels (bad, poor, fair, good, excellent)
LEVELS: tuple[int, ...] = (1, 2, 3, 4, 5)
LEVEL_NAMES: tuple[str, ...] = ("bad", "poor", "fair", "good", "excellent")


def label_spread(subscores: Sequence[float], spread_base: float = 0.0, spread_scale: float = 1.0) -> float:
    """Spread ``σ_t = spread_base + spread_scale · std(subscores)`` of a soft label.

    Example:
        >>> label_spread([4, 4, 4, 4]), round(label_spread([5, 3, 5, 3]), 3)
        (0.0, 1.0)
    """
    return float(spread_base + spread_scale * float(np.std(np.asarray(subscores, dtype=np.float64))))


def soft_label(target: float, spread: float, min_spread: float = 0.25) -> np.ndarray:
    """Distribution over the five levels for a target score (see the module docstring).

    Args:
        target: score in ``[1, 5]`` (clipped).
        spread: Gaussian standard deviation (levels).
        min_spread: below it, the two-adjacent-levels fall-back is used.

    Returns:
        float64 array of 5 probabilities summing to 1.

    Example:
        >>> soft_label(3.25, 0.1).tolist()
        [0.0, 0.0, 0.75, 0.25, 0.0]
        >>> p = soft_label(3.0, 1.0); round(float(p.sum()), 6), int(p.argmax()) + 1
        (1.0, 3)
    """
    target = float(np.clip(target, 1.0, 5.0))
    if spread < min_spread:
        out = np.zeros(5)
        low = min(int(math.floor(target)), 4)
        out[low - 1] = low + 1 - target
        out[low] = target - low
        return out
    edges = np.array([-np.inf, 1.5, 2.5, 3.5, 4.5, np.inf])
    cdf = np.array([0.5 * (1 + math.erf((e - target) / (spread * math.sqrt(2)))) if np.isfinite(e)
                    else (0.0 if e < 0 else 1.0) for e in edges])
    out = np.diff(cdf)
    return out / out.sum()


def thurstone_preference(s_i: torch.Tensor, s_j: torch.Tensor, var_i: torch.Tensor,
                         var_j: torch.Tensor) -> torch.Tensor:
    """``Φ((s_i − s_j) / sqrt(σ_i² + σ_j²))``: probability that ``i`` is preferred to ``j``.

    Example:
        >>> float(thurstone_preference(torch.tensor(3.0), torch.tensor(3.0), torch.tensor(1.0), torch.tensor(1.0)))
        0.5
    """
    z = (s_i - s_j) / torch.sqrt(var_i + var_j + 1e-6)
    return 0.5 * (1.0 + torch.erf(z / math.sqrt(2.0)))


def fidelity_loss(target: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """Mean fidelity loss ``1 − sqrt(p p̂) − sqrt((1 − p)(1 − p̂))`` (0 when they agree).

    Example:
        >>> abs(float(fidelity_loss(torch.tensor([1.0, 0.5]), torch.tensor([1.0, 0.5])))) < 1e-4
        True
    """
    eps = 1e-8
    value = 1.0 - torch.sqrt(target * predicted + eps) - torch.sqrt((1 - target) * (1 - predicted) + eps)
    return value.mean()


class FuScoreNet(nn.Module):
    """Feature standardisation, one hidden layer, a 5-level head and a 4-sub-score head.

    Args:
        n_features: length of the feature vector.
        hidden: hidden units.
        dropout: dropout probability after the hidden layer.
        n_sub: number of sub-dimensions.

    Example:
        >>> net = FuScoreNet(6, hidden=4)
        >>> logits, sub = net(torch.zeros(2, 6))
        >>> tuple(logits.shape), tuple(sub.shape)
        ((2, 5), (2, 4))
    """

    def __init__(self, n_features: int, hidden: int = 32, dropout: float = 0.1, n_sub: int = 4):
        super().__init__()
        self.register_buffer("feature_mean", torch.zeros(n_features))
        self.register_buffer("feature_std", torch.ones(n_features))
        self.body = nn.Sequential(nn.Linear(n_features, hidden), nn.GELU(), nn.Dropout(dropout))
        self.level_head = nn.Linear(hidden, len(LEVELS))
        self.sub_head = nn.Linear(hidden, n_sub)

    def set_normalisation(self, features: np.ndarray) -> None:
        """Store the mean and standard deviation of the training features."""
        x = torch.as_tensor(np.asarray(features, dtype=np.float32))
        self.feature_mean.copy_(x.mean(dim=0))
        self.feature_std.copy_(x.std(dim=0).clamp_min(1e-4))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = ((features - self.feature_mean) / self.feature_std).clamp(-8.0, 8.0)
        hidden = self.body(z)
        return self.level_head(hidden), 1.0 + 4.0 * torch.sigmoid(self.sub_head(hidden))


def expectation_and_sigma(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Probabilities, expectation ``s`` and variance ``σ²`` of the level distribution.

    Example:
        >>> p, s, v = expectation_and_sigma(torch.zeros(1, 5))
        >>> float(s[0]), float(v[0])
        (3.0, 2.0)
    """
    probabilities = torch.softmax(logits, dim=-1)
    levels = torch.arange(1, 6, dtype=probabilities.dtype)
    mean = (probabilities * levels).sum(dim=-1)
    variance = (probabilities * (levels - mean[..., None]) ** 2).sum(dim=-1)
    return probabilities, mean, variance


@dataclass(frozen=True)
class LossWeights:
    """Weights of the tripartite loss (0 removes a term: the ablations).

    Attributes:
        dist: KL divergence to the soft label.
        within: Thurstone fidelity over pairs of the same source set (method-level ordering).
        cross: Thurstone fidelity over pairs of different source sets (scene-level ordering).
        sub: squared error of the sub-dimension scores (auxiliary).
    """

    dist: float = 1.0
    within: float = 1.0
    cross: float = 0.5
    sub: float = 0.2


def tripartite_loss(logits: torch.Tensor, sub_pred: torch.Tensor, labels: torch.Tensor, sub_target: torch.Tensor,
                    within: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                    cross: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                    weights: LossWeights) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted loss and its terms.

    Args:
        logits: (N, 5) level logits.
        sub_pred: (N, 4) predicted sub-scores.
        labels: (N, 5) soft labels.
        sub_target: (N, 4) sub-dimension targets.
        within: ``(i, j, p)`` index tensors and target preferences of same-set pairs.
        cross: the same for pairs of different sets.
        weights: term weights.

    Returns:
        ``(loss, {term: value})``.

    Raises:
        InputError: every weight is 0.
    """
    if weights.dist <= 0 and weights.within <= 0 and weights.cross <= 0 and weights.sub <= 0:
        raise InputError("fuscore: every loss weight is 0")
    probabilities, mean, variance = expectation_and_sigma(logits)
    total = logits.new_zeros(())
    terms: dict[str, float] = {}
    if weights.dist > 0:
        log_p = torch.log_softmax(logits, dim=-1)
        kl = (labels * (torch.log(labels.clamp_min(1e-8)) - log_p)).sum(dim=-1).mean()
        total = total + weights.dist * kl
        terms["dist"] = float(kl.detach())
    for name, pairs, weight in (("within", within, weights.within), ("cross", cross, weights.cross)):
        i, j, target = pairs
        if weight > 0 and len(i):
            predicted = thurstone_preference(mean[i], mean[j], variance[i], variance[j])
            value = fidelity_loss(target, predicted)
            total = total + weight * value
            terms[name] = float(value.detach())
    if weights.sub > 0:
        value = ((sub_pred - sub_target) ** 2).mean() / 16.0
        total = total + weights.sub * value
        terms["sub"] = float(value.detach())
    return total, terms
