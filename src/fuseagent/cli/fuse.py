"""``fuseagent fuse A B [C…] --task T -o OUT [--plan TEXT | --planner NAME | --replay TRACE] [--trace FILE] [--report HTML]``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import InputError
from ..io import IMAGE_SUFFIXES, atomic_write, write_image
from ..plan.learned import VALIDATED_CANDIDATES

__all__ = ["register", "run", "write_json"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("fuse", help="fuse two or more images of one scene",
                              description="Fuse IR+visible, multi-exposure or multi-focus images. With no --plan "
                                          "the agent perceives the pair and plans with the learned planner (its "
                                          f"{VALIDATED_CANDIDATES} most probable plans executed, the best kept); "
                                          "--plan runs the given trajectory as it is.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="source images (IVIF: infrared then visible)")
    p.add_argument("--task", required=True, choices=["ivif", "mef", "mff"], help="fusion task")
    p.add_argument("-o", "--output", required=True, help="fused image to write (.png, .tif, .jpg, .bmp)")
    p.add_argument("--plan", help="trajectory text, e.g. '[task:registration][model:sift] -> [task:fusion][model:gff]'")
    p.add_argument("--trace", help="write the JSON trace of the run here")
    p.add_argument("--bits", type=int, choices=[8, 16], default=8, help="output bit depth (16: PNG/TIFF)")
    agent = p.add_argument_group("agent (perceive, plan, execute, reflect, roll back)")
    agent.add_argument("--planner", help="run the agent with this planner: learned (the default when no --plan is "
                                         "given), predefined, expert, vlm, oracle, random, random-order, random-model")
    agent.add_argument("--report", help="write a self-contained HTML report of the run here")
    agent.add_argument("--replay", help="re-run the trajectory of a saved trace (bit-for-bit the same output)")
    agent.add_argument("--experience", help="experience JSON (from 'fuseagent explore') for expert and vlm planners")
    agent.add_argument("--no-reflect", action="store_true", help="execute the plan without reflection and rollback")
    agent.add_argument("--seed", type=int, default=0, help="seed of random planners")
    agent.add_argument("--vlm-url", default="http://localhost:8000/v1",
                       help="OpenAI-compatible endpoint (vLLM, Ollama, LM Studio); key from $FUSEAGENT_VLM_API_KEY")
    agent.add_argument("--vlm-model", default="Qwen/Qwen2.5-VL-7B-Instruct", help="model name on that endpoint")
    agent.add_argument("--vlm-timeout", type=float, default=60.0, help="seconds per VLM request")
    agent.add_argument("--candidates", type=int, default=None, metavar="K",
                       help="learned planner: execute its K most probable plans and keep the best by HQA (default "
                            f"{VALIDATED_CANDIDATES}, the setting chosen on validation pairs, docs/BENCHMARKS.md; "
                            "1: the greedy plan, with reflection)")
    agent.add_argument("--score-side", type=int, default=None, metavar="PX",
                       help="learned planner with K > 1: score the candidates' results on copies at most PX on "
                            "their longest side (faster, a slightly different choice; default: full size)")
    p.set_defaults(func=run)


def write_json(path: str | Path, data: object) -> Path:
    """Write JSON atomically."""
    text = json.dumps(data, indent=2)

    def _write(tmp: str) -> None:
        Path(tmp).write_text(text + "\n", encoding="utf-8")

    return atomic_write(path, _write)


def run(args: argparse.Namespace) -> int:
    from ..api import run_plan

    out = Path(args.output)
    if out.suffix.lower() not in IMAGE_SUFFIXES:
        raise InputError(f"output '{out}' must end with one of {', '.join(IMAGE_SUFFIXES)}")
    if args.bits == 16 and out.suffix.lower() not in (".png", ".tif", ".tiff"):
        raise InputError("16-bit output needs a .png or .tif file")
    if args.trace and Path(args.trace).suffix.lower() != ".json":
        raise InputError(f"trace '{args.trace}' must be a .json file")
    if len(args.images) < 2:
        raise InputError(f"fusion needs at least 2 images, got {len(args.images)}")
    if args.task == "ivif" and len(args.images) != 2:
        raise InputError(f"IVIF fuses exactly 2 images (infrared, visible), got {len(args.images)}")
    if args.report and Path(args.report).suffix.lower() not in (".html", ".htm"):
        raise InputError(f"report '{args.report}' must be an .html file")
    chosen = [flag for flag, value in (("--plan", args.plan), ("--planner", args.planner), ("--replay", args.replay))
              if value]
    if len(chosen) > 1:
        raise InputError(f"{' and '.join(chosen)} cannot be combined: give one")
    agent_result = None
    if args.replay:
        result = _replay(args)
    elif args.plan and not args.report:
        result = run_plan(args.images, args.task, args.plan)
    else:
        agent_result = _run_agent(args)
        result = agent_result.execution
    trace = agent_result.trace() if agent_result is not None else result.trace()
    trace["inputs_files"] = [str(p) for p in args.images]
    write_image(out, result.fused, bits=args.bits)
    if args.trace:
        write_json(args.trace, trace)
    if args.report and agent_result is not None:
        from ..report import write_report

        write_report(agent_result, args.report, inputs=[Path(p).name for p in args.images])
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    size = f"{result.fused.shape[1]}x{result.fused.shape[0]}"
    if agent_result is not None:
        # the accepted steps were run (and timed) during the agent's search; ``result`` replays them from cache
        rolled = sum(1 for s in agent_result.steps if s.status == "rolled_back")
        calls = (f"{agent_result.planning_tool_calls} tool calls while planning, {agent_result.tool_calls} after"
                 if agent_result.planning_tool_calls else f"{agent_result.tool_calls} tool calls")
        print(f"planner {agent_result.planner}: {agent_result.trajectory} ({calls}, {rolled} rolled back)")
        searched = agent_result.planning_tool_seconds
        tools = (f"tools {agent_result.all_tool_seconds:.2f}s ({searched:.2f}s of them while planning)" if searched
                 else f"tools {agent_result.tool_seconds:.2f}s")
        print(f"wrote {out} ({size}) in {agent_result.seconds:.2f}s: {tools}, "
              f"perception {agent_result.perception_seconds:.2f}s, "
              f"planning {agent_result.planning_seconds - searched:.2f}s{' besides its tools' if searched else ''}, "
              f"reflection {agent_result.reflection_seconds:.2f}s")
        return 0
    steps = ", ".join(f"{s.tool} {s.seconds:.2f}s" for s in result.steps)
    print(f"wrote {out} ({size}) in {result.seconds:.2f}s: {steps}")
    return 0


def _run_agent(args: argparse.Namespace):
    from ..agent import Agent
    from ..plan import FixedPlanner

    if args.plan:  # --plan with --report records the plain run of that plan, unchanged
        planner = FixedPlanner(args.plan)
        reflect = False
    else:
        from ..plan import create_planner

        name = args.planner or "learned"
        candidates = VALIDATED_CANDIDATES if args.candidates is None else args.candidates
        options = ({"url": args.vlm_url, "model": args.vlm_model, "timeout": args.vlm_timeout}
                   if name == "vlm" else {"candidates": candidates, "score_side": args.score_side}
                   if name == "learned" else {})
        planner = create_planner(name, **options)
        reflect = not args.no_reflect
    agent = Agent(planner=planner, reflect=reflect, experience=args.experience, seed=args.seed)
    return agent.run(*args.images, task=args.task)


def _replay(args: argparse.Namespace):
    import json as _json

    from ..api import load_images
    from ..execute import Environment

    try:
        trace = _json.loads(Path(args.replay).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read trace '{args.replay}': {exc}") from None
    if not isinstance(trace, dict):
        raise InputError(f"'{args.replay}' is not a fuseagent trace")
    if trace.get("task") != args.task:
        raise InputError(f"trace '{args.replay}' is for {str(trace.get('task')).upper()}, not {args.task.upper()}")
    return Environment().replay(trace, load_images(args.images))
