"""Planners: from a pair (and its perception report) to a trajectory in the action protocol.

Every planner speaks the same protocol (``<think>…</think><answer>[task:x][model:y][on:z] -> …</answer>``)
and is built by name with :func:`create_planner`:

============== ===============================================================================
``predefined`` fixed restore → register → fuse template, filled in from the findings, fixed models
``random``     the perceived tasks in random order with random models (ablation)
``random-order`` random order, the expert's models (ablation)
``random-model`` the expert's order, random models (ablation)
``expert``     rules from the perception report and the experience document
``vlm``        a vision-language model behind an OpenAI-compatible chat endpoint
``oracle``     exhaustive search over valid trajectories ranked by HQA (the upper bound)
``learned``    compact vision-language policy trained by SFT + GRPO-F (``weights=PATH``)
============== ===============================================================================
"""

from __future__ import annotations

from .base import PLANNERS, PlanContext, Planner, PlannerCard, create_planner, list_planners, planner_card, register_planner
from .findings import Findings
from .predefined import PREDEFINED, FixedPlanner, PredefinedPlanner, predefined_plan

__all__ = ["PREDEFINED", "PLANNERS", "FixedPlanner", "Findings", "PlanContext", "Planner", "PlannerCard", "PredefinedPlanner",
           "create_planner", "list_planners", "planner_card", "predefined_plan", "register_planner"]
