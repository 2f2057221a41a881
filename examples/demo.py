"""Run ``fuseagent fuse`` on every bundled example (IVIF, MEF, MFF).

Writes ``OUT/<task>/<scene>.png`` (fused), ``OUT/<task>/<scene>.json`` (trace) and
``OUT/<task>/<scene>_panel.png`` (sources beside the result, for a person to judge).

Usage: python examples/demo.py --out out/demo
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from fuseagent.cli import main as cli
from fuseagent.io import read_image, resize_to, write_image

HERE = Path(__file__).resolve().parent
ORDER = {"ivif": ["ir", "vis"]}


def sources(task: str, scene: Path) -> list[Path]:
    if task in ORDER:
        return [scene / f"{role}.png" for role in ORDER[task]]
    return sorted(p for p in scene.iterdir() if p.suffix == ".png")


def panel(images: list[np.ndarray], height: int = 240) -> np.ndarray:
    tiles = []
    for im in images:
        rgb = np.repeat(im[..., None], 3, axis=2) if im.ndim == 2 else im
        w = max(1, round(rgb.shape[1] * height / rgb.shape[0]))
        tiles.append(resize_to(rgb, (height, w)))
        tiles.append(np.ones((height, 4, 3), np.float32))
    return np.concatenate(tiles[:-1], axis=1)


def run(out: Path) -> int:
    failures = 0
    for task in ("ivif", "mef", "mff"):
        for scene in sorted(p for p in (HERE / task).iterdir() if p.is_dir()):
            files = sources(task, scene)
            fused = out / task / f"{scene.name}.png"
            code = cli(["fuse", *map(str, files), "--task", task, "-o", str(fused),
                        "--trace", str(fused.with_suffix(".json"))])
            if code != 0:
                failures += 1
                continue
            write_image(out / task / f"{scene.name}_panel.png",
                        panel([read_image(f) for f in files] + [read_image(fused)]))
    print(f"demo outputs in {out}/ ({'all ok' if not failures else f'{failures} failed'})")
    return 1 if failures else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    sys.exit(run(parser.parse_args().out))
