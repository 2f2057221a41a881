"""The expert toolbox: one module per family, each registering its tools on import.

=================  ==========================================================
module             tasks
=================  ==========================================================
``registration``   ``registration`` (feature, learned and cross-modal methods)
``flow``           ``flow`` (dense optical flow, deghosting)
``inpaint``        ``inpaint``
``denoise``        ``denoise``
``weather``        ``dehaze``, ``derain``, ``destripe``
``deblur_sr``      ``deblur``, ``sr``
``illumination``   ``lighten``, ``exposure``, ``white_balance``
``fusion``         ``fusion`` (IVIF, MEF, MFF operators)
=================  ==========================================================
"""

from __future__ import annotations

import importlib

from .base import (
    FUSION_TASKS,
    TOOLS,
    FusionTool,
    ImageTool,
    PairTool,
    Tool,
    ToolCard,
    ToolResult,
    create_tool,
    fuse_chroma,
    list_tools,
    register_tool,
    tool_card,
)

__all__ = [
    "FUSION_TASKS", "TOOLS", "FusionTool", "ImageTool", "PairTool", "Tool", "ToolCard", "ToolResult",
    "create_tool", "fuse_chroma", "list_tools", "register_tool", "tool_card", "load_builtin_tools",
    "BUILTIN_MODULES",
]

BUILTIN_MODULES = (
    "registration",
    "flow",
    "inpaint",
    "denoise",
    "weather",
    "deblur_sr",
    "illumination",
    "fusion",
)

_loaded = False


def load_builtin_tools() -> None:
    """Import every built-in tool module once (registration happens on import)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_MODULES:
        importlib.import_module(f"{__name__}.{module}")
