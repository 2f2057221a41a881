"""fuseagent: perceive, plan, execute, reflect and assess image fusion in the wild.

The pipeline reads as the package: :mod:`fuseagent.perceive` → :mod:`fuseagent.plan` →
:mod:`fuseagent.execute` (tools in :mod:`fuseagent.tools`) → :mod:`fuseagent.metrics`.
"""

from __future__ import annotations

from .errors import FuseAgentError, InputError, ProtocolError, UnknownNameError
from .execute import Environment, ExecutionResult
from .io import read_image, write_image
from .protocol import Action, Trajectory, format_actions, parse_actions, parse_response, validate
from .tools import create_tool, list_tools, tool_card

__version__ = "0.1.0"

__all__ = [
    "Action",
    "Agent",
    "Environment",
    "ExecutionResult",
    "FuseAgentError",
    "InputError",
    "ProtocolError",
    "Trajectory",
    "UnknownNameError",
    "create_tool",
    "format_actions",
    "fuse",
    "perceive",
    "list_tools",
    "parse_actions",
    "parse_response",
    "read_image",
    "tool_card",
    "validate",
    "write_image",
]


def __getattr__(name: str):
    if name == "fuse":
        from .api import fuse

        return fuse
    if name == "Agent":
        from .agent import Agent

        return Agent
    if name == "perceive":
        from .perceive import perceive

        return perceive
    raise AttributeError(f"module 'fuseagent' has no attribute '{name}'")
