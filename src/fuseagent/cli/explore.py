"""``fuseagent explore --suite DIR --out experience/``: self-exploration → the experience document."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError

__all__ = ["register", "run", "check_training", "TEST_SET_MARKERS", "MEFB_TEST_SCENES"]

#: source folders of test sets, never explored (VIFB, Lytro, the MEFB scenes with published results)
TEST_SET_MARKERS: tuple[str, ...] = ("vifb", "lytro", "mefb_fused")

#: the 16 MEFB scenes with published fused results (the MEF test set)
MEFB_TEST_SCENES: frozenset[str] = frozenset({
    "Chair", "ColorChecker", "Door", "ICCV_08", "ICCV_10", "ICCV_11", "ICCV_12", "Igloo", "LivingRoom", "Window2",
    "WindowTrim", "door2", "flower", "flowerGate2", "horse", "sculpture"})


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("explore", help="learn which task orders and models succeed on a training suite",
                              description="Self-exploration (as in AgenticIR): on each training sample run the "
                                          "fusion operators, each restoration model and each pair of tasks in both "
                                          "orders; record fail rates; write experience.json and EXPERIENCE.md.")
    p.add_argument("--suite", action="append", required=True, metavar="DIR", help="training suite (repeatable)")
    p.add_argument("--out", required=True, help="folder for experience.json and EXPERIENCE.md")
    p.add_argument("--limit", type=int, help="use only the first N samples of each suite")
    p.add_argument("--models-per-task", type=int, default=3, help="models tried per task (default: %(default)s)")
    p.add_argument("--perceive", action="store_true", help="use perception instead of the suite's labels")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def check_training(folder: Path, settings: dict) -> None:
    """Refuse a suite built from a test set (by its source folder or its samples' source files)."""
    from ..degrade.suite import read_manifest

    src = str(settings.get("src", "")).lower()
    for marker in TEST_SET_MARKERS:
        if marker in src:
            raise InputError(f"suite '{folder}' was built from a test set ({marker}); explore on training data only")
    for record in read_manifest(folder / "manifest.jsonl"):
        source = record.get("source", {})
        paths = [str(v).replace("\\", "/").lower() for k, v in source.items() if k != "name"]
        for marker in TEST_SET_MARKERS:
            if any(f"/{marker}/" in p for p in paths):
                raise InputError(f"suite '{folder}' uses test-set images ({marker}); explore on training data only")
        if any("/mefb/" in p for p in paths) and str(source.get("name", "")) in MEFB_TEST_SCENES:
            raise InputError(f"suite '{folder}' uses MEFB test scene '{source['name']}'; explore on training data only")


def run(args: argparse.Namespace) -> int:
    from ..bench.suite import open_suite
    from ..plan.experience import ExploreSample, explore

    if args.models_per_task < 1:
        raise InputError("--models-per-task must be at least 1")
    opened = []
    for folder in args.suite:
        settings, samples = open_suite(folder, args.limit)
        check_training(Path(folder), settings)
        opened.append((folder, samples))

    def samples():
        for _, group in opened:
            for s in group:
                if args.perceive:
                    from ..agent import perception_report
                    from ..plan.findings import Findings

                    images = [s.images[r] for r in s.roles]
                    findings = Findings.from_report(perception_report(images, s.task), s.roles)
                else:
                    findings = s.findings
                yield ExploreSample(f"{Path(s.folder).name}/{s.id}", s.task, s.images, findings)
                s._cache.clear()

    total = sum(len(g) for _, g in opened)
    experience = explore(samples(), models_per_task=args.models_per_task, progress=not args.no_progress, total=total,
                         meta={"suites": [Path(f).name for f, _ in opened]})
    js, md = experience.save(args.out)
    print(f"explored {experience.meta['samples']} samples ({experience.meta['trajectories']} trajectories) "
          f"in {experience.meta['seconds']}s: wrote {js} and {md}")
    return 0
