"""``fuseagent bench fuscore``: FuScore against the project's metrics.

* **Waterloo MEF** — leave-scenes-out cross-validation (:func:`fuseagent.train.fuscore.cross_validate`):
  SRCC / PLCC with MOS on the held-out scenes, next to every baseline metric evaluated on the same
  folds (baselines are not trained, so a fold only selects which images they are scored on).
  Two protocols: the mean over scenes of the within-scene correlation (Ma et al. 2015's protocol:
  ranking fusion methods on one stack) and the correlation pooled over all 136 held-out predictions
  (ranking across scenes). Lower-is-better metrics are negated before correlating. PLCC is the
  plain Pearson correlation (no logistic fitting).
* **IVIF / MFF** — ordering accuracy on synthetic orderings built from test-set sources never used
  in training (VIFB for IVIF, Lytro for MFF, fused by published methods, then degraded): the
  share of known pairs ("clean better than degraded", "lower severity better") ranked correctly.
* **Timing** — seconds to score a 640×480 fused image with two sources, FuScore vs MEF-SSIM.
"""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..io import read_image

__all__ = ["WATERLOO_BASELINES", "waterloo_baselines", "correlations", "CorrelationRow", "ordering_accuracy",
           "time_scoring", "cached_cross_validate", "ivif_test_stacks", "mff_test_stacks", "run_benchmark", "add_parser", "run"]

#: metrics compared with FuScore on Waterloo (MEF-SSIMd, Qcb, VIF and the 2-source-only Qp, Qc,
#: Qw, Qy are left out: the first three take minutes on 30-frame stacks, the others need 2 sources)
WATERLOO_BASELINES: tuple[str, ...] = (
    "mef_ssim", "brisque", "niqe", "piqe", "iqr", "hqa",
    "en_mefb", "sd_mefb", "sf_mefb", "ag_mefb", "ei_mefb", "ce_mefb", "nmi_mefb", "qncie_mefb", "te_mefb",
    "psnr_mefb", "qabf_mefb", "fmi_mefb", "ms_ssim_fusion",
)

_PARAMS = {"hqa": {"task": "mef"}}


def waterloo_baselines(items: Sequence, metrics: Sequence[str] = WATERLOO_BASELINES,
                       cache_dir: str | os.PathLike | None = None,
                       progress: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray]:
    """Every baseline metric on every Waterloo image (cached in ``cache_dir/waterloo_baselines.csv``).

    Args:
        items: :class:`~fuseagent.learned.fuscore.data.WaterlooItem` list.
        metrics: registered metric names (fusion metrics get the stack, NR metrics the fused image).
        cache_dir: folder of the resumable cache (None: no cache).
        progress: ``progress(done, total)`` callback.

    Returns:
        metric → array of values in ``items`` order (NaN where a metric failed).
    """
    from ..metrics import create_metric

    cache: dict[tuple[str, str], float] = {}
    path = None
    if cache_dir is not None:
        path = Path(cache_dir).expanduser() / "waterloo_baselines.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file():
            with path.open(newline="") as handle:
                for row in csv.DictReader(handle):
                    cache[(row["image"], row["metric"])] = float(row["value"])
    created = {name: create_metric(name, **_PARAMS.get(name, {})) for name in metrics}
    out = {name: np.full(len(items), np.nan) for name in metrics}
    sources_key, sources = None, []
    for index, item in enumerate(items):
        image = item.fused.name
        missing = [n for n in metrics if (image, n) not in cache]
        if missing:
            if item.sources != sources_key:
                sources_key, sources = item.sources, [read_image(p, "rgb") for p in item.sources]
            fused = read_image(item.fused, "rgb")
            new_rows = []
            for name in missing:
                metric = created[name]
                try:
                    value = metric(sources, fused) if metric.card.mode == "fusion" else metric(fused)
                except InputError:
                    value = math.nan
                cache[(image, name)] = value
                new_rows.append((image, name, value))
            if path is not None:
                fresh = not path.is_file()
                with path.open("a", newline="") as handle:
                    writer = csv.writer(handle)
                    if fresh:
                        writer.writerow(["image", "metric", "value"])
                    writer.writerows(new_rows)
        for name in metrics:
            out[name][index] = cache[(image, name)]
        if progress is not None:
            progress(index + 1, len(items))
    return out


# ------------------------------------------------------------------------------ IVIF / MFF
#: published methods whose fused results are the clean bases of the held-out orderings
IVIF_TEST_METHODS: tuple[str, ...] = ("SeAFusion", "U2Fusion", "SwinFusion", "IFCNN", "DLF", "GTF", "MGFF")
MFF_TEST_METHODS: tuple[str, ...] = ("SESF", "IFCNN", "GFDF", "MWGF", "DSIFT", "CNN")


def _read_side(path: Path, side: int, mode: str = "auto") -> np.ndarray:
    from ..io import resize_to

    image = read_image(path, mode)
    scale = side / max(image.shape[:2])
    if scale < 1:
        image = resize_to(image, (round(image.shape[0] * scale), round(image.shape[1] * scale)), "area")
    return image


def _by_stem(folder: Path) -> dict[str, Path]:
    from ..io import IMAGE_SUFFIXES

    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}


def ivif_test_stacks(data_root: Path, side: int) -> list[tuple[str, list[np.ndarray], np.ndarray]]:
    """VIFB pairs (visible, infrared) with one published method's fused result each (methods
    taken in turn from :data:`IVIF_TEST_METHODS`). Test data only: never trained on."""
    root = data_root / "ivif" / "vifb"
    vis, ir = _by_stem(root / "vis"), _by_stem(root / "ir")
    stacks = []
    for k, name in enumerate(sorted(set(vis) & set(ir))):
        method = IVIF_TEST_METHODS[k % len(IVIF_TEST_METHODS)]
        fused_folder = _by_stem(root / "fused" / method)
        if name not in fused_folder:
            continue
        v = _read_side(vis[name], side, "rgb")
        i = _read_side(ir[name], side, "gray")
        f = _read_side(fused_folder[name], side)
        if f.shape[:2] != v.shape[:2] or i.shape[:2] != v.shape[:2]:
            continue
        stacks.append((f"{name}/{method}", [v, i], f))
    return stacks


def mff_test_stacks(data_root: Path, side: int) -> list[tuple[str, list[np.ndarray], np.ndarray]]:
    """Lytro pairs with one published method's fused result each (:data:`MFF_TEST_METHODS` in turn)."""
    root = data_root / "mff"
    stacks = []
    for k, scene in enumerate(sorted(p.name for p in (root / "lytro").iterdir() if p.is_dir())):
        method = MFF_TEST_METHODS[k % len(MFF_TEST_METHODS)]
        fused = _by_stem(root / "lytro_fused" / method)
        pair = _by_stem(root / "lytro" / scene)
        if scene not in fused or "A" not in pair or "B" not in pair:
            continue
        a, b, f = (_read_side(p, side, "rgb") for p in (pair["A"], pair["B"], fused[scene]))
        if not (a.shape == b.shape == f.shape):
            continue
        stacks.append((f"{scene}/{method}", [a, b], f))
    return stacks


def ordering_accuracy(scores: np.ndarray, pairs: np.ndarray) -> float:
    """Share of ``(better, worse)`` pairs with ``scores[better] > scores[worse]`` (ties count ½).

    Example:
        >>> ordering_accuracy(np.array([3.0, 2.0, 2.0]), np.array([[0, 1], [1, 2]]))
        0.75
    """
    if len(pairs) == 0:
        raise InputError("ordering accuracy needs at least one pair")
    better, worse = scores[pairs[:, 0]], scores[pairs[:, 1]]
    return float(np.mean((better > worse) + 0.5 * (better == worse)))


# ---------------------------------------------------------------------------- correlations
@dataclass(frozen=True)
class CorrelationRow:
    """Agreement of one score with MOS on held-out scenes.

    Attributes:
        name: metric (or FuScore variant) name.
        srcc_scene, plcc_scene: mean over scenes of the within-scene SRCC / PLCC.
        srcc_pooled, plcc_pooled: SRCC / PLCC over all images at once.
        lower_better: the metric was negated before correlating.
    """

    name: str
    srcc_scene: float
    plcc_scene: float
    srcc_pooled: float
    plcc_pooled: float
    lower_better: bool = False


def correlations(name: str, values: np.ndarray, mos: np.ndarray, scenes: Sequence[str],
                 lower_better: bool = False) -> CorrelationRow:
    """SRCC / PLCC of ``values`` with ``mos``, per scene (averaged) and pooled; NaN values are left out.

    Example:
        >>> r = correlations("x", np.array([1., 2, 3, 1, 2, 3]), np.array([2., 4, 5, 1, 2, 9]), list("aaabbb"))
        >>> round(r.srcc_scene, 3), round(r.srcc_pooled, 3)
        (1.0, 0.91)
    """
    from scipy import stats

    scenes = np.asarray(scenes)
    values = -np.asarray(values, np.float64) if lower_better else np.asarray(values, np.float64)
    ok = np.isfinite(values)
    srcc, plcc = [], []
    for scene in dict.fromkeys(scenes):
        sel = ok & (scenes == scene)
        if sel.sum() >= 3 and np.ptp(values[sel]) > 0:
            srcc.append(stats.spearmanr(values[sel], mos[sel])[0])
            plcc.append(stats.pearsonr(values[sel], mos[sel])[0])
    pooled = ok.sum() >= 3 and np.ptp(values[ok]) > 0
    return CorrelationRow(
        name, float(np.mean(srcc)) if srcc else math.nan, float(np.mean(plcc)) if plcc else math.nan,
        float(stats.spearmanr(values[ok], mos[ok])[0]) if pooled else math.nan,
        float(stats.pearsonr(values[ok], mos[ok])[0]) if pooled else math.nan, lower_better)


def cached_cross_validate(features: np.ndarray, mos: np.ndarray, scenes: Sequence[str], config: Any,
                          loss: Any) -> np.ndarray:
    """:func:`fuseagent.train.fuscore.cross_validate`, stored in ``config.cache_dir`` under a hash of
    the features, the targets and every setting (a changed config retrains)."""
    import hashlib
    import json
    from dataclasses import asdict

    from ..train.fuscore import cross_validate

    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(np.ascontiguousarray(features, np.float32).tobytes())
    digest.update(np.ascontiguousarray(mos, np.float64).tobytes())
    digest.update(json.dumps([list(scenes), asdict(config), asdict(loss)], default=list, sort_keys=True).encode())
    path = Path(config.cache_dir).expanduser() / f"waterloo_cv_{digest.hexdigest()[:16]}.npy"
    if path.is_file():
        return np.load(path)
    predictions = cross_validate(features, mos, scenes, config, loss)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, predictions)
    return predictions


# ---------------------------------------------------------------------------------- timing
def time_scoring(repeats: int = 5, size: tuple[int, int] = (480, 640), seed: int = 0) -> dict[str, float]:
    """Median seconds to score one fused image of ``size`` (two colour sources): FuScore (model
    loaded, features included) and MEF-SSIM.

    Returns:
        ``{"fuscore": s, "mef_ssim": s}``.
    """
    import cv2

    from ..metrics.fuscore import load_fuscore
    from ..metrics.mefssim import mef_ssim

    rng = np.random.default_rng(seed)
    scene = cv2.GaussianBlur(rng.random((*size, 3)).astype(np.float32), (0, 0), 3.0)
    scene = (scene - scene.min()) / (scene.max() - scene.min())
    under, over = scene * 0.4, np.clip(scene * 1.8, 0, 1).astype(np.float32)
    model = load_fuscore("mef")
    model.assess([under, over], scene)
    timings: dict[str, list[float]] = {"fuscore": [], "mef_ssim": []}
    for _ in range(repeats):
        start = time.perf_counter()
        model.assess([under, over], scene)
        timings["fuscore"].append(time.perf_counter() - start)
        start = time.perf_counter()
        mef_ssim([under, over], scene)
        timings["mef_ssim"].append(time.perf_counter() - start)
    return {k: float(np.median(v)) for k, v in timings.items()}


# ------------------------------------------------------------------------------------- run
def _fmt(value: float) -> str:
    return "–" if not np.isfinite(value) else f"{value:.3f}"


def _table(rows: Sequence[CorrelationRow]) -> str:
    lines = ["| score | SRCC (per scene) | PLCC (per scene) | SRCC (pooled) | PLCC (pooled) |",
             "|---|---|---|---|---|"]
    for r in rows:
        name = f"{r.name} (−)" if r.lower_better else r.name
        lines.append(f"| {name} | {_fmt(r.srcc_scene)} | {_fmt(r.plcc_scene)} | {_fmt(r.srcc_pooled)} | "
                     f"{_fmt(r.plcc_pooled)} |")
    return "\n".join(lines)


def run_benchmark(config_path: str | None = None, data_root: str | None = None, parts: Sequence[str] = ("waterloo", "orderings", "timing"),
                  baselines: Sequence[str] = WATERLOO_BASELINES, log: Callable[[str], None] = print) -> tuple[str, dict]:
    """Run the FuScore benchmark.

    Args:
        config_path: FuScore training config (default: built-in settings).
        data_root: data root (default ``../shared/data``).
        parts: any of ``waterloo`` (cross-validation, ablation, baselines), ``orderings`` (IVIF/MFF
            held-out ordering accuracy of the shipped weights), ``timing``.
        baselines: metrics compared on Waterloo.
        log: progress messages.

    Returns:
        ``(markdown, results)``.
    """
    from dataclasses import replace as dc_replace

    from ..learned.fuscore.data import cached_synthetic, known_pairs, load_waterloo, synthetic_orderings, waterloo_features
    from ..metrics import metric_card
    from ..train.fuscore import ABLATIONS, _data_root, load_config

    config = load_config(config_path)
    unknown = [p for p in parts if p not in ("waterloo", "orderings", "timing")]
    if unknown:
        raise InputError(f"bench fuscore: unknown part(s) {', '.join(unknown)}")
    sections: list[str] = []
    results: dict[str, Any] = {}
    root = _data_root(data_root) if ("waterloo" in parts or "orderings" in parts) else None
    if "waterloo" in parts:
        items = load_waterloo(root)
        mos = np.array([i.mos for i in items])
        scenes = [i.scene for i in items]
        log(f"waterloo: features of {len(items)} images")
        features = waterloo_features(items, config.side, config.cache_dir)
        rows, ablation = [], []
        for name, weights in ABLATIONS.items():
            log(f"waterloo: leave-one-scene-out cross-validation, loss '{name}'")
            predictions = cached_cross_validate(features, mos, scenes, config, dc_replace(config.loss, **weights))
            row = correlations(f"FuScore ({name})" if name != "full" else "FuScore", predictions, mos, scenes)
            ablation.append(row)
            if name == "full":
                rows.append(row)
        log(f"waterloo: {len(baselines)} baseline metrics (cached in {config.cache_dir})")
        values = waterloo_baselines(items, baselines, config.cache_dir)
        for name in baselines:
            rows.append(correlations(name, values[name], mos, scenes, metric_card(name).lower_better))
        results["waterloo"] = [r.__dict__ for r in rows]
        results["ablation"] = [r.__dict__ for r in ablation]
        sections.append("### Waterloo MEF: leave-one-scene-out cross-validation\n\n" + _table(rows))
        sections.append("### Loss ablation (same folds)\n\n" + _table(ablation))
    if "orderings" in parts:
        from ..metrics.fuscore import load_fuscore

        lines = ["| task | held-out source set | images | known pairs | ordering accuracy |", "|---|---|---|---|---|"]
        per_op = ["| task | operation | pairs | accuracy |", "|---|---|---|---|"]
        results["orderings"] = {}
        for task, build, label in (("ivif", ivif_test_stacks, "VIFB"), ("mff", mff_test_stacks, "Lytro")):
            stacks = build(root, config.side)[:config.synthetic_test_images]
            seed = config.seed + 1000
            tag = f"{task}_test_{len(stacks)}_{config.side}_{'-'.join(map(str, config.synthetic_levels))}_{seed}"
            log(f"orderings: {task} test set ({len(stacks)} base images)")
            data = cached_synthetic(tag, lambda: synthetic_orderings(task, stacks, config.synthetic_levels, seed,
                                                                     config.side), config.cache_dir)
            model = load_fuscore(task)
            scores = np.array([r.score for r in model.assess_features(data.features)])
            pairs = known_pairs(data)
            accuracy = ordering_accuracy(scores, pairs)
            label = f"{label}: {len(stacks)} pairs, each fused by one published method"
            lines.append(f"| {task} | {label} | {len(data)} | {len(pairs)} | {accuracy:.3f} |")
            results["orderings"][task] = {"accuracy": accuracy, "pairs": int(len(pairs)), "per_operation": {}}
            for op in dict.fromkeys(data.operation[data.operation != "clean"]):
                sel = np.array([data.operation[b] == op for _, b in pairs])
                value = ordering_accuracy(scores, pairs[sel])
                per_op.append(f"| {task} | {op} | {int(sel.sum())} | {value:.3f} |")
                results["orderings"][task]["per_operation"][op] = value
        sections.append("### IVIF / MFF: ordering accuracy on held-out synthetic orderings\n\n" + "\n".join(lines))
        sections.append("Per operation (pairs whose worse image carries that operation):\n\n" + "\n".join(per_op))
    if "timing" in parts:
        log("timing: 640x480, two sources")
        timing = time_scoring()
        results["timing"] = timing
        sections.append("### Time to score one 640×480 fused image (two sources, median of 5)\n\n"
                        "| score | seconds |\n|---|---|\n"
                        f"| FuScore (features + model) | {timing['fuscore']:.3f} |\n| MEF-SSIM | {timing['mef_ssim']:.3f} |")
    return "\n\n".join(sections) + "\n", results


def add_parser(subparsers: Any) -> None:
    """Add ``fuscore`` to the ``bench`` subcommands."""
    p = subparsers.add_parser("fuscore", help="FuScore vs the project's metrics (Waterloo CV, orderings, timing)",
                              description="Leave-one-scene-out SRCC/PLCC on the Waterloo MEF database against every "
                                          "baseline metric, the loss ablation, IVIF/MFF ordering accuracy on held-out "
                                          "synthetic orderings, and the scoring time of a 640x480 image.")
    p.add_argument("--config", help="FuScore config (default: built-in settings, as configs/fuscore.json)")
    p.add_argument("--data", help="data root (default: ../shared/data)")
    p.add_argument("--parts", default="waterloo,orderings,timing", help="comma-separated parts (default: %(default)s)")
    p.add_argument("--out", help="folder for fuscore_bench.md and fuscore_bench.json")
    p.set_defaults(func=run)


def run(args: Any) -> int:
    import json
    import sys

    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    markdown, results = run_benchmark(args.config, args.data, parts, log=lambda m: print(m, file=sys.stderr))
    print(markdown)
    if args.out:
        folder = Path(args.out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "fuscore_bench.md").write_text(markdown)
        (folder / "fuscore_bench.json").write_text(json.dumps(results, indent=2))
        print(f"wrote {folder / 'fuscore_bench.md'}, {folder / 'fuscore_bench.json'}", file=sys.stderr)
    return 0
