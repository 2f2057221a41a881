"""Random planners: the ablations of the seed paper's Table 1.

All three plan the same set of tasks as the ``expert`` (those the perception calls for) and
randomise what the ablation studies: ``random`` the order and the models, ``random-order`` only
the order, ``random-model`` only the models (the fusion operator included). Draws are seeded by the
context's seed, so a run is reproducible.
"""

from __future__ import annotations

from ..protocol import Action, Trajectory
from .base import PlanContext, Planner, PlannerCard, register_planner
from .expert import expert_actions, expert_fusion
from .library import models_for

__all__ = ["RandomPlanner", "RandomOrderPlanner", "RandomModelPlanner"]


class _Randomised(Planner):
    shuffle_order = True
    random_models = True

    def plan(self, context: PlanContext) -> Trajectory:
        rng = context.rng(self.card.name)
        actions = expert_actions(context)
        if self.shuffle_order and len(actions) > 1:
            actions = [actions[i] for i in rng.permutation(len(actions))]
        fusion = expert_fusion(context)
        if self.random_models:
            actions = [Action(a.task, str(rng.choice(models_for(a.task, context.task, a.target))), a.target) for a in actions]
            fusion = str(rng.choice(models_for("fusion", context.task)))
        what = " and ".join(w for w, on in (("order", self.shuffle_order), ("models", self.random_models)) if on)
        return Trajectory(tuple(actions) + (Action("fusion", fusion),), f"Random {what} over the perceived tasks.")

    def alternatives(self, context: PlanContext, action: Action) -> list[Action]:
        if not self.random_models:
            return super().alternatives(context, action)
        rng = context.rng(f"{self.card.name}:{action.text()}")
        others = [m for m in models_for(action.task, context.task, action.target) if m != action.model]
        return [Action(action.task, others[i], action.target) for i in rng.permutation(len(others))]


@register_planner
class RandomPlanner(_Randomised):
    """Perceived tasks in random order with random models.

    Example:
        >>> from fuseagent.plan import Findings, PlanContext
        >>> ctx = PlanContext.create("ivif", findings=Findings({"vis": {"noise": 3}}), seed=1)
        >>> RandomPlanner().plan(ctx).text() == RandomPlanner().plan(ctx).text()   # seeded
        True
    """

    card = PlannerCard("random", "perceived tasks in random order with random models (ablation)")


@register_planner
class RandomOrderPlanner(_Randomised):
    """Perceived tasks in random order, the expert's models."""

    card = PlannerCard("random-order", "random order, the expert's models (ablation)")
    random_models = False


@register_planner
class RandomModelPlanner(_Randomised):
    """The expert's order with random models."""

    card = PlannerCard("random-model", "the expert's order, random models (ablation)")
    shuffle_order = False
