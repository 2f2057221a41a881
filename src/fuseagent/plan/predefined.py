"""The pre-defined pipeline: restore → register → fuse with fixed models, per fusion task.

Two forms of one template:

* :func:`predefined_plan` — the template itself, blind to the images (denoise, register, fuse with
  the fixed models of :data:`PREDEFINED`); what ``fuseagent fuse`` runs when given no plan;
* the ``predefined`` planner — the template instantiated with the perception findings: every
  perceived degradation is restored with its task's fixed model, in the fixed canonical restore →
  align order, the pair is registered when perception finds it misaligned, and the task's fixed
  operator fuses. No experience, no choice among models, no reordering: the baseline that the
  adaptive planners (``expert``, ``vlm``, ``learned``) must beat, and that the random planners
  (same findings, random order and/or models) are ablations of.
"""

from __future__ import annotations

from ..protocol import Action, Trajectory, parse_response, roles_for
from .base import PlanContext, Planner, PlannerCard, register_planner
from .library import CANONICAL_ORDER, applicable_actions, order_actions

__all__ = ["PREDEFINED", "predefined_plan", "predefined_actions", "PredefinedPlanner", "FixedPlanner"]

#: fixed trajectories; denoising strength follows the estimated noise, so clean inputs are barely touched.
#: IVIF fuses with ``wavelet``: on the training suites (RoadScene) it is the operator HQA rates best
#: (``fuseagent explore``: best in 6 of 10 pairs, mean 0.661 vs ``regionlp`` 0.555), although
#: ``regionlp`` ranks higher on VIFB's 13 reference metrics (docs/FUSION.md)
PREDEFINED: dict[str, str] = {
    "ivif": "[task:denoise][model:nlm][on:vis] -> [task:registration][model:ecc][on:ir] -> [task:fusion][model:wavelet]",
    "mef": "[task:denoise][model:nlm] -> [task:registration][model:sift] -> [task:fusion][model:spd_global]",
    "mff": "[task:denoise][model:nlm] -> [task:registration][model:sift] -> [task:fusion][model:focus]",
}


def predefined_plan(task: str) -> Trajectory:
    """The pre-defined trajectory for a fusion task.

    Example:
        >>> predefined_plan("mff").actions[-1].tool
        'fusion.focus'
    """
    roles_for(task)  # raises ProtocolError for an unknown task
    think = "A fixed pipeline: restore each image, align them, then fuse."
    return Trajectory(parse_response(PREDEFINED[task]).actions, think)


def predefined_actions(context: PlanContext) -> list[Action]:
    """The template's steps for the findings of ``context``: perceived restorations with the fixed
    models (the library's first choice; :data:`PREDEFINED`'s for its tasks), in canonical order.

    Example:
        >>> from fuseagent.plan.findings import Findings
        >>> ctx = PlanContext.create("ivif", findings=Findings({"vis": {"noise": 2}}, {"misalignment": 3}))
        >>> [a.text() for a in predefined_actions(ctx)]
        ['[task:denoise][model:nlm][on:vis]', '[task:registration][model:ecc][on:ir]']
    """
    fixed = {a.task: a for a in predefined_plan(context.task).actions[:-1]}
    actions = []
    for action in applicable_actions(context.findings, context.task, context.roles):
        template = fixed.get(action.task)
        if template is None:
            actions.append(action)
        else:  # the template's model; registration also keeps the template's moving image
            target = template.target if action.task == "registration" else action.target
            actions.append(Action(action.task, template.model, target))
    return order_actions(actions, CANONICAL_ORDER)


@register_planner
class PredefinedPlanner(Planner):
    """The fixed restore → register → fuse template, instantiated with the perception findings.

    Example:
        >>> from fuseagent.plan.findings import Findings
        >>> ctx = PlanContext.create("mef", findings=Findings({"a": {"haze": 2}, "b": {"haze": 3}}))
        >>> PredefinedPlanner().plan(ctx).text()
        '[task:dehaze][model:dcp] -> [task:fusion][model:spd_global]'
    """

    card = PlannerCard("predefined", "fixed restore -> register -> fuse pipeline with fixed models")

    def plan(self, context: PlanContext) -> Trajectory:
        fusion = predefined_plan(context.task).actions[-1]
        actions = predefined_actions(context)
        think = ("A fixed pipeline: restore what is degraded with the usual tools, align if needed, then fuse."
                 if actions else "A fixed pipeline: nothing to restore or align, so I fuse directly.")
        return Trajectory(tuple(actions) + (fusion,), think)


class FixedPlanner(Planner):
    """A given trajectory (``--plan`` text), run through the agent for reflection and reports.

    Example:
        >>> from fuseagent.plan.base import PlanContext
        >>> FixedPlanner("[task:fusion][model:gff]").plan(PlanContext.create("ivif")).text()
        '[task:fusion][model:gff]'
    """

    card = PlannerCard("given", "a trajectory given by the user", uses_perception=False)

    def __init__(self, trajectory: str | Trajectory):
        self.trajectory = parse_response(trajectory) if isinstance(trajectory, str) else trajectory

    def plan(self, context: PlanContext) -> Trajectory:
        return self.trajectory
