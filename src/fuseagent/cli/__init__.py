"""The ``fuseagent`` command: one console script with subcommands.

Each subcommand lives in its own module with ``register(subparsers)``, which adds a parser and sets
``func=run`` where ``run(args) -> int``. User errors (:class:`~fuseagent.errors.FuseAgentError`) are
printed as one line on stderr with exit code 2; nothing is written in that case.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ..errors import FuseAgentError

__all__ = ["main", "build_parser", "COMMANDS"]

#: subcommand modules and their one-line help, in the order ``fuseagent --help`` lists them; only the
#: module of the command being run is imported (some pull in torch)
COMMANDS: dict[str, str] = {
    "fuse": "fuse two or more images of one scene",
    "tools": "list and describe the expert tools",
    "metrics": "score fused images with fusion metrics, or list the metrics",
    "perceive": "estimate the degradations of an image pair",
    "synth": "synthesise a degraded benchmark suite with ground truth",
    "explore": "learn which task orders and models succeed on a training suite",
    "bench": "benchmarks: decision, fusion, fuscore",
    "dataset": "build, export and inspect the planner's training data",
    "train": "train a learned component (ivtfuse, fuscore, sft, grpo)",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other user error
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; with ``command`` only that subcommand's module is imported and the
    others are listed by name and help line."""
    from .. import __version__

    parser = _Parser(prog="fuseagent", description="Perceive, plan, execute and assess image fusion in the wild.")
    parser.add_argument("--version", action="version", version=f"fuseagent {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, help_text in COMMANDS.items():
        if command is None or name == command:
            importlib.import_module(f"{__name__}.{name}").register(subparsers)
        else:
            subparsers.add_parser(name, help=help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else "")
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except FuseAgentError as exc:
        print(f"fuseagent: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("fuseagent: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("fuseagent: error: out of memory (try smaller images)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
