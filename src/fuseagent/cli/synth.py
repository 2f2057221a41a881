"""``fuseagent synth``: build a wild benchmark suite of degraded fusion inputs.

Example::

    fuseagent synth --task ivif --src ../shared/data/ivif/tno --recipe ivif-c1 --n 20 --seed 0 --out suite/
    fuseagent synth --task mff --src photos/ --recipe C --n 100 --per-source 3 --out suite_mff/

``--recipe`` takes a recipe name (``fuseagent synth --list`` shows them), a group letter
(``A``, ``B``, ``C``: one recipe of the group drawn per sample) or ``all``. The same command
re-run after an interruption completes the suite without duplicating or leaving partial files.
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("synth", help="synthesise a degraded benchmark suite with ground truth",
                              description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=("ivif", "mef", "mff"), help="fusion task")
    p.add_argument("--src", help="source folder (IVIF: ir/ and vis/; MEF/MFF: pair sub-folders or single images)")
    p.add_argument("--recipe", default="all", help="recipe name, group A/B/C, or 'all' (default)")
    p.add_argument("--n", type=int, default=10, help="number of samples (default 10)")
    p.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    p.add_argument("--out", help="output folder")
    p.add_argument("--per-source", type=int, default=1, help="samples allowed per source (default 1)")
    p.add_argument("--max-side", type=int, default=640, help="shrink larger sources to this side (0: keep)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--list", action="store_true", help="list the recipes (of --task, if given) and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..degrade.recipes import RECIPES
    from ..degrade.suite import build_suite
    from ..errors import InputError

    if args.list:
        for recipe in RECIPES.values():
            if args.task in (None, recipe.task):
                steps = ", ".join(f"{s.role}:{s.op}" for s in recipe.steps)
                print(f"{recipe.name:8s} {recipe.group}  {recipe.description}  [{steps}]")
        return 0
    missing = [flag for flag, value in (("--task", args.task), ("--src", args.src), ("--out", args.out)) if not value]
    if missing:
        raise InputError(f"synth needs {', '.join(missing)}")
    records = build_suite(args.task, args.src, args.recipe, args.n, args.seed, args.out,
                          per_source=args.per_source, max_side=args.max_side or None,
                          progress=not args.no_progress and sys.stderr.isatty())
    groups: dict[str, int] = {}
    for r in records:
        groups[r["recipe"]] = groups.get(r["recipe"], 0) + 1
    print(json.dumps({"out": args.out, "samples": len(records), "recipes": groups}))
    return 0
