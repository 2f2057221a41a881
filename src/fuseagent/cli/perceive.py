"""``fuseagent perceive A B --task ivif [--json]``: report the degradations of a fusion pair.

For IVIF, ``A`` is the infrared image and ``B`` the visible one; for MEF/MFF, the two exposures
or focus settings. Prints the caption and a table of detected degradations, or the whole
report as JSON with ``--json``.
"""

from __future__ import annotations

import argparse

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("perceive", help="estimate the degradations of an image pair",
                              description=__doc__.splitlines()[0])
    p.add_argument("a", help="first image (IVIF: infrared)")
    p.add_argument("b", help="second image (IVIF: visible)")
    p.add_argument("--task", choices=("ivif", "mef", "mff"), default="ivif", help="fusion task (default ivif)")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..perceive import perceive

    report = perceive(args.a, args.b, args.task)
    if args.json:
        print(report.to_json())
        return 0
    print(report.caption)
    for im in report.images:
        found = im.present()
        listed = ", ".join(f"{k} {v.level_name} ({v.estimate:.3g} {v.unit})" for k, v in found.items()) or "none"
        print(f"  {im.role}: {listed}")
    mis = report.misalignment
    print(f"  misalignment: {mis['displacement_px']:.2f} px ({mis['model']})"
          f"{'' if mis['detected'] else ', below detection threshold'}")
    print(f"  moving objects: {'yes, ' + format(report.moving_objects['area_fraction'] * 100, '.1f') + '% of the frame' if report.moving_objects['detected'] else 'no'}")
    print(f"  ({report.seconds:.2f} s)")
    return 0
