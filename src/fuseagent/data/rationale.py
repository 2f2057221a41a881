"""First-person rationales for the training trajectories (the ``<think>`` part of the SFT target).

The seed paper's Stage II asks a VLM to explain an optimal trajectory under four rules: first
person, a brief introduction of the scene, *why* each operation is needed before *how* it is
done, and no method names, in at most 400 characters. :func:`template_rationale` writes such a
text from the perception findings and the trajectory alone (deterministic, no model needed);
:func:`refine_rationale` optionally asks a VLM behind an OpenAI-compatible endpoint to rewrite it
and keeps the rewrite only when :func:`check_rationale` accepts it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..protocol import Action, roles_for
from ..tools import TOOLS, load_builtin_tools

__all__ = ["MAX_CHARS", "template_rationale", "check_rationale", "refine_rationale", "REFINE_PROMPT"]

MAX_CHARS = 400

_PAIR = {"ivif": "infrared-visible pair", "mef": "pair of differently exposed shots",
         "mff": "pair of shots focused at different depths"}

#: what a scene looks like, from the perceived degradations (first match per kind)
_SCENE = {"low_light": "dark", "haze": "hazy", "rain": "rainy", "noise": "grainy", "blur": "soft",
          "over_exposure": "washed-out", "stripe": "striped", "low_resolution": "coarse", "jpeg": "blocky"}

#: protocol task → (why, how): the reason stated before the operation
_STEPS: dict[str, tuple[str, str]] = {
    "denoise": ("{img} is grainy and later steps would amplify the grain", "so I clean it first"),
    "destripe": ("{img} carries vertical sensor stripes", "so I remove them"),
    "derain": ("rain streaks cover {img}", "so I wash them out"),
    "dehaze": ("haze flattens the contrast of {img}", "so I clear it"),
    "deblur": ("the outlines in {img} are smeared", "so I sharpen them"),
    "sr": ("{img} is coarser than its partner", "so I raise its resolution"),
    "lighten": ("{img} is too dark to show detail", "so I brighten it"),
    "exposure": ("the brightness of {img} does not match", "so I balance it"),
    "white_balance": ("the colours of {img} carry a cast", "so I neutralise it"),
    "registration": ("the two views are offset", "so I align {img} onto its partner"),
    "flow": ("something moved between the shots", "so I align the moving parts of {img}"),
    "inpaint": ("alignment left empty borders in {img}", "so I fill them"),
}
_SHORT_STEPS: dict[str, str] = {
    "denoise": "{img} is grainy, so I clean it", "destripe": "{img} is striped, so I remove the stripes",
    "derain": "rain covers {img}, so I remove it", "dehaze": "{img} is hazy, so I clear it",
    "deblur": "{img} is blurred, so I sharpen it", "sr": "{img} is coarse, so I upscale it",
    "lighten": "{img} is dark, so I brighten it", "exposure": "{img} is mis-exposed, so I balance it",
    "white_balance": "{img} has a colour cast, so I fix it", "registration": "the views are offset, so I align them",
    "flow": "content moved, so I align it", "inpaint": "{img} has holes, so I fill them",
}
_FUSION = {
    "ivif": "Then I merge the two, keeping the warm targets of the infrared and the detail of the visible.",
    "mef": "Then I merge them, keeping the well-exposed parts of each shot.",
    "mff": "Then I merge them, keeping the sharpest parts of each shot.",
}
_SHORT_FUSION = {"ivif": "Then I merge them.", "mef": "Then I merge them.", "mff": "Then I merge them."}


def _image_name(target: str | None, task: str, inputs: str) -> str:
    if target in (None, "all"):
        if inputs == "pair":
            return "the infrared image" if task == "ivif" else "the later shots"
        return "both images"
    return {"ir": "the infrared image", "vis": "the visible image"}.get(
        target, f"the {'first' if target == 'a' else 'second' if target == 'b' else f'{target!r}'} shot")


def _scene(findings: Any, task: str) -> str:
    words: list[str] = []
    for _, kind, _ in (findings.detected(1) if findings is not None else []):
        word = _SCENE.get(kind)
        if word and word not in words:
            words.append(word)
    if not words:
        return _plain_intro(task)
    return f"I see a {', '.join(words[:3])} {_PAIR[task]}."


def _plain_intro(task: str) -> str:
    pair = _PAIR[task]
    return f"I see {'an' if pair[0] in 'aeiou' else 'a'} {pair}."


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] + "."


def template_rationale(findings: Any, actions: Sequence[Action], task: str) -> str:
    """A first-person rationale of at most 400 characters for a trajectory.

    Args:
        findings: the perception :class:`~fuseagent.plan.findings.Findings` (None: no scene words).
        actions: the trajectory, fusion last.
        task: ``ivif``, ``mef`` or ``mff``.

    Example:
        >>> from fuseagent.plan.findings import Findings
        >>> from fuseagent.protocol import parse_actions
        >>> acts = parse_actions("[task:denoise][model:nlm][on:vis] -> [task:fusion][model:gff]")
        >>> text = template_rationale(Findings({"vis": {"noise": 3}}), acts, "ivif")
        >>> text.startswith("I see a grainy infrared-visible pair."), "nlm" in text, len(text) <= 400
        (True, False, True)
    """
    load_builtin_tools()
    roles_for(task)
    steps = [a for a in actions if a.task != "fusion"]
    inputs = [TOOLS.card(a.tool).inputs if a.tool in TOOLS else "image" for a in steps]
    scene = _scene(findings, task)
    reasons = [_STEPS.get(a.task, ("{img} needs work", "so I fix it")) for a in steps]
    long_parts = [_sentence(f"{why}, {how}".format(img=_image_name(a.target, task, k)))
                  for a, k, (why, how) in zip(steps, inputs, reasons)]
    short_parts = [_sentence(_SHORT_STEPS.get(a.task, "{img} needs work, so I fix it").format(
        img=_image_name(a.target, task, k))) for a, k in zip(steps, inputs)]
    if not steps:
        noticed = findings is not None and (findings.detected(1) or any(v > 0 for v in findings.relational.values()))
        long_parts = ["Correcting that first would not improve the result." if noticed
                      else "Nothing needs restoring or aligning."]
        short_parts = ["Nothing needs fixing."]
    for intro, parts, fusion in ((scene, long_parts, _FUSION[task]), (scene, short_parts, _FUSION[task]),
                                 (scene, short_parts, _SHORT_FUSION[task]),
                                 (_plain_intro(task), short_parts, _SHORT_FUSION[task])):
        text = " ".join([intro, *parts, fusion])
        if len(text) <= MAX_CHARS:
            return text
    kept: list[str] = []
    for part in short_parts:  # very long trajectories: as many steps as fit
        if len(" ".join([_plain_intro(task), *kept, part, "Then I merge them."])) > MAX_CHARS:
            break
        kept.append(part)
    return " ".join([_plain_intro(task), *kept, "Then I merge them."])


def _method_names() -> set[str]:
    load_builtin_tools()
    names = {e.card.model.lower() for e in TOOLS}
    return {n for n in names if len(n) >= 3}


def check_rationale(text: str) -> list[str]:
    """Rule violations of a rationale (empty when it follows the rules).

    Example:
        >>> check_rationale("I see a dark pair. It is dark, so I brighten it with clahe.")
        ['names a method: clahe']
    """
    problems = []
    if len(text) > MAX_CHARS:
        problems.append(f"longer than {MAX_CHARS} characters ({len(text)})")
    if not re.search(r"\bI\b", text):
        problems.append("not in the first person")
    if "[task:" in text or "[model:" in text:
        problems.append("contains protocol tags")
    lowered = text.lower()
    for name in sorted(_method_names()):
        if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", lowered):
            problems.append(f"names a method: {name}")
    return problems


REFINE_PROMPT = """Rewrite the reasoning of an image-fusion planner. Rules: first person; start with a brief \
introduction of the scene; for each operation say why it is needed before how it is done; never name a \
method, model or algorithm; at most 400 characters; plain text only. Keep the operations and their order.

Scene and findings: {scene}
Operations in order: {operations}
Draft: {draft}"""


def refine_rationale(draft: str, scene: str, actions: Sequence[Action], *, url: str, model: str,
                     api_key: str | None = None, timeout: float = 60.0) -> tuple[str, str]:
    """Ask a VLM (OpenAI-compatible endpoint) to rewrite ``draft``; returns ``(text, source)``.

    ``source`` is ``"vlm"`` when the rewrite passed :func:`check_rationale`, else ``"template"``
    (the draft is kept: an unreachable endpoint or a rule-breaking reply never enters the data).
    """
    from ..plan.vlm import VLMError, chat_completion

    operations = "; ".join(f"{a.task} on {a.target or 'all'}" for a in actions)
    prompt = REFINE_PROMPT.format(scene=scene, operations=operations, draft=draft)
    try:
        reply = chat_completion(url, model, [{"role": "user", "content": prompt}], api_key=api_key,
                                timeout=timeout, max_tokens=256)
    except VLMError:
        return draft, "template"
    text = " ".join(reply.strip().strip('"').split())
    if not text or check_rationale(text):
        return draft, "template"
    return text, "vlm"
