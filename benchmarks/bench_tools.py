"""Seconds per tool call on a 640×480 pair (median of repeats), written to docs/BENCHMARKS.md.

Usage: python benchmarks/bench_tools.py [--repeats 3] [--no-write]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

import fuseagent
from fuseagent.io import read_image, resize_to
from fuseagent.tools import TOOLS

ROOT = Path(__file__).resolve().parents[1]


def load_pair() -> tuple[np.ndarray, np.ndarray]:
    """A 640×480 IR/VIS pair from the bundled TNO example (visible made colour-free as TNO is)."""
    scene = ROOT / "examples" / "ivif" / "tno_08"
    ir = resize_to(read_image(scene / "ir.png"), (480, 640))
    vis = resize_to(read_image(scene / "vis.png"), (480, 640))
    return ir, vis


def call(tool: fuseagent.tools.Tool, ir: np.ndarray, vis: np.ndarray, rgb: np.ndarray) -> None:
    card = tool.card
    if card.inputs == "stack":
        images = [ir, vis] if "ivif" in card.fusion_tasks else [rgb * 0.5, np.clip(rgb * 1.6, 0, 1)]
        tool(images)
    elif card.inputs == "pair":
        shifted = np.roll(vis, (3, 5), axis=(0, 1))
        tool(shifted, vis)
    elif card.task == "inpaint":  # a 10% hole (a block and a border strip), as left by a warp
        hole = np.zeros(vis.shape, bool)
        hole[200:280, 300:420] = True
        hole[:, :40] = True
        tool(rgb, mask=hole)
    elif card.task == "denoise":  # on a clean image the denoisers return at once (estimated sigma ~ 0)
        noisy = np.clip(rgb + np.random.default_rng(0).normal(0, 0.05, rgb.shape), 0, 1).astype(np.float32)
        tool(noisy)
    else:
        tool(rgb if card.colour != "luma" and "vis" in card.modalities else vis)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    ir, vis = load_pair()
    rgb = np.stack([vis, np.clip(vis * 0.9 + 0.05, 0, 1), np.clip(vis * 1.1, 0, 1)], axis=2).astype(np.float32)
    rows = []
    for name in fuseagent.list_tools():
        if not TOOLS.get(name).factory.available():
            rows.append((name, None, "not installed"))
            continue
        tool = TOOLS.create(name)
        call(tool, ir, vis, rgb)  # warm-up: loads weights, JIT caches
        times = []
        for _ in range(1 if tool.card.cost == "high" else args.repeats):
            t0 = time.perf_counter()
            call(tool, ir, vis, rgb)
            times.append(time.perf_counter() - t0)
        rows.append((name, statistics.median(times), ""))
        print(f"{name:28s} {statistics.median(times):8.3f} s", flush=True)
    from _report import machine, update_section

    lines = ["## Seconds per tool call on a 640×480 pair", "",
             f"Command: `OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_tools.py --repeats {args.repeats}` "
             f"(median of {args.repeats} calls — one for tools whose card says cost 'high' — after one warm-up call that loads models; denoisers get the image with Gaussian noise σ = 0.05; inpainters a 10% hole).", "",
             f"Machine: {machine()}.", "", "| tool | seconds | note |", "|---|---:|---|"]
    lines += [f"| `{n}` | {'—' if s is None else f'{s:.3f}'} | {note} |" for n, s, note in rows]
    if not args.no_write:
        update_section("tools", "\n".join(lines))


if __name__ == "__main__":
    main()
