"""Best of K, its candidates scored at full size or on shrunk copies: HQA of the result and seconds.

The default run of ``fuseagent fuse`` executes the learned planner's K most probable plans and keeps
the one whose result has the highest HQA, scored at full size. ``score_side`` scores those results
on copies at most that many px on their longest side (``LearnedPlanner(score_side=…)``,
``fuseagent fuse --score-side PX``). This runs the learned planner, planning from perception with
``candidates=K``, at full size and at each ``--score-side`` on the same suites, and tabulates per
task the mean HQA of the chosen results (the benchmark's HQA, at full size: what the full-size
scoring maximises), its ratio to the full-size scoring, tool calls and seconds per pair.

Use suites built at the sizes users fuse (``build_agent_suites.py --max-side 640``): on the decision
benchmark's 288-px suites a score side of 320 changes nothing. Never the test suites to choose a
setting.

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_score_side.py --suites out/suites_val640 --split train
       [--best-of 5] [--score-side 320 --score-side 256] [--limit 24] [--no-write]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _report import machine, update_section

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("ivif", "mef", "mff")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", required=True, help="folder holding <split>-ivif, <split>-mef, <split>-mff")
    parser.add_argument("--split", default="train", choices=["train", "test"])
    parser.add_argument("--best-of", type=int, default=5, metavar="K")
    parser.add_argument("--score-side", type=int, action="append", default=[], metavar="PX")
    parser.add_argument("--limit", type=int, default=None, help="samples per task")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    from fuseagent.bench.decision import run_decision, summarise

    suites = [Path(args.suites) / f"{args.split}-{t}" for t in TASKS]
    suites = [s for s in suites if s.is_dir()]
    if not suites:
        raise SystemExit(f"error: {args.suites} holds no {args.split}-* suite")
    variants = [("full size", None)] + [(f"{s} px", s) for s in args.score_side or [320, 256]]
    results, seconds = {}, {}
    for label, side in variants:
        t0 = time.perf_counter()
        rows = run_decision(suites, ["learned"], ablation=[], ground_truth=False, limit=args.limit, progress=False,
                            planner_options={"learned": {"candidates": args.best_of, "score_side": side}})
        seconds[label] = time.perf_counter() - t0
        results[label] = {task: r["learned"] for task, r in summarise(rows).items()}
        print(label, {t: round(v["hqa"], 4) for t, v in results[label].items()}, f"{seconds[label]:.0f} s", flush=True)

    lines = ["| scoring | task | pairs | HQA | HQA / full size | tool calls | seconds per pair | seconds / full size |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    full = results["full size"]
    for label, _ in variants:
        for task, row in results[label].items():
            lines.append(f"| {label} | {task} | {row['n']} | {row['hqa']:.4f} | {row['hqa'] / full[task]['hqa']:.2%} | "
                         f"{row['tool_calls']:.1f} | {row['seconds']:.2f} | "
                         f"{row['seconds'] / full[task]['seconds']:.2f} |")
    command = ("OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_score_side.py "
               f"--suites {args.suites} --split {args.split} --best-of {args.best_of}"
               + "".join(f" --score-side {s}" for _, s in variants[1:])
               + (f" --limit {args.limit}" if args.limit else ""))
    body = "\n".join([
        f"## Scoring the candidates of best of {args.best_of} on shrunk copies (benchmarks/bench_score_side.py)",
        "",
        f"Command: `{command}`. The learned planner with `candidates={args.best_of}` (the default run of "
        "`fuseagent fuse`), planning from perception, its candidates' results scored by HQA at full size or on "
        "copies at most the given px on their longest side (`--score-side`); HQA of the chosen result at full "
        "size (the quantity the full-size scoring maximises), seconds per pair including perception.",
        "",
        f"Machine: {machine()}.",
        "",
        *lines,
    ])
    print(body)
    if not args.no_write:
        update_section("score-side", body)


if __name__ == "__main__":
    main()
