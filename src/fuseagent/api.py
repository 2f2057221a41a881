"""The one-call Python API: ``fuseagent.fuse(a, b, task="ivif")``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import InputError
from .execute import Environment, ExecutionResult
from .io import read_image
from .plan import predefined_plan
from .protocol import Trajectory, parse_response

__all__ = ["fuse", "run_plan", "load_images"]

ImageLike = np.ndarray | str | os.PathLike


def load_images(images: Sequence[ImageLike]) -> list[np.ndarray]:
    """Read paths (arrays pass through) into float32 images."""
    return [im if isinstance(im, np.ndarray) else read_image(im) for im in images]


def run_plan(images: Sequence[ImageLike], task: str = "ivif", plan: str | Trajectory | None = None,
             environment: Environment | None = None) -> ExecutionResult:
    """Execute ``plan`` (protocol text; None = the pre-defined pipeline) and return the full result."""
    if task not in ("ivif", "mef", "mff"):
        raise InputError(f"unknown task '{task}' (valid: ivif, mef, mff)")
    loaded = load_images(images)
    trajectory = predefined_plan(task) if plan is None else (parse_response(plan) if isinstance(plan, str) else plan)
    env = environment or Environment()
    return env.run(loaded, task, trajectory)


def fuse(*images: ImageLike, task: str = "ivif", plan: str | Trajectory | None = None,
         environment: Environment | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Fuse two or more images (arrays or paths) and return ``(fused, trace)``.

    IVIF takes ``(infrared, visible)``; MEF and MFF take 2..N images. With no ``plan`` the
    pre-defined restore → register → fuse pipeline runs.

    Example:
        >>> import numpy as np, fuseagent
        >>> a = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (48, 1))
        >>> fused, trace = fuseagent.fuse(a, a[:, ::-1].copy(), task="ivif", plan="[task:fusion][model:laplacian]")
        >>> fused.shape, trace["trajectory"]
        ((48, 64), '[task:fusion][model:laplacian]')
    """
    if len(images) == 1 and isinstance(images[0], (list, tuple)):
        images = tuple(images[0])
    result = run_plan(images, task, plan, environment)
    return result.fused, result.trace()
