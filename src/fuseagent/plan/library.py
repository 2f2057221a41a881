"""The tool library as planners see it: which tasks a finding calls for, which models a task has.

Shared knowledge of every planner (the "human expert" rules live in :mod:`.expert`):

* :data:`DEGRADATION_TASKS` — the protocol task that removes each perceived degradation;
* :data:`CANONICAL_ORDER` — a sensible restore → align order of pre-fusion tasks;
* :func:`candidate_models` — a task's models for a fusion task, best first (experience first,
  then the library's preference, then cost);
* :func:`applicable_actions` — the pre-fusion steps findings call for, with fusion-task rules
  (never deblur multi-focus inputs: their blur is the signal; never lighten multi-exposure inputs);
* :func:`library_text` — the tool list in the planner prompt.
"""

from __future__ import annotations

from typing import Any

from ..protocol import TASKS, Action
from ..tools import TOOLS, load_builtin_tools
from .findings import Findings

__all__ = ["DEGRADATION_TASKS", "RELATIONAL_TASKS", "CANONICAL_ORDER", "PREFERRED", "FUSION_PREFERRED",
           "PRE_FUSION_TASKS", "modalities", "models_for", "candidate_models", "fusion_models", "applicable_actions", "library_text",
           "order_actions"]

#: perceived per-image degradation → protocol task removing it
DEGRADATION_TASKS: dict[str, str] = {
    "stripe": "destripe",
    "noise": "denoise",
    "jpeg": "denoise",
    "rain": "derain",
    "haze": "dehaze",
    "blur": "deblur",
    "low_light": "lighten",
    "over_exposure": "exposure",
    "low_resolution": "sr",
}

#: relational finding → protocol task
RELATIONAL_TASKS: dict[str, str] = {
    "misalignment": "registration",
    "motion": "flow",
    "exposure_mismatch": "exposure",
    "white_balance": "white_balance",
}

#: pre-fusion tasks in the order a restore → align pipeline applies them
CANONICAL_ORDER: tuple[str, ...] = ("destripe", "denoise", "derain", "dehaze", "deblur", "lighten", "exposure",
                                    "white_balance", "sr", "registration", "flow", "inpaint")

PRE_FUSION_TASKS: tuple[str, ...] = tuple(t for t in TASKS if t != "fusion")

#: preferred models per task, best first (models not listed follow, cheapest first)
PREFERRED: dict[str, tuple[str, ...]] = {
    "denoise": ("nlm", "wavelet", "tv", "oidn"),
    "registration": ("sift", "ecc", "xfeat", "orb"),
    "exposure": ("gamma", "histmatch"),
    "dehaze": ("dcp", "cap"),
    "deblur": ("wiener", "rl"),
    "sr": ("lanczos", "edge", "realesrgan"),
    "lighten": ("clahe", "msr", "zerodce"),
}

#: preferred fusion operators per fusion task
FUSION_PREFERRED: dict[str, tuple[str, ...]] = {
    "ivif": ("regionlp", "gff", "laplacian", "wavelet"),  # VIFB mean rank: see docs/FUSION.md
    "mef": ("spd_global", "mertens", "spd", "gff"),  # MEFB non-validation scenes: see docs/FUSION.md
    "mff": ("focus", "laplacian", "gff", "wavelet"),
}

_COST_RANK = {"low": 0, "medium": 1, "high": 2}


def modalities(target: str | None, fusion_task: str) -> tuple[str, ...]:
    """Image kinds an action on ``target`` touches: IVIF ``ir``/``vis`` (both for all), else ``vis``.

    Example:
        >>> modalities("ir", "ivif"), modalities(None, "ivif"), modalities("b", "mef")
        (('ir',), ('ir', 'vis'), ('vis',))
    """
    if fusion_task != "ivif":
        return ("vis",)
    if target in ("ir", "vis"):
        return (target,)
    return ("ir", "vis")


def models_for(task: str, fusion_task: str, target: str | None = None, *, available_only: bool = True,
               ablations: bool = False) -> list[str]:
    """Models of protocol ``task`` that suit ``fusion_task`` and the image kinds ``target`` touches
    (see :func:`modalities`), in the library's preference order. Ablation variants
    (``card.ablation_of``) are research instruments, left out unless ``ablations``.

    Example:
        >>> "nlm" in models_for("denoise", "ivif")
        True
        >>> [m for m in models_for("fusion", "ivif", available_only=False) if m.startswith("ivtfuse")]
        ['ivtfuse']
    """
    load_builtin_tools()
    kinds = modalities(target, fusion_task) if task != "fusion" else ()
    entries = [e for e in TOOLS if e.card.task == task and fusion_task in e.card.fusion_tasks
               and all(k in e.card.modalities for k in kinds)
               and (ablations or e.card.ablation_of is None)
               and (not available_only or e.factory.available())]
    preferred = FUSION_PREFERRED.get(fusion_task, ()) if task == "fusion" else PREFERRED.get(task, ())

    def rank(entry: Any) -> tuple[int, int, str]:
        model = entry.card.model
        pos = preferred.index(model) if model in preferred else len(preferred)
        return pos, _COST_RANK.get(entry.card.cost, 3), model

    return [e.card.model for e in sorted(entries, key=rank)]


def candidate_models(task: str, fusion_task: str, experience: Any = None, target: str | None = None) -> list[str]:
    """``models_for`` re-ranked by the experience's success rates (when it has any for ``task``)."""
    models = models_for(task, fusion_task, target)
    if experience is not None:
        return experience.rank_models(task, fusion_task, models)
    return models


def fusion_models(fusion_task: str) -> list[str]:
    """Fusion operators for a fusion task, preferred first.

    Example:
        >>> len(fusion_models("mff")) >= 1
        True
    """
    return models_for("fusion", fusion_task)


def _allowed(task: str, kind: str, role: str, fusion_task: str) -> bool:
    if fusion_task == "mff" and kind == "blur":
        return False  # defocus blur is what multi-focus fusion resolves
    if fusion_task == "mef" and kind in ("low_light", "over_exposure", "exposure_mismatch"):
        return False  # exposure differences are what multi-exposure fusion resolves
    if fusion_task == "ivif" and role == "ir" and kind in ("low_light", "over_exposure", "haze", "white_balance"):
        return False  # thermal images have no illumination, haze or colour in the photographic sense
    return True


def applicable_actions(findings: Findings, fusion_task: str, roles: list[str], *, min_level: int = 1,
                       experience: Any = None) -> list[Action]:
    """Pre-fusion actions the findings call for, in canonical order, each with its first-choice model.

    Per-image degradations give one action per affected image (``[on:role]``); when every image
    has it, one action on all. Relational findings give registration (misalignment), flow (moving
    objects, MEF/MFF) and exposure matching (IVIF/MFF). Tasks without an installed model are left out.

    Example:
        >>> from fuseagent.plan.findings import Findings
        >>> acts = applicable_actions(Findings({"vis": {"noise": 3}}, {"misalignment": 2}), "ivif", ["ir", "vis"])
        >>> [a.text() for a in acts]
        ['[task:denoise][model:nlm][on:vis]', '[task:registration][model:sift]']
    """
    wanted: dict[str, list[str]] = {}
    for role in roles:
        for kind, level in findings.images.get(role, {}).items():
            task = DEGRADATION_TASKS.get(kind)
            if task and level >= min_level and _allowed(task, kind, role, fusion_task):
                if role not in wanted.setdefault(task, []):
                    wanted[task].append(role)
    for kind, level in findings.relational.items():
        task = RELATIONAL_TASKS.get(kind)
        if not task or level < min_level or not _allowed(task, kind, "", fusion_task):
            continue
        if task == "flow" and fusion_task == "ivif":
            continue  # dense flow across modalities is unreliable; registration handles IVIF
        wanted.setdefault(task, []).append("all")
    actions = []
    for task in CANONICAL_ORDER:
        if task not in wanted:
            continue
        targets = wanted[task]
        if "all" in targets or (len(targets) == len(roles) and len(roles) > 1):
            targets = [None]
        for target in targets:
            models = candidate_models(task, fusion_task, experience, target if target != "all" else None)
            if task == "exposure" and "all" in wanted[task] and "histmatch" in models:
                models = ["histmatch"] + [m for m in models if m != "histmatch"]  # match the frames to each other
            if not models and target is None and fusion_task == "ivif":
                # no model for both kinds: act on each image whose kind has one
                actions.extend(Action(task, m[0], r) for r in roles
                               if (m := candidate_models(task, fusion_task, experience, r)))
            elif models:
                actions.append(Action(task, models[0], target))
    return actions


def order_actions(actions: list[Action], order: tuple[str, ...] = CANONICAL_ORDER) -> list[Action]:
    """Actions sorted by task in ``order`` (stable within a task).

    Example:
        >>> [a.task for a in order_actions([Action("registration", "sift"), Action("denoise", "nlm")])]
        ['denoise', 'registration']
    """
    rank = {t: i for i, t in enumerate(order)}
    return sorted(actions, key=lambda a: rank.get(a.task, len(rank)))


def library_text(fusion_task: str) -> str:
    """The tool library for a planner prompt: one line per task with its models and what they do.

    Example:
        >>> "[task:fusion]" in library_text("ivif")
        True
    """
    load_builtin_tools()
    lines = []
    for task in list(CANONICAL_ORDER) + ["fusion"]:
        models = models_for(task, fusion_task)
        if not models:
            continue
        descriptions = "; ".join(f"{m}: {TOOLS.card(f'{task}.{m}').description}" for m in models)
        lines.append(f"- [task:{task}] ({TASKS[task]}) models: {descriptions}")
    return "\n".join(lines)
