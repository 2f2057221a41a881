"""The agent with and without its helper process: wall time and overhead, as an A/B in one process.

``Agent(offload=True)`` (the default: :mod:`fuseagent.offload`) alternates with
``Agent(offload=False)`` run after run, each run in a fresh environment so that every tool runs,
the helper started and answering before the first run. Every pair of runs must give the same
trajectory, rewards and fused image (checked; the script stops otherwise).

1. The agent-overhead pair of ``bench_agent.py`` (the bundled TNO pair at 640×480, visible image
   darkened and noisy): median wall time, tool time and overhead share over ``--rounds`` rounds.
2. With ``--suites``: every pair of ``<split>-ivif``, ``<split>-mef``, ``<split>-mff`` (at most
   ``--limit`` each; build them at the size users fuse with ``build_agent_suites.py --max-side 640``,
   never the test suites): per pair one warm-up run, then two runs per mode, alternating, the
   faster of each mode kept; summed per task, with the rollbacks and the time of steps run ahead
   and discarded.

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_offload.py [--planners expert,predefined] [--rounds 10]
       [--suites out/suites_val640 --split train --limit 24] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

from bench_agent import load_pair, make_planner
from fuseagent.agent import Agent, AgentResult
from fuseagent.execute import Environment
from fuseagent.offload import helper

TASKS = ("ivif", "mef", "mff")


def run(planner, images, task: str, offload: bool) -> tuple[float, AgentResult]:
    agent = Agent(planner=planner, offload=offload, environment=Environment())
    t0 = time.perf_counter()
    result = agent.run(images, task=task)
    result.trace()
    return time.perf_counter() - t0, result


def same(a: AgentResult, b: AgentResult) -> bool:
    return (a.trajectory == b.trajectory and [s.reward for s in a.steps] == [s.reward for s in b.steps]
            and np.array_equal(a.fused, b.fused))


def on_pair(spec: str, rounds: int) -> dict[bool, dict[str, float]]:
    planner = make_planner(spec)
    ir, vis = load_pair()
    for offload in (False, True):
        run(planner, [ir, vis], "ivif", offload)  # warm-up (weights, tool models)
    rows: dict[bool, list[tuple[float, AgentResult]]] = {False: [], True: []}
    for _ in range(rounds):
        for offload in (False, True):
            rows[offload].append(run(planner, [ir, vis], "ivif", offload))
        if not same(rows[False][-1][1], rows[True][-1][1]):
            raise SystemExit(f"{spec}: the runs with and without the helper differ")
    out = {}
    for offload, runs in rows.items():
        out[offload] = {"wall": statistics.median(w for w, _ in runs),
                        "tools": statistics.median(r.all_tool_seconds for _, r in runs),
                        "overhead": statistics.median(w - r.all_tool_seconds for w, r in runs),
                        "share": statistics.median((w - r.all_tool_seconds) / w for w, r in runs),
                        "perception": statistics.median(r.perception_seconds for _, r in runs),
                        "reflection": statistics.median(r.reflection_seconds for _, r in runs),
                        "trajectory": runs[-1][1].trajectory}
    return out


def on_suites(spec: str, suites: Path, split: str, limit: int | None) -> dict[str, dict[bool, dict[str, float]]]:
    from fuseagent.bench.suite import open_suite

    planner = make_planner(spec)
    out = {}
    for task in TASKS:
        folder = suites / f"{split}-{task}"
        if not folder.is_dir():
            continue
        _, samples = open_suite(folder, limit)
        totals = {False: {"pairs": 0, "wall": 0.0, "overhead": 0.0, "rollbacks": 0, "discarded": 0.0},
                  True: {"pairs": 0, "wall": 0.0, "overhead": 0.0, "rollbacks": 0, "discarded": 0.0}}
        for sample in samples:
            images = [sample.images[r] for r in sample.roles]
            run(planner, images, task, True)
            runs: dict[bool, list[tuple[float, AgentResult]]] = {False: [], True: []}
            for _ in range(2):
                for offload in (False, True):
                    runs[offload].append(run(planner, images, task, offload))
            if not same(runs[False][0][1], runs[True][0][1]):
                raise SystemExit(f"{spec}: {task} {sample.id} differs with and without the helper")
            for offload, pair_runs in runs.items():
                wall, result = min(pair_runs, key=lambda x: x[0])
                t = totals[offload]
                t["pairs"] += 1
                t["wall"] += wall
                t["overhead"] += wall - result.all_tool_seconds
                t["rollbacks"] += sum(s.status == "rolled_back" for s in result.steps)
                t["discarded"] += result.discarded_tool_seconds
        out[task] = totals
        for offload in (False, True):
            t = totals[offload]
            print(f"{spec} {task} helper={offload}: {t['pairs']} pairs, wall {t['wall']:.2f} s, overhead "
                  f"{t['overhead']:.2f} s ({t['overhead'] / t['wall']:.1%}), rollbacks {t['rollbacks']}, "
                  f"discarded {t['discarded']:.2f} s", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planners", default="expert,predefined")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--suites", type=Path, default=None)
    parser.add_argument("--split", default="train", choices=["train", "test"])
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    started = helper()
    if started is None or not started.wait_ready(120):
        raise SystemExit("the helper process did not start (is FUSEAGENT_OFFLOAD=0 set?)")
    load_before = os.getloadavg()
    lines = ["| planner | helper | wall s | tools s | overhead s | overhead share | perception s | reflection s |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    suite_lines = ["| planner | task | pairs | wall s without → with | ratio | overhead share without → with | "
                   "rollbacks | run ahead and discarded s |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for spec in args.planners.split(","):
        m = on_pair(spec, args.rounds)
        for offload in (False, True):
            r = m[offload]
            print(f"{spec} helper={offload}: wall {r['wall']:.3f} s, overhead {r['overhead']:.3f} s ({r['share']:.1%})",
                  flush=True)
            lines.append(f"| {spec} | {'yes' if offload else 'no'} | {r['wall']:.3f} | {r['tools']:.3f} | "
                         f"{r['overhead']:.3f} | {r['share']:.1%} | {r['perception']:.3f} | {r['reflection']:.3f} |")
        if args.suites:
            for task, t in on_suites(spec, args.suites, args.split, args.limit).items():
                off, on = t[False], t[True]
                suite_lines.append(
                    f"| {spec} | {task} | {on['pairs']} | {off['wall']:.2f} → {on['wall']:.2f} | "
                    f"{on['wall'] / off['wall']:.3f} | {off['overhead'] / off['wall']:.1%} → "
                    f"{on['overhead'] / on['wall']:.1%} | {on['rollbacks']} | {on['discarded']:.2f} |")
    load_after = os.getloadavg()
    from _report import machine, update_section

    command = (f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} .venv/bin/python benchmarks/bench_offload.py "
               f"--planners {args.planners} --rounds {args.rounds}"
               + (f" --suites {args.suites} --split {args.split}" if args.suites else "")
               + (f" --limit {args.limit}" if args.limit else ""))
    body = ["## The helper process: the agent with and without it (benchmarks/bench_offload.py)", "",
            f"Command: `{command}`. `Agent(offload=True)` (the default) alternating with `Agent(offload=False)` in "
            "one process, fresh environments, the helper answering before the first run; every pair of runs gives "
            "the same trajectory, rewards and fused image (checked). On the agent-overhead pair (the bundled TNO "
            f"pair at 640×480, visible image darkened and noisy), medians of {args.rounds} rounds:", "",
            f"Machine: {machine()}; load average (1/5/15 min) "
            f"{' / '.join(f'{v:.1f}' for v in load_before)} before and "
            f"{' / '.join(f'{v:.1f}' for v in load_after)} after.", "", *lines]
    if args.suites:
        body += ["", "On suite pairs (per pair a warm-up run, then two runs per mode alternating, the faster kept; "
                 "summed per task; ratio = wall with / without):", "", *suite_lines]
    text = "\n".join(body)
    print(text)
    if not args.no_write:
        update_section("offload", text)


if __name__ == "__main__":
    main()
