"""A tiny two-task suite (synthetic sources, 48×64) and a reference dataset built from it once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fuseagent.data.build import BuildSettings, build_dataset
from fuseagent.data.search import SearchOptions
from fuseagent.degrade.suite import build_suite
from fuseagent.io import write_image

#: small search: one model per task, four prefixes, two fusion operators, one perturbation
TINY = SearchOptions(models_per_task=1, max_prefixes=4, max_fusion=2, top_k=2, perturb=1)


def _texture(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    walk = np.cumsum(rng.normal(0, 1, shape), axis=1) / 20 + 0.5
    return np.clip(walk + 0.1 * np.sin(np.arange(shape[0]))[:, None], 0, 1).astype(np.float32)


@pytest.fixture(scope="session")
def tiny_suites(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two IVIF pairs and one MEF pair (generated from a single image), degraded by the suite builder."""
    root = tmp_path_factory.mktemp("suites")
    rng = np.random.default_rng(0)
    for name in ("p0", "p1"):
        base = _texture(rng, (48, 64))
        write_image(root / "src_ivif" / "ir" / f"{name}.png", base)
        write_image(root / "src_ivif" / "vis" / f"{name}.png", np.stack([base[::-1].copy()] * 3, axis=2))
    write_image(root / "src_mef" / "scene.png", np.stack([_texture(rng, (48, 64))] * 3, axis=2))
    build_suite("ivif", root / "src_ivif", "all", 2, 0, root / "ivif", max_side=64, progress=False)
    build_suite("mef", root / "src_mef", "all", 1, 0, root / "mef", max_side=64, progress=False)
    return [root / "ivif", root / "mef"]


@pytest.fixture(scope="session")
def reference_dataset(tiny_suites: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny dataset built once, uninterrupted, in-process (local executor, 1 worker)."""
    out = tmp_path_factory.mktemp("reference") / "ds"
    build_dataset(tiny_suites, out, BuildSettings(TINY, findings="truth"), workers=1)
    return out


@pytest.fixture(scope="session")
def tiny_settings() -> BuildSettings:
    """The settings of the reference dataset (the suites' labels decide the searched tasks)."""
    return BuildSettings(TINY, findings="truth")
