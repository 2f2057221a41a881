"""SFT-data perturbation (TIR-Agent): variants of the best trajectory, each with its measured score.

Two kinds, as TIR-Agent augments its tool-use data:

* ``reorder`` — two adjacent *independent* steps swapped: single-image tools acting on different
  images (each reads and writes only its own image and masks, so both orders reach the same
  images; only the step rewards, hence the score, may differ);
* ``swap`` — one step's model replaced by another model of the same task (fusion included).

Variants are listed in a fixed order (every reorder, then every swap, step by step, models in the
library's preference order) and the first ``n`` valid ones are executed and scored like the
search's candidates (:func:`fuseagent.agent.trajectory_hqa`); their tool calls mostly hit the
cache the search filled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..protocol import Action, format_actions, resolve_targets, validate
from ..tools import TOOLS, load_builtin_tools

__all__ = ["independent", "perturbations", "score_trajectory"]


def _touched(action: Action, task: str, roles: Sequence[str]) -> tuple[str, set[str]]:
    load_builtin_tools()
    inputs = TOOLS.card(action.tool).inputs
    return inputs, set(resolve_targets(action.target, inputs, task, list(roles)))


def independent(first: Action, second: Action, task: str, roles: Sequence[str]) -> bool:
    """Whether two steps commute exactly: both single-image tools, on disjoint images.

    Example:
        >>> independent(Action("denoise", "nlm", "vis"), Action("destripe", "column", "ir"), "ivif", ["ir", "vis"])
        True
        >>> independent(Action("denoise", "nlm", "vis"), Action("registration", "sift"), "ivif", ["ir", "vis"])
        False
    """
    kind_a, roles_a = _touched(first, task, roles)
    kind_b, roles_b = _touched(second, task, roles)
    return kind_a == kind_b == "image" and not roles_a & roles_b


def perturbations(actions: Sequence[Action], task: str, roles: Sequence[str],
                  exclude: Sequence[str] = ()) -> list[tuple[str, list[Action]]]:
    """Every reorder then every model swap of a trajectory, as ``(kind, actions)``, valid and
    distinct, leaving out trajectories whose text is in ``exclude``."""
    from ..plan.library import models_for

    seen = set(exclude) | {format_actions(actions)}
    out: list[tuple[str, list[Action]]] = []

    def add(kind: str, variant: list[Action]) -> None:
        text = format_actions(variant)
        if text in seen:
            return
        try:
            validate(variant, task, len(roles))
        except Exception:  # an unsuitable variant is simply not one
            return
        seen.add(text)
        out.append((kind, variant))

    steps = list(actions)
    for i in range(len(steps) - 2):
        if independent(steps[i], steps[i + 1], task, roles):
            add("reorder", steps[:i] + [steps[i + 1], steps[i]] + steps[i + 2:])
    for i, action in enumerate(steps):
        for model in models_for(action.task, task, action.target if action.task != "fusion" else None):
            if model != action.model:
                add("swap", steps[:i] + [Action(action.task, model, action.target)] + steps[i + 1:])
    return out


def score_trajectory(env: Any, images: Any, task: str, actions: Sequence[Action], reflector: Any = None) -> float:
    """Execute a trajectory in ``env`` and score it as the search does (HQA with step rewards)."""
    from ..agent import trajectory_hqa

    execution = env.run(images, task, list(actions))
    return float(trajectory_hqa(execution.states, execution.actions, execution.steps, task, reflector))
