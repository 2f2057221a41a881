"""The ``expert`` planner: rules a human expert would apply to the perception report.

For each perceived degradation at or above ``min_level`` it adds the task that removes it (on
the affected image only), skips what the fusion task itself resolves (multi-focus blur,
multi-exposure brightness), registers when the pair is misaligned, deghosts moving content, then
orders the steps: the experience document's learned pairwise orders when it has them, else the
canonical restore → align order. Models come from the experience's success rates, else the
library's preference.
"""

from __future__ import annotations

from ..protocol import Action, Trajectory
from .base import PlanContext, Planner, PlannerCard, register_planner
from .library import CANONICAL_ORDER, applicable_actions, candidate_models, order_actions

__all__ = ["ExpertPlanner", "expert_actions", "expert_fusion"]


def expert_actions(context: PlanContext, min_level: int = 1) -> list[Action]:
    """The expert's pre-fusion actions for a context (ordered, models chosen)."""
    actions = applicable_actions(context.findings, context.task, context.roles, min_level=min_level,
                                 experience=context.experience)
    order = CANONICAL_ORDER
    if context.experience is not None:
        order = context.experience.task_order([a.task for a in actions], context.task, CANONICAL_ORDER)
    return order_actions(actions, order)


def expert_fusion(context: PlanContext) -> str:
    """The expert's fusion operator: the experience's most successful, else the library's first."""
    return candidate_models("fusion", context.task, context.experience)[0]


def _describe(context: PlanContext, min_level: int) -> str:
    found = [f"{kind} level {level} on {role}" for role, kind, level in context.findings.detected(min_level)]
    found += [f"{kind} level {level} between the images" for kind, level in context.findings.relational.items()
              if level >= min_level]
    return "; ".join(found) if found else "no degradation above the threshold"


@register_planner
class ExpertPlanner(Planner):
    """Rule-based planner from the perception report and the experience document.

    Args:
        min_level: smallest severity level (1..5) that calls for a restoration step.

    Example:
        >>> from fuseagent.plan import Findings, PlanContext
        >>> ctx = PlanContext.create("mff", findings=Findings({"a": {"blur": 4, "noise": 3}}))
        >>> [a.task for a in ExpertPlanner().plan(ctx).actions]   # blur is kept: MFF resolves it
        ['denoise', 'fusion']
    """

    card = PlannerCard("expert", "rules from the perception report and the experience document")

    def __init__(self, min_level: int = 1):
        self.min_level = int(min_level)

    def plan(self, context: PlanContext) -> Trajectory:
        actions = expert_actions(context, self.min_level)
        fusion = expert_fusion(context)
        think = (f"Perceived: {_describe(context, self.min_level)}. Restore only the affected images, "
                 f"align, then fuse with {fusion}.")
        return Trajectory(tuple(actions) + (Action("fusion", fusion),), think)
