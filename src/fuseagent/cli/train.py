"""``fuseagent train WHAT --config FILE``: train a learned component.

Examples::

    fuseagent train ivtfuse --config configs/ivtfuse.json
    fuseagent train ivtfuse --config configs/ivtfuse.json --variant nofsa --steps 200
    fuseagent train list

Trainers are listed in :data:`TRAINERS` (name → module exposing ``add_arguments(parser)`` and
``run(args) -> int``); a new trainer adds one line there.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["register", "TRAINERS", "add_arguments", "run"]

#: trainer name → (module with ``add_arguments`` and ``run``, one-line help)
TRAINERS: dict[str, tuple[str, str]] = {
    "ivtfuse": (__name__, "IVTFuse text-guided IR-visible fusion network (RoadScene + TNO)"),
    "sft": ("fuseagent.train.sft", "planning policy, supervised on the data engine's searched trajectories"),
    "grpo": ("fuseagent.train.grpo", "planning policy, GRPO-F with intrinsic and relational quality rewards"),
    "fuscore": ("fuseagent.train.fuscore", "FuScore learned fusion-quality scorer (Waterloo MEF + graded orderings)"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a learned component (ivtfuse, ...)",
                              description="Train a learned component from a config file with a fixed seed.")
    trainers = p.add_subparsers(dest="trainer", metavar="WHAT", parser_class=type(p))
    listing = trainers.add_parser("list", help="list the trainers")
    listing.set_defaults(func=_list)
    for name, (module, help_text) in TRAINERS.items():
        sub = trainers.add_parser(name, help=help_text, description=help_text)
        owner = importlib.import_module(module)
        owner.add_arguments(sub)
        sub.set_defaults(func=owner.run)
    p.set_defaults(func=lambda args: _missing(p))


def _missing(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _list(args: argparse.Namespace) -> int:
    for name, (_, help_text) in TRAINERS.items():
        print(f"{name:12s} {help_text}")
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``fuseagent train ivtfuse``."""
    p.add_argument("--config", type=Path, default=None, help="JSON or YAML settings (see configs/ivtfuse.json)")
    p.add_argument("--variant", choices=["full", "notext", "nofsa", "nohpa"], default=None,
                   help="model variant (ablations: notext, nofsa, nohpa)")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (overrides the config)")
    p.add_argument("--time-budget", type=float, default=None, dest="time_budget_s",
                   help="stop after this many seconds of training (then checkpoint and export)")
    p.add_argument("--device", default=None, help="auto, cpu or cuda[:N] (default: the config's, auto)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--crop", type=int, default=None, help="random crop side in pixels (overrides the config)")
    p.add_argument("--batch", type=int, default=None, help="pairs per optimiser step (overrides the config)")
    p.add_argument("--warmup", type=int, default=None, help="linear warm-up steps (overrides the config)")
    p.add_argument("--data", dest="data_root", default=None, help="data folder holding ivif/ (default ../shared/data)")
    p.add_argument("--out", default=None, help="weight file to write (default: the shipped file of the variant)")
    p.add_argument("--run-dir", dest="run_dir", default=None, help="folder of checkpoints")
    p.add_argument("--no-resume", action="store_true", help="start afresh even when a checkpoint exists")
    p.add_argument("--json", action="store_true", help="print the training record as JSON at the end")


def run(args: argparse.Namespace) -> int:
    """Train IVTFuse with the settings of ``args``."""
    from ..train.ivtfuse import load_settings, train

    overrides: dict[str, Any] = {k: getattr(args, k) for k in
                                 ("variant", "steps", "time_budget_s", "device", "threads", "crop", "batch", "warmup",
                                  "data_root", "out", "run_dir")}
    settings = load_settings(args.config, **overrides)
    record = train(settings, resume=not args.no_resume, log=lambda line: print(line, file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        last = record["curve"][-1] if record["curve"] else {}
        print(f"trained {record['variant']}: {record['steps']} steps, {record['seconds']}s, "
              f"final loss {last.get('loss', float('nan'))}")
    return 0
