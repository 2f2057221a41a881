"""Benchmark recipes, grouped as in AgenticIR (Zhu et al., 2024):

* group A — two coupled degradations from a seen set;
* group B — unseen combinations of two degradations of that set;
* group C — three or more degradations.

One set per fusion task. A step names the image role it degrades (``ir``/``vis`` for IVIF,
``a``/``b`` for MEF/MFF, ``both`` for scene-wide effects such as haze) and the operation; its
severity level is drawn in ``levels``, and ``params`` may fix parameters or give ``(lo, hi)``
ranges drawn uniformly. The moving image of a pair is ``ir`` (IVIF) or ``b`` (MEF/MFF).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError, UnknownNameError

__all__ = ["Step", "Recipe", "RECIPES", "get_recipe", "recipes_for", "resolve_recipe", "STEP_ORDER"]

#: Order in which steps are applied to an image, whatever order a recipe lists them in:
#: camera pose, scene motion, weather, optics, resolution, exposure, sensor, storage.
STEP_ORDER: tuple[str, ...] = (
    "geometric.homography", "geometric.affine", "dynamic.move_object", "haze.scattering", "weather.rain",
    "weather.snow", "photometric.glare", "blur.motion", "blur.defocus", "resolution.low",
    "photometric.exposure", "photometric.low_light", "photometric.white_balance", "photometric.vignetting",
    "resolution.mismatch", "noise.gaussian", "noise.poisson_gaussian", "noise.stripe", "sensor.jpeg",
)


@dataclass(frozen=True)
class Step:
    """One degradation of a recipe."""

    role: str
    op: str
    levels: tuple[int, int] = (1, 5)
    params: dict[str, Any] = field(default_factory=dict)

    def draw(self, rng: np.random.Generator) -> tuple[int, dict[str, Any]]:
        """Draw the level and the parameters fixed by the recipe."""
        level = int(rng.integers(self.levels[0], self.levels[1] + 1))
        params = {k: float(rng.uniform(*v)) if isinstance(v, tuple) else v for k, v in self.params.items()}
        return level, params


@dataclass(frozen=True)
class Recipe:
    """A named combination of degradation steps for one fusion task."""

    name: str
    task: str
    group: str
    steps: tuple[Step, ...]
    description: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "task": self.task, "group": self.group, "description": self.description,
                "steps": [{"role": s.role, "op": s.op, "levels": list(s.levels),
                           "params": {k: list(v) if isinstance(v, tuple) else v for k, v in s.params.items()}}
                          for s in self.steps]}


_DRIFT = {"ev": (-0.6, 0.6)}
_OVER = {"ev": (0.8, 2.6)}


def _r(name: str, description: str, *steps: Step) -> Recipe:
    task, group = name.split("-")[0], name.split("-")[1][0].upper()
    return Recipe(name, task, group, tuple(steps), description)


_ALL = (
    # IVIF: seen set = low light, noise, misalignment, stripe, haze, low resolution, rain, JPEG.
    _r("ivif-a1", "visible low light with noise", Step("vis", "photometric.low_light"), Step("vis", "noise.gaussian")),
    _r("ivif-a2", "infrared misaligned with stripe noise", Step("ir", "geometric.homography"), Step("ir", "noise.stripe")),
    _r("ivif-a3", "hazy visible, low-resolution infrared", Step("vis", "haze.scattering"), Step("ir", "resolution.low")),
    _r("ivif-a4", "rain on a JPEG-compressed visible image", Step("vis", "weather.rain"), Step("vis", "sensor.jpeg")),
    _r("ivif-b1", "visible low light, infrared misaligned", Step("vis", "photometric.low_light"),
       Step("ir", "geometric.homography")),
    _r("ivif-b2", "hazy and noisy visible", Step("vis", "haze.scattering"), Step("vis", "noise.poisson_gaussian")),
    _r("ivif-b3", "low-resolution infrared with stripe noise", Step("ir", "noise.stripe"), Step("ir", "resolution.low")),
    _r("ivif-b4", "rainy visible, misaligned infrared", Step("vis", "weather.rain"), Step("ir", "geometric.affine")),
    _r("ivif-b5", "JPEG visible, striped infrared", Step("vis", "sensor.jpeg"), Step("ir", "noise.stripe")),
    _r("ivif-c1", "visible low light and noise, infrared misaligned", Step("vis", "photometric.low_light"),
       Step("vis", "noise.gaussian"), Step("ir", "geometric.homography")),
    _r("ivif-c2", "hazy visible; striped, low-resolution, misaligned infrared", Step("vis", "haze.scattering"),
       Step("ir", "noise.stripe"), Step("ir", "geometric.affine"), Step("ir", "resolution.low")),
    _r("ivif-c3", "rain and motion blur on visible; moving object and smaller infrared",
       Step("vis", "weather.snow"), Step("vis", "blur.motion"), Step("ir", "dynamic.move_object"),
       Step("ir", "resolution.mismatch", (1, 3))),
    _r("ivif-c4", "over-exposed visible; defocused, striped infrared", Step("vis", "photometric.exposure", params=_OVER),
       Step("ir", "blur.defocus"), Step("ir", "noise.stripe")),
    # MEF: seen set = moving object, misalignment, noise, JPEG, motion blur.
    _r("mef-a1", "moving object and camera shake", Step("b", "dynamic.move_object"), Step("b", "geometric.homography")),
    _r("mef-a2", "camera shake and noisy dark frame", Step("b", "geometric.homography"), Step("a", "noise.gaussian")),
    _r("mef-a3", "signal-dependent noise and JPEG", Step("a", "noise.poisson_gaussian"), Step("b", "sensor.jpeg")),
    _r("mef-a4", "hand-held: motion blur and shake", Step("b", "blur.motion"), Step("b", "geometric.affine")),
    _r("mef-b1", "moving object and noise", Step("b", "dynamic.move_object"), Step("a", "noise.gaussian")),
    _r("mef-b2", "JPEG and camera shake", Step("a", "sensor.jpeg"), Step("b", "geometric.homography")),
    _r("mef-b3", "motion blur and signal-dependent noise", Step("b", "blur.motion"), Step("a", "noise.poisson_gaussian")),
    _r("mef-b4", "white-balance mismatch and moving object", Step("a", "photometric.white_balance"),
       Step("b", "dynamic.move_object")),
    _r("mef-c1", "moving object, shake and noise", Step("b", "dynamic.move_object"), Step("b", "geometric.homography"),
       Step("a", "noise.gaussian")),
    _r("mef-c2", "shake, motion blur, JPEG and noise", Step("b", "geometric.affine"), Step("b", "blur.motion"),
       Step("a", "sensor.jpeg"), Step("a", "noise.gaussian")),
    _r("mef-c3", "moving object, colour cast, low resolution", Step("b", "dynamic.move_object"),
       Step("a", "photometric.white_balance"), Step("b", "resolution.low")),
    # MFF: seen set = shake, exposure drift, haze, noise, JPEG, over-exposure.
    _r("mff-a1", "camera shake and exposure drift", Step("b", "geometric.homography"),
       Step("b", "photometric.exposure", params=_DRIFT)),
    _r("mff-a2", "haze and camera shake", Step("both", "haze.scattering"), Step("b", "geometric.homography")),
    _r("mff-a3", "exposure drift and noise", Step("b", "photometric.exposure", params=_DRIFT), Step("a", "noise.gaussian")),
    _r("mff-a4", "over-exposed frame and JPEG", Step("b", "photometric.exposure", params=_OVER), Step("a", "sensor.jpeg")),
    _r("mff-b1", "haze and exposure drift", Step("both", "haze.scattering"), Step("b", "photometric.exposure", params=_DRIFT)),
    _r("mff-b2", "camera shake and noise", Step("b", "geometric.affine"), Step("a", "noise.poisson_gaussian")),
    _r("mff-b3", "under- or over-exposed frame and a moving object", Step("b", "photometric.exposure"),
       Step("b", "dynamic.move_object")),
    _r("mff-b4", "snow and camera shake", Step("a", "weather.rain"), Step("b", "geometric.homography")),
    _r("mff-c1", "shake, exposure drift and haze", Step("b", "geometric.homography"),
       Step("b", "photometric.exposure", params=_DRIFT), Step("both", "haze.scattering")),
    _r("mff-c2", "shake, exposure change, JPEG and noise", Step("b", "geometric.affine"),
       Step("a", "photometric.exposure"), Step("b", "sensor.jpeg"), Step("a", "noise.gaussian")),
    _r("mff-c3", "moving object, low light, low resolution", Step("b", "dynamic.move_object"),
       Step("a", "photometric.low_light"), Step("b", "resolution.low")),
)

RECIPES: dict[str, Recipe] = {r.name: r for r in _ALL}


def get_recipe(name: str) -> Recipe:
    """The recipe ``name``.

    Example:
        >>> get_recipe("ivif-c1").group
        'C'
    """
    try:
        return RECIPES[name]
    except KeyError:
        raise UnknownNameError("recipe", name, RECIPES) from None


def recipes_for(task: str, group: str | None = None) -> list[Recipe]:
    """Recipes of a fusion task, optionally of one group (A, B, C).

    Example:
        >>> [r.name for r in recipes_for("mef", "a")]
        ['mef-a1', 'mef-a2', 'mef-a3', 'mef-a4']
    """
    out = [r for r in _ALL if r.task == task and (group is None or r.group == group.upper())]
    if not out:
        raise InputError(f"no recipes for task '{task}'" + (f" group '{group}'" if group else ""))
    return out


def resolve_recipe(task: str, name: str) -> list[Recipe]:
    """Recipes selected by a ``--recipe`` value: a recipe name, a group letter ``A``/``B``/``C``
    (one recipe of the group drawn per sample) or ``all``.

    Raises:
        UnknownNameError: unknown recipe; InputError: a recipe of another task.

    Example:
        >>> [r.name for r in resolve_recipe("ivif", "ivif-a1")]
        ['ivif-a1']
        >>> len(resolve_recipe("mff", "all"))
        11
    """
    key = name.strip()
    if key.lower() == "all":
        return recipes_for(task)
    if key.upper() in ("A", "B", "C"):
        return recipes_for(task, key)
    recipe = get_recipe(key.lower()) if key.lower() in RECIPES else get_recipe(key)
    if recipe.task != task:
        raise InputError(f"recipe '{recipe.name}' is for {recipe.task.upper()}, not {task.upper()}")
    return [recipe]
