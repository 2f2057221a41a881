"""``fuseagent metrics``: score fused images, and ``fuseagent metrics list``: the metric cards.

Examples::

    fuseagent metrics --task ivif --a vis.png --b ir.png --fused fused.png
    fuseagent metrics --task mef --a under/ --b over/ --fused results/ --csv > scores.csv
    fuseagent metrics --task mff --a a.jpg --b b.jpg --fused f.jpg --metrics qabf,ssim --json
    fuseagent metrics list 'q*'

A metric that is not computable for an image (e.g. VIF needs 81×81 pixels) gets the cell
``n/a`` (``null`` in JSON, with the reason under ``not_computable``; the reason is also printed
on stderr) while the other metrics are still computed; the mean is over the images where it was.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["register", "run", "default_metrics", "match_files", "read_as_stored", "score_case", "TASK_DEFAULTS",
           "NOT_COMPUTABLE"]

#: default metric sets per fusion task (names missing from the registry are left out)
TASK_DEFAULTS: dict[str, tuple[str, ...]] = {
    # VIFB's 13 metrics, as VIFB computes them
    "ivif": ("ce", "en", "mi", "psnr_vifb", "ag", "ei", "qabf", "sd", "sf_vifb", "rmse_vifb", "ssim_vifb",
             "qcb", "qcv"),
    # MEFB's 20 metrics (MEFB colour handling)
    "mef": ("ce_mefb", "en_mefb", "fmi_mefb", "nmi_mefb", "qncie_mefb", "te_mefb", "ei_mefb", "ag_mefb",
            "qabf_mefb", "qp_mefb", "sd_mefb", "sf_mefb", "qc_mefb", "qw_mefb", "qy_mefb", "qcb_mefb",
            "qcv_mefb", "psnr_mefb", "vif_mefb", "mef_ssim"),
    # multi-focus: edge/structure transfer, information, sharpness (MFIFB's families)
    "mff": ("qabf", "nabf", "nmi_mefb", "qy_mefb", "qcb", "qcv", "ssim", "sf", "ag", "en"),
}


def default_metrics(task: str) -> list[str]:
    """The default metric names of a task that are registered.

    Example:
        >>> default_metrics("ivif")[:3]
        ['ce', 'en', 'mi']
    """
    from ..metrics import METRICS, load_builtin_metrics

    if task not in TASK_DEFAULTS:
        raise InputError(f"unknown task '{task}' (valid: {', '.join(TASK_DEFAULTS)})")
    load_builtin_metrics()
    return [name for name in TASK_DEFAULTS[task] if name in METRICS]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "metrics", help="score fused images with fusion metrics, or list the metrics",
        description="Score fused images against their sources (files, or folders matched by file stem). "
                    "'fuseagent metrics list [PATTERN]' lists the metric cards.")
    p.add_argument("action", nargs="?", choices=["list"], help="'list' prints the metric cards")
    p.add_argument("pattern", nargs="?", default="*", help="with 'list': shell-style name pattern")
    p.add_argument("--task", choices=sorted(TASK_DEFAULTS), default=None,
                   help="fusion task; chooses the default metric set")
    p.add_argument("--a", dest="a", type=Path, help="first source (visible / under-exposed / near focus): file or folder")
    p.add_argument("--b", dest="b", type=Path, help="second source (infrared / over-exposed / far focus): file or folder")
    p.add_argument("--fused", type=Path, help="fused image: file or folder")
    p.add_argument("--metrics", default=None, help="comma-separated metric names (default: the task's set)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON")
    fmt.add_argument("--csv", action="store_true", help="print CSV")
    p.set_defaults(func=run)


def read_as_stored(path: Path) -> np.ndarray:
    """Read an image keeping the file's channel count (as MATLAB's ``imread`` does): a colour
    file stays ``(H, W, 3)`` even when its channels are equal, a grey file is ``(H, W)``."""
    from ..io import read_image

    colour = True
    try:
        from PIL import Image

        with Image.open(path) as im:
            colour = im.mode not in ("1", "L", "LA", "P", "I", "I;16", "I;16B", "I;16L", "F")
    except Exception:  # not a Pillow format (e.g. some TIFFs): fall back to the reader's guess
        return read_image(path)
    return read_image(path, mode="rgb" if colour else "gray")


def match_files(a: Path, b: Path, fused: Path) -> list[tuple[str, Path, Path, Path]]:
    """Pair sources and fused images: three files, or three folders matched by file stem.

    Returns:
        ``(name, a, b, fused)`` tuples, sorted by name.

    Raises:
        InputError: a path is missing, files mixed with folders, or no stem matches.
    """
    from ..io import IMAGE_SUFFIXES

    for label, path in (("--a", a), ("--b", b), ("--fused", fused)):
        if path is None:
            raise InputError(f"{label} is required (file or folder)")
        if not path.exists():
            raise InputError(f"{label} '{path}' does not exist")
    kinds = {p.is_dir() for p in (a, b, fused)}
    if len(kinds) != 1:
        raise InputError("--a, --b and --fused must be all files or all folders")
    if not fused.is_dir():
        return [(fused.stem, a, b, fused)]

    def by_stem(folder: Path) -> dict[str, Path]:
        return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()}

    sa, sb, sf = by_stem(a), by_stem(b), by_stem(fused)
    names = sorted(set(sf) & set(sa) & set(sb))
    if not names:
        raise InputError(f"no image stem is present in all of '{a}', '{b}' and '{fused}'")
    missing = sorted(set(sf) - set(names))
    if missing:
        print(f"fuseagent: {len(missing)} fused image(s) without both sources skipped "
              f"(e.g. {missing[0]})", file=sys.stderr)
    return [(n, sa[n], sb[n], sf[n]) for n in names]


def _list(args: argparse.Namespace) -> int:
    from ..metrics import list_metrics, metric_card
    from .tools import format_table

    names = list_metrics(args.pattern)
    if args.json:
        print(json.dumps([metric_card(n).to_dict() for n in names], indent=2))
        return 0
    rows = []
    for name in names:
        card = metric_card(name)
        low, high = ("-inf" if math.isinf(card.range[0]) else f"{card.range[0]:g}",
                     "inf" if math.isinf(card.range[1]) else f"{card.range[1]:g}")
        rows.append([name, card.mode, card.variant, "lower" if card.lower_better else "higher",
                     f"[{low}, {high}]", card.description])
    print(format_table(rows, ["metric", "mode", "variant", "better", "range", "description"]))
    return 0


def _format_value(value: float | None) -> str:
    if value is None:
        return NOT_COMPUTABLE
    return "nan" if math.isnan(value) else f"{value:.6g}"


#: cell of a metric that is not computable for an image (e.g. an image smaller than its window)
NOT_COMPUTABLE = "n/a"

Row = tuple[str, dict[str, float], dict[str, str]]


def score_case(name: str, sources: list[np.ndarray], fused: np.ndarray, metrics: list[str]) -> Row:
    """Score one image: ``(name, values, reasons)``; a metric not computable for it is left out
    of ``values`` and explained in ``reasons``.

    Raises:
        InputError: the case itself is invalid, or no asked metric is computable for it (so a
            single metric on a too-small image is an error, not an empty row).
    """
    from ..metrics.fusion import fusion_scores_or_reasons

    try:
        values, reasons = fusion_scores_or_reasons(sources, fused, metrics)
    except InputError as exc:
        raise InputError(f"{name}: {exc}") from None
    if not values:
        raise InputError(f"{name}: {next(iter(reasons.values()))}")
    return name, values, reasons


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        return _list(args)
    from ..metrics import create_metric

    if args.task is None and not args.metrics:
        raise InputError("give --task (ivif, mef or mff) or --metrics")
    names = ([n.strip() for n in args.metrics.split(",") if n.strip()] if args.metrics
             else default_metrics(args.task))
    for name in names:
        if create_metric(name).card.mode != "fusion":
            raise InputError(f"metric '{name}' is not a fusion metric; see 'fuseagent metrics list'")
    pairs = match_files(args.a, args.b, args.fused)
    iterator = pairs
    if len(pairs) > 1:
        from tqdm import tqdm

        iterator = tqdm(pairs, desc="metrics", unit="image", file=sys.stderr)
    rows: list[Row] = []
    for name, a, b, fused in iterator:
        rows.append(score_case(name, [read_as_stored(a), read_as_stored(b)], read_as_stored(fused), names))
    for name, _, reasons in rows:
        for metric, reason in reasons.items():
            print(f"fuseagent: {name}: {metric} not computable: {reason}", file=sys.stderr)
    mean: dict[str, float | None] = {}
    for m in names:
        computed = [values[m] for _, values, _ in rows if m in values]
        mean[m] = float(np.mean(computed)) if computed else None
    _print(rows, mean, names, args)
    return 0


def _print(rows: list[Row], mean: dict[str, float | None], names: list[str], args: argparse.Namespace) -> None:
    if args.json:
        def clean(values: dict[str, float | None]) -> dict[str, float | None]:
            return {m: (None if values.get(m) is None or not math.isfinite(values[m]) else values[m])  # type: ignore[arg-type]
                    for m in names}

        images = []
        for n, values, reasons in rows:
            entry: dict[str, object] = {"image": n, **clean(values)}
            if reasons:
                entry["not_computable"] = reasons
            images.append(entry)
        payload = {"metrics": names, "images": images, "mean": clean(mean)}
        print(json.dumps(payload, indent=2))
        return
    if args.csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["image", *names])
        for n, values, _ in rows:
            writer.writerow([n, *(_format_value(values.get(m)) for m in names)])
        writer.writerow(["mean", *(_format_value(mean[m]) for m in names)])
        print(buffer.getvalue(), end="")
        return
    from .tools import format_table

    table = [[n, *(_format_value(values.get(m)) for m in names)] for n, values, _ in rows]
    if len(rows) > 1:
        table.append(["mean", *(_format_value(mean[m]) for m in names)])
    print(format_table(table, ["image", *names]))
