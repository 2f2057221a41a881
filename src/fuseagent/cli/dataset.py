"""``fuseagent dataset``: build the planner's training data from suites, export it, show its statistics.

Examples::

    fuseagent dataset build --suite suites/ivif --suite suites/mef --out ds/ --top-k 5 --workers 2
    fuseagent dataset build --suite suites/ivif --out ds/ --executor ray --ray-address auto
    fuseagent dataset export ds/ --format llamafactory --out sft/
    fuseagent dataset stats ds/

A build killed at any moment is completed by running the same command again.
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("dataset", help="build, export and inspect the planner's training data",
                              description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="dataset_command", metavar="ACTION")
    b = sub.add_parser("build", help="search every pair of suites and write the records")
    b.add_argument("--suite", action="append", required=True, help="suite folder (fuseagent synth); repeatable")
    b.add_argument("--out", required=True, help="dataset folder")
    b.add_argument("--top-k", type=int, default=5, help="scored candidates kept with their image hashes (default 5)")
    b.add_argument("--workers", type=int, default=1, help="parallel workers (default 1)")
    b.add_argument("--executor", choices=("local", "ray"), default="local", help="process pool or Ray (default local)")
    b.add_argument("--ray-address", default=None, help="Ray cluster to join (default: start a local one)")
    b.add_argument("--models-per-task", type=int, default=2, help="models tried per pre-fusion task (default 2)")
    b.add_argument("--max-prefixes", type=int, default=64, help="pre-fusion prefixes explored (default 64)")
    b.add_argument("--max-fusion", type=int, default=None, help="fusion operators tried (default all)")
    b.add_argument("--perturb", type=int, default=0, help="perturbed trajectories added per pair (default 0)")
    b.add_argument("--refine-url", default=None, help="OpenAI-compatible endpoint rewriting the rationales")
    b.add_argument("--refine-model", default=None, help="model name at --refine-url")
    b.add_argument("--findings", choices=("perception", "truth"), default="perception",
                   help="what decides the searched tasks: the perception report (default) or the suite's labels")
    b.add_argument("--cache", default=None, help="tool-call cache folder (default DS/cache)")
    b.add_argument("--cache-gb", type=float, default=2.0, help="bound of the disk cache in GiB (default 2)")
    b.add_argument("--limit", type=int, default=None, help="build at most this many new pairs in this run")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    e = sub.add_parser("export", help="write a dataset in an SFT or RL framework's format")
    e.add_argument("dataset", help="dataset folder")
    e.add_argument("--format", required=True, choices=("llamafactory", "trl", "easyr1", "verl"))
    e.add_argument("--out", required=True, help="output folder")
    e.add_argument("--copy-images", action="store_true", help="copy the images next to the export (relative paths)")
    e.add_argument("--with-perturbed", action="store_true",
                   help="SFT: add perturbed trajectories scoring within --margin of the best")
    e.add_argument("--margin", type=float, default=0.02, help="HQA margin of --with-perturbed (default 0.02)")
    s = sub.add_parser("stats", help="pairs, candidates, tool executions against naive enumeration")
    s.add_argument("dataset", help="dataset folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError

    command = getattr(args, "dataset_command", None)
    if command == "build":
        from ..data.build import BuildSettings, build_dataset
        from ..data.search import SearchOptions

        if args.max_prefixes < 1 or args.models_per_task < 1 or args.perturb < 0 or args.cache_gb <= 0:
            raise InputError("--max-prefixes and --models-per-task must be >= 1, --perturb >= 0, --cache-gb > 0")
        options = SearchOptions(models_per_task=args.models_per_task, max_prefixes=args.max_prefixes,
                                max_fusion=args.max_fusion, top_k=args.top_k, perturb=args.perturb)
        settings = BuildSettings(options, args.refine_url, args.refine_model, args.cache,
                                 cache_bytes=int(args.cache_gb * (1 << 30)), findings=args.findings)
        summary = build_dataset(args.suite, args.out, settings, workers=args.workers, executor=args.executor,
                                ray_address=args.ray_address, limit=args.limit,
                                progress=not args.no_progress and sys.stderr.isatty())
        print(json.dumps(summary))
        return 0
    if command == "export":
        from ..data.export import export_dataset, validate_export

        result = export_dataset(args.dataset, args.format, args.out, copy_images=args.copy_images,
                                with_perturbed=args.with_perturbed, margin=args.margin)
        problems = validate_export(args.out, args.format)
        result["valid"] = not problems
        print(json.dumps(result))
        for problem in problems[:20]:
            print(f"fuseagent: invalid export: {problem}", file=sys.stderr)
        return 0 if not problems else 1
    if command == "stats":
        from ..data.build import dataset_stats, load_records, read_settings

        read_settings(args.dataset)
        print(json.dumps(dataset_stats(load_records(args.dataset)), indent=2))
        return 0
    raise InputError("dataset needs an action: build, export or stats")
