"""Shared fixtures: real benchmark data beside the project (skipped when absent) and small images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FUSEAGENT_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or $FUSEAGENT_DATA); the test is skipped when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real benchmark data not found at {SHARED_DATA} (../shared/data beside the project)")
    return SHARED_DATA


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def camera() -> np.ndarray:
    """scikit-image's 512×512 'camera' test image as float32 [0, 1] (ships with scikit-image)."""
    from skimage import data

    return (data.camera().astype(np.float32) / 255.0)


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's 512×512 RGB 'astronaut' image as float32 [0, 1]."""
    from skimage import data

    return (data.astronaut().astype(np.float32) / 255.0)


@pytest.fixture
def black_tool():
    """A harmful tool, ``[task:denoise][model:zz_black]`` (returns black), removed after the test."""
    from fuseagent.tools import TOOLS, ImageTool, ToolCard, load_builtin_tools, register_tool

    load_builtin_tools()

    class Black(ImageTool):
        card = ToolCard("denoise", "zz_black", "returns black (harmful)", cost="low")

        def process(self, image):
            return np.zeros_like(image)

    register_tool(Black)
    yield
    TOOLS._entries.pop("denoise.zz_black", None)
