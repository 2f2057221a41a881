"""The execution environment g(A, B, 𝒜): run a trajectory, keep every intermediate, cache steps.

A :class:`State` is the set of images (by role: ``ir``/``vis`` or ``a``/``b``/…) plus masks, named by
a content hash. A step's output is a pure function of (input state hash, action, parameters), so the
:class:`StepCache` keys on exactly that: a trajectory that shares a prefix with one already run
reuses the prefix's states instead of recomputing them.
"""

from __future__ import annotations

import dataclasses

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import FuseAgentError, InputError
from .io import check_image, match_sizes, resize_to
from .protocol import Action, Trajectory, format_actions, parse_response, resolve_targets, roles_for, validate
from .tools import TOOLS, Tool, load_builtin_tools

__all__ = ["State", "StepRecord", "PendingStep", "ExecutionResult", "StepCache", "Environment", "image_hash",
           "jsonable"]


def image_hash(image: np.ndarray) -> str:
    """Content hash (shape, dtype and bytes) of an array.

    Example:
        >>> image_hash(np.zeros((2, 2), np.float32)) == image_hash(np.zeros((2, 2), np.float32))
        True
    """
    h = hashlib.blake2b(digest_size=16)
    h.update(str((image.shape, image.dtype.str)).encode())
    data = np.ascontiguousarray(image)
    try:
        h.update(data)  # the array's own buffer: no copy
    except (BufferError, TypeError, ValueError):
        h.update(data.tobytes())
    return h.hexdigest()


def jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays, tuples and nested containers to JSON-safe values."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 64 else {"shape": list(value.shape), "dtype": value.dtype.str}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


class ToolTimes:
    """Seconds per megapixel of each tool as measured in this process (a moving average), and an
    estimate from the tool's cost class for a tool not run yet: what schedulers plan with.

    Example:
        >>> times = ToolTimes()
        >>> times.observe("denoise.nlm", 500_000, 0.1)
        >>> round(times.estimate("denoise.nlm", 1_000_000), 3)
        0.2
    """

    #: seconds per megapixel assumed for a tool not timed yet, by cost class
    COST_SECONDS: dict[str, float] = {"low": 0.05, "medium": 1.0, "high": 10.0}
    #: weight of a new measurement in the moving average
    ALPHA = 0.3

    def __init__(self) -> None:
        self.seconds_per_megapixel: dict[str, float] = {}
        self._lock = threading.Lock()

    def observe(self, tool: str, pixels: int, seconds: float) -> None:
        if pixels <= 0:
            return
        rate = seconds * 1e6 / pixels
        with self._lock:
            old = self.seconds_per_megapixel.get(tool)
            self.seconds_per_megapixel[tool] = rate if old is None else old + self.ALPHA * (rate - old)

    def estimate(self, tool: str, pixels: int) -> float:
        """Expected seconds of ``tool`` on images of ``pixels`` pixels."""
        rate = self.seconds_per_megapixel.get(tool)
        if rate is None:
            try:
                cost = TOOLS.card(tool).cost
            except Exception:  # noqa: BLE001 - an unknown tool fails when it runs; assume it is slow
                cost = "high"
            rate = self.COST_SECONDS.get(cost, self.COST_SECONDS["high"])
        return rate * pixels / 1e6


#: every tool run of this process, timed (:meth:`Environment.execute` feeds it)
TOOL_TIMES = ToolTimes()


@dataclass(frozen=True)
class State:
    """Images by role, masks by name (``valid.ir``, ``occlusion.b``…), and their content hash.

    ``hashes`` holds the content hash of every image (by role) and mask (by name).
    """

    images: Mapping[str, np.ndarray]
    masks: Mapping[str, np.ndarray] = field(default_factory=dict)
    key: str = ""
    hashes: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def create(cls, images: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray] | None = None,
               previous: State | None = None, rehash: Collection[str] = ()) -> State:
        """A state and its key; arrays that are the very objects of ``previous`` keep its hashes.

        Images whose role is in ``rehash`` (those a tool just produced, which might be its input
        changed in place) are always hashed anew.

        Example:
            >>> a = np.zeros((4, 4), np.float32)
            >>> s = State.create({"a": a})
            >>> State.create({"a": a}, previous=s).key == s.key == State.create({"a": a.copy()}).key
            True
        """
        masks = dict(masks or {})
        known: dict[str, tuple[np.ndarray, str]] = {}
        if previous is not None:
            for name, array in (*previous.images.items(), *(("mask:" + k, v) for k, v in previous.masks.items())):
                if name in previous.hashes and name not in rehash:
                    known[name] = (array, previous.hashes[name])

        def content_hash(name: str, array: np.ndarray) -> str:
            old = known.get(name)
            return old[1] if old is not None and old[0] is array else image_hash(array)

        hashes = {role: content_hash(role, images[role]) for role in images}
        hashes.update({"mask:" + name: content_hash("mask:" + name, masks[name]) for name in masks})
        h = hashlib.blake2b(digest_size=16)
        for role in sorted(images):
            h.update(role.encode() + hashes[role].encode())
        for name in sorted(masks):
            h.update(name.encode() + hashes["mask:" + name].encode())
        return cls(dict(images), masks, h.hexdigest(), hashes)

    def image_hash(self, role: str) -> str:
        """Content hash of the image of ``role`` (computed when the state was created)."""
        return self.hashes.get(role) or image_hash(self.images[role])


@dataclass
class StepRecord:
    """JSON-safe record of one executed action."""

    index: int
    action: str
    tool: str
    targets: list[str]
    seconds: float
    cached: bool
    input_key: str
    output_key: str
    info: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return jsonable(self.__dict__)


@dataclass
class PendingStep:
    """An executed step whose output state is not created (content-hashed) yet: :meth:`finish` does it.

    :meth:`Environment.begin_step` returns it as soon as the tool has run, so that the output can
    be looked at (rated) while :meth:`finish` hashes it, e.g. in another thread (``hashlib``
    releases the GIL). For a step answered by the cache the state is already known.

    Attributes:
        images, masks: the output state's images (by role) and masks (by name).
        targets: the roles the action acted on; ``info``: the tool's JSON-safe information.
        seconds: time inside the tool (0 when cached); ``cached``: answered by the step cache.
    """

    env: Environment
    state: State | None
    action: Action
    key: str
    images: Mapping[str, np.ndarray]
    masks: Mapping[str, np.ndarray]
    targets: list[str]
    info: dict[str, Any]
    seconds: float
    cached: bool
    result: tuple[State, StepRecord, bool] | None = None

    def keyed(self, state: State) -> PendingStep:
        """This step as run on ``state`` (whose images it was run on, hashed since), under its cache key."""
        return dataclasses.replace(self, state=state, key=self.env.cache.key(state, self.action))

    def finish(self) -> tuple[State, StepRecord, bool]:
        """The output state (hashed once), its step record and whether it was cached."""
        if self.result is None:
            new = self.env._create_state(self.images, self.masks, previous=self.state, rehash=self.targets)
            self.env.cache.put(self.key, new, self.info)
            self.result = new, StepRecord(0, self.action.text(), self.action.tool, self.targets, self.seconds, False,
                                          self.state.key, new.key, self.info), False
        return self.result


@dataclass
class ExecutionResult:
    """Fused image, every intermediate state, and the step records."""

    fused: np.ndarray
    task: str
    trajectory: str
    states: list[State]
    steps: list[StepRecord]
    seconds: float
    notes: list[str] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)

    @property
    def executed(self) -> int:
        """Tool executions actually run (cache hits excluded)."""
        return sum(1 for s in self.steps if not s.cached)

    def _output_hash(self) -> str:
        last = self.states[-1] if self.states else None
        if last is not None and last.images.get("fused") is self.fused:
            return last.image_hash("fused")
        return image_hash(self.fused)

    def trace(self) -> dict[str, Any]:
        """JSON-safe trace; :meth:`Environment.replay` re-runs it."""
        first = self.states[0]
        return jsonable({
            "format": "fuseagent.trace/1",
            "task": self.task,
            "trajectory": self.trajectory,
            "actions": [a.to_dict() for a in self.actions],
            "inputs": [{"role": r, "shape": list(first.images[r].shape), "hash": first.image_hash(r)}
                       for r in first.images],
            "steps": [s.to_dict() for s in self.steps],
            "output": {"shape": list(self.fused.shape), "hash": self._output_hash()},
            "seconds": round(self.seconds, 4),
            "notes": self.notes,
        })


class StepCache:
    """LRU cache of step outputs keyed by (input state, action, parameters), bounded in bytes."""

    def __init__(self, max_bytes: int = 2 << 30):
        self.max_bytes = max_bytes
        self._data: OrderedDict[str, tuple[State, dict[str, Any]]] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(state: State, action: Action) -> str:
        payload = json.dumps([state.key, action.tool, action.target, jsonable(dict(action.params))], sort_keys=True)
        return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()

    @staticmethod
    def _size(state: State) -> int:
        return sum(a.nbytes for a in state.images.values()) + sum(a.nbytes for a in state.masks.values())

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def get(self, key: str) -> tuple[State, dict[str, Any]] | None:
        item = self._data.get(key)
        if item is None:
            self.misses += 1
            return None
        self._data.move_to_end(key)
        self.hits += 1
        return item

    def put(self, key: str, state: State, info: dict[str, Any]) -> None:
        if key in self._data:
            return
        size = self._size(state)
        if size > self.max_bytes:
            return
        self._data[key] = (state, info)
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, (old, _) = self._data.popitem(last=False)
            self._bytes -= self._size(old)

    def __len__(self) -> int:
        return len(self._data)


class Environment:
    """Runs trajectories on a pair/stack of images with a shared step cache.

    Attributes:
        cache: the :class:`StepCache`.
        hash_seconds: time spent creating states (content hashing of every new image and mask),
            summed over every call; not part of any step's tool ``seconds``.
        tool_seconds: time spent inside tools, summed over every step executed (cache hits take none).
        executions: tool executions run, every call of :meth:`execute` (a step answered by the cache is
            none; a step run ahead of its turn is one, whether it is kept or discarded).

    Example:
        >>> env = Environment()
        >>> a = np.random.default_rng(0).random((32, 32)).astype(np.float32)
        >>> res = env.run([a, a[::-1].copy()], "ivif", "[task:fusion][model:laplacian]")
        >>> res.fused.shape, res.executed, env.executions
        ((32, 32), 1, 1)
    """

    def __init__(self, cache: StepCache | None = None):
        load_builtin_tools()
        self.cache = cache if cache is not None else StepCache()
        self._tools: dict[str, Tool] = {}
        self.hash_seconds = 0.0
        self.tool_seconds = 0.0
        self.executions = 0

    def _create_state(self, images: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray] | None = None,
                      previous: State | None = None, rehash: Collection[str] = ()) -> State:
        """:meth:`State.create`, its time added to :attr:`hash_seconds`."""
        t0 = time.perf_counter()
        try:
            return State.create(images, masks, previous, rehash)
        finally:
            self.hash_seconds += time.perf_counter() - t0

    def tool(self, name: str) -> Tool:
        """The tool instance for ``name`` (created once per environment: a model pool)."""
        if name not in self._tools:
            self._tools[name] = TOOLS.create(name)
        return self._tools[name]

    def initial_state(self, images: Sequence[np.ndarray] | Mapping[str, np.ndarray], task: str) -> tuple[State, list[str]]:
        """Validate inputs and bring them to a common size (that of the first / visible image).

        IVIF roles are ``ir, vis`` in that order when a sequence is given.
        """
        inputs, notes = self.validate_inputs(images, task)
        return self.create_state(inputs), notes

    def create_state(self, images: Mapping[str, np.ndarray]) -> State:
        """The state of validated input images (:meth:`validate_inputs`), content-hashed."""
        return self._create_state(images)

    def validate_inputs(self, images: Sequence[np.ndarray] | Mapping[str, np.ndarray],
                        task: str) -> tuple[dict[str, np.ndarray], list[str]]:
        """The input images by role, validated and brought to a common size (see
        :meth:`initial_state`), and notes on what was resampled."""
        if isinstance(images, Mapping):
            roles = roles_for(task, len(images))
            missing = set(roles) - set(images)
            if missing:
                raise InputError(f"missing image role(s) {', '.join(sorted(missing))} for {task.upper()}")
            ordered = [images[r] for r in roles]
        else:
            ordered = list(images)
            if len(ordered) < 2:
                raise InputError(f"fusion needs at least 2 images, got {len(ordered)}")
            roles = roles_for(task, len(ordered))
        ordered = [check_image(im, f"image '{r}'") for r, im in zip(roles, ordered)]
        notes = []
        reference = roles.index("vis") if task == "ivif" else 0
        sizes = {im.shape[:2] for im in ordered}
        if len(sizes) > 1:
            h, w = ordered[reference].shape[:2]
            notes.append(f"inputs of different sizes {sorted(sizes)} resampled to {w}x{h} ({roles[reference]})")
            ordered = match_sizes(ordered, reference)
        return dict(zip(roles, ordered)), notes

    def step(self, state: State, action: Action, task: str) -> tuple[State, StepRecord, bool]:
        """Run one action on a state (or fetch it from the cache)."""
        return self.begin_step(state, action, task).finish()

    def targets(self, state: State, action: Action, task: str) -> list[str]:
        """The roles of ``state`` that ``action`` acts on (every role for a fusion)."""
        return resolve_targets(action.target, TOOLS.card(action.tool).inputs, task, list(state.images))

    def begin_step(self, state: State, action: Action, task: str) -> PendingStep:
        """Run one action on a state (or fetch it from the cache), leaving the output state to
        :meth:`PendingStep.finish` (content hashing, caching)."""
        key = self.cache.key(state, action)
        hit = self.cache.get(key)
        if hit is not None:
            new, info = hit
            targets = self.targets(state, action, task)
            record = StepRecord(0, action.text(), action.tool, targets, 0.0, True, state.key, new.key, info)
            return PendingStep(self, state, action, key, new.images, new.masks, targets, info, 0.0, True,
                               (new, record, True))
        return self.execute(state.images, state.masks, action, task, state, key)

    def execute(self, images: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray], action: Action, task: str,
                state: State | None = None, key: str = "") -> PendingStep:
        """Run ``action``'s tool on ``images`` and ``masks`` (no cache lookup): the output as a
        :class:`PendingStep` of ``state`` (the state those images make) under the cache key
        ``key``. Without ``state`` (not hashed yet), :meth:`PendingStep.keyed` gives it later."""
        tool = self.tool(action.tool)
        card = tool.card
        params = dict(action.params)
        roles = list(images)
        targets = resolve_targets(action.target, card.inputs, task, roles)
        images = dict(images)
        masks = dict(masks)
        info: dict[str, Any] = {}
        self.executions += 1
        t0 = time.perf_counter()
        try:
            if card.inputs == "stack":
                result = tool(_fill_invalid(images, masks, roles), **params)
                images = {"fused": result.image}
                masks.update({f"{k}.fused": v for k, v in result.masks.items()})
                info = result.info
            elif card.inputs == "pair":
                for role in targets:
                    reference = _reference_for(role, roles, task)
                    result = tool(images[role], images[reference], **params)
                    images[role] = result.image
                    masks.update({f"{k}.{role}": v for k, v in result.masks.items()})
                    info[role] = dict(result.info, reference=reference)
            else:
                for role in targets:
                    if card.task == "inpaint":
                        hole = _hole_mask(masks, role)
                        result = tool(images[role], **dict(params, mask=hole)) if hole is not None else tool(images[role], **params)
                    else:
                        result = tool(images[role], **params)
                    size = images[role].shape[:2]
                    if result.image.shape[:2] != size:
                        # every image of a state shares one size (masks and fusion rely on it): a tool that
                        # changes it (super-resolution) is brought back to the pipeline's size
                        result.info = dict(result.info, resampled_to=[size[1], size[0]])
                        result.image = resize_to(result.image, size)
                        result.masks = {k: resize_to(v.astype(np.float32), size) for k, v in result.masks.items()}
                    images[role] = result.image
                    masks.update({f"{k}.{role}": v for k, v in result.masks.items()})
                    info[role] = result.info
        finally:  # a failing tool's time counts too
            seconds = time.perf_counter() - t0
            self.tool_seconds += seconds
        first = next(iter(images.values()), None)
        if first is not None:
            TOOL_TIMES.observe(action.tool, int(first.shape[0] * first.shape[1]), seconds)
        return PendingStep(self, state, action, key, images, masks, targets, jsonable(info), seconds, False)

    def run(self, images: Sequence[np.ndarray] | Mapping[str, np.ndarray], task: str,
            trajectory: str | Trajectory | Sequence[Action]) -> ExecutionResult:
        """Validate and execute a trajectory; returns the fused image and the trace."""
        t0 = time.perf_counter()
        if isinstance(trajectory, str):
            actions = list(parse_response(trajectory).actions)
        elif isinstance(trajectory, Trajectory):
            actions = list(trajectory.actions)
        else:
            actions = list(trajectory)
        state, notes = self.initial_state(images, task)
        validate(actions, task, len(state.images))
        states, steps = [state], []
        for i, action in enumerate(actions):
            try:
                state, record, _ = self.step(state, action, task)
            except FuseAgentError:
                raise
            except Exception as exc:  # a tool crashing on odd data is reported with its step
                raise FuseAgentError(f"step {i + 1} {action.text()} failed: {type(exc).__name__}: {exc}") from exc
            record.index = i
            states.append(state)
            steps.append(record)
        fused = state.images["fused"]
        return ExecutionResult(fused, task, format_actions(actions), states, steps, time.perf_counter() - t0,
                               notes, actions)

    def replay(self, trace: Mapping[str, Any], images: Sequence[np.ndarray] | Mapping[str, np.ndarray]) -> ExecutionResult:
        """Re-run a saved trace on its input images; checks the inputs are the traced ones."""
        if trace.get("format") != "fuseagent.trace/1":
            raise InputError("not a fuseagent trace (format fuseagent.trace/1 expected)")
        state, _ = self.initial_state(images, trace["task"])
        expected = {i["role"]: i["hash"] for i in trace["inputs"]}
        got = {r: state.image_hash(r) for r in state.images}
        if expected != got:
            raise InputError("the images given are not the ones this trace was recorded on")
        if "actions" in trace:
            actions = [Action.from_dict(a) for a in trace["actions"]]
        else:
            actions = list(parse_response(trace["trajectory"]).actions)
        return self.run(state.images, trace["task"], actions)


def _reference_for(role: str, roles: Sequence[str], task: str) -> str:
    if task == "ivif":
        return "vis" if role == "ir" else "ir"
    return roles[0] if role != roles[0] else roles[1]


def _fill_invalid(images: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray],
                  roles: Sequence[str]) -> list[np.ndarray]:
    """Sources for fusion, where pixels a warp left without data (``valid.<role>`` = 0) take the
    mean of the other sources that have data there, so no empty border enters the fused image."""
    shape = images[roles[0]].shape[:2]
    if any(images[r].shape[:2] != shape for r in roles):
        return [images[r] for r in roles]
    valid = {r: (masks[f"valid.{r}"] >= 0.5) if masks.get(f"valid.{r}") is not None
             and masks[f"valid.{r}"].shape[:2] == shape else np.ones(shape, bool) for r in roles}
    if all(v.all() for v in valid.values()):
        return [images[r] for r in roles]
    out = []
    for role in roles:
        image = images[role]
        if valid[role].all():
            out.append(image)
            continue
        total = np.zeros_like(image)
        count = np.zeros(shape, np.float32)
        for other in roles:
            if other == role:
                continue
            o = images[other]
            if o.ndim != image.ndim:
                o = o.mean(axis=2) if o.ndim == 3 else np.repeat(o[..., None], 3, axis=2)
            ok = valid[other].astype(np.float32)
            total += (ok[..., None] if image.ndim == 3 else ok) * o
            count += ok
        hole = ~valid[role] & (count > 0)
        filled = image.copy()
        filled[hole] = total[hole] / (count[hole][:, None] if image.ndim == 3 else count[hole])
        out.append(filled)
    return out


def _hole_mask(masks: Mapping[str, np.ndarray], role: str) -> np.ndarray | None:
    """Pixels of ``role`` a previous step marked invalid (outside a warp, occluded, moving)."""
    hole = None
    for name, mask in masks.items():
        kind, _, owner = name.rpartition(".")
        if owner != role:
            continue
        if kind == "valid":
            bad = mask < 0.5
        elif kind in ("occlusion", "motion"):
            bad = mask >= 0.5
        else:
            continue
        hole = bad if hole is None else (hole | bad)
    if hole is None or not hole.any():
        return None
    return hole
