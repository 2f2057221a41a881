"""The agent: perceive → plan → execute step by step → reflect → roll back / reschedule.

:class:`Agent` runs one fusion task on a pair (or stack). It perceives the inputs, asks its planner
for a trajectory in the action protocol, and executes it one action at a time in an
:class:`~fuseagent.execute.Environment`. After each pre-fusion step a :class:`Reflector` rewards
it (gain of intrinsic quality plus the relational reward of what it changed, on downscaled copies,
in ``[0, 1]`` with 0.5 = no change). A step that makes things worse (reward under
``0.5 - tolerance``) or stays under ``threshold`` is rolled back and the planner's next candidate
model for that task is tried, as
in AgenticIR (Zhu et al., 2024). A task whose every candidate fails is rescheduled once to the
end of the queue, then dropped. The fusion step falls back to the next operator if it fails.

Work that does not wait on the agent's decisions runs beside the work that does. With the helper
process (:mod:`fuseagent.offload`, the default once it has started): the helper measures one
image's perception features while this process measures the other and the alignment; it rates
each step while this process's worker thread content-hashes the step's output and this thread
runs the next planned step on it when that pays off (:class:`RunAhead`: kept when the step is
accepted, discarded when it is rolled back); and it computes the fused image's no-reference term while this thread computes HQA's
fusion terms. Without it, a worker thread does what holds no GIL: while a step's tool runs,
it computes what rating the step needs of its input (:meth:`Reflector.prepare`), and while
the step is rated, it hashes the output (``hashlib`` releases the GIL). Either way the worker
hashes the inputs while perception looks at them, and every decision and value is the one
computed in order (tools must not change their input arrays in place: a step may run on an
output while it is hashed).

Every attempt is a JSON-safe :class:`AgentStep`; :meth:`AgentResult.trace` is an execution trace
(``fuseagent.trace/1``) of the accepted trajectory plus the agent's records, so
:meth:`Agent.replay` (or :meth:`Environment.replay`) reproduces the output bit for bit.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .errors import FuseAgentError, InputError
from .execute import Environment, ExecutionResult, PendingStep, State, jsonable
from .io import read_image, resize_to
from .offload import helper as offload_helper
from .offload import offloadable
from .plan.base import PlanContext, Planner, Proposal, create_planner
from .plan.findings import Findings
from .protocol import Action, format_actions, roles_for, validate
from .tools import FUSION_TASKS

__all__ = ["Agent", "AgentResult", "AgentStep", "Reflector", "ReflectionError", "RunAhead", "Proposal", "propose",
           "perception_report", "trajectory_hqa", "fused_hqa", "step_reward"]

ImageLike = np.ndarray | str | os.PathLike


@dataclass
class AgentStep:
    """One record of a run: a plan, an attempted action, a rescheduling or a drop.

    Attributes:
        index: position in the run.
        kind: ``plan``, ``step`` (pre-fusion action), ``fusion``, ``reschedule`` or ``drop``.
        status: ``planned``, ``accepted``, ``rolled_back``, ``failed``, ``rescheduled``, ``dropped``.
        action: protocol text of the action (None for plan records).
        planner_text: what the planner said (its think/answer response, or why this candidate).
        attempt: 0 for the planned model, 1.. for alternatives after a rollback.
        reward: the reflection reward in ``[0, 1]`` (steps: 0.5 = no change, below is worse; fusion:
            HQA of the result on thumbnails). None when not reflected on or failed.
        scores: components of ``reward`` (``intrinsic``, ``relational``, ``iqr_gain``; ``fusion``).
        seconds: tool seconds (0 when cached); ``overhead_seconds``: reflection seconds.
        cached: output came from the step cache.
        input_key, output_key: content hashes of the input and output states (images).
        error: error message when the tool failed.
    """

    index: int
    kind: str
    status: str
    action: str | None = None
    planner_text: str = ""
    attempt: int = 0
    reward: float | None = None
    scores: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    overhead_seconds: float = 0.0
    cached: bool = False
    input_key: str = ""
    output_key: str = ""
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return jsonable(dict(self.__dict__))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AgentStep:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def propose(planner: Planner, context: PlanContext) -> Proposal:
    """Ask ``planner`` for a trajectory and validate it for the context's task and images."""
    proposal = planner.propose(context)
    validate(list(proposal.trajectory.actions), context.task, len(context.roles))
    return proposal


StepScorer = Callable[[Mapping[str, np.ndarray], Mapping[str, np.ndarray], Sequence[str], str], Mapping[str, float]]

#: a reflection's outcome: its scores (None when the step could not be rated), why not, and its seconds
Rating = tuple[dict[str, float] | None, str | None, float]

#: name prefix of the agent's worker thread
WORKER_PREFIX = "fuseagent-agent"
_BACKGROUND: tuple[int, ThreadPoolExecutor] | None = None
_BACKGROUND_LOCK = threading.Lock()


def _background() -> ThreadPoolExecutor:
    """The agent's worker thread: it prepares a step's rating while the step's tool runs and
    hashes states while the agent looks at them. One per process (a forked child creates its
    own: the parent's thread does not exist there); its jobs run one after the other."""
    global _BACKGROUND
    with _BACKGROUND_LOCK:
        if _BACKGROUND is None or _BACKGROUND[0] != os.getpid():
            _BACKGROUND = (os.getpid(), ThreadPoolExecutor(1, thread_name_prefix=WORKER_PREFIX))
        return _BACKGROUND[1]


#: tasks that move pixels: reflected on by the alignment reward alone
ALIGNMENT_TASKS: tuple[str, ...] = ("registration", "flow")


def _thumbnail(image: np.ndarray, max_side: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return image
    return resize_to(image, (max(8, round(h * scale)), max(8, round(w * scale))))


def _scaled_homography(info: Any, scale: float) -> np.ndarray | None:
    """The registration tool's moving → reference homography, for images scaled by ``scale``."""
    if not isinstance(info, Mapping) or info.get("homography") is None:
        return None
    try:
        h = np.asarray(info["homography"], dtype=np.float64).reshape(3, 3)
    except (TypeError, ValueError):
        return None
    s = np.diag([scale, scale, 1.0])
    return s @ h @ np.linalg.inv(s)


class ReflectionError(FuseAgentError):
    """Rating a step failed (a metric raised or gave a non-finite value): the attempt is a failed step."""


class Reflector:
    """Reward of one step, on downscaled copies: intrinsic gain + relational reward, in ``[0, 1]``.

    For each image an action changed, the intrinsic term maps the gain of the intrinsic quality
    reward (IQR: BRISQUE, NIQE, PIQE, exposure, contrast) to ``0.5 + 0.5·tanh(ΔIQR / tau)``; the
    relational term is :func:`~fuseagent.metrics.rewards.relational_reward` — ``enhancement``
    (compatibility with the other image) for restoration, ``alignment`` (similarity to the reference
    times the plausibility of the transform) for registration and flow. Restoration steps get the
    weighted mean of both; alignment steps the relational term alone (the empty borders of a warp
    lower no-reference quality however good the alignment). 0.5 means "no change".

    Args:
        scorer: a custom ``scorer(before_images, after_images, changed_roles, task) -> {"total": …}``
            replacing the rewards (tests, experiments).
        max_side: images are downscaled to this longest side before scoring (speed).
        tau: scale of the intrinsic gain.
        intrinsic_weight, relational_weight: weights of the two terms.

    Attributes:
        cache: the :class:`~fuseagent.metrics.rewards.RewardCache` the rewards share: a state's
            analyses (its intrinsic quality, its compatibility with the other source, its local
            moments) are computed once, however many steps or candidates compare with it.
        seconds: time spent rating (thumbnails included); ``cpu_seconds``: the CPU time of the same
            calls and of :meth:`prepare`, each in its own thread (steadier than wall time on a shared
            machine).

    Example:
        >>> r = Reflector(lambda before, after, roles, task: {"total": float(after["a"].mean())}, max_side=8)
        >>> one = np.ones((32, 32), np.float32)
        >>> r.score_step({"a": one * 0}, {"a": one}, ["a"], "mef", "denoise")["total"]
        1.0
    """

    #: thumbnails kept (by source array), enough for every state of a run
    THUMBNAILS_KEPT = 64
    #: per-image analyses kept by :attr:`cache` (about 1.5 MB each at 256 px; a run uses 10–20)
    ANALYSES_KEPT = 32

    def __init__(self, scorer: StepScorer | None = None, max_side: int = 256, tau: float = 0.05,
                 intrinsic_weight: float = 1.0, relational_weight: float = 1.0):
        self.scorer = scorer
        self.max_side = int(max_side)
        self.tau = float(tau)
        self.weights = (float(intrinsic_weight), float(relational_weight))
        self._iqr: dict[str, float] = {}
        self._thumbs: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        from .metrics.rewards import RewardCache

        self.cache = RewardCache(self.ANALYSES_KEPT)
        self.seconds = 0.0
        self.cpu_seconds = 0.0

    def thumbnail(self, image: np.ndarray) -> np.ndarray:
        key = id(image)
        cached = self._thumbs.get(key)
        if cached is None or cached[0] is not image:
            cached = (image, _thumbnail(image, self.max_side))
            self._thumbs.pop(key, None)
            self._thumbs[key] = cached
            while len(self._thumbs) > self.THUMBNAILS_KEPT:  # the oldest first: holds full-size arrays alive
                del self._thumbs[next(iter(self._thumbs))]
        return cached[1]

    def iqr(self, image: np.ndarray) -> float:
        """Intrinsic quality reward of a (thumbnail) image, cached by content."""
        from .metrics.rewards import intrinsic_reward

        key = self.cache.key(image)
        if key not in self._iqr:
            try:
                self._iqr[key] = float(intrinsic_reward(image).value)
            except (ArithmeticError, ValueError, FuseAgentError):  # a degenerate (flat) image has no quality
                self._iqr[key] = 0.0
        return self._iqr[key]

    @property
    def settings(self) -> tuple[int, float, float, float]:
        """What the rewards depend on besides the images (a helper process keeps a reflector per setting)."""
        return self.max_side, self.tau, self.weights[0], self.weights[1]

    def _timed(self, what: str, compute: Callable[[], dict[str, float]]) -> dict[str, float]:
        """``compute()`` timed into :attr:`seconds` / :attr:`cpu_seconds`, its failures and non-finite
        totals raised as :class:`ReflectionError` (``what``: the task named in the message)."""
        t0, cpu0 = time.perf_counter(), time.thread_time()
        try:
            scores = compute()
        except ReflectionError:
            raise
        except Exception as exc:  # any metric failure makes the step a failed attempt, never a crash
            raise ReflectionError(f"reflection on {what} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            self.seconds += time.perf_counter() - t0
            self.cpu_seconds += time.thread_time() - cpu0
        if not np.isfinite(scores.get("total", np.nan)):
            raise ReflectionError(f"reflection on {what} gave no finite {'score' if what == 'fusion' else 'reward'}: "
                                  f"{scores}")
        return scores

    def score_step(self, before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray], roles: Sequence[str],
                   task: str, protocol_task: str, info: Mapping[str, Any] | None = None,
                   masks: Mapping[str, np.ndarray] | None = None) -> dict[str, float]:
        """Reward of a step that changed ``roles`` of ``before`` into ``after``.

        Raises:
            ReflectionError: a metric failed or the reward is not a finite number.
        """
        if self.scorer is not None:
            scorer = self.scorer
            return self._timed(protocol_task, lambda: {k: float(v) for k, v in scorer(before, after, list(roles),
                                                                                       task).items()})
        return self._timed(protocol_task, lambda: self.rate(self.step_thumbnails(before, after, roles, task,
                                                                                 protocol_task, info, masks)))

    def score_step_later(self, helper: Any, before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray],
                         roles: Sequence[str], task: str, protocol_task: str, info: Mapping[str, Any] | None = None,
                         masks: Mapping[str, np.ndarray] | None = None) -> Callable[[], dict[str, float]]:
        """Start :meth:`score_step` in a helper process (:mod:`fuseagent.offload`); call the
        returned function for its scores (the same values, the same errors). When the helper
        cannot answer, that function rates here. Without a helper, or with a custom scorer, it
        rates when called."""
        here = partial(self.score_step, before, after, roles, task, protocol_task, info, masks)
        if helper is None or self.scorer is not None:
            return here
        t0 = time.perf_counter()
        try:
            thumbs = self.step_thumbnails(before, after, roles, task, protocol_task, info, masks)
        except Exception:  # noqa: BLE001 - rating here meets the same failure and reports it
            return here
        finally:
            self.seconds += time.perf_counter() - t0
        return self._later(helper, protocol_task, "agent.rate_step", thumbs, partial(self.rate, thumbs))

    def _later(self, helper: Any, what: str, name: str, args: Any, here: Callable[[], dict[str, float]]
               ) -> Callable[[], dict[str, float]]:
        from .offload import HelperError

        t0 = time.perf_counter()
        future = helper.submit(name, self.settings, args)
        self.seconds += time.perf_counter() - t0

        def result() -> dict[str, float]:
            def compute() -> dict[str, float]:
                try:
                    scores, cpu = future.result()
                except HelperError:  # the helper is gone: rate here (the same values)
                    return here()
                self.cpu_seconds += cpu
                return scores

            return self._timed(what, compute)

        return result

    def step_thumbnails(self, before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray], roles: Sequence[str],
                        task: str, protocol_task: str, info: Mapping[str, Any] | None = None,
                        masks: Mapping[str, np.ndarray] | None = None) -> StepThumbnails:
        """The downscaled copies (and the transforms and valid areas at their scale) that rating a
        step looks at: all of :meth:`rate`'s input."""
        info, masks = info or {}, masks or {}
        all_roles = list(after)
        thumbs = StepThumbnails(task, protocol_task, list(roles))
        for role in roles:
            a = thumbs.after[role] = self.thumbnail(after[role])
            thumbs.before[role] = self.thumbnail(before[role])
            other = self.thumbnail(after[_other_role(role, all_roles, task)])
            thumbs.other[role] = other if a.shape[:2] == other.shape[:2] else resize_to(other, a.shape[:2])
            if protocol_task in ALIGNMENT_TASKS:
                scale = a.shape[0] / after[role].shape[0]
                valid = masks.get(f"valid.{role}")
                thumbs.valid[role] = (None if valid is None else
                                      resize_to(valid.astype(np.float32), a.shape[:2], "nearest") > 0.5)
                thumbs.transforms[role] = _scaled_homography(info.get(role), scale)
        return thumbs

    def rate(self, thumbs: StepThumbnails) -> dict[str, float]:
        """The rewards of a step from its thumbnails (:meth:`step_thumbnails`)."""
        intrinsic, relational, d_iqr = [], [], []
        wi, wr = self.weights
        if thumbs.protocol_task in ALIGNMENT_TASKS:
            wi = 0.0  # a warp's empty borders lower no-reference quality whatever the alignment; judge the alignment
        for role in thumbs.roles:
            b, a, other = thumbs.before[role], thumbs.after[role], thumbs.other[role]
            if wi > 0:  # the intrinsic term is only computed when it weighs in
                gain = self.iqr(a) - self.iqr(b)
                d_iqr.append(gain)
                intrinsic.append(self.intrinsic_reward(gain))
            relational.append(self._relational(thumbs, role, b, a, other))
        r_mean = float(np.mean(relational))
        if not intrinsic:
            return {"total": r_mean, "relational": r_mean}
        i_mean = float(np.mean(intrinsic))
        return {"total": (wi * i_mean + wr * r_mean) / (wi + wr), "intrinsic": i_mean, "relational": r_mean,
                "iqr_gain": float(np.mean(d_iqr))}

    def preparation(self, before: Mapping[str, np.ndarray], roles: Sequence[str], task: str,
                    protocol_task: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """The thumbnails :meth:`prepare` analyses: for each image the step changes, its thumbnail
        and the other image's (none for alignment steps and custom scorers)."""
        if self.scorer is not None or protocol_task in ALIGNMENT_TASKS:
            return []
        pairs = []
        for role in roles:
            pairs.append((self.thumbnail(before[role]), self.thumbnail(before[_other_role(role, list(before), task)])))
        return pairs

    def prepare(self, before: Mapping[str, np.ndarray], roles: Sequence[str], task: str, protocol_task: str) -> None:
        """Compute now what rating a step on ``roles`` of ``before`` will need of ``before``: the
        thumbnails, the intrinsic quality of each image the step changes and its compatibility
        with the other image (the agent calls it in a worker thread while the step's tool runs).

        The rating then finds them in its caches (the same values); nothing is computed that it
        would not need, and a failure here is left to the rating to meet and report.
        """
        cpu0 = time.thread_time()
        try:
            self.analyse(self.preparation(before, roles, task, protocol_task), task)
        except Exception:  # noqa: BLE001 - the rating computes it again and reports the failure
            return
        finally:
            self.cpu_seconds += time.thread_time() - cpu0

    def analyse(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]], task: str) -> None:
        """Fill the caches with each thumbnail's intrinsic quality and its compatibility with its partner."""
        from .metrics.rewards import relational_reward

        for b, other in pairs:
            if self.weights[0] > 0:
                self.iqr(b)
            if other.shape[:2] == b.shape[:2]:  # compatibility of ``before`` with the other image
                relational_reward("enhancement", b, b, other, task=task, cache=self.cache)

    def prepare_later(self, helper: Any, before: Mapping[str, np.ndarray], roles: Sequence[str], task: str,
                      protocol_task: str) -> None:
        """:meth:`prepare` in a helper process, for a rating that will run there (nothing waits for it)."""
        pairs = self.preparation(before, roles, task, protocol_task)
        if pairs and helper is not None:
            helper.submit("agent.prepare", self.settings, (pairs, task))

    def intrinsic_reward(self, gain: float) -> float:
        """The step's intrinsic reward for an IQR gain: ``0.5 + 0.5·tanh(gain / tau)`` (0.5 = no change)."""
        return 0.5 + 0.5 * float(np.tanh(gain / self.tau))

    def intrinsic_step(self, before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray],
                       roles: Sequence[str]) -> float:
        """Mean intrinsic reward of a step over ``roles``, computed for any task (the step reflection
        leaves it out for alignment steps, where it does not weigh in)."""
        return float(np.mean([self.intrinsic_reward(self.iqr(self.thumbnail(after[r])) - self.iqr(self.thumbnail(before[r])))
                              for r in roles]))

    def _relational(self, thumbs: StepThumbnails, role: str, b: np.ndarray, a: np.ndarray, other: np.ndarray) -> float:
        from .metrics.rewards import relational_reward

        try:
            if thumbs.protocol_task in ALIGNMENT_TASKS:
                return float(relational_reward("alignment", b, a, other, transform=thumbs.transforms.get(role),
                                               valid=thumbs.valid.get(role), task=thumbs.task).value)
            if b.shape[:2] != a.shape[:2]:
                b = resize_to(b, a.shape[:2])
            return float(relational_reward("enhancement", b, a, other, task=thumbs.task, cache=self.cache).value)
        except (ArithmeticError, ValueError, FuseAgentError):  # degenerate images: no evidence of a gain
            return 0.0

    def fusion_thumbnails(self, sources: Sequence[np.ndarray], fused: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """The thumbnails of the sources (at the fused thumbnail's size) and of the fused image."""
        f = self.thumbnail(fused)
        thumbs = [self.thumbnail(s) for s in sources]
        return [t if t.shape[:2] == f.shape[:2] else resize_to(t, f.shape[:2]) for t in thumbs], f

    def rate_fusion(self, sources: Sequence[np.ndarray], fused: np.ndarray, task: str,
                    step_rewards: Sequence[float] = (), fused_iqa: Callable[[], float] | None = None
                    ) -> dict[str, float]:
        """HQA of a fused thumbnail against the sources' thumbnails (:meth:`fusion_thumbnails`);
        ``fused_iqa``: gives the fused thumbnail's intrinsic quality term when it is computed elsewhere."""
        from .metrics.rewards import hqa

        steps = [min(1.0, max(0.0, r)) for r in step_rewards]
        reward = hqa(list(sources), fused, steps, task=task, cache=self.cache, fused_iqa=fused_iqa)
        return {"total": float(reward.value), "fusion": float(reward.terms.get("fusion", reward.value))}

    def score_fusion(self, sources: Sequence[np.ndarray], fused: np.ndarray, task: str,
                     step_rewards: Sequence[float] = ()) -> dict[str, float]:
        """HQA of the fused result on thumbnails (with the accepted steps' rewards).

        Raises:
            ReflectionError: a metric failed or the score is not a finite number.
        """
        if self.scorer is not None:
            scorer = self.scorer
            return self._timed("fusion", lambda: {k: float(v) for k, v in scorer({}, {"fused": fused}, ["fused"],
                                                                                  task).items()})
        return self._timed("fusion", lambda: self.rate_fusion(*self.fusion_thumbnails(sources, fused), task,
                                                              step_rewards))

    def score_fusion_later(self, helper: Any, sources: Sequence[np.ndarray], fused: np.ndarray, task: str,
                           step_rewards: Sequence[float] = ()) -> Callable[[], dict[str, float]]:
        """:meth:`score_fusion` with the fused image's intrinsic quality (the no-reference metrics,
        half of HQA's time) computed in a helper process while this one computes the fusion terms
        (see :meth:`score_step_later`): call the returned function."""
        here = partial(self.score_fusion, sources, fused, task, step_rewards)
        if helper is None or self.scorer is not None:
            return here
        t0 = time.perf_counter()
        try:
            thumbs, f = self.fusion_thumbnails(sources, fused)
        except Exception:  # noqa: BLE001 - rating here meets the same failure and reports it
            return here
        finally:
            self.seconds += time.perf_counter() - t0
        from .offload import HelperError

        future = helper.submit("agent.fused_iqa", f)

        def fused_iqa() -> float:
            try:
                value, cpu = future.result()
            except HelperError:  # the helper is gone: compute it here
                from .metrics.rewards import HQAConfig, intrinsic_reward

                return intrinsic_reward(f, HQAConfig().relational.intrinsic).value
            self.cpu_seconds += cpu
            return value

        steps = list(step_rewards)
        return partial(self._timed, "fusion", partial(self.rate_fusion, thumbs, f, task, steps, fused_iqa))


@dataclass
class StepThumbnails:
    """What rating a step looks at, downscaled (by :meth:`Reflector.step_thumbnails`).

    Attributes:
        task: fusion task; ``protocol_task``: the step's task; ``roles``: the roles it changed.
        before, after: each changed role's thumbnail before and after the step.
        other: each changed role's partner after the step, at the size of its ``after``.
        transforms: alignment steps: each role's moving → reference homography at thumbnail scale.
        valid: alignment steps: each role's valid (non-border) area at thumbnail size.
    """

    task: str
    protocol_task: str
    roles: list[str]
    before: dict[str, np.ndarray] = field(default_factory=dict)
    after: dict[str, np.ndarray] = field(default_factory=dict)
    other: dict[str, np.ndarray] = field(default_factory=dict)
    transforms: dict[str, np.ndarray | None] = field(default_factory=dict)
    valid: dict[str, np.ndarray | None] = field(default_factory=dict)


_HELPER_REFLECTORS: dict[tuple[int, float, float, float], Reflector] = {}


def _helper_reflector(settings: tuple[int, float, float, float]) -> Reflector:
    """The helper process's reflector for ``settings`` (its caches live as long as the helper)."""
    if settings not in _HELPER_REFLECTORS:
        max_side, tau, wi, wr = settings
        _HELPER_REFLECTORS[settings] = Reflector(max_side=max_side, tau=tau, intrinsic_weight=wi, relational_weight=wr)
    return _HELPER_REFLECTORS[settings]


@offloadable("agent.rate_step")
def _rate_step_in_helper(settings: tuple[int, float, float, float], thumbs: StepThumbnails
                         ) -> tuple[dict[str, float], float]:
    cpu0 = time.thread_time()
    scores = _helper_reflector(settings).rate(thumbs)
    return scores, time.thread_time() - cpu0


@offloadable("agent.fused_iqa")
def _fused_iqa_in_helper(fused: np.ndarray) -> tuple[float, float]:
    """HQA's intrinsic term of a fused thumbnail (default configuration) and its CPU seconds."""
    from .metrics.rewards import HQAConfig, intrinsic_reward

    cpu0 = time.thread_time()
    value = intrinsic_reward(fused, HQAConfig().relational.intrinsic).value
    return value, time.thread_time() - cpu0


@offloadable("agent.prepare")
def _prepare_in_helper(settings: tuple[int, float, float, float],
                       args: tuple[list[tuple[np.ndarray, np.ndarray]], str]) -> None:
    try:
        _helper_reflector(settings).analyse(*args)
    except Exception:  # noqa: BLE001 - the rating computes it again and reports the failure
        return


def step_reward(reflector: Reflector, before: State, after: State, action: Action, record: Any, task: str) -> float:
    """Reflection reward of one executed step, clipped to ``[0, 1]``."""
    score = reflector.score_step(before.images, after.images, record.targets, task, action.task, record.info,
                                 after.masks)
    return min(1.0, max(0.0, float(score["total"])))


def fused_hqa(fused: np.ndarray, sources: Sequence[np.ndarray], task: str, step_rewards: Sequence[float] = (),
              cache: Any = None) -> float:
    """:func:`~fuseagent.metrics.rewards.hqa` with the sources resampled to the fused image's size
    (``cache``: a :class:`~fuseagent.metrics.rewards.RewardCache` shared by several fused images of
    the same sources; the same value)."""
    from .metrics.rewards import hqa

    matched = [im if im.shape[:2] == fused.shape[:2] else resize_to(im, fused.shape[:2]) for im in sources]
    return float(hqa(matched, fused, list(step_rewards), task=task, cache=cache).value)


def trajectory_hqa(states: Sequence[State], actions: Sequence[Action], records: Sequence[Any], task: str,
                   reflector: Reflector | None = None) -> float:
    """HQA of an executed trajectory: the quantity the oracle ranks and the benchmarks report.

    :func:`~fuseagent.metrics.rewards.hqa` of the fused image against the images given to the fusion
    step, with the reflection rewards of the trajectory's pre-fusion steps (on downscaled copies) as
    its step term.

    Args:
        states: the trajectory's states, inputs first, fused last (``len(actions) + 1``).
        actions: its actions; ``records``: the environment's step records (targets, info).
        task: fusion task; ``reflector``: reuse one to share its caches.
    """
    reflector = reflector or Reflector()
    rewards = [step_reward(reflector, states[i], states[i + 1], a, records[i], task) for i, a in enumerate(actions[:-1])]
    return fused_hqa(states[-1].images["fused"], list(states[-2].images.values()), task, rewards)


def _accepted_execution(env: Environment, state0: State, task: str, actions: Sequence[Action],
                        notes: Sequence[str]) -> ExecutionResult:
    """The accepted trajectory's execution, from the step cache (every step has just run).

    The same as ``env.run(state0.images, task, actions)`` without validating and hashing the
    inputs again.
    """
    t0 = time.perf_counter()
    validate(list(actions), task, len(state0.images))
    states, records = [state0], []
    state = state0
    for i, action in enumerate(actions):
        state, record, _ = env.step(state, action, task)
        record.index = i
        states.append(state)
        records.append(record)
    return ExecutionResult(state.images["fused"], task, format_actions(actions), states, records,
                           time.perf_counter() - t0, list(notes), list(actions))


def _other_role(role: str, roles: Sequence[str], task: str) -> str:
    if task == "ivif":
        return "vis" if role == "ir" else "ir"
    return roles[0] if role != roles[0] else roles[1]


@dataclass
class AgentResult:
    """Output of :meth:`Agent.run`.

    Attributes:
        fused: the fused image.
        task: fusion task.
        planner: planner name (the one that produced the executed plan).
        proposal: the planner's proposal.
        execution: the accepted trajectory's execution (every intermediate state).
        steps: every record of the run, rolled-back attempts included.
        states: every state the run produced, by content hash (for reports).
        perception: the perception report (None when skipped).
        findings: the levels planners used.
        seconds: wall time of the run; ``tool_seconds``: time inside tools;
            ``perception_seconds``, ``planning_seconds``, ``reflection_seconds``: parts of the overhead;
            ``hashing_seconds``: the time the run waited for content hashing of its states (a worker
            thread hashes the inputs during perception and each step's output while the step is
            rated; ``Environment.hash_seconds`` counts the hashing itself).
        notes: input notes (resampling).
        planning_tool_calls: tool executions the planner ran while planning (the oracle's search,
            the ``learned`` planner's best-of-K), not counted in :attr:`tool_calls` and timed
            within ``planning_seconds``; ``planning_tool_seconds``: their time inside tools.
        discarded_tool_seconds: time of steps run ahead while the helper process rated the step
            before them, then not used because that step was rolled back (overhead, not tool time).
    """

    fused: np.ndarray
    task: str
    planner: str
    proposal: Proposal
    execution: ExecutionResult
    steps: list[AgentStep]
    states: dict[str, State]
    perception: dict[str, Any] | None
    findings: Findings
    seconds: float
    tool_seconds: float
    perception_seconds: float
    planning_seconds: float
    reflection_seconds: float
    notes: list[str] = field(default_factory=list)
    hashing_seconds: float = 0.0
    planning_tool_calls: int = 0
    planning_tool_seconds: float = 0.0
    discarded_tool_seconds: float = 0.0

    @property
    def trajectory(self) -> str:
        return self.execution.trajectory

    @property
    def tool_calls(self) -> int:
        """Tool executions the run performed (cache hits excluded, rolled-back attempts included)."""
        return sum(1 for s in self.steps if s.kind in ("step", "fusion") and not s.cached)

    @property
    def all_tool_seconds(self) -> float:
        """Time inside tools, those a planner ran while planning included."""
        return self.tool_seconds + self.planning_tool_seconds

    @property
    def overhead_seconds(self) -> float:
        """Everything but tool execution (the tools a planner ran while planning are tool execution too)."""
        return max(0.0, self.seconds - self.all_tool_seconds)

    def trace(self) -> dict[str, Any]:
        """JSON-safe trace: the accepted trajectory's execution trace plus the agent's records."""
        trace = self.execution.trace()
        trace["notes"] = list(self.notes)
        trace["agent"] = jsonable({
            "format": "fuseagent.agent/1",
            "planner": self.planner,
            "response": self.proposal.response,
            "think": self.proposal.trajectory.think,
            "planned": self.proposal.trajectory.text(),
            "planner_attempts": self.proposal.attempts,
            "perception": self.perception,
            "findings": self.findings.to_dict(),
            "steps": [s.to_dict() for s in self.steps],
            "tool_calls": self.tool_calls,
            "planning_tool_calls": self.planning_tool_calls,
            "planning_tool_seconds": round(self.planning_tool_seconds, 4),
            "seconds": round(self.seconds, 4),
            "tool_seconds": round(self.tool_seconds, 4),
            "overhead_seconds": round(self.overhead_seconds, 4),
            "perception_seconds": round(self.perception_seconds, 4),
            "planning_seconds": round(self.planning_seconds, 4),
            "reflection_seconds": round(self.reflection_seconds, 4),
            "hashing_seconds": round(self.hashing_seconds, 4),
            "discarded_tool_seconds": round(self.discarded_tool_seconds, 4),
        })
        return trace


def _split_task(images: tuple[Any, ...], task: str | None) -> tuple[list[Any], str]:
    items = list(images)
    if len(items) == 1 and isinstance(items[0], (list, tuple)):
        items = list(items[0])
    if task is None and items and isinstance(items[-1], str) and items[-1] in FUSION_TASKS \
            and not Path(items[-1]).exists():
        task = items.pop()
    if task is None:
        raise InputError("no fusion task given (ivif, mef or mff)")
    if task not in FUSION_TASKS:
        raise InputError(f"unknown task '{task}' (valid: {', '.join(FUSION_TASKS)})")
    return items, task


def perception_report(images: Sequence[np.ndarray], task: str, helper: Any = None) -> dict[str, Any]:
    """JSON-safe perception report of a pair (of a stack: its first and last image, whose roles it
    keeps); ``helper``: see :func:`~fuseagent.perceive.measure`."""
    from .perceive import perceive

    report = perceive(images[0], images[-1], task, helper=helper)
    data = report.to_dict() if hasattr(report, "to_dict") else jsonable(report)
    if len(images) > 2:
        last = roles_for(task, len(images))[-1]
        for entry in data.get("images", []):
            if isinstance(entry, dict) and entry.get("role") == "b":
                entry["role"] = last
    return data


class RunAhead:
    """Whether running the next planned step while the helper rates the current one pays off.

    A step run ahead is kept when the rated step is accepted (it saved ``min(t, r)``: the next
    tool's time ``t`` or the rating's ``r``, whichever is shorter) and thrown away when it is rolled
    back (it cost ``max(0, t - r)``). The agent runs ahead when
    ``p·min(t, r) ≥ (1 − p)·max(0, t − r)``, ``p`` being how often steps of that tool were accepted
    in this process (prior 3 of 4). So a tool that finishes before the rating always runs ahead
    (it costs nothing), and a long one (NLM, a learned model) only after a tool that is rarely rolled
    back. ``t`` comes from :data:`~fuseagent.execute.TOOL_TIMES` (this process's measurements, or
    the tool's cost class), ``r`` is a moving average of the ratings measured. Only timing depends
    on it, never a decision.

    Example:
        >>> from fuseagent.execute import ToolTimes
        >>> policy = RunAhead(times=ToolTimes())
        >>> policy.worth("denoise.nlm", "lighten.clahe", 640 * 480)  # a cheap tool: always
        True
        >>> policy.worth("denoise.nlm", "denoise.nlm", 640 * 480)  # 0.3 s against an 8 ms rating
        False
    """

    #: prior of the acceptance rate: accepted and tried
    PRIOR: tuple[float, float] = (3.0, 4.0)
    #: weight of a new measurement in the rating's moving average
    ALPHA = 0.3

    def __init__(self, rating_seconds: float = 0.008, times: Any = None):
        from .execute import TOOL_TIMES

        self.rating_seconds = float(rating_seconds)
        self.times = TOOL_TIMES if times is None else times
        self.outcomes: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def acceptance(self, tool: str) -> float:
        accepted, tried = self.outcomes.get(tool, (0.0, 0.0))
        return (self.PRIOR[0] + accepted) / (self.PRIOR[1] + tried)

    def worth(self, current_tool: str, next_tool: str, pixels: int) -> bool:
        """Run ``next_tool`` ahead while a step of ``current_tool`` is rated?"""
        p, t, r = self.acceptance(current_tool), self.times.estimate(next_tool, pixels), self.rating_seconds
        return p * min(t, r) >= (1.0 - p) * max(0.0, t - r)

    def observe_rating(self, seconds: float) -> None:
        with self._lock:
            self.rating_seconds += self.ALPHA * (seconds - self.rating_seconds)

    def observe_outcome(self, tool: str, accepted: bool) -> None:
        with self._lock:
            counts = self.outcomes.setdefault(tool, [0.0, 0.0])
            counts[0] += float(accepted)
            counts[1] += 1.0


#: the process's run-ahead statistics (agents share what they measure)
RUN_AHEAD = RunAhead()


def _pixels(images: Mapping[str, np.ndarray]) -> int:
    first = next(iter(images.values()), None)
    return 0 if first is None else int(first.shape[0] * first.shape[1])


def _rating(later: Callable[[], dict[str, float]], started: float) -> Rating:
    t0 = time.perf_counter()
    try:
        scores = later()
    except ReflectionError as exc:  # the step cannot be rated: a failed attempt (a fusion keeps its image)
        return None, str(exc), started + time.perf_counter() - t0
    return scores, None, started + time.perf_counter() - t0


class Agent:
    """Perceive, plan, execute, reflect, roll back.

    Args:
        planner: a planner name (:func:`~fuseagent.plan.list_planners`) or instance.
        reflect: reflect after each step and roll back steps that do not help.
        tolerance: a step is rolled back when its reward is below ``0.5 - tolerance`` (it made things worse).
        threshold: also roll back steps whose reward stays below this (None: no absolute bar).
        max_candidates: models tried per task (the planned one and its alternatives).
        reschedule: move a task whose candidates all failed to the end once before dropping it.
        perceive: run perception (planners that ignore it skip it anyway).
        experience: an :class:`~fuseagent.plan.experience.Experience` (or a path to one) for the planner.
        environment: the execution environment (shared step cache); a new one by default.
        scorer: reflection scorer (see :class:`Reflector`); ``reflect_size``: its downscaling.
        offload: use the helper process (:mod:`fuseagent.offload`, started here): it measures one
            image for perception while this process measures the other, and rates each step while
            this process hashes the step's output and runs the next planned step on it when that
            pays off (:class:`RunAhead`; kept when the step is accepted). Until the helper has
            started, and for a custom ``scorer``'s ratings, the work is done here. The same
            decisions and values either way.
        seed: seed of the planner's random choices.
        planner_options: options of the planner when ``planner`` is a name.

    Attributes:
        run_ahead: the :class:`RunAhead` policy (this process's, shared by its agents; replace it
            to schedule otherwise).

    Example:
        >>> import numpy as np
        >>> a = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (48, 1))
        >>> agent = Agent(planner="predefined", perceive=False, reflect=False)
        >>> res = agent.run(a, a[:, ::-1].copy(), "ivif")
        >>> res.fused.shape, res.trajectory.split(" -> ")[-1].startswith("[task:fusion]")
        ((48, 64), True)
    """

    def __init__(self, planner: str | Planner = "expert", *, reflect: bool = True, tolerance: float = 0.01,
                 threshold: float | None = None, max_candidates: int = 3, reschedule: bool = True,
                 perceive: bool = True, experience: Any = None, environment: Environment | None = None,
                 scorer: StepScorer | None = None, reflect_size: int = 256, offload: bool = True, seed: int = 0,
                 planner_options: Mapping[str, Any] | None = None):
        self.planner = create_planner(planner, **dict(planner_options or {})) if isinstance(planner, str) else planner
        self.reflect = bool(reflect)
        self.tolerance = float(tolerance)
        self.threshold = threshold
        self.max_candidates = max(1, int(max_candidates))
        self.reschedule = bool(reschedule)
        self.perceive = bool(perceive)
        if isinstance(experience, (str, os.PathLike)):
            from .plan.experience import Experience

            experience = Experience.load(experience)
        self.experience = experience
        self.environment = environment or Environment()
        self.reflector = Reflector(scorer, reflect_size)
        self.offload = bool(offload)
        self.run_ahead = RUN_AHEAD
        self.seed = int(seed)
        if self.offload and ((self.reflect and scorer is None) or self._perceives()):
            offload_helper()  # starts it (it would have work); runs use it once it answers

    # -- perception ---------------------------------------------------------------------------
    def _perceives(self) -> bool:
        return self.perceive and self.planner.card.uses_perception

    def _perceive(self, images: Mapping[str, np.ndarray], task: str) -> dict[str, Any] | None:
        if not self._perceives():
            return None
        return perception_report([images[r] for r in images], task, self._helper())

    def _helper(self) -> Any:
        """The helper process when this agent offloads and it has started (None otherwise)."""
        if not self.offload:
            return None
        helper = offload_helper()
        return helper if helper is not None and helper.ready() else None

    # -- reflection ---------------------------------------------------------------------------
    def _rate_step(self, before: State, action: Action, task: str, helper: Any, pending: PendingStep
                   ) -> Callable[[], Rating]:
        """Start the reflection on an executed step (in ``helper`` when one is given); the returned
        function gives its scores (None when it cannot be rated), the error saying why not, and
        the seconds it took the run."""
        t0 = time.perf_counter()
        later = self.reflector.score_step_later(helper, before.images, pending.images, pending.targets, task,
                                                action.task, pending.info, pending.masks)
        return partial(_rating, later, time.perf_counter() - t0)

    def _rate_fusion(self, sources: Sequence[np.ndarray], task: str, step_rewards: Sequence[float], helper: Any,
                     pending: PendingStep) -> Callable[[], Rating]:
        """Start the reflection on an executed fusion step (see :meth:`_rate_step`)."""
        t0 = time.perf_counter()
        later = self.reflector.score_fusion_later(helper, sources, pending.images["fused"], task, step_rewards)
        return partial(_rating, later, time.perf_counter() - t0)

    # -- the loop -----------------------------------------------------------------------------
    def run(self, *images: ImageLike | Sequence[ImageLike] | str, task: str | None = None,
            findings: Findings | None = None, perception: Mapping[str, Any] | None = None) -> AgentResult:
        """Fuse ``images`` (arrays or paths; IVIF: infrared then visible) for ``task``.

        ``run(a, b, "ivif")`` and ``run([a, b, c], task="mef")`` both work. ``findings`` replaces
        perception (e.g. a synthetic suite's ground truth); ``perception`` is a report already
        computed for these images (perception is not run again).
        """
        t_start = time.perf_counter()
        items, task = _split_task(images, task)
        loaded = [im if isinstance(im, np.ndarray) else read_image(im) for im in items]
        env = self.environment
        inputs, notes = env.validate_inputs(loaded, task)
        roles = list(inputs)

        perceiving = perception is None and findings is None and self._perceives()
        # the inputs are hashed in a worker thread while perception looks at them (hashlib releases the GIL)
        hashing_inputs = _background().submit(env.create_state, inputs) if perceiving else None
        t0 = time.perf_counter()
        if perception is not None:
            report = dict(perception)
        else:
            report = self._perceive(inputs, task) if perceiving else None
        perception_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        state0 = hashing_inputs.result() if hashing_inputs is not None else env.create_state(inputs)
        hashing_seconds = time.perf_counter() - t0  # content hashing the run waited for
        if findings is None:
            findings = Findings.from_report(report, roles)

        t0 = time.perf_counter()
        context = PlanContext(task=task, roles=roles, findings=findings, report=report, images=state0.images,
                              experience=self.experience, seed=self.seed, environment=env)
        executed_before, tools_before = env.executions, env.tool_seconds
        proposal = propose(self.planner, context)
        planning_tool_calls = env.executions - executed_before  # planners that search (oracle, best-of-K)
        planning_tool_seconds = env.tool_seconds - tools_before
        planning_seconds = time.perf_counter() - t0

        steps: list[AgentStep] = [AgentStep(0, "plan", "planned", None, proposal.response)]
        states: dict[str, State] = {state0.key: state0}
        reflect = self.reflect and getattr(self.planner, "reflect", True)
        reflection_before = self.reflector.seconds
        tool_seconds = preparing_seconds = 0.0

        actions = list(proposal.trajectory.actions)
        queue: deque[tuple[Action, bool]] = deque((a, False) for a in actions[:-1])
        accepted: list[Action] = []
        state = state0
        step_rewards: list[float] = []

        helper = self._helper() if reflect and self.reflector.scorer is None else None
        # steps run ahead on an output while the helper rates it, by (input key, action text)
        ahead: dict[tuple[str, str], PendingStep] = {}
        discarded = 0.0  # seconds of steps run ahead and not kept

        def execute_ahead(output: PendingStep, action: Action) -> PendingStep | None:
            """Run ``action`` now on an output whose state is still being hashed, for the attempt
            that follows if the step that made it is accepted (None when it failed: that attempt
            runs it again and records the failure)."""
            try:
                return env.execute(output.images, output.masks, action, task)
            except Exception:  # noqa: BLE001 - recorded by the attempt that runs it
                return None

        def keep_ahead(output: State, action: Action, early: PendingStep) -> None:
            """Keep ``early`` (``action`` run ahead on ``output``'s images) for that attempt, unless
            the step cache already answers it (as it would have without running ahead)."""
            nonlocal discarded
            step = early.keyed(output)
            if step.key in env.cache or (output.key, action.text()) in ahead:
                discarded += step.seconds
                return
            ahead[(output.key, action.text())] = step

        def attempt(action: Action, current: State, kind: str, n: int, why: str,
                    rate: Callable[[PendingStep], Callable[[], Rating]] | None = None, then: Action | None = None
                    ) -> tuple[State | None, AgentStep, Rating | None]:
            """Run ``action`` on ``current`` and record it. When it is rated (``rate``, the reflection):
            with a helper process, the helper prepares and rates while a worker thread hashes the
            output and this thread runs ``then``, the action that follows if this one is accepted, on
            it when :attr:`run_ahead` says it pays off; without one, the worker prepares what the
            rating needs of ``current`` while the tool runs and hashes the output while the rating
            looks at it. The new state is None when the attempt failed."""
            nonlocal tool_seconds, hashing_seconds, preparing_seconds, discarded
            record = AgentStep(len(steps), kind, "failed", action.text(), why, n, input_key=current.key)
            pending = ahead.pop((current.key, action.text()), None)
            waited = 0.0
            if pending is None:
                preparing = None
                if rate is not None and kind == "step":
                    targets = env.targets(current, action, task)
                    if helper is not None:
                        self.reflector.prepare_later(helper, current.images, targets, task, action.task)
                    else:
                        preparing = _background().submit(self.reflector.prepare, current.images, targets, task,
                                                          action.task)
                t0 = time.perf_counter()
                try:
                    pending = env.begin_step(current, action, task)
                except Exception as exc:  # a failing tool is a failed attempt, not a crash
                    record.seconds = time.perf_counter() - t0
                    tool_seconds += record.seconds
                    record.error = f"{type(exc).__name__}: {exc}"
                    return None, record, None
                finally:
                    t0 = time.perf_counter()
                    if preparing is not None:
                        preparing.result()  # from here on the reflector is this thread's alone
                    waited = time.perf_counter() - t0
                    preparing_seconds += waited
            tool_seconds += pending.seconds
            record.seconds, record.cached = pending.seconds, pending.cached
            rating, later, early = None, None, None
            # a worker thread hashes the output while it is rated, in the helper (while this thread may
            # run the next step on it) or here
            hashing = _background().submit(pending.finish) if rate is not None and pending.result is None else None
            if rate is not None and helper is not None:
                cpu0 = self.reflector.cpu_seconds
                later = rate(pending)
                if then is not None and self.run_ahead.worth(action.tool, then.tool, _pixels(pending.images)):
                    early = execute_ahead(pending, then)
            elif rate is not None:
                rating = rate(pending)()
            if later is not None and early is None:  # nothing runs here meanwhile: the hash can wait
                rating, later = later(), None
                self.run_ahead.observe_rating(self.reflector.cpu_seconds - cpu0)
            t0 = time.perf_counter()
            try:
                new, _, _ = hashing.result() if hashing is not None else pending.finish()
            except Exception as exc:  # the output state could not be created: as a failing tool
                record.error = f"{type(exc).__name__}: {exc}"
                discarded += early.seconds if early is not None else 0.0
                return None, record, None
            finally:
                hashing_seconds += time.perf_counter() - t0
            if early is not None:
                keep_ahead(new, then, early)
            if later is not None:
                rating = later()
                self.run_ahead.observe_rating(self.reflector.cpu_seconds - cpu0)
            if rating is not None:  # the wait for the preparation is part of the reflection
                rating = rating[0], rating[1], rating[2] + waited
            record.output_key = new.key
            states[new.key] = new
            return new, record, rating

        while queue:
            planned, was_rescheduled = queue.popleft()
            candidates = [planned]
            if reflect:
                candidates += self.planner.alternatives(context, planned)[: self.max_candidates - 1]
            done = False
            for n, action in enumerate(candidates):
                why = "planned" if n == 0 else f"alternative {n} after rolling back {candidates[n - 1].text()}"
                rate = partial(self._rate_step, state, action, task, helper) if reflect else None
                then = queue[0][0] if queue else actions[-1]
                new, record, rating = attempt(action, state, "step", n, why, rate, then)
                steps.append(record)
                if new is None:
                    continue
                if not reflect:
                    record.status = "accepted"
                    state, done = new, True
                    accepted.append(action)
                    break
                scores, record.error, record.overhead_seconds = rating
                if scores is None:
                    self.run_ahead.observe_outcome(action.tool, False)
                    continue
                record.reward, record.scores = scores["total"], scores
                worse = scores["total"] < 0.5 - self.tolerance
                low = self.threshold is not None and scores["total"] < self.threshold
                self.run_ahead.observe_outcome(action.tool, not (worse or low))
                if worse or low:
                    record.status = "rolled_back"
                    continue
                record.status = "accepted"
                state, done = new, True
                step_rewards.append(scores["total"])
                accepted.append(action)
                break
            if done:
                continue
            if self.reschedule and not was_rescheduled and queue:
                queue.append((planned, True))
                steps.append(AgentStep(len(steps), "reschedule", "rescheduled", planned.text(),
                                       f"every candidate for {planned.task} failed: moved after "
                                       f"{queue[-2][0].text()}", input_key=state.key))
            else:
                steps.append(AgentStep(len(steps), "drop", "dropped", planned.text(),
                                       f"every candidate for {planned.task} failed: task dropped", input_key=state.key))

        fusion = actions[-1]
        candidates = [fusion] + self.planner.alternatives(context, fusion)[: self.max_candidates - 1]
        fused_action = None
        sources = [state0.images[r] for r in roles]
        for n, action in enumerate(candidates):
            why = "planned" if n == 0 else f"alternative {n} after {candidates[n - 1].text()} failed"
            rate = partial(self._rate_fusion, sources, task, step_rewards, helper) if reflect else None
            new, record, rating = attempt(action, state, "fusion", n, why, rate)
            steps.append(record)
            if new is None:
                continue
            record.status = "accepted"
            if rating is not None:
                scores, record.error, record.overhead_seconds = rating
                if scores is not None:
                    record.scores, record.reward = scores, scores["total"]
            fused_action = action
            break
        if fused_action is None:
            errors = "; ".join(s.error or "" for s in steps if s.kind == "fusion")
            raise FuseAgentError(f"every fusion operator failed: {errors}")
        accepted.append(fused_action)

        execution = _accepted_execution(env, state0, task, accepted, notes)
        return AgentResult(
            fused=execution.fused, task=task, planner=proposal.planner, proposal=proposal, execution=execution,
            steps=steps, states=states, perception=report, findings=findings,
            seconds=time.perf_counter() - t_start, tool_seconds=tool_seconds,
            perception_seconds=perception_seconds, planning_seconds=planning_seconds,
            reflection_seconds=self.reflector.seconds - reflection_before + preparing_seconds, notes=notes,
            hashing_seconds=hashing_seconds, planning_tool_calls=planning_tool_calls,
            planning_tool_seconds=planning_tool_seconds,
            discarded_tool_seconds=discarded + sum(p.seconds for p in ahead.values()))

    def replay(self, trace: Mapping[str, Any], *images: ImageLike) -> ExecutionResult:
        """Re-run a saved trace's accepted trajectory on its images (bit-for-bit the same output)."""
        items, _ = _split_task(images, trace.get("task"))
        loaded = [im if isinstance(im, np.ndarray) else read_image(im) for im in items]
        return self.environment.replay(trace, loaded)
