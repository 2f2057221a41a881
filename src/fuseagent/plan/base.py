"""The planner interface, the planning context, and the planner registry.

A planner turns a :class:`PlanContext` (fusion task, image roles, thumbnails, perception findings,
experience, feedback from earlier failed attempts) into a :class:`~fuseagent.protocol.Trajectory`
in the action protocol: ``<think>…</think><answer>[task:x][model:y][on:z] -> … -> [task:fusion][model:f]``.
When the agent rolls a step back it asks the planner for :meth:`Planner.alternatives`: the next
candidate models for the same task and target, best first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from ..protocol import Action, Trajectory, roles_for
from ..registry import Registry
from .findings import Findings
from .library import candidate_models

__all__ = ["PlanContext", "Planner", "Proposal", "PlannerCard", "PLANNERS", "register_planner", "create_planner",
           "list_planners", "planner_card"]


@dataclass
class PlanContext:
    """Everything a planner may look at.

    Attributes:
        task: fusion task (``ivif``, ``mef``, ``mff``).
        roles: image roles in input order (``ir, vis`` or ``a, b, …``).
        findings: per-image and relational degradation levels from perception.
        report: the raw JSON-safe perception report (None when perception was skipped).
        images: the input images by role (full size; planners that look at pixels downscale them).
        experience: the experience summary (:class:`~fuseagent.plan.experience.Experience`) or None.
        seed: seed of the planner's random choices (random planners, tie breaks).
        feedback: messages from earlier attempts of this run (parser errors, failed tasks).
        environment: the execution environment (the oracle searches with it; others ignore it).
    """

    task: str
    roles: list[str]
    findings: Findings = field(default_factory=Findings)
    report: Mapping[str, Any] | None = None
    images: Mapping[str, np.ndarray] = field(default_factory=dict)
    experience: Any = None
    seed: int = 0
    feedback: list[str] = field(default_factory=list)
    environment: Any = None

    @classmethod
    def create(cls, task: str, n_images: int = 2, **kwargs: Any) -> PlanContext:
        """A context for ``n_images`` inputs of ``task`` (roles filled in).

        Example:
            >>> PlanContext.create("mef", 3).roles
            ['a', 'b', 'c']
        """
        return cls(task=task, roles=roles_for(task, n_images), **kwargs)

    def rng(self, salt: str = "") -> np.random.Generator:
        """A generator seeded by ``seed`` and ``salt`` (stable across runs and processes)."""
        mix = sum((i + 1) * ord(ch) for i, ch in enumerate(salt))
        return np.random.default_rng([int(self.seed) & 0xFFFFFFFF, mix])


@dataclass
class Proposal:
    """A planner's answer with how it was obtained.

    Attributes:
        trajectory: the validated trajectory.
        response: the protocol text (``<think>…</think><answer>…</answer>``).
        planner: name of the planner that produced it (``expert`` after a VLM fallback).
        attempts: raw exchanges (VLM replies and parser errors), JSON-safe.
    """

    trajectory: Trajectory
    response: str
    planner: str
    attempts: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class PlannerCard:
    """What a planner is: its registry name and one line for tables and ``--help``."""

    name: str
    description: str
    uses_perception: bool = True


class Planner:
    """Base class of planners. Subclasses set ``card`` and implement :meth:`plan`.

    Attributes:
        reflect: whether the agent should reflect on (and roll back) this planner's steps. The
            oracle sets it False: its trajectory is already the best of everything it executed.
    """

    card: PlannerCard = PlannerCard("base", "abstract planner")
    reflect: bool = True

    @property
    def name(self) -> str:
        return self.card.name

    def plan(self, context: PlanContext) -> Trajectory:
        """The trajectory for this context (pre-fusion actions, then exactly one fusion)."""
        raise TypeError(f"{type(self).__name__} does not implement plan()")

    def propose(self, context: PlanContext) -> Proposal:
        """The plan with how it was obtained (planners that talk to a model record the exchange)."""
        trajectory = self.plan(context)
        return Proposal(trajectory, trajectory.response(), self.name)

    def alternatives(self, context: PlanContext, action: Action) -> list[Action]:
        """Other candidate actions for the task and target of ``action``, best first.

        The default ranks the task's models for this fusion task by the experience (when given)
        and the tool library's preference (cheap, robust first).
        """
        models = candidate_models(action.task, context.task, context.experience, action.target)
        return [Action(action.task, m, action.target) for m in models if m != action.model]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


PLANNERS: Registry[Planner] = Registry("planner")


def register_planner(cls: type[Planner]) -> type[Planner]:
    """Class decorator: add a planner class to the registry under its card's name."""
    PLANNERS.register(cls.card.name, cls.card, factory=cls)
    return cls


_BUILTIN = ("predefined", "random", "expert", "vlm", "oracle", "learned")
_loaded = False


def _load_builtin() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib

    for module in _BUILTIN:
        importlib.import_module(f"{__package__}.{module}")


def create_planner(name: str, **options: Any) -> Planner:
    """Build the planner ``name`` (``random``, ``random-order``, ``random-model``, ``predefined``,
    ``expert``, ``vlm``, ``oracle``) with its options.

    Example:
        >>> create_planner("predefined").name
        'predefined'
    """
    _load_builtin()
    try:
        return PLANNERS.create(name, **options)
    except TypeError as exc:
        raise InputError(f"planner '{name}': {exc}") from None


def list_planners() -> list[str]:
    """Names of the registered planners.

    Example:
        >>> {"expert", "oracle", "random"} <= set(list_planners())
        True
    """
    _load_builtin()
    return PLANNERS.names()


def planner_card(name: str) -> PlannerCard:
    """The card of planner ``name``."""
    _load_builtin()
    return PLANNERS.card(name)

