"""Planners: from a pair (and its perception report) to a trajectory in the action protocol."""

from __future__ import annotations

from .predefined import PREDEFINED, predefined_plan

__all__ = ["PREDEFINED", "predefined_plan"]
