"""Errors that reach users as one clear line.

Every error a user can cause (bad file, unknown name, malformed plan) derives from
:class:`FuseAgentError`; the CLI prints its message on one line and exits with code 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

__all__ = [
    "FuseAgentError",
    "ImageReadError",
    "InputError",
    "UnknownNameError",
    "ProtocolError",
    "ToolUnavailableError",
    "suggest",
]


class FuseAgentError(Exception):
    """Base class of every user-facing error of fuseagent."""

    exit_code = 2


class InputError(FuseAgentError, ValueError):
    """An argument or image that cannot be used as given."""


class ImageReadError(InputError):
    """A file that is missing, empty, truncated or not an image."""


class ToolUnavailableError(FuseAgentError, RuntimeError):
    """A tool whose optional dependency is not installed."""


def suggest(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """Close matches of ``name`` among ``choices``, best first.

    Example:
        >>> suggest("denoise.nml", ["denoise.nlm", "dehaze.dcp", "fusion.gff"])
        ['denoise.nlm']
    """
    pool = sorted(set(choices))
    close = difflib.get_close_matches(name, pool, n=n, cutoff=0.6)
    if close:
        return close
    tail = name.split(".")[-1]
    return [c for c in pool if tail and tail in c][:n]


class UnknownNameError(FuseAgentError, KeyError):
    """A registry lookup of a name that does not exist.

    Attributes:
        name: the unknown name.
        kind: what was looked up ("tool", "metric", ...).
        suggestions: close valid names.
    """

    def __init__(self, kind: str, name: str, choices: Iterable[str]):
        self.kind = kind
        self.name = name
        self.choices = sorted(set(choices))
        self.suggestions = suggest(name, self.choices)
        hint = f"; did you mean {', '.join(self.suggestions)}?" if self.suggestions else ""
        super().__init__(f"unknown {kind} '{name}'{hint}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ProtocolError(FuseAgentError, ValueError):
    """A trajectory text that cannot be executed.

    Attributes:
        reason: short machine-readable code (``syntax``, ``unknown_task``, ``unknown_model``,
            ``unsuitable_model``, ``bad_target``, ``no_fusion``, ``fusion_not_last``, ``empty``).
        position: index of the offending action (or None).
        valid: the valid choices at that point, for re-asking a planner.
    """

    def __init__(self, message: str, *, reason: str, position: int | None = None,
                 valid: Sequence[str] = ()):
        self.reason = reason
        self.position = position
        self.valid = list(valid)
        text = message
        if self.valid:
            text += f" (valid: {', '.join(self.valid)})"
        super().__init__(text)

    def to_dict(self) -> dict:
        """JSON-safe description, e.g. for feeding back to a planner."""
        return {"reason": self.reason, "position": self.position, "valid": self.valid,
                "message": str(self)}
