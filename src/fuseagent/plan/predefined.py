"""The pre-defined pipeline: restore → register → fuse with fixed models, per fusion task.

It ignores the images: it is the baseline every adaptive planner must beat, and what
``fuseagent fuse`` runs when given no plan.
"""

from __future__ import annotations

from ..protocol import Trajectory, parse_response, roles_for
from .base import PlanContext, Planner, PlannerCard, register_planner

__all__ = ["PREDEFINED", "predefined_plan", "PredefinedPlanner", "FixedPlanner"]

#: fixed trajectories; denoising strength follows the estimated noise, so clean inputs are barely touched
PREDEFINED: dict[str, str] = {
    "ivif": "[task:denoise][model:nlm][on:vis] -> [task:registration][model:ecc][on:ir] -> [task:fusion][model:gff]",
    "mef": "[task:denoise][model:nlm] -> [task:registration][model:sift] -> [task:fusion][model:mertens]",
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


@register_planner
class PredefinedPlanner(Planner):
    """The fixed restore → register → fuse pipeline of :data:`PREDEFINED` (ignores the images).

    Example:
        >>> from fuseagent.plan.base import PlanContext
        >>> PredefinedPlanner().plan(PlanContext.create("ivif")).text() == PREDEFINED["ivif"]
        True
    """

    card = PlannerCard("predefined", "fixed restore -> register -> fuse pipeline with fixed models",
                       uses_perception=False)

    def plan(self, context: PlanContext) -> Trajectory:
        return predefined_plan(context.task)


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
