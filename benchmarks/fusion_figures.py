"""Pictures for docs/FUSION.md: sources, our operators and the best published method, one per task.

Run after ``fuseagent bench fusion --task TASK --out OUT`` for each task (it reads the fused images
that run wrote under ``OUT/fused/TASK/``)::

    python benchmarks/fusion_figures.py --out OUT --data ../shared/data --dest docs/img

Writes ``fusion_ivif.jpg``, ``fusion_mef.jpg`` and ``fusion_mff.jpg`` (JPEG quality 85, kept
under 300 KB by shrinking the panels when needed); the MFF picture adds enlarged crops of ours and
the best published result at a focus boundary, to judge seams.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from fuseagent.bench.fusion import comparison_figure, figure_panels
from fuseagent.io import read_image

#: task → region (top, bottom, left, right as fractions) also shown enlarged, to judge seams
CROPS = {"mff": (0.35, 0.65, 0.3, 0.6)}

#: task → (shown image, our operators to show)
CHOICES = {
    "ivif": ("kettle", ["regionlp", "gff"]),
    "mef": ("Window2", ["spd_global"]),
    "mff": ("lytro_05", ["focus"]),
}


def best_published(out: Path, task: str) -> str:
    """The first published method of the leaderboard CSV the benchmark run wrote."""
    with open(out / f"fusion_{task}_leaderboard.csv", newline="") as handle:
        return next(row["method"] for row in csv.DictReader(handle) if row["storage"] == "published")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="the --out folder of the benchmark runs")
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--dest", default="docs/img")
    args = parser.parse_args()
    out, dest = Path(args.out), Path(args.dest)
    for task, (image, operators) in CHOICES.items():
        if not (out / f"fusion_{task}_leaderboard.csv").is_file():
            continue
        ours = {}
        for name in operators:
            path = out / "fused" / task / name / f"{image}.png"
            if path.is_file():
                ours[name] = read_image(path)
        panels = figure_panels(task, image, args.data, ours, best_published(out, task))
        if task in CROPS:
            top, bottom, left, right = CROPS[task]
            for label, picture in panels[-1 - len(ours):]:
                h, w = picture.shape[:2]
                crop = picture[int(top * h):int(bottom * h), int(left * w):int(right * w)]
                panels.append((f"{label.split(':')[-1].strip()} (zoom)", crop))
        for height in (320, 260, 200):
            path = comparison_figure(panels, dest / f"fusion_{task}.jpg", height=height)
            if path.stat().st_size < 300_000:
                break
        print(f"wrote {path} ({path.stat().st_size // 1000} KB)")


if __name__ == "__main__":
    main()
