"""Agent overhead on a 640×480 pair: everything but tool execution, as a share of the run's time.

Runs the agent (perception, planning, step-by-step execution with reflection and rollback, the
final trace) on the bundled TNO pair at 640×480 with a degraded visible image, in a fresh
environment each repeat so that every tool really runs, and splits the wall time into tool time
and overhead (perception, planning, reflection, content hashing, bookkeeping).

When perception cannot run (e.g. its weights must be retrained), the expert planner is given
:data:`KNOWN_FINDINGS` instead and the table says so: its overhead then excludes perception.

A planner is named as in ``fuseagent fuse --planner``, or ``learned:K`` for the learned planner
proposing and executing its K most probable plans (``learned:5`` is the default of ``fuseagent fuse``).

Usage: python benchmarks/bench_agent.py [--repeats 3] [--planners expert,predefined,learned:5] [--reflect-sizes 256,128] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

from fuseagent.agent import Agent, perception_report
from fuseagent.errors import FuseAgentError
from fuseagent.execute import Environment
from fuseagent.io import read_image, resize_to
from fuseagent.plan import Planner, create_planner
from fuseagent.plan.findings import Findings

ROOT = Path(__file__).resolve().parents[1]

#: findings from which the expert plans what it planned from perception's report on this pair when
#: perception last ran (denoise and lighten the visible image, deblur the infrared one, register)
KNOWN_FINDINGS = Findings({"vis": {"noise": 3, "low_light": 3}, "ir": {"blur": 2}}, {"misalignment": 2})


def load_pair() -> tuple[np.ndarray, np.ndarray]:
    """The TNO example at 640×480; the visible image darkened and noisy (so restoration steps run)."""
    scene = ROOT / "examples" / "ivif" / "tno_08"
    ir = resize_to(read_image(scene / "ir.png", mode="gray"), (480, 640))
    vis = resize_to(read_image(scene / "vis.png", mode="gray"), (480, 640))
    rng = np.random.default_rng(0)
    vis = np.clip(vis * 0.5 + rng.normal(0, 0.04, vis.shape), 0, 1).astype(np.float32)
    return ir, vis


def perception_error(ir: np.ndarray, vis: np.ndarray) -> str | None:
    """Why perception cannot run on the pair (None when it can)."""
    try:
        perception_report([ir, vis], "ivif")
    except FuseAgentError as exc:
        return str(exc)
    return None


def make_planner(spec: str) -> Planner:
    """``NAME`` or ``learned:K`` (the learned planner proposing and executing its K best plans)."""
    name, _, k = spec.partition(":")
    return create_planner(name, candidates=int(k)) if k else create_planner(name)


def measure(spec: str, ir: np.ndarray, vis: np.ndarray, repeats: int, reflect_size: int = 256,
            findings: Findings | None = None, offload: bool = True) -> dict[str, float]:
    """Median figures of ``repeats`` runs. One planner serves every run (its weights are loaded once,
    as in a process that fuses many pairs); tool time is every tool's, the ones a planner ran
    while planning (best of K) included. ``offload``: the agent uses the helper process."""
    rows = []
    planner = make_planner(spec)
    Agent(planner=planner, reflect_size=reflect_size, offload=offload).run(ir, vis, "ivif", findings=findings)
    for _ in range(repeats):
        agent = Agent(planner=planner, environment=Environment(), reflect_size=reflect_size, offload=offload)
        t0 = time.perf_counter()
        result = agent.run(ir, vis, "ivif", findings=findings)
        result.trace()
        wall = time.perf_counter() - t0
        tools, planning = result.all_tool_seconds, result.planning_seconds - result.planning_tool_seconds
        rows.append({"wall": wall, "tools": tools, "overhead": wall - tools,
                     "perception": result.perception_seconds, "planning": planning,
                     "reflection": result.reflection_seconds, "reflection_cpu": agent.reflector.cpu_seconds,
                     "hashing": result.hashing_seconds,
                     "rest": wall - tools - result.perception_seconds - planning - result.reflection_seconds
                     - result.hashing_seconds,
                     "calls": result.tool_calls + result.planning_tool_calls, "trajectory": result.trajectory})
    med = {k: statistics.median(r[k] for r in rows) for k in ("wall", "tools", "overhead", "perception", "planning",
                                                                  "reflection", "reflection_cpu", "hashing", "rest",
                                                                  "calls")}
    med["share"] = statistics.median(r["overhead"] / r["wall"] for r in rows)
    med["share_no_perception"] = statistics.median((r["overhead"] - r["perception"]) / (r["wall"] - r["perception"])
                                                   for r in rows)
    med["trajectory"] = rows[-1]["trajectory"]
    return med


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--planners", default="expert,predefined")
    parser.add_argument("--reflect-sizes", default="256,128", help="reflection thumbnail sizes to compare")
    parser.add_argument("--offload", default="on,off",
                        help="with (on) and/or without (off) the helper process (fuseagent.offload)")
    parser.add_argument("--note", default="", help="a paragraph added under the table (e.g. earlier figures)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    ir, vis = load_pair()
    modes = [m.strip() == "on" for m in args.offload.split(",")]
    if any(modes):
        from fuseagent.offload import helper

        started = helper()
        if started is None or not started.wait_ready(120):
            raise SystemExit("the helper process did not start (FUSEAGENT_OFFLOAD=0?): run with --offload off")
    Agent(planner="predefined").run(ir, vis, "ivif")  # warm-up: imports, model weights
    no_perception = perception_error(ir, vis)
    if no_perception:
        print(f"perception unavailable ({no_perception}): planners get the known findings", flush=True)
    results = {}
    load_before = os.getloadavg()
    for planner in args.planners.split(","):
        sizes = list(map(int, args.reflect_sizes.split(",")))
        best_of = planner.startswith("learned:") and int(planner.partition(":")[2]) > 1
        for size in sizes[:1] if best_of else sizes:  # best of K does not reflect
            label = (f"learned, best of {planner.partition(':')[2]} (no reflection)" if best_of
                     else f"{planner} (reflection at {size} px)")
            findings = None
            if no_perception and make_planner(planner).card.uses_perception:
                findings, label = KNOWN_FINDINGS, label + ", known findings: no perception"
            for offload in modes:
                row = label if offload else label + ", no helper process"
                results[row] = m = measure(planner, ir, vis, args.repeats, size, findings, offload)
                print(f"{row:32s} wall {m['wall']:.3f}s tools {m['tools']:.3f}s overhead {m['overhead']:.3f}s "
                      f"({m['share']:.1%}) perception {m['perception']:.3f}s reflection {m['reflection']:.3f}s "
                      f"(CPU {m['reflection_cpu']:.3f}s) hashing {m['hashing']:.3f}s rest {m['rest']:.3f}s", flush=True)
    load_after = os.getloadavg()
    from _report import machine, update_section

    lines = ["## Agent overhead on a 640×480 pair", "",
             f"Command: `OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} .venv/bin/python benchmarks/bench_agent.py --repeats {args.repeats} "
             f"--planners {args.planners} --reflect-sizes {args.reflect_sizes} --offload {args.offload}` "
             f"(median of {args.repeats} runs, each in a fresh environment so that every tool runs; one warm-up run "
             "per row first). Input: the bundled TNO pair `tno_08` resized to 640×480, the visible image darkened and "
             "noisy. One planner object serves a row's runs (the learned policy's weights are loaded once, as "
             "in a process that fuses many pairs). Overhead = wall time of `Agent.run` plus building its trace, "
             "minus the time spent inside tools (`AgentResult.all_tool_seconds`: the tools' own timings, rolled-back "
             "attempts and the plans a best-of-K planner executes while planning included); it is everything the "
             "agent adds: perception, planning, reflection (thumbnails, rewards), content hashing, step "
             "bookkeeping and the trace. `learned:5` is the default of `fuseagent fuse`: the policy's 5 most "
             "probable plans executed (shared prefixes once) and the one with the highest HQA kept, without "
             "reflection; its planning s is planning minus those tools (the policy, the candidates' step rewards, "
             "the full-resolution HQA of each candidate's result that the run waited for). "
             "Overhead share = overhead / wall time. By default the agent works with a helper process "
             "(`fuseagent.offload`, started once per process and waited for before measuring): it measures "
             "one image's perception features (the smaller in bytes; of two alike the visible one) while the agent measures the other one and the "
             "alignment; it rates each step while the agent hashes the step's output in its worker thread "
             "and runs the next planned step on it when that pays off (`RunAhead`; kept when the step is accepted; a step run ahead and "
             "not kept counts as overhead, not tool time); it computes the fused image's no-reference "
             "term while the agent computes HQA's fusion terms (best-of-K candidates are scored in the agent's "
             "worker thread, cheapest prefix first by measured tool times). Rows "
             "marked 'no helper process' run `Agent(offload=False)`, where the agent's worker thread "
             "prepares "
             "each step's rating while its tool runs and hashes states while they are rated or perceived: "
             "reflection s and hashing s are the time the run waited for them (rating, and waiting for a "
             "preparation; waiting for a content hash), reflection CPU s the CPU time of the reflection in "
             "whichever thread or process (on a shared machine the wall seconds also count waiting for a core); rest s = "
             "overhead minus perception, planning, reflection and hashing (step bookkeeping, the planner's "
             "alternatives, the trace).",
             ""]
    if no_perception:
        lines += [f"Perception could not run when this was measured (`{no_perception}`): planners that use it "
                  "were given findings that lead the expert to the plan it made from perception on this pair "
                  "when perception last ran (`KNOWN_FINDINGS`), so their overhead excludes perception (0.22 s in the previous "
                  "measurement).", ""]
    lines += [
             f"Machine: {machine()}; load average (1/5/15 min) "
             f"{' / '.join(f'{v:.1f}' for v in load_before)} before and "
             f"{' / '.join(f'{v:.1f}' for v in load_after)} after.", "",
             "| planner | trajectory | tool calls | wall s | tools s | overhead s | overhead share | share without "
             "perception | perception s | planning s | reflection s | reflection CPU s | hashing s | rest s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for planner, m in results.items():
        lines.append(f"| {planner} | `{m['trajectory']}` | {m['calls']:.0f} | {m['wall']:.3f} | {m['tools']:.3f} | "
                     f"{m['overhead']:.3f} | {m['share']:.1%} | {m['share_no_perception']:.1%} | {m['perception']:.3f} | {m['planning']:.3f} | "
                     f"{m['reflection']:.3f} | {m['reflection_cpu']:.3f} | {m['hashing']:.3f} | {m['rest']:.3f} |")
    if args.note:
        lines += ["", args.note]
    if not args.no_write:
        update_section("agent-overhead", "\n".join(lines))


if __name__ == "__main__":
    main()
