"""Run reports: one self-contained HTML page per agent run (:func:`write_report`)."""

from __future__ import annotations

from .html import render_report, write_report

__all__ = ["render_report", "write_report"]
