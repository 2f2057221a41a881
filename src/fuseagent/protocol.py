"""The action protocol: trajectory text ↔ :class:`Action` objects.

A trajectory is a chain of actions ``[task:registration][model:sift] -> [task:denoise][model:nlm][on:vis]
-> [task:fusion][model:gff]``, optionally inside ``<think>…</think><answer>…</answer>`` as the seed
paper's planner writes it. Parsing is strict; :func:`validate` checks tasks, models and targets against
the tool registry and raises :class:`~fuseagent.errors.ProtocolError` with the valid choices, so a
planner can be re-asked with the error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ProtocolError

__all__ = [
    "TASKS",
    "Action",
    "Trajectory",
    "roles_for",
    "parse_actions",
    "parse_response",
    "format_actions",
    "format_response",
    "validate",
    "default_target",
    "resolve_targets",
]

#: Protocol tasks and what they do, in the order a restore → register → fuse pipeline uses them.
TASKS: dict[str, str] = {
    "denoise": "remove sensor noise",
    "destripe": "remove infrared fixed-pattern stripe noise",
    "derain": "remove rain streaks",
    "dehaze": "remove haze",
    "deblur": "remove motion or defocus blur",
    "sr": "raise resolution (super-resolution)",
    "lighten": "enhance a dark, low-light image",
    "exposure": "correct exposure or match it to the other image",
    "white_balance": "correct a colour cast",
    "registration": "align one image to the other (global transform)",
    "flow": "align moving content by dense optical flow (deghosting)",
    "inpaint": "fill invalid or occluded regions",
    "fusion": "fuse the images into one",
}

_ACTION = re.compile(
    r"\[\s*task\s*:\s*(?P<task>[A-Za-z_][\w\-]*)\s*\]\s*"
    r"\[\s*model\s*:\s*(?P<model>[A-Za-z0-9_][\w\-\.+]*)\s*\]"
    r"(?:\s*\[\s*on\s*:\s*(?P<on>[A-Za-z0-9_]+)\s*\])?",
    re.I,
)
_THINK = re.compile(r"<think>(.*?)</think>", re.S | re.I)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)


@dataclass(frozen=True)
class Action:
    """One step of a trajectory.

    Attributes:
        task: protocol task (``"denoise"``).
        model: model within the task (``"nlm"``).
        target: image role it acts on (``"vis"``, ``"ir"``, ``"a"``, ``"b"``, ``"all"``) or None
            for the task's default.
        params: tool parameters (programmatic use; not part of the text form).
    """

    task: str
    model: str
    target: str | None = None
    params: tuple[tuple[str, Any], ...] = field(default=(), compare=True)

    @property
    def tool(self) -> str:
        return f"{self.task}.{self.model}"

    def text(self) -> str:
        """Protocol text of this action.

        Example:
            >>> Action("denoise", "nlm", "vis").text()
            '[task:denoise][model:nlm][on:vis]'
        """
        on = f"[on:{self.target}]" if self.target else ""
        return f"[task:{self.task}][model:{self.model}]{on}"

    def with_params(self, **params: Any) -> Action:
        return Action(self.task, self.model, self.target, tuple(sorted({**dict(self.params), **params}.items())))

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "model": self.model, "target": self.target, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Action:
        return cls(d["task"], d["model"], d.get("target"), tuple(sorted((d.get("params") or {}).items())))


@dataclass(frozen=True)
class Trajectory:
    """A parsed planner response: its reasoning text and its actions."""

    actions: tuple[Action, ...]
    think: str = ""

    def text(self) -> str:
        return format_actions(self.actions)

    def response(self) -> str:
        return format_response(self.actions, self.think)


def roles_for(task: str, n_images: int = 2) -> list[str]:
    """Image roles of a fusion task: ``ir, vis`` for IVIF, ``a, b, c, …`` for MEF/MFF.

    Example:
        >>> roles_for("ivif"), roles_for("mef", 3)
        (['ir', 'vis'], ['a', 'b', 'c'])
    """
    if task == "ivif":
        if n_images != 2:
            raise ProtocolError(f"IVIF fuses exactly 2 images (infrared, visible), got {n_images}",
                                reason="bad_inputs")
        return ["ir", "vis"]
    if task in ("mef", "mff"):
        if not 2 <= n_images <= 26:
            raise ProtocolError(f"{task.upper()} fuses 2..26 images, got {n_images}", reason="bad_inputs")
        return [chr(ord("a") + i) for i in range(n_images)]
    raise ProtocolError(f"unknown fusion task '{task}'", reason="unknown_fusion_task", valid=["ivif", "mef", "mff"])


def parse_actions(text: str) -> list[Action]:
    """Parse ``[task:x][model:y][on:z] -> …`` into actions (no registry check).

    Example:
        >>> [a.tool for a in parse_actions("[task:registration][model:sift] -> [task:fusion][model:gff]")]
        ['registration.sift', 'fusion.gff']
    """
    body = text.strip()
    if not body:
        raise ProtocolError("empty trajectory", reason="empty")
    actions = []
    for i, chunk in enumerate(re.split(r"\s*(?:->|→)\s*", body)):
        m = _ACTION.fullmatch(chunk.strip())
        if not m:
            raise ProtocolError(f"action {i + 1} is not of the form [task:T][model:M][on:X]: '{chunk.strip()[:60]}'",
                                reason="syntax", position=i)
        actions.append(Action(m["task"].lower(), m["model"].lower(), m["on"].lower() if m["on"] else None))
    return actions


def parse_response(text: str) -> Trajectory:
    """Parse a planner's ``<think>…</think><answer>…</answer>`` (or a bare trajectory).

    Example:
        >>> t = parse_response("<think>dark and noisy</think><answer>[task:fusion][model:gff]</answer>")
        >>> t.think, t.text()
        ('dark and noisy', '[task:fusion][model:gff]')
    """
    think_m = _THINK.search(text)
    answer_m = _ANSWER.search(text)
    if answer_m:
        body = answer_m.group(1)
    elif "<answer>" in text.lower():
        raise ProtocolError("<answer> is not closed by </answer>", reason="syntax")
    else:
        body = _THINK.sub("", text)
    return Trajectory(tuple(parse_actions(body)), think_m.group(1).strip() if think_m else "")


def format_actions(actions: Iterable[Action]) -> str:
    """Protocol text of a chain of actions (inverse of :func:`parse_actions`)."""
    return " -> ".join(a.text() for a in actions)


def format_response(actions: Iterable[Action], think: str = "") -> str:
    """``<think>…</think><answer>…</answer>`` text (inverse of :func:`parse_response`)."""
    return f"<think>{think}</think><answer>{format_actions(actions)}</answer>"


def default_target(inputs: str, task: str) -> str:
    """Target of an action written without ``[on:…]``: restoration acts on every image; pair tools
    move every image but the reference (IVIF: the infrared onto the visible)."""
    if inputs == "pair":
        return "ir" if task == "ivif" else "all"
    return "all"


def resolve_targets(target: str | None, inputs: str, task: str, roles: Sequence[str]) -> list[str]:
    """Roles an action touches. For pair tools ``all`` means every role but the reference."""
    target = target or default_target(inputs, task)
    if inputs == "stack":
        return list(roles)
    if target == "all":
        return list(roles[1:]) if inputs == "pair" else list(roles)
    return [target]


def validate(actions: Sequence[Action], task: str, n_images: int = 2, *, tools: Any = None) -> list[Action]:
    """Check a chain of actions against the tool registry for a fusion task.

    Rules: at least one action; exactly one fusion, and it is last; every task and model is known;
    the model suits the fusion task; the target is a role of the task (or ``all``).

    Raises:
        ProtocolError: with ``reason``, ``position`` and the ``valid`` choices at that point.

    Example:
        >>> validate(parse_actions("[task:denoise][model:nlm][on:vis] -> [task:fusion][model:gff]"), "ivif")[0].target
        'vis'
    """
    from .tools import TOOLS, load_builtin_tools

    load_builtin_tools()
    registry = tools or TOOLS
    roles = roles_for(task, n_images)
    if not actions:
        raise ProtocolError("empty trajectory", reason="empty")
    suitable: dict[str, list[str]] = {}
    for entry in registry:
        card = entry.card
        if task in card.fusion_tasks:
            suitable.setdefault(card.task, []).append(card.model)
    for i, action in enumerate(actions):
        if action.task not in TASKS:
            raise ProtocolError(f"action {i + 1}: unknown task '{action.task}'", reason="unknown_task",
                                position=i, valid=sorted(suitable))
        name = action.tool
        if name not in registry:
            models = sorted(e.card.model for e in registry if e.card.task == action.task)
            raise ProtocolError(f"action {i + 1}: unknown model '{action.model}' for task '{action.task}'",
                                reason="unknown_model", position=i, valid=models)
        card = registry.card(name)
        if task not in card.fusion_tasks:
            raise ProtocolError(f"action {i + 1}: model '{action.model}' does not suit {task.upper()}",
                                reason="unsuitable_model", position=i, valid=sorted(suitable.get(action.task, [])))
        if action.target is not None and card.inputs != "stack":
            allowed = list(roles) + ["all"]
            if action.target not in allowed:
                raise ProtocolError(f"action {i + 1}: target '{action.target}' is not an image of this {task.upper()} input",
                                    reason="bad_target", position=i, valid=allowed)
        if action.task == "fusion" and i != len(actions) - 1:
            raise ProtocolError(f"action {i + 1}: fusion must be the last action", reason="fusion_not_last", position=i)
    if actions[-1].task != "fusion":
        raise ProtocolError("the trajectory must end with a fusion action", reason="no_fusion",
                            position=len(actions), valid=sorted(suitable.get("fusion", [])))
    return list(actions)
