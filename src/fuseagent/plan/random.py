"""Random planners: the ablations of the seed paper's Table 1.

All three randomise the ``predefined`` pipeline (the fixed template instantiated with the
perceived tasks, :func:`~fuseagent.plan.predefined.predefined_actions`) in what the ablation
studies: ``random`` its order and its models, ``random-order`` only the order (the template's
models), ``random-model`` only the models (the fusion operator included; the template's canonical
order). Each is thus the fixed pipeline with one decision left to chance, and the adaptive planners
(``expert``, ``learned``) are compared with all of them. Draws are seeded by the context's seed, so
a run is reproducible.
"""

from __future__ import annotations

from ..protocol import Action, Trajectory
from .base import PlanContext, Planner, PlannerCard, register_planner
from .library import models_for
from .predefined import predefined_actions, predefined_plan

__all__ = ["RandomPlanner", "RandomOrderPlanner", "RandomModelPlanner"]


class _Randomised(Planner):
    shuffle_order = True
    random_models = True

    def plan(self, context: PlanContext) -> Trajectory:
        rng = context.rng(self.card.name)
        actions = predefined_actions(context)
        if self.shuffle_order and len(actions) > 1:
            actions = [actions[i] for i in rng.permutation(len(actions))]
        fusion = predefined_plan(context.task).actions[-1].model
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
    """The predefined pipeline's tasks in random order with random models.

    Example:
        >>> from fuseagent.plan import Findings, PlanContext
        >>> ctx = PlanContext.create("ivif", findings=Findings({"vis": {"noise": 3}}), seed=1)
        >>> RandomPlanner().plan(ctx).text() == RandomPlanner().plan(ctx).text()   # seeded
        True
    """

    card = PlannerCard("random", "the predefined pipeline's tasks in random order with random models (ablation)")


@register_planner
class RandomOrderPlanner(_Randomised):
    """The predefined pipeline's steps in random order (its models)."""

    card = PlannerCard("random-order", "the predefined pipeline's models in random order (ablation)")
    random_models = False


@register_planner
class RandomModelPlanner(_Randomised):
    """The predefined pipeline's order with random models."""

    card = PlannerCard("random-model", "the predefined pipeline's order with random models (ablation)")
    shuffle_order = False
