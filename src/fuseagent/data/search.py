"""Trajectory search of one pair for the training data, with no redundant tool execution.

The search itself is the ``oracle`` planner's (:class:`~fuseagent.plan.oracle.OraclePlanner`):
every ordered subset of the candidate pre-fusion actions with each of their top models, then each
fusion operator, ranked by HQA. It runs here in a :class:`SearchEnvironment`, an
:class:`~fuseagent.execute.Environment` whose tools come from a per-worker :class:`ToolPool`
(each tool created once per worker) and whose calls go through a content-hash
:class:`~fuseagent.data.cache.ToolCallCache`. Three layers of reuse stack up:

1. *prefix reuse* — the oracle walks the trajectory tree, so a prefix shared by many candidates
   is executed once; the environment's step cache holds each state;
2. *state and call dedup by content* — two prefixes that reach the same images (reordered steps
   on different images, a step that changes nothing, ``denoise`` on all after ``denoise`` on each)
   share every call below them;
3. *across pairs and runs* — the call cache is shared by the worker's pairs and, on disk, by
   every worker and every later run.

The figures reported per pair are deterministic: ``executions`` is the number of distinct tool
calls the search needed (a :class:`~fuseagent.data.cache.CallLedger`, blind to what the caches
held), ``naive_executions`` the number of tool calls running every candidate from scratch takes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..execute import Environment, StepCache, image_hash
from ..protocol import Action, parse_actions, resolve_targets
from ..tools import TOOLS, load_builtin_tools
from .cache import CachedTool, CallLedger, ToolCallCache

__all__ = ["SearchOptions", "ToolPool", "SearchEnvironment", "SearchResult", "FusionTermMemo", "search_pair",
           "naive_calls", "state_hashes"]


@dataclass(frozen=True)
class SearchOptions:
    """Settings of the per-pair search (part of a dataset's identity).

    Attributes:
        models_per_task: models tried per pre-fusion task (the oracle's ``models_per_task``).
        max_prefixes: cap on the pre-fusion prefixes explored, shortest first.
        max_fusion: fusion operators tried per prefix (None: all of the task's).
        top_k: scored candidates kept with their intermediate-image hashes.
        perturb: perturbed trajectories added per pair (0: none; see :mod:`.perturb`).
    """

    models_per_task: int = 2
    max_prefixes: int = 64
    max_fusion: int | None = None
    top_k: int = 5
    perturb: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ToolPool:
    """Tools created once per worker (a shared model pool), each wrapped by a :class:`CachedTool`.

    Example:
        >>> pool = ToolPool()
        >>> pool.get("fusion.laplacian") is pool.get("fusion.laplacian")
        True
    """

    def __init__(self, cache: ToolCallCache | None = None):
        load_builtin_tools()
        self.cache = cache or ToolCallCache()
        self._tools: dict[str, CachedTool] = {}
        self._ledger: CallLedger | None = None

    def get(self, name: str) -> CachedTool:
        if name not in self._tools:
            wrapped = CachedTool(name, TOOLS.create(name), self.cache)
            wrapped.ledger = self._ledger
            self._tools[name] = wrapped
        return self._tools[name]

    def attach(self, ledger: CallLedger | None) -> None:
        """Enter every call from now on in ``ledger`` (None: stop counting)."""
        self._ledger = ledger
        for tool in self._tools.values():
            tool.ledger = ledger

    @property
    def executed(self) -> int:
        """Tool calls actually run by this pool (cache misses), all pairs together."""
        return sum(t.executed for t in self._tools.values())

    @property
    def tool_seconds(self) -> float:
        return sum(t.seconds for t in self._tools.values())

    @property
    def loaded(self) -> list[str]:
        """Names of the tools instantiated so far."""
        return sorted(self._tools)


class SearchEnvironment(Environment):
    """An :class:`~fuseagent.execute.Environment` drawing its tools from a :class:`ToolPool`."""

    def __init__(self, pool: ToolPool, cache: StepCache | None = None):
        super().__init__(cache if cache is not None else StepCache(1 << 30))
        self.pool = pool

    def tool(self, name: str) -> Any:
        return self.pool.get(name)


class FusionTermMemo:
    """The oracle's scorer (HQA with step rewards) with the fusion term memoised by content.

    HQA is ``(w_f · R_fusion(sources, F) + w_s · mean(step rewards)) / (w_f + w_s)``
    (:func:`fuseagent.metrics.rewards.hqa`). The fusion term — structure, detail and the fused
    image's no-reference quality, by far the costliest part — depends only on the fused image
    and the sources; candidates that reach the same images by different orders differ only in
    their step rewards. This scorer computes each distinct fusion term once and combines it as
    :func:`~fuseagent.metrics.rewards.hqa` does, operation for operation, so its value is
    bit-identical to :func:`fuseagent.plan.oracle.hqa_score`.

    Example:
        >>> from fuseagent.plan.oracle import hqa_score
        >>> rng = np.random.default_rng(0)
        >>> a, b = rng.random((2, 40, 40)).astype(np.float32)
        >>> memo = FusionTermMemo()
        >>> memo((a + b) / 2, [a, b], "ivif", [0.6]) == hqa_score((a + b) / 2, [a, b], "ivif", [0.6])
        True
        >>> memo((a + b) / 2, [a, b], "ivif", [0.7]) == hqa_score((a + b) / 2, [a, b], "ivif", [0.7]), memo.computed
        (True, 1)
    """

    def __init__(self) -> None:
        from ..metrics.rewards import HQAConfig

        self.config = HQAConfig()
        self._terms: dict[tuple[str, ...], float] = {}
        self.computed = 0
        self.requests = 0

    def __call__(self, fused: np.ndarray, sources: Sequence[np.ndarray], task: str,
                 step_rewards: Sequence[float] = ()) -> float:
        from ..errors import InputError
        from ..io import resize_to
        from ..metrics.rewards import hqa

        self.requests += 1
        key = (task, image_hash(fused), *(image_hash(s) for s in sources))
        if key not in self._terms:
            matched = [s if s.shape[:2] == fused.shape[:2] else resize_to(s, fused.shape[:2]) for s in sources]
            self._terms[key] = float(hqa(matched, fused, (), task=task).terms["fusion"])
            self.computed += 1
        fusion = self._terms[key]
        values = [float(r) for r in step_rewards]
        weights = {"fusion": self.config.fusion}
        terms = {"fusion": fusion}
        if values:
            if not all(0.0 <= v <= 1.0 for v in values):
                raise InputError("hqa: step rewards must lie in [0, 1]")
            terms["steps"] = float(np.mean(values))
            weights["steps"] = self.config.steps
        used = {k: w for k, w in weights.items() if w > 0}
        return float(sum(w * terms[k] for k, w in used.items()) / sum(used.values()))


def naive_calls(actions: Sequence[Action], task: str, roles: Sequence[str]) -> int:
    """Tool calls that running ``actions`` from scratch takes (one per image an image or pair tool
    acts on, one per fusion).

    Example:
        >>> naive_calls(parse_actions("[task:denoise][model:nlm] -> [task:fusion][model:gff]"), "ivif", ["ir", "vis"])
        3
    """
    load_builtin_tools()
    total = 0
    for action in actions:
        inputs = TOOLS.card(action.tool).inputs
        total += 1 if inputs == "stack" else len(resolve_targets(action.target, inputs, task, list(roles)))
    return total


def state_hashes(states: Sequence[Any]) -> list[dict[str, str]]:
    """Content hash of every image of every state (inputs first, fused last)."""
    return [{role: image_hash(im) for role, im in state.images.items()} for state in states]


@dataclass
class SearchResult:
    """What the search of one pair found.

    Attributes:
        candidates: every candidate in search order: ``trajectory`` text, ``hqa`` (None when it
            failed) and ``error``.
        top: the best ``top_k`` scored candidates, best first, with ``rank``, ``hqa`` and
            ``states`` (per-state image hashes).
        executions: distinct tool calls the search needed (deterministic).
        naive_executions: tool calls running every candidate from scratch takes.
        prefixes, fusions: size of the search space.
        by_tool: distinct calls per tool.
    """

    candidates: list[dict[str, Any]]
    top: list[dict[str, Any]]
    executions: int
    naive_executions: int
    prefixes: int
    fusions: int
    by_tool: dict[str, int] = field(default_factory=dict)

    @property
    def best(self) -> dict[str, Any]:
        return self.top[0]


def search_pair(env: SearchEnvironment, images: Mapping[str, np.ndarray], task: str, context: Any,
                options: SearchOptions) -> SearchResult:
    """Run the oracle's exhaustive search on one pair and collect every candidate.

    Args:
        env: the pair's environment (its pool's cache may be warm).
        images: the pair's images by role (already brought to a common size).
        task: fusion task.
        context: the :class:`~fuseagent.plan.base.PlanContext` (findings, report, images, env).
        options: search settings.

    Raises:
        RuntimeError: no candidate runs on these images.
    """
    from ..plan.oracle import OraclePlanner

    roles = list(images)
    scorer = FusionTermMemo()
    planner = OraclePlanner(models_per_task=options.models_per_task, max_prefixes=options.max_prefixes,
                            max_fusion=options.max_fusion, scorer=scorer)
    ledger = CallLedger()
    env.pool.attach(ledger)
    try:
        planner.plan(context)
    finally:
        env.pool.attach(None)
    candidates = []
    naive = 0
    for entry in planner.last_search:
        actions = parse_actions(entry["trajectory"])
        naive += naive_calls(actions, task, roles)
        score = entry.get("score")
        candidates.append({"trajectory": entry["trajectory"],
                           "hqa": None if score is None or not np.isfinite(score) else float(score),
                           "error": entry.get("error")})
    scored = sorted((i for i, c in enumerate(candidates) if c["hqa"] is not None),
                    key=lambda i: (-candidates[i]["hqa"], i))
    top = []
    for rank, i in enumerate(scored[: max(1, options.top_k)]):
        execution = env.run(images, task, candidates[i]["trajectory"])  # every step is a cache hit
        top.append({"rank": rank, "trajectory": candidates[i]["trajectory"], "hqa": candidates[i]["hqa"],
                    "states": state_hashes(execution.states)})
    fusions = len({c["trajectory"].rsplit("->", 1)[-1].strip() for c in candidates})
    prefixes = len({c["trajectory"].rsplit("->", 1)[0] if "->" in c["trajectory"] else "" for c in candidates})
    return SearchResult(candidates, top, ledger.distinct, naive, prefixes, fusions, ledger.by_tool())
