"""The pre-defined pipeline: restore → register → fuse with fixed models, per fusion task.

It ignores the images: it is the baseline every adaptive planner must beat, and what
``fuseagent fuse`` runs when given no plan.
"""

from __future__ import annotations

from ..protocol import Trajectory, parse_response, roles_for

__all__ = ["PREDEFINED", "predefined_plan"]

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
