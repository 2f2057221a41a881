"""``fuseagent fuse A B [C…] --task T -o OUT [--plan TEXT] [--trace FILE]``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import InputError
from ..io import IMAGE_SUFFIXES, atomic_write, write_image

__all__ = ["register", "run", "write_json"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("fuse", help="fuse two or more images of one scene",
                              description="Fuse IR+visible, multi-exposure or multi-focus images. With no --plan "
                                          "the pre-defined restore -> register -> fuse pipeline runs.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="source images (IVIF: infrared then visible)")
    p.add_argument("--task", required=True, choices=["ivif", "mef", "mff"], help="fusion task")
    p.add_argument("-o", "--output", required=True, help="fused image to write (.png, .tif, .jpg, .bmp)")
    p.add_argument("--plan", help="trajectory text, e.g. '[task:registration][model:sift] -> [task:fusion][model:gff]'")
    p.add_argument("--trace", help="write the JSON trace of the run here")
    p.add_argument("--bits", type=int, choices=[8, 16], default=8, help="output bit depth (16: PNG/TIFF)")
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
    result = run_plan(args.images, args.task, args.plan)
    trace = result.trace()
    trace["inputs_files"] = [str(p) for p in args.images]
    write_image(out, result.fused, bits=args.bits)
    if args.trace:
        write_json(args.trace, trace)
    steps = ", ".join(f"{s.tool} {s.seconds:.2f}s" for s in result.steps)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {out} ({result.fused.shape[1]}x{result.fused.shape[0]}) in {result.seconds:.2f}s: {steps}")
    return 0
