"""Synthesise the bundled MEF and MFF examples from scikit-image's sample images.

Uses the degradation library's task generators (exposure bracket through a camera response curve;
multi-focus pair by depth- or region-dependent defocus), seeded, so the files are reproducible.

Usage: python examples/make_examples.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from skimage import data

from fuseagent.degrade.generators import exposure_bracket, multifocus_stack
from fuseagent.io import write_image

HERE = Path(__file__).resolve().parent

MEF = {"coffee": (data.coffee, 3), "chelsea": (data.chelsea, 2)}
MFF = {"astronaut": (data.astronaut, "region"), "rocket": (data.rocket, "depth")}


def as_float(array: np.ndarray) -> np.ndarray:
    return array.astype(np.float32) / 255.0


def main() -> None:
    for seed, (name, (load, n)) in enumerate(MEF.items()):
        bracket = exposure_bracket(as_float(load()), n, seed=seed)
        for k, image in enumerate(bracket.images):
            write_image(HERE / "mef" / name / f"{chr(ord('a') + k)}.png", image)
    for seed, (name, (load, mode)) in enumerate(MFF.items()):
        stack = multifocus_stack(as_float(load()), 2, seed=seed, mode=mode)
        for k, image in enumerate(stack.images):
            write_image(HERE / "mff" / name / f"{chr(ord('a') + k)}.png", image)
    print(f"wrote examples under {HERE}/mef and {HERE}/mff")


if __name__ == "__main__":
    main()
