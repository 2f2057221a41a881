"""``fuseagent bench SUBCOMMAND``: benchmarks run on suites built by ``fuseagent synth``.

``fuseagent bench decision --suite DIR --planners LIST [--out DIR]`` compares planners (the seed
paper's Table 1). ``fuseagent bench fusion --task ivif|mef|mff --operators LIST --data DIR`` ranks
fusion operators among the published methods of VIFB, MEFB and Lytro. Other benchmarks join by
adding a ``(name, register)`` pair to :data:`BENCHMARKS`, where ``register(subparsers)`` adds a
parser that sets ``func``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import InputError

__all__ = ["register", "BENCHMARKS", "run_decision_command", "run_fusion_command"]


def _add_decision(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("decision", help="compare planners on suites (MS-SSIM/MEF-SSIMd, NR-IQA, HQA, cost)",
                              description="Run every planner on every sample of the suites and report, per task, "
                                          "fidelity (MS-SSIM or MEF-SSIMd), BRISQUE, NIQE, PIQE, HQA, tool calls "
                                          "and seconds per pair, plus the reflection ablation.")
    p.add_argument("--suite", action="append", required=True, metavar="DIR", help="suite folder (repeatable)")
    p.add_argument("--planners", default="random,random-order,random-model,predefined,expert,oracle",
                   help="comma-separated planners (default: %(default)s)")
    p.add_argument("--ablation", default="expert",
                   help="planners also run without reflection ('' for none; default: %(default)s)")
    p.add_argument("--out", help="folder for decision.md, decision.csv and runs.csv")
    p.add_argument("--limit", type=int, help="use only the first N samples of each suite")
    p.add_argument("--ground-truth", action="store_true", help="give planners the suite's labels instead of perception")
    p.add_argument("--experience", help="experience JSON (or folder) for expert and vlm")
    p.add_argument("--vlm-url", default="http://localhost:8000/v1", help="endpoint of the vlm planner")
    p.add_argument("--vlm-model", default="Qwen/Qwen2.5-VL-7B-Instruct", help="model of the vlm planner")
    p.add_argument("--vlm-timeout", type=float, default=60.0, help="seconds per VLM request")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_decision_command)


def _add_fusion(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("fusion", help="rank fusion operators among published methods (VIFB, MEFB, Lytro)",
                              description="Run fusion operators on a benchmark's sources, score them with the "
                                          "benchmark's metrics (lossless and stored as JPEG-75 like the published "
                                          "files) and rank them among the published methods. --task waterloo "
                                          "scores MEF operators on the Waterloo MEF subjective database.")
    p.add_argument("--task", required=True, choices=("ivif", "mef", "mff", "waterloo"), help="benchmark")
    p.add_argument("--operators", required=True,
                   help="comma-separated fusion operators (e.g. spd_global,mertens,enfuse)")
    p.add_argument("--data", default="../shared/data", help="shared data root (default: %(default)s)")
    p.add_argument("--out", help="folder for fusion_TASK.md/.csv, fused images and the metric cache")
    p.add_argument("--limit", type=int, help="use only the first N test images")
    p.add_argument("--figure", metavar="IMAGE", help="also write a picture: sources, ours, best published")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_fusion_command)


def _add_fuscore(subparsers: argparse._SubParsersAction) -> None:
    from ..bench.fuscore import add_parser

    add_parser(subparsers)


#: ``bench`` subcommands: name and the function adding its parser
BENCHMARKS: list[tuple[str, Callable[[argparse._SubParsersAction], None]]] = [("decision", _add_decision),
                                                                              ("fusion", _add_fusion),
                                                                              ("fuscore", _add_fuscore)]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="benchmarks on synthetic suites (decision, ...)",
                              description="Benchmarks on suites built by 'fuseagent synth'.")
    sub = p.add_subparsers(dest="bench", metavar="BENCHMARK", parser_class=type(p))
    for _, add in BENCHMARKS:
        add(sub)
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])


def run_decision_command(args: argparse.Namespace) -> int:
    from ..bench.decision import check_planners, run_decision, summarise, to_markdown, write_outputs

    planners = check_planners(args.planners.split(","))
    ablation = [p.strip() for p in args.ablation.split(",") if p.strip()]
    unknown = [p for p in ablation if p not in planners]
    if unknown:
        raise InputError(f"--ablation planner(s) {', '.join(unknown)} are not in --planners")
    if args.limit is not None and args.limit < 1:
        raise InputError("--limit must be at least 1")
    for suite in args.suite:
        if not Path(suite).is_dir():
            raise InputError(f"suite '{suite}' is not a folder")
    experience = None
    if args.experience:
        from ..plan.experience import Experience

        experience = Experience.load(args.experience)
    options = {"vlm": {"url": args.vlm_url, "model": args.vlm_model, "timeout": args.vlm_timeout}}
    rows = run_decision(args.suite, planners, ablation=ablation, ground_truth=args.ground_truth, limit=args.limit,
                        planner_options=options, experience=experience, progress=not args.no_progress)
    print(to_markdown(summarise(rows), "## "))
    if args.out:
        paths = write_outputs(args.out, rows)
        print("wrote " + ", ".join(str(p) for p in paths.values()))
    failed = [r for r in rows if r.error]
    for row in failed[:5]:
        print(f"note: {row.suite}/{row.sample} {row.label} failed: {row.error}", file=sys.stderr)
    return 0


def run_fusion_command(args: argparse.Namespace) -> int:
    from ..bench import fusion

    data = Path(args.data)
    if not data.is_dir():
        raise InputError(f"--data '{data}' is not a folder")
    out = Path(args.out) if args.out else None
    cache = fusion.MetricCache(out / "metric_cache.json" if out else None)
    operators = args.operators.split(",")
    if args.task == "waterloo":
        rows, correlation = fusion.waterloo_study(operators, data, cache=cache, progress=not args.no_progress)
        text = fusion.waterloo_markdown(rows, correlation)
        print(text)
        if out:
            out.mkdir(parents=True, exist_ok=True)
            (out / "fusion_waterloo.md").write_text(text)
        return 0
    result = fusion.run_fusion_benchmark(args.task, operators, data, out=out, limit=args.limit,
                                         progress=not args.no_progress, cache=cache)
    print(fusion.to_markdown(result, args.task, "## "))
    if out:
        paths = fusion.write_outputs(out, result, args.task)
        print("wrote " + ", ".join(str(p) for p in paths.values()))
        if args.figure:
            from ..io import read_image

            best = next(e.method for e in fusion.leaderboard(result, args.task) if e.storage == fusion.PUBLISHED)
            ours = {}
            for name in fusion.check_operators(operators, args.task)[:2]:
                path = out / "fused" / args.task / name.removeprefix("fusion.") / f"{args.figure}.png"
                if path.is_file():
                    ours[name] = read_image(path)
            panels = fusion.figure_panels(args.task, args.figure, data, ours, best)
            print(f"wrote {fusion.comparison_figure(panels, out / f'fusion_{args.task}_{args.figure}.jpg')}")
    for error in result.errors[:5]:
        print(f"note: {error}", file=sys.stderr)
    return 0
