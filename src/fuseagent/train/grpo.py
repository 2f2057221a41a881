r"""GRPO-F: group-relative policy optimisation of the planning policy with quality rewards.

For each training pair the policy samples a group of ``G`` trajectories (grammar-constrained, so
every one is valid protocol). Each is executed in the cached environment (the data engine's
:class:`~fuseagent.data.search.SearchEnvironment` over a content-hash tool-call cache, so the
trajectories the dataset's search already ran cost nothing) and rewarded with the seed paper's
components (:mod:`fuseagent.metrics.rewards`, computed as the agent's reflection computes them,
:class:`fuseagent.agent.Reflector`):

* per pre-fusion step ``i``: ``r_i = (w_i · R_intrinsic,i + w_r · R_relational,i) / (w_i + w_r)``
  (IQR gain mapped to ``[0, 1]``, 0.5 = no change; the RQR of what the step changed). As in the
  agent's reflection, registration and flow steps are judged by their alignment reward alone
  (``w_i = 0`` there: a warp's empty borders lower no-reference quality whatever the alignment),
  unless ``w_r = 0`` (the IQR-only ablation) or ``alignment_relational_only`` is off;
* for the fusion step: ``R_fusion`` (the fusion RQR of the fused image against its sources);
* the trajectory: ``R = (w_f · R_fusion + w_s · mean_i r_i) / (w_f + w_s)`` — HQA's form; with no
  pre-fusion step, ``R = R_fusion``. A trajectory whose execution fails gets ``R = 0``.

Advantages are group-normalised, ``A_g = (R_g − mean(R)) / std(R)`` (0 for a uniform group) (:func:`group_advantages`).
With ``adaptive`` (TIR-Agent's adaptive re-weighting) each component — intrinsic, relational,
fusion — is z-scored within the group first and the advantage is their weighted mean, re-scaled to
unit standard deviation (:func:`adaptive_advantages`), so no component dominates the update by
its spread alone. The objective is PPO's clipped surrogate per token with a KL penalty to the frozen
SFT reference (the unbiased ``k3`` estimator, as in DeepSeekMath's GRPO)::

    L = −mean_g mean_t [ min(ρ_t A_g, clip(ρ_t, 1−ε, 1+ε) A_g) − β (e^{ℓ_ref − ℓ} − (ℓ_ref − ℓ) − 1) ]

with ``ρ_t = exp(ℓ_t − ℓ_t^{old})``; each sampled batch is used for ``inner_epochs`` updates.

Choice of hyper-parameters for this model (configs/grpo.json): ``G = 4`` and ``β = 0.1`` as in the
seed paper; the learning rate is ``1e-4`` rather than the paper's ``1e-6``, because the paper
fine-tunes a 7 B-parameter pretrained VLM (tiny steps keep it near its prior) whereas this policy
has ~0.3 M parameters trained from scratch, whose Adam updates at ``1e-6`` would not move it
measurably within the few thousand rollouts 2 CPU cores allow; the KL penalty and the clipping keep
it near the SFT reference instead.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .sft import (_check_datasets, _load_all, _record_images, examples_from_records, load_config, parse_overrides,
                  settings_from, split_examples)

__all__ = ["GRPOSettings", "TrajectoryReward", "EnvironmentReward", "combine_reward", "group_advantages",
           "adaptive_advantages", "grpo_loss", "train_grpo", "add_arguments", "run"]

COMPONENTS = ("intrinsic", "relational", "fusion")


@dataclass(frozen=True)
class GRPOSettings:
    """Settings of a GRPO-F run (a JSON config holds any subset).

    Attributes:
        datasets: dataset folders (their pairs are the training prompts; the records' ``suite_dir``
            gives the images, the folder's ``cache/`` the tool-call cache).
        init: SFT weights to start from and to stay close to (None: a fresh policy, the "RL only"
            ablation, with the KL term off).
        group: trajectories sampled per pair (``G``).
        pairs_per_step: pairs per policy update.
        steps: sampling rounds; ``inner_epochs``: updates per round.
        lr, clip, kl: Adam learning rate, PPO clip ``ε``, KL weight ``β``.
        temperature: sampling temperature.
        w_intrinsic, w_relational: step reward weights (IQR only: ``w_relational = 0``; RQR only:
            ``w_intrinsic = 0``).
        w_fusion, w_steps: weights of the fusion reward and of the mean step reward.
        adaptive: per-component group normalisation (TIR-Agent's adaptive re-weighting).
        alignment_relational_only: judge registration / flow steps by their relational reward only.
        reflect_size: rewards are computed on copies of at most this side.
        val_fraction: pairs held out (by key hash, as in SFT) for the greedy-reward evaluation.
        eval_every: rounds between evaluations of the greedy plans' reward on held-out pairs
            (0: only at the end); ``eval_pairs``: at most this many held-out pairs.
        seed, threads, time_budget_s, out: as in SFT.
    """

    datasets: tuple[str, ...] = ()
    init: str | None = "out/train/policy/sft.pt"
    group: int = 4
    pairs_per_step: int = 4
    steps: int = 200
    inner_epochs: int = 2
    lr: float = 1e-4
    clip: float = 0.2
    kl: float = 0.1
    temperature: float = 1.0
    w_intrinsic: float = 1.0
    w_relational: float = 1.0
    w_fusion: float = 3.0
    w_steps: float = 1.0
    adaptive: bool = False
    alignment_relational_only: bool = True
    reflect_size: int = 256
    val_fraction: float = 0.1
    eval_every: int = 25
    eval_pairs: int = 16
    seed: int = 0
    threads: int = 1
    time_budget_s: float = 0.0
    out: str = "out/train/policy/grpo.pt"

    def check(self) -> None:
        _check_datasets(self.datasets)
        if self.group < 2:
            raise InputError("group must be at least 2 (advantages are relative to the group)")
        if self.pairs_per_step < 1 or self.steps < 0 or self.inner_epochs < 1 or self.threads < 1:
            raise InputError("pairs_per_step >= 1, steps >= 0, inner_epochs >= 1 and threads >= 1 are required")
        if self.lr <= 0 or not 0 < self.clip < 1 or self.kl < 0 or self.temperature <= 0:
            raise InputError("lr > 0, 0 < clip < 1, kl >= 0 and temperature > 0 are required")
        weights = (self.w_intrinsic, self.w_relational, self.w_fusion, self.w_steps)
        if min(weights) < 0 or self.w_fusion + self.w_steps <= 0:
            raise InputError("reward weights must be >= 0 and w_fusion + w_steps > 0")
        if self.w_steps > 0 and self.w_intrinsic + self.w_relational <= 0:
            raise InputError("w_intrinsic + w_relational must be > 0 when w_steps > 0")


@dataclass
class TrajectoryReward:
    """Reward of one executed trajectory and its components (all in ``[0, 1]``).

    Attributes:
        total: the trajectory reward ``R``.
        intrinsic, relational: mean over pre-fusion steps (0.5, "no change", when there are none).
        fusion: the fusion reward.
        steps: number of pre-fusion steps; ``error``: why it failed (then every value is 0).
    """

    total: float
    intrinsic: float = 0.5
    relational: float = 0.5
    fusion: float = 0.0
    steps: int = 0
    error: str | None = None

    def components(self) -> list[float]:
        return [self.intrinsic, self.relational, self.fusion]


def combine_reward(step_scores: Sequence[Mapping[str, float]], fusion: float, *, w_intrinsic: float = 1.0,
                   w_relational: float = 1.0, w_fusion: float = 3.0, w_steps: float = 1.0) -> TrajectoryReward:
    """The trajectory reward from its steps' ``intrinsic``/``relational`` scores and its fusion reward.

    A step score with ``"alignment": True`` is judged by its relational reward alone (when
    ``w_relational > 0``); its ``intrinsic`` may then be None (not computed; left out of the mean).

    Example:
        >>> r = combine_reward([{"intrinsic": 0.7, "relational": 0.5}], 0.6)
        >>> round(r.total, 4), r.intrinsic, r.steps
        (0.6, 0.7, 1)
        >>> combine_reward([], 0.42).total
        0.42
    """
    if not step_scores:
        return TrajectoryReward(float(fusion), fusion=float(fusion))
    rated = [s["intrinsic"] for s in step_scores if s.get("intrinsic") is not None]
    intrinsic = float(np.mean(rated)) if rated else 0.5
    relational = float(np.mean([s["relational"] for s in step_scores]))
    per_step = []
    for s in step_scores:
        wi = 0.0 if s.get("alignment") and w_relational > 0 else w_intrinsic
        per_step.append((wi * (s["intrinsic"] if wi > 0 else 0.0) + w_relational * s["relational"]) / (wi + w_relational))
    total = (w_fusion * fusion + w_steps * float(np.mean(per_step))) / (w_fusion + w_steps)
    return TrajectoryReward(float(total), intrinsic, relational, float(fusion), len(step_scores))


class EnvironmentReward:
    """Executes trajectories in the cached environment and rewards them (see the module docstring).

    Args:
        settings: the reward weights and ``reflect_size``.
        cache_dir: disk layer of the tool-call cache (the dataset's ``cache/``; None: memory only).
    """

    def __init__(self, settings: GRPOSettings, cache_dir: str | Path | None = None):
        from ..agent import Reflector
        from ..data.cache import ToolCallCache
        from ..data.search import ToolPool

        self.settings = settings
        self.pool = ToolPool(ToolCallCache(cache_dir))
        self.reflector = Reflector(max_side=settings.reflect_size)
        self._images: dict[str, list[np.ndarray]] = {}

    def images(self, record: Mapping[str, Any]) -> list[np.ndarray]:
        key = record["key"]
        if key not in self._images:
            from ..agent import Reflector

            # one pair at a time, with a fresh reflector (its thumbnails hold the pair's images): memory stays flat
            self._images = {key: _record_images(record)}
            self.reflector = Reflector(max_side=self.settings.reflect_size)
        return self._images[key]

    def __call__(self, record: Mapping[str, Any], actions: Sequence[Any]) -> TrajectoryReward:
        from ..agent import ALIGNMENT_TASKS
        from ..data.search import SearchEnvironment

        s = self.settings
        task = record["task"]
        env = SearchEnvironment(self.pool)
        try:
            execution = env.run(self.images(record), task, list(actions))
            scores = []
            for i, action in enumerate(execution.actions[:-1]):
                before, after = execution.states[i], execution.states[i + 1]
                record_i = execution.steps[i]
                score = self.reflector.score_step(before.images, after.images, record_i.targets, task, action.task,
                                                  record_i.info, after.masks)
                alignment = action.task in ALIGNMENT_TASKS
                intrinsic = score.get("intrinsic")
                if intrinsic is None and not (alignment and s.alignment_relational_only and s.w_relational > 0):
                    # the step reflection skips it for alignment steps; this reward weighs it in
                    intrinsic = self.reflector.intrinsic_step(before.images, after.images, record_i.targets)
                scores.append({"intrinsic": None if intrinsic is None else min(1.0, max(0.0, intrinsic)),
                               "relational": min(1.0, max(0.0, score["relational"])),
                               "alignment": s.alignment_relational_only and alignment})
            sources = list(execution.states[-2].images.values())
            fusion = self.reflector.score_fusion(sources, execution.fused, task)["fusion"]
        except Exception as exc:  # a trajectory that does not run on this pair earns nothing
            return TrajectoryReward(0.0, 0.0, 0.0, 0.0, len(actions) - 1, f"{type(exc).__name__}: {exc}")
        return combine_reward(scores, fusion, w_intrinsic=s.w_intrinsic, w_relational=s.w_relational,
                              w_fusion=s.w_fusion, w_steps=s.w_steps)


def group_advantages(rewards: Sequence[float], eps: float = 1e-6) -> np.ndarray:
    """Group-normalised advantages ``(R − mean) / std`` (all 0 when ``std < eps``: a uniform group).

    Example:
        >>> group_advantages([1.0, 0.0, 0.5, 0.5]).round(4).tolist()
        [1.4142, -1.4142, 0.0, 0.0]
        >>> group_advantages([0.3, 0.3]).tolist()
        [0.0, 0.0]
    """
    r = np.asarray(rewards, np.float64)
    std = float(r.std())
    if std < eps:
        return np.zeros_like(r)
    return (r - r.mean()) / std


def adaptive_advantages(components: np.ndarray, weights: Sequence[float], eps: float = 1e-6) -> np.ndarray:
    """Per-component group normalisation (TIR-Agent's adaptive re-weighting).

    Each column of ``components`` ``(G, C)`` is z-scored within the group (a column that does not
    vary contributes 0), the advantage is their ``weights``-weighted mean, and the result is
    re-scaled to unit standard deviation.

    Example:
        >>> c = np.array([[0.5, 0.5, 0.9], [0.5, 0.5, 0.1], [0.9, 0.5, 0.5], [0.1, 0.5, 0.5]])
        >>> adaptive_advantages(c, [1.0, 1.0, 1.0]).round(4).tolist()
        [1.0, -1.0, 1.0, -1.0]
    """
    c = np.asarray(components, np.float64)
    w = np.asarray(weights, np.float64)
    z = np.zeros_like(c)
    for k in range(c.shape[1]):
        z[:, k] = group_advantages(c[:, k], eps)
    mixed = (z * w).sum(axis=1) / max(w.sum(), eps)
    std = float(mixed.std())
    return mixed / std if std >= eps else np.zeros_like(mixed)


def grpo_loss(logp: Any, logp_old: Any, logp_ref: Any | None, advantages: Any, weights: Any, clip: float,
              kl: float) -> tuple[Any, dict[str, float]]:
    """Clipped surrogate with a ``k3`` KL penalty, averaged per sequence then over the batch.

    Args:
        logp, logp_old, logp_ref: token log-probabilities ``(B, T)`` under the current, sampling and
            reference policies (``logp_ref`` None: no KL term).
        advantages: ``(B,)`` sequence advantages.
        weights: ``(B, T)`` 1 for real tokens, 0 for padding.
        clip: ``ε``; kl: ``β``.

    Returns:
        The loss (a scalar tensor) and statistics (``kl``, ``clip_fraction``, ``ratio``).

    Example:
        >>> import torch
        >>> lp = torch.zeros(2, 3); w = torch.ones(2, 3)
        >>> loss, stats = grpo_loss(lp, lp, lp, torch.tensor([1.0, -1.0]), w, 0.2, 0.1)
        >>> float(loss), stats["kl"], stats["clip_fraction"]
        (0.0, 0.0, 0.0)
    """
    import torch

    ratio = torch.exp(logp - logp_old)
    adv = advantages.unsqueeze(1)
    surrogate = torch.minimum(ratio * adv, torch.clamp(ratio, 1 - clip, 1 + clip) * adv)
    per_token = -surrogate
    kl_term = torch.zeros_like(logp)
    if logp_ref is not None and kl > 0:
        delta = logp_ref - logp
        kl_term = torch.exp(delta) - delta - 1
        per_token = per_token + kl * kl_term
    counts = weights.sum(dim=1).clamp(min=1)
    loss = ((per_token * weights).sum(dim=1) / counts).mean()
    with torch.no_grad():
        clipped = ((ratio - 1).abs() > clip).float()
        stats = {"kl": float(((kl_term * weights).sum(dim=1) / counts).mean()),
                 "clip_fraction": float((clipped * weights).sum() / weights.sum()),
                 "ratio": float((ratio * weights).sum() / weights.sum())}
    return loss, stats


RewardFn = Callable[[Mapping[str, Any], Sequence[Any]], TrajectoryReward]


def _greedy_reward(model: Any, examples: Sequence[Any], records: Mapping[str, Mapping[str, Any]],
                   reward_fn: RewardFn) -> dict[str, float]:
    from ..learned.policy import decode_actions, generate

    if not examples:
        return {"n": 0}
    samples = generate(model, [e.input for e in examples], greedy=True)
    rewards = [reward_fn(records[e.key], decode_actions(model.vocab, s.ids)[1]) for e, s in zip(examples, samples)]
    return {"n": len(examples), "reward": float(np.mean([r.total for r in rewards])),
            "fusion": float(np.mean([r.fusion for r in rewards])),
            "steps": float(np.mean([r.steps for r in rewards])),
            "failed": sum(r.error is not None for r in rewards)}


def train_grpo(settings: GRPOSettings, *, records: Sequence[Mapping[str, Any]] | None = None,
               image_loader: Callable[[Mapping[str, Any]], list[np.ndarray]] | None = None,
               reward_fn: RewardFn | None = None, init_model: Any = None,
               log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Refine the policy with GRPO-F; writes weights, record (``.json``) and reward curve (``.png``).

    Args:
        settings: the run's settings.
        records: dataset records instead of ``settings.datasets`` (tests).
        image_loader: ``loader(record) -> images`` instead of the suite files (tests).
        reward_fn: ``reward_fn(record, actions) -> TrajectoryReward`` instead of executing in the
            environment (tests, experiments).
        init_model: a policy to start from instead of loading ``settings.init``.
        log: called with one line per round.

    Returns:
        The training record: settings, curve (per round: mean / max group reward, KL, clip
        fraction), held-out greedy rewards before and after, seconds.
    """
    import copy

    import torch

    from ..learned.policy import PolicyNet, build_vocab, decode_actions, generate, load_policy, save_policy
    from ..learned.policy.model import Grammar, collate_inputs, grammar_masks, pad_sequences, sequence_logprobs
    from ..learned.policy.plot import plot_curves

    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    if init_model is not None:
        model = copy.deepcopy(init_model)
    elif settings.init:
        model, _ = load_policy(settings.init)
    else:
        model = PolicyNet(build_vocab())
    reference = copy.deepcopy(model) if (settings.init or init_model is not None) and settings.kl > 0 else None
    if reference is not None:
        reference.eval()
        for p in reference.parameters():
            p.requires_grad_(False)
    all_records = list(records) if records is not None else _load_all(settings.datasets)
    by_key = {r["key"]: r for r in all_records if not r.get("error")}
    data = examples_from_records(all_records, model.vocab, image_size=model.config.image_size,
                                 max_steps=model.config.max_steps, perturbed=False, image_loader=image_loader)
    train, val = split_examples(data.examples, settings.val_fraction, settings.seed)
    if not train:
        raise InputError(f"no training pair ({data.stats})")
    val = val[: settings.eval_pairs]
    if reward_fn is None:
        cache = Path(settings.datasets[0]) / "cache" if settings.datasets else None
        reward_fn = EnvironmentReward(settings, cache if cache is not None and cache.is_dir() else None)
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.lr)
    weights_c = [settings.w_steps * settings.w_intrinsic / max(settings.w_intrinsic + settings.w_relational, 1e-9),
                 settings.w_steps * settings.w_relational / max(settings.w_intrinsic + settings.w_relational, 1e-9),
                 settings.w_fusion]
    t0 = time.perf_counter()
    before = _greedy_reward(model, val, by_key, reward_fn)
    curve: list[dict[str, Any]] = []
    rounds = 0
    for step in range(settings.steps):
        if settings.time_budget_s and time.perf_counter() - t0 > settings.time_budget_s:
            break
        picks = rng.choice(len(train), size=min(settings.pairs_per_step, len(train)), replace=False)
        prompts = [train[i] for i in picks for _ in range(settings.group)]
        samples = generate(model, [e.input for e in prompts], temperature=settings.temperature, generator=generator)
        rewards = [reward_fn(by_key[e.key], decode_actions(model.vocab, s.ids)[1]) for e, s in zip(prompts, samples)]
        advantages = np.zeros(len(prompts))
        for g in range(len(picks)):
            part = slice(g * settings.group, (g + 1) * settings.group)
            group = rewards[part]
            if settings.adaptive:
                advantages[part] = adaptive_advantages(np.array([r.components() for r in group]), weights_c)
            else:
                advantages[part] = group_advantages([r.total for r in group])
        sequences = [s.ids for s in samples]
        ids, token_weights = pad_sequences(sequences, model.vocab.pad)
        grammars = [Grammar(model.vocab, e.input.task, e.input.n_images, max_steps=model.config.max_steps)
                    for e in prompts]
        masks = grammar_masks(grammars, sequences, ids.shape[1])
        batch_inputs = collate_inputs([e.input for e in prompts])
        adv = torch.tensor(advantages, dtype=torch.float32)
        with torch.no_grad():
            logp_old = sequence_logprobs(model, model.context(*batch_inputs), ids, masks)
            logp_ref = (sequence_logprobs(reference, reference.context(*batch_inputs), ids, masks)
                        if reference is not None else None)
        stats: dict[str, float] = {}
        model.train()
        for _ in range(settings.inner_epochs):
            logp = sequence_logprobs(model, model.context(*batch_inputs), ids, masks)
            loss, stats = grpo_loss(logp, logp_old, logp_ref, adv, token_weights, settings.clip, settings.kl)
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
        rounds = step + 1
        totals = [r.total for r in rewards]
        point: dict[str, Any] = {"step": rounds, "reward": float(np.mean(totals)), "reward_max": float(np.max(totals)),
                                 "fusion": float(np.mean([r.fusion for r in rewards])),
                                 "failed": sum(r.error is not None for r in rewards),
                                 "errors": sorted({r.error[:160] for r in rewards if r.error})[:3],
                                 "loss": loss.item(), **stats,
                                 "seconds": round(time.perf_counter() - t0, 2)}
        if val and settings.eval_every and rounds % settings.eval_every == 0:
            point["val_reward"] = _greedy_reward(model, val, by_key, reward_fn).get("reward")
        curve.append(point)
        if log:
            log(json.dumps(point))
    after = _greedy_reward(model, val, by_key, reward_fn)
    record = {"stage": "grpo", "settings": asdict(settings), "data": data.stats, "train_pairs": len(train),
              "val_pairs": len(val), "rounds": rounds, "seconds": round(time.perf_counter() - t0, 2),
              "curve": curve, "val_before": before, "val_after": after}
    out = Path(settings.out)
    save_policy(out, model, record)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2, default=float) + "\n")
    series = {"group reward (mean)": [(p["step"], p["reward"]) for p in curve]}
    evals = [(p["step"], p["val_reward"]) for p in curve if p.get("val_reward") is not None]
    if evals:
        series["held-out greedy reward"] = evals
    plot_curves(out.with_suffix(".png"), series, "GRPO-F: reward per round")
    return record


def add_arguments(p: Any) -> None:
    """Arguments of ``fuseagent train grpo``."""
    p.add_argument("--config", type=Path, default=None, help="JSON settings (see configs/grpo.json)")
    p.add_argument("--dataset", dest="datasets", action="append", default=None,
                   help="dataset folder (repeatable; overrides the config's datasets)")
    p.add_argument("--init", default=None, help="SFT weights to start from (overrides the config)")
    p.add_argument("--steps", type=int, default=None, help="sampling rounds (overrides the config)")
    p.add_argument("--adaptive", action="store_true", default=None, help="adaptive per-component re-weighting")
    p.add_argument("--time-budget", type=float, default=None, dest="time_budget_s", help="stop after this many seconds")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out", default=None, help="weight file to write")
    p.add_argument("--set", dest="overrides", action="append", default=None, metavar="KEY=VALUE",
                   help="override any setting, e.g. --set w_relational=0 (IQR only), --set init=null (RL only)")
    p.add_argument("--json", action="store_true", help="print the training record as JSON at the end")


def run(args: Any) -> int:
    """``fuseagent train grpo``.

    Ablations of the seed paper's Table 4 are overrides of one config: ``--set init=null`` (RL
    only), ``--set w_relational=0`` (IQR only), ``--set w_intrinsic=0`` (RQR only),
    ``--set adaptive=true`` (adaptive re-weighting), each with its own ``--out``.
    """
    values = load_config(args.config)
    values.update(parse_overrides(getattr(args, "overrides", None)))
    for key in ("datasets", "init", "steps", "adaptive", "time_budget_s", "threads", "out"):
        if getattr(args, key, None) is not None:
            values[key] = getattr(args, key)
    settings = settings_from(GRPOSettings, values)
    record = train_grpo(settings, log=lambda line: print(line, file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(record, indent=2, default=float))
    else:
        before = record["val_before"].get("reward", float("nan"))
        after = record["val_after"].get("reward", float("nan"))
        print(f"grpo: {record['rounds']} rounds in {record['seconds']}s; held-out greedy reward "
              f"{before:.4f} -> {after:.4f}; weights {settings.out}")
    return 0
