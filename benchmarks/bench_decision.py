"""Decision benchmark (the seed paper's Table 1) on small suites from ../shared/data, into docs/BENCHMARKS.md.

Builds (if missing) the training and test suites (benchmarks/build_agent_suites.py), explores the
training suites into an experience document, then runs every planner on the test suites (VIFB, the
16 MEFB test scenes, Lytro; never explored) with the reflection ablation of the expert.

Usage: python benchmarks/bench_decision.py [--n 6] [--limit 4] [--ground-truth] [--no-write]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLANNERS = "random,random-order,random-model,predefined,expert,oracle"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=6, help="samples per suite built")
    parser.add_argument("--limit", type=int, default=4, help="test samples per task benchmarked")
    parser.add_argument("--suites", default=str(ROOT / "out" / "suites"))
    parser.add_argument("--ground-truth", action="store_true", help="planners get the suite labels, not perception")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--explore-only", action="store_true",
                        help="only build the experience document (out/experience) from the training suites")
    args = parser.parse_args()
    suites = Path(args.suites)
    if not all((suites / s / "manifest.jsonl").exists() for s in ("train-ivif", "test-ivif", "test-mef", "test-mff")):
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "build_agent_suites.py"), "--n", str(args.n),
                        "--out", str(suites)], check=True)
    from fuseagent.bench.decision import run_decision, summarise, to_markdown, write_outputs
    from fuseagent.cli.explore import check_training
    from fuseagent.bench.suite import open_suite
    from fuseagent.plan.experience import ExploreSample, explore

    t0 = time.perf_counter()
    train = [suites / f"train-{t}" for t in ("ivif", "mef", "mff")]
    samples = []
    for folder in train:
        settings, group = open_suite(folder)
        check_training(folder, settings)
        samples += [ExploreSample(s.id, s.task, s.images, s.findings) for s in group]
    experience = explore(samples, models_per_task=3, meta={"suites": [f.name for f in train]})
    experience.save(ROOT / "out" / "experience")
    explore_seconds = time.perf_counter() - t0
    if args.explore_only:
        print(f"experience from {len(samples)} training samples in {explore_seconds:.0f} s: {ROOT / 'out' / 'experience'}")
        return
    t0 = time.perf_counter()
    rows = run_decision([suites / f"test-{t}" for t in ("ivif", "mef", "mff")], PLANNERS.split(","),
                        ablation=["expert"], ground_truth=args.ground_truth, limit=args.limit, experience=experience)
    bench_seconds = time.perf_counter() - t0
    write_outputs(ROOT / "out" / "decision", rows)
    summary = summarise(rows)
    table = to_markdown(summary, "### ")
    print(table)
    from _report import machine, update_section

    findings = "the suites' ground-truth labels" if args.ground_truth else "perception (`fuseagent.perceive`)"
    lines = [
        "## Decision benchmark: planners compared (seed paper's Table 1)", "",
        f"Command: `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_decision.py --n {args.n} --limit {args.limit}"
        f"{' --ground-truth' if args.ground_truth else ''}` "
        f"(exploration {explore_seconds:.0f} s, benchmark {bench_seconds:.0f} s).", "",
        f"Machine: {machine()}.", "",
        "Suites (`fuseagent synth` recipes `all`, longest side 288 px): exploration on RoadScene (IVIF), the 41 "
        "MEFB scenes outside its 16-scene test set (MEF) and pairs generated from LOL normal-light images (MFF), "
        f"{args.n} samples each; benchmark on the first {args.limit} samples of suites from VIFB (IVIF), the 16 "
        f"MEFB test scenes (MEF) and Lytro (MFF). Planners see {findings}. Every run is the full agent "
        "(reflection and rollback on, except the ablation row) in a fresh environment.", "",
        "Columns: fidelity to the clean sources (MS-SSIM: IVIF mean over the clean sources, MFF against the "
        "all-in-focus reference; MEF-SSIMd for MEF), BRISQUE / NIQE / PIQE of the fused image (lower is better), "
        "HQA (`fuseagent.agent.trajectory_hqa`: holistic quality of the result against the images given to the "
        "fusion step, with the steps' reflection rewards; the quantity the oracle maximises), executed tool calls "
        "(rolled-back attempts and the oracle's search included) and seconds per pair. Best quality value in bold.",
        "", table]
    if not args.no_write:
        update_section("decision", "\n".join(lines))


if __name__ == "__main__":
    main()
