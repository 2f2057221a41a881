"""Build the small suites of the agent benchmarks from ../shared/data (test sets for evaluation only).

Training suites (exploration): IVIF from RoadScene, MEF from the MEFB scenes outside its 16-scene test
set, MFF generated from LOL's normal-light images. Test suites (decision benchmark): IVIF from VIFB,
MEF from the 16 MEFB test scenes, MFF from Lytro.

Usage: python benchmarks/build_agent_suites.py [--n 6] [--out out/suites] [--max-side 288] [--per-source 1]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fuseagent.cli.explore import MEFB_TEST_SCENES
from fuseagent.degrade.suite import Source, build_suite, discover_sources

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def sources(kind: str) -> tuple[str, list[Source]]:
    """(task, sources) of a named suite."""
    if kind == "train-ivif":
        return "ivif", discover_sources(DATA / "ivif" / "roadscene", "ivif")
    if kind == "test-ivif":
        return "ivif", discover_sources(DATA / "ivif" / "vifb", "ivif")
    mefb = discover_sources(DATA / "mef" / "mefb", "mef")
    if kind == "train-mef":
        return "mef", [s for s in mefb if s.name not in MEFB_TEST_SCENES]
    if kind == "test-mef":
        return "mef", [s for s in mefb if s.name in MEFB_TEST_SCENES]
    if kind == "train-mff":
        return "mff", discover_sources(DATA / "restore" / "lol" / "high", "mff")
    if kind == "test-mff":
        return "mff", discover_sources(DATA / "mff" / "lytro", "mff")
    raise ValueError(kind)


SUITES = ("train-ivif", "train-mef", "train-mff", "test-ivif", "test-mef", "test-mff")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=6)
    parser.add_argument("--out", default=str(ROOT / "out" / "suites"))
    parser.add_argument("--max-side", type=int, default=288)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--only", nargs="*", default=list(SUITES))
    parser.add_argument("--per-source", type=int, default=1, help="samples drawn from each source at most")
    args = parser.parse_args()
    for name in args.only:
        task, srcs = sources(name)
        seed = args.seed + (0 if name.startswith("test") else 1)
        build_suite(task, srcs, "all", args.n, seed, Path(args.out) / name, max_side=args.max_side, progress=False,
                    per_source=args.per_source)
        print(f"{name}: {args.n} samples of {task} from {len(srcs)} sources", flush=True)


if __name__ == "__main__":
    main()
