"""Markers of the metric tests."""

from __future__ import annotations


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", "calibration_full: recompute every VIFB/MEFB reference value (opt-in: "
                   "FUSEAGENT_CALIBRATION_FULL=1; takes tens of minutes on one core)")
