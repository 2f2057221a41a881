"""The ``learned`` planner: the compact vision-language policy trained by SFT and GRPO-F.

It looks at the downscaled pair, the fusion task and the perception report
(:mod:`fuseagent.learned.policy`), writes the perceived-degradation tags and the actions token by
token under the protocol grammar (so its plan is always valid), and renders the ``<think>`` text
from its tags as the training data's rationales are written
(:func:`fuseagent.data.rationale.template_rationale`). Rolled-back steps are replaced by the other
models of the same task and target, ranked by the policy's own probabilities at that position.

With ``candidates=k`` (k > 1) it writes its ``k`` most probable plans (beam search over the actions,
:func:`fuseagent.learned.policy.beam_plans`), executes them in the run's environment (shared
prefixes once, as the oracle does: :func:`fuseagent.plan.oracle.score_trajectories`) and keeps the
one with the highest HQA: a test-time search over the policy's own proposals, a few tool calls
instead of the oracle's hundreds.

Weights are read from an explicit local path: the ``weights=`` option, else the environment
variable ``FUSEAGENT_POLICY_WEIGHTS``, else the shipped ``fuseagent/weights/policy.pt``
(:data:`SHIPPED_WEIGHTS`: SFT on 678 synthesised training pairs, then GRPO-F; its decision benchmark
is in docs/BENCHMARKS.md). With ``candidates=VALIDATED_CANDIDATES`` it is the default planner of
``fuseagent fuse``: on the decision benchmark's test suites it beats every other planner in each task and
reaches 97.6 / 99.6 / 99.0 % (IVIF / MEF / MFF) of the oracle's HQA with 20× fewer tool executions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..protocol import Action, Trajectory
from .base import PlanContext, Planner, PlannerCard, register_planner

__all__ = ["LearnedPlanner", "WEIGHTS_ENV", "SHIPPED_WEIGHTS", "VALIDATED_CANDIDATES"]

#: environment variable naming the policy weights when ``weights=`` is not given
WEIGHTS_ENV = "FUSEAGENT_POLICY_WEIGHTS"

#: candidates of ``fuseagent fuse``'s default planner: the K chosen with the shipped weights on validation suites
#: (docs/BENCHMARKS.md, section on choosing the weights and K)
VALIDATED_CANDIDATES = 5

#: the policy shipped with the package (used when neither ``weights=`` nor the variable is set)
SHIPPED_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "policy.pt"


@register_planner
class LearnedPlanner(Planner):
    """Plans with a trained policy.

    Args:
        weights: path of the policy weights (:func:`fuseagent.learned.policy.save_policy`); default
            ``$FUSEAGENT_POLICY_WEIGHTS``, else :data:`SHIPPED_WEIGHTS` when installed.
        temperature: 0 decodes greedily (deterministic); above 0 samples, seeded by the context's seed.
        threads: torch CPU threads used while planning.
        candidates: plans proposed and executed to pick the best by HQA (1: the greedy plan alone;
            above 1 the planner needs the images, and runs tools while planning). A plan chosen so
            has been executed and rated already, so the agent does not reflect on it again (as for
            the oracle).
        score_side: with ``candidates`` > 1, score the candidates' results on copies whose longest
            side is at most this many px (:func:`~fuseagent.plan.oracle.downscaled_hqa_scorer`);
            None scores them at full size.

    Raises:
        InputError: (when planning) no weights given, or the file is not a policy.
    """

    card = PlannerCard("learned", "compact vision-language policy trained by SFT then GRPO-F; shipped weights; "
                                  "the default of fuseagent fuse (best of 5)")

    def __init__(self, weights: str | os.PathLike | None = None, temperature: float = 0.0, threads: int = 1,
                 candidates: int = 1, score_side: int | None = None):
        if int(candidates) < 1:
            raise InputError(f"planner 'learned': candidates must be at least 1, not {candidates}")
        if score_side is not None and int(score_side) < 16:
            raise InputError(f"planner 'learned': score_side must be at least 16 px, not {score_side}")
        self.candidates = int(candidates)
        self.score_side = None if score_side is None else int(score_side)
        self.reflect = self.candidates == 1
        weights = weights if weights is not None else os.environ.get(WEIGHTS_ENV) or None
        if weights is None and SHIPPED_WEIGHTS.is_file():
            weights = SHIPPED_WEIGHTS
        self.weights = Path(weights) if weights is not None else None
        self.temperature = float(temperature)
        self.threads = int(threads)
        self._model: Any = None
        self._last: dict[str, Any] = {}

    def model(self) -> Any:
        """The loaded policy (loaded once)."""
        if self._model is None:
            if self.weights is None:
                raise InputError(f"planner 'learned' needs its weights: weights=PATH or ${WEIGHTS_ENV} (train them "
                                 f"with fuseagent train sft / grpo; the shipped {SHIPPED_WEIGHTS.name} is missing)")
            from ..learned.policy import load_policy

            self._model, _ = load_policy(self.weights)
        return self._model

    def plan(self, context: PlanContext) -> Trajectory:
        import torch

        from ..data.rationale import template_rationale
        from ..learned.policy import beam_plans, decode_actions, findings_from_tags, generate, policy_input

        model = self.model()
        images = [context.images[r] for r in context.roles if r in context.images]
        if len(images) < 2:
            images = [np.zeros((model.config.image_size,) * 2, np.float32)] * 2
        x = policy_input(images, context.task, context.report, context.findings, context.roles,
                         model.config.image_size)
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            generator = torch.Generator().manual_seed(int(context.seed) & 0xFFFFFFFF)
            sample = generate(model, [x], greedy=self.temperature <= 0, temperature=max(self.temperature, 1e-6),
                              generator=generator)[0]
            proposals = beam_plans(model, x, self.candidates) if self.candidates > 1 and context.images else []
        finally:
            torch.set_num_threads(previous)
        tags, actions = decode_actions(model.vocab, sample.ids)
        self._last = {"ids": sample.ids, "step_probs": sample.step_probs, "task": context.task}
        note = ""
        if proposals:
            actions, note = self._best_of(context, [actions] + [decode_actions(model.vocab, p.ids)[1] for p in proposals])
        think = template_rationale(findings_from_tags(tags), actions, context.task)
        return Trajectory(tuple(actions), f"{think} {note}" if note else think)

    def _best_of(self, context: PlanContext, plans: list[list[Action]]) -> tuple[list[Action], str]:
        """The plan with the highest HQA among distinct ``plans`` (executed in the context's environment)."""
        from ..execute import Environment
        from .oracle import downscaled_hqa_scorer, score_trajectories

        distinct = list({tuple(a.text() for a in p): p for p in plans}.values())
        env = context.environment or Environment()
        state0, _ = env.initial_state(dict(context.images), context.task)
        scorer = downscaled_hqa_scorer(self.score_side) if self.score_side else None
        results = score_trajectories(env, state0, context.task, distinct, scorer)
        scored = [r for r in results if r["score"] is not None and np.isfinite(r["score"])]
        if not scored:
            return plans[0], "None of the proposed plans ran; keeping the first."
        best = max(scored, key=lambda r: r["score"])
        return list(best["trajectory"]), (f"Tried my {len(distinct)} most likely plans; "
                                          f"kept the best (HQA {best['score']:.4f}).")

    def alternatives(self, context: PlanContext, action: Action) -> list[Action]:
        """Other models for the task and target of ``action``, most probable under the policy first
        (the library's order for the ones the policy did not score)."""
        fallback = super().alternatives(context, action)
        if not self._last or self._last.get("task") != context.task:
            return fallback
        from ..learned.policy.vocab import action_token, token_action

        vocab = self.model().vocab
        ids = self._last["ids"]
        token = action_token(action)
        position = next((k for k in range(1, len(ids)) if vocab.tokens[ids[k]] == token), None)
        if position is None:
            return fallback
        probs = self._last["step_probs"][position - 1]
        scored = []
        for i, p in probs.items():
            other = token_action(vocab.tokens[i]) if vocab.is_action(i) else None
            if other is not None and other.task == action.task and other.target == action.target \
                    and other.model != action.model:
                scored.append((-p, other.model))
        ranked = [Action(action.task, m, action.target) for _, m in sorted(scored)]
        seen = {a.model for a in ranked}
        return ranked + [a for a in fallback if a.model not in seen]
