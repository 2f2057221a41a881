"""``fuseagent tools list [PATTERN]`` and ``fuseagent tools show NAME``."""

from __future__ import annotations

import argparse
import json

from ..tools import TOOLS, list_tools, tool_card

__all__ = ["register", "run", "format_table"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("tools", help="list and describe the expert tools")
    sub = p.add_subparsers(dest="tools_command", metavar="{list,show}")
    lp = sub.add_parser("list", help="table of tools")
    lp.add_argument("pattern", nargs="?", default="*", help="shell-style name pattern, e.g. 'dehaze*'")
    lp.add_argument("--json", action="store_true", help="print the cards as JSON")
    lp.add_argument("--available", action="store_true", help="only tools whose dependencies are installed")
    sp = sub.add_parser("show", help="one tool's card")
    sp.add_argument("name")
    p.set_defaults(func=run)


def format_table(rows: list[list[str]], header: list[str]) -> str:
    """Plain-text table with aligned columns."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def run(args: argparse.Namespace) -> int:
    if args.tools_command == "show":
        card = tool_card(args.name)
        data = card.to_dict()
        data["available"] = TOOLS.get(args.name).factory.available()
        print(json.dumps(data, indent=2, default=str))
        return 0
    pattern = getattr(args, "pattern", "*")
    names = list_tools(pattern, available_only=getattr(args, "available", False))
    if getattr(args, "json", False):
        print(json.dumps([dict(tool_card(n).to_dict(), available=TOOLS.get(n).factory.available()) for n in names],
                         indent=2, default=str))
        return 0
    rows = []
    for name in names:
        card = tool_card(name)
        ok = TOOLS.get(name).factory.available()
        rows.append([name, card.inputs, ",".join(card.fusion_tasks), card.cost,
                     "yes" if ok else f"no ({', '.join(card.requires)})", card.description])
    print(format_table(rows, ["tool", "inputs", "tasks", "cost", "available", "description"]))
    if TOOLS.plugin_errors:
        for name, err in TOOLS.plugin_errors.items():
            print(f"plugin {name} failed to load: {err}")
    return 0
