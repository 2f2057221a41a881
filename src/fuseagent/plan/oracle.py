"""The ``oracle`` planner: exhaustive search over valid trajectories, ranked by HQA (the upper bound).

Search space: every ordered subset of the candidate pre-fusion actions (the tasks perception calls
for, plus the pre-defined pipeline's own steps), each action with each of its top
``models_per_task`` models, followed by each fusion operator of the task. The search is a depth-first
walk of the trajectory tree in the context's environment: a prefix shared by many trajectories is
executed once (the walk keeps its state; the environment's step cache keeps it across planners).
The trajectory with the highest score wins: by default its HQA (:func:`fuseagent.agent.trajectory_hqa`:
the fused image against the images given to the fusion step, with the reflection rewards of its
steps), the quantity the decision benchmark reports. It looks at the result, so it is a bound for
the other planners, not a method.
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np

from ..errors import InputError
from ..execute import TOOL_TIMES, Environment, State
from ..protocol import Action, Trajectory
from .base import PlanContext, Planner, PlannerCard, register_planner
from .expert import expert_actions
from .library import candidate_models
from .predefined import predefined_plan

__all__ = ["OraclePlanner", "hqa_score", "downscaled_hqa_scorer", "candidate_prefixes", "score_trajectories"]

FusedScorer = Callable[[np.ndarray, Sequence[np.ndarray], str, Sequence[float]], float]


def hqa_score(fused: np.ndarray, sources: Sequence[np.ndarray], task: str, step_rewards: Sequence[float] = (),
              cache: Any = None) -> float:
    """HQA of a fused image against the images given to the fusion step, with the steps' rewards
    (:func:`fuseagent.agent.fused_hqa`; ``cache`` shares the sources' analyses between calls)."""
    from ..agent import fused_hqa

    return fused_hqa(fused, sources, task, step_rewards, cache)


def downscaled_hqa_scorer(max_side: int) -> FusedScorer:
    """A :func:`hqa_score` on copies whose longest side is at most ``max_side`` (the fused image and
    the sources alike; faster, and a slightly different ranking than at full size). The scorer keeps
    each array's copy and a :class:`~fuseagent.metrics.rewards.RewardCache`, so the sources of
    candidates sharing a prefix are shrunk and analysed once; two threads may call it at once.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> a, b = (rng.random((96, 128)).astype(np.float32) for _ in range(2))
        >>> score = downscaled_hqa_scorer(64)
        >>> 0.0 <= score((a + b) / 2, [a, b], "ivif") <= 1.0
        True
    """
    from ..agent import Reflector
    from ..metrics.rewards import RewardCache

    if int(max_side) < 16:
        raise InputError(f"downscaled HQA: max_side must be at least 16, not {max_side}")
    shrink = Reflector(max_side=int(max_side))
    cache = RewardCache()
    lock = threading.Lock()

    def small(image: np.ndarray) -> np.ndarray:
        with lock:  # the reflector's copies are a plain dict
            return shrink.thumbnail(image)

    def score(fused: np.ndarray, sources: Sequence[np.ndarray], task: str, step_rewards: Sequence[float] = ()) -> float:
        return hqa_score(small(fused), [small(s) for s in sources], task, step_rewards, cache)

    return score


def _slot(action: Action) -> tuple[str, str | None]:
    return action.task, action.target


def candidate_prefixes(slots: Sequence[Action], models: Mapping[tuple[str, str | None], list[str]],
                       max_prefixes: int) -> list[tuple[Action, ...]]:
    """Ordered subsets of ``slots`` with every model combination, shortest first, at most ``max_prefixes``.

    Example:
        >>> s = [Action("denoise", "nlm", "vis"), Action("registration", "sift")]
        >>> m = {("denoise", "vis"): ["nlm", "tv"], ("registration", None): ["sift"]}
        >>> len(candidate_prefixes(s, m, 100))   # 1 empty + 2 + 1 + 2 + 2 (two orders of both)
        8
    """
    out: list[tuple[Action, ...]] = []
    for size in range(len(slots) + 1):
        for order in itertools.permutations(slots, size):
            choices = [models[_slot(a)] for a in order]
            for combo in itertools.product(*choices):
                out.append(tuple(Action(a.task, m, a.target) for a, m in zip(order, combo)))
                if len(out) >= max_prefixes:
                    return out
    return out


@register_planner
class OraclePlanner(Planner):
    """Exhaustive search ranked by HQA.

    Args:
        models_per_task: models tried per pre-fusion task (best-ranked first).
        max_prefixes: cap on the pre-fusion prefixes explored (shortest first).
        max_fusion: fusion operators tried per prefix, best-ranked first (all when None).
        scorer: ``scorer(fused, sources, task, step_rewards) -> float``, higher is better (HQA by
            default); ``sources`` are the images given to the fusion step.
    """

    card = PlannerCard("oracle", "exhaustive search over valid trajectories ranked by HQA (upper bound)")
    reflect = False

    def __init__(self, models_per_task: int = 2, max_prefixes: int = 64, max_fusion: int | None = 4,
                 scorer: FusedScorer | None = None):
        self.models_per_task = max(1, int(models_per_task))
        self.max_prefixes = max(1, int(max_prefixes))
        self.max_fusion = max_fusion
        self.scorer = scorer or hqa_score
        self.last_search: list[dict[str, Any]] = []

    def slots(self, context: PlanContext) -> list[Action]:
        """Candidate pre-fusion actions: perceived ones, then the pre-defined pipeline's."""
        slots: list[Action] = []
        for action in expert_actions(context) + list(predefined_plan(context.task).actions[:-1]):
            if _slot(action) not in {_slot(s) for s in slots}:
                slots.append(action)
        return slots

    def plan(self, context: PlanContext) -> Trajectory:
        env: Environment = context.environment or Environment()
        if not context.images:
            raise ValueError("the oracle needs the images in its context")
        state0, _ = env.initial_state(dict(context.images), context.task)
        slots = self.slots(context)
        models = {}
        for action in slots:
            ranked = candidate_models(action.task, context.task, context.experience, action.target)
            first = [action.model] + [m for m in ranked if m != action.model]
            models[_slot(action)] = first[: self.models_per_task]
        fusions = candidate_models("fusion", context.task, context.experience)
        if self.max_fusion:
            fusions = fusions[: self.max_fusion]
        prefixes = candidate_prefixes(slots, models, self.max_prefixes)
        t0 = time.perf_counter()
        trajectories = [prefix + (Action("fusion", model),) for prefix in prefixes for model in fusions]
        results = score_trajectories(env, state0, context.task, trajectories, self.scorer)
        scored = [r for r in results if r["score"] is not None and np.isfinite(r["score"])]
        if not scored:
            raise RuntimeError("the oracle found no trajectory that runs on these images")
        best = max(scored, key=lambda r: r["score"])
        self.last_search = [{"trajectory": " -> ".join(a.text() for a in r["trajectory"]), "score": r["score"],
                             **({"error": r["error"]} if "error" in r else {})} for r in results]
        think = (f"Searched {len(results)} trajectories ({len(prefixes)} prefixes x {len(fusions)} fusion operators) "
                 f"in {time.perf_counter() - t0:.1f}s; best score {best['score']:.4f}.")
        return Trajectory(tuple(best["trajectory"]), think)


def score_trajectories(env: Environment, state0: State, task: str, trajectories: Sequence[Sequence[Action]],
                       scorer: FusedScorer | None = None, *, in_flight: int = 2) -> list[dict[str, Any]]:
    """Execute and score candidate trajectories (pre-fusion steps, then a fusion step) from ``state0``.

    Prefixes shared by several candidates are executed and rated once; a prefix whose tool fails or
    cannot be rated prunes every candidate below it (left out of the result), and a failing fusion
    step gives its candidate ``score: None`` with the error. Each result holds ``trajectory`` (the
    actions) and ``score`` (by default HQA: :func:`hqa_score`, the steps' reflection rewards included).

    The default scorer shares a :class:`~fuseagent.metrics.rewards.RewardCache` between the
    candidates, so the analyses of the images given to the fusion step (e.g. MEF-SSIM's analysis
    of an exposure stack) are computed once per prefix.

    A fused image is scored in the agent's worker thread while the next candidates' tools run
    (tools and the metrics' filtering hold no GIL). At most ``in_flight`` scorings wait; beyond
    that, and at the end, this thread scores the newest one the worker has not started (so the
    scorer must allow two calls at once). The scores are the ones computed one after the other.

    Candidates run cheapest prefix first (by :data:`~fuseagent.execute.TOOL_TIMES`: this process's
    measured tool times, or the tools' cost classes), so that the first results are scored while
    the expensive tools run (NLM releases the GIL); the results keep the order of ``trajectories``.
    (The helper process does not score them: its copies of the images and its second set of the
    sources' analyses made best of 5 slower, 0.441 → 0.453 s.)
    """
    from ..agent import WORKER_PREFIX, Reflector, _background
    from ..metrics.rewards import RewardCache

    if scorer is None or scorer is hqa_score:  # the candidates sharing a prefix share its states' analyses
        scorer = functools.partial(hqa_score, cache=RewardCache())
    reflector = Reflector()
    paths: dict[tuple[Action, ...], tuple[State, list[float]] | None] = {(): (state0, [])}
    results: list[dict[str, Any]] = []
    scoring: deque[tuple[dict[str, Any], Future[float], tuple[Any, ...]]] = deque()
    # called from the worker thread itself, it scores each candidate in turn (waiting on itself would deadlock)
    worker = _Inline() if threading.current_thread().name.startswith(WORKER_PREFIX) else _background()

    def collect(newest: bool = False) -> None:
        """Wait for the oldest scoring; with ``newest``, score the newest one here if the worker
        has not started it (both threads then score)."""
        if newest and len(scoring) > 1 and scoring[-1][1].cancel():
            result, _, args = scoring.pop()
            future = _Inline.submit(scorer, *args)
        else:
            result, future, args = scoring.popleft()
        try:
            result["score"] = float(future.result())
        except Exception as exc:  # an operator's output the scorer rejects is not a candidate either
            result["error"] = str(exc)

    pixels = int(np.prod(next(iter(state0.images.values())).shape[:2])) if state0.images else 0
    order = sorted(range(len(trajectories)),
                   key=lambda i: (sum(TOOL_TIMES.estimate(a.tool, pixels) for a in trajectories[i][:-1]), i))
    position: dict[int, int] = {}
    try:
        for index in order:
            trajectory = trajectories[index]
            *prefix, fusion = trajectory
            path = _path(env, reflector, paths, tuple(prefix), task)
            if path is None:
                continue
            state, rewards = path
            result: dict[str, Any] = {"trajectory": list(trajectory), "score": None}
            position[id(result)] = index
            results.append(result)
            try:
                fused_state, _, _ = env.step(state, fusion, task)
            except Exception as exc:  # an operator failing on this input is simply not a candidate
                result["error"] = str(exc)
                continue
            args = (fused_state.images["fused"], list(state.images.values()), task, rewards)
            scoring.append((result, worker.submit(scorer, *args), args))
            while scoring and scoring[0][1].done():
                collect()
            while len(scoring) > max(0, int(in_flight)):
                collect(newest=True)
    finally:
        while scoring:
            collect(newest=True)
    return sorted(results, key=lambda r: position[id(r)])


class _Inline:
    """An executor that runs each job at once, in the calling thread."""

    @staticmethod
    def submit(fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args))
        except Exception as exc:  # noqa: BLE001 - delivered through the future, as an executor does
            future.set_exception(exc)
        return future


def _path(env: Environment, reflector: Any, paths: dict[tuple[Action, ...], tuple[State, list[float]] | None],
          prefix: tuple[Action, ...], task: str) -> tuple[State, list[float]] | None:
    """State after ``prefix`` and its steps' rewards; shared prefixes are executed and rated once."""
    if prefix in paths:
        return paths[prefix]
    parent = _path(env, reflector, paths, prefix[:-1], task)
    from ..agent import ReflectionError, step_reward

    result = None
    if parent is not None:
        try:
            state, record, _ = env.step(parent[0], prefix[-1], task)
        except Exception:  # a tool failing on this input prunes the subtree
            state = None
        if state is not None:
            try:
                reward = step_reward(reflector, parent[0], state, prefix[-1], record, task)
            except ReflectionError:  # a step that cannot be rated prunes the subtree too
                reward = None
            if reward is not None:
                result = (state, parent[1] + [reward])
    paths[prefix] = result
    return result
