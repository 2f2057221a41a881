"""Training data of FuScore: human opinions (Waterloo MEF) and graded synthetic orderings.

**Human data — MEF only.** The Waterloo MEF subjective database (K. Ma, K. Zeng & Z. Wang,
"Perceptual quality assessment for multi-exposure image fusion", IEEE TIP 2015): 17 scenes × 8
fusion methods, mean opinion scores 1–10 from 23 raters, and the exposure stacks. A MOS ``m`` is
mapped onto the five levels as ``t = 1 + 4 (m − 1) / 9``. No per-rater data exist, so the four
MEF sub-dimension targets are *proxies computed from the image*, not human judgements (each
rank-normalised over the training images to ``1 + 4·u``, ``u`` the empirical quantile):
structure/detail = fine-scale MEF-SSIM, exposure = well-exposedness × (1 − clipped share),
colour naturalness = ``exp(−|log chroma ratio to the sources|)``, halos/ghosts = coarse-scale
MEF-SSIM.

**Synthetic orderings — IVIF and MFF.** No human scores of infrared–visible or multi-focus fusion
are available here. Orderings come from controlled, graded degradations of fused results: one
operation at severity 1, 3 or 5 is applied to a fused image, and the only relations used as truth
are *"the clean fused image is better than any of its degraded versions"* and *"for one
operation on one image, a higher severity is worse"*. Operations (``DEGRADATIONS``) are those of
:mod:`fuseagent.degrade` plus three fusion-specific ones defined here (``fusion.drop_infrared``,
``fusion.drop_visible``: blend a fraction ``0.15·L`` of the fused image back towards one source;
``fusion.wrong_focus``: inside a random blob of ``6·L`` % of the frame, take the blurrier source;
``fusion.patch_exposure``: re-expose a blob by ``0.35·L`` EV). Each operation lowers one
sub-dimension: ``d = 4.6 − 0.8·L`` (others stay 4.6), and the overall synthetic target is
``t = (mean(d) + min(d)) / 2`` — a convention that fixes the scale, not a human judgement.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ...degrade import degrade
from ...degrade.dynamic import random_blob
from ...degrade.photometric import change_exposure
from ...errors import InputError
from ...io import read_image, to_gray
from .features import DEFAULT_SIDE, FEATURE_NAMES, fuscore_features, shrink_stack

__all__ = ["SUBDIMENSIONS", "TASKS", "WaterlooItem", "load_waterloo", "waterloo_features", "mef_proxy_subscores",
           "mos_to_level", "DEGRADATIONS", "SyntheticSet", "synthetic_orderings", "known_pairs", "cached_synthetic",
           "FEATURE_VERSION", "waterloo_root"]

TASKS = ("ivif", "mef", "mff")

#: four sub-dimensions per task
SUBDIMENSIONS: dict[str, tuple[str, str, str, str]] = {
    "ivif": ("thermal_target", "texture", "artifacts", "sharpness"),
    "mef": ("structure_detail", "exposure", "colour", "halos_ghosts"),
    "mff": ("focus", "detail", "artifacts", "consistency"),
}

#: bump when the features change (invalidates caches)
FEATURE_VERSION = 1

_SUB_BASE = 4.6
_SUB_STEP = 0.8


def mos_to_level(mos: float | np.ndarray) -> np.ndarray:
    """Waterloo MOS (1–10) → the 1–5 level scale.

    Example:
        >>> mos_to_level(np.array([1.0, 5.5, 10.0])).tolist()
        [1.0, 3.0, 5.0]
    """
    return 1.0 + 4.0 * (np.asarray(mos, dtype=np.float64) - 1.0) / 9.0


# ------------------------------------------------------------------------------------ Waterloo
@dataclass(frozen=True)
class WaterlooItem:
    """One rated fused image of the Waterloo MEF database."""

    scene: str
    method: str
    mos: float
    fused: Path
    sources: tuple[Path, ...]


def waterloo_root(data_root: str | os.PathLike | None = None) -> Path:
    """``<data_root>/quality/waterloo_mef`` (default data root: ``../shared/data`` of the checkout)."""
    if data_root is None:
        from ...metrics.calibration import default_data_root

        data_root = default_data_root()
    return Path(data_root) / "quality" / "waterloo_mef"


def load_waterloo(data_root: str | os.PathLike | None = None) -> list[WaterlooItem]:
    """The 136 rated images with their exposure stacks, in ``mos.csv`` order.

    Raises:
        InputError: the database folder or its ``mos.csv`` is missing.
    """
    root = waterloo_root(data_root)
    table = root / "mos.csv"
    if not table.is_file():
        raise InputError(f"Waterloo MEF database not found: {table} does not exist")
    items = []
    with table.open(newline="") as handle:
        for row in csv.DictReader(handle):
            folder = root / row["sources"]
            sources = tuple(sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".tif")))
            items.append(WaterlooItem(row["scene"], row["method"], float(row["mos"]), root / row["fused"], sources))
    return items


def _cache_file(cache_dir: str | os.PathLike | None, tag: str) -> Path | None:
    if cache_dir is None:
        return None
    folder = Path(cache_dir).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{tag}.npz"


def waterloo_features(items: Sequence[WaterlooItem], side: int = DEFAULT_SIDE,
                      cache_dir: str | os.PathLike | None = None,
                      progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Feature matrix ``(len(items), len(FEATURE_NAMES))`` of Waterloo images (cached by name).

    Sources are read once per scene.
    """
    key = hashlib.sha1(json.dumps([str(i.fused.name) for i in items] + [side, FEATURE_VERSION]).encode(),
                       usedforsecurity=False).hexdigest()[:12]
    cache = _cache_file(cache_dir, f"waterloo_{key}")
    if cache is not None and cache.is_file():
        with np.load(cache) as stored:
            return stored["features"]
    rows = []
    loaded: dict[tuple[Path, ...], list[np.ndarray]] = {}
    for index, item in enumerate(items):
        if item.sources not in loaded:
            loaded.clear()
            loaded[item.sources] = [read_image(p, "rgb") for p in item.sources]
        rows.append(fuscore_features(loaded[item.sources], read_image(item.fused, "rgb"), side))
        if progress is not None:
            progress(index + 1, len(items))
    features = np.stack(rows).astype(np.float32)
    if cache is not None:
        np.savez(cache, features=features)
    return features


def _rank_normalise(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``1 + 4·u`` with ``u`` the empirical quantile of each value among ``reference``."""
    ordered = np.sort(reference)
    u = np.searchsorted(ordered, values, side="right") / max(len(ordered), 1)
    return 1.0 + 4.0 * np.clip(u, 0.0, 1.0)


def mef_proxy_subscores(features: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Proxy MEF sub-dimension targets ``(N, 4)`` in ``[1, 5]`` from feature rows.

    Args:
        features: ``(N, len(FEATURE_NAMES))`` rows to score.
        reference: rows defining the quantiles (the training set); default ``features``.

    Example:
        >>> x = np.random.default_rng(0).random((10, len(FEATURE_NAMES)))
        >>> s = mef_proxy_subscores(x); s.shape, float(s.min()) >= 1.0, float(s.max()) <= 5.0
        ((10, 4), True, True)
    """
    reference = features if reference is None else reference

    def raw(rows: np.ndarray) -> np.ndarray:
        col = {n: rows[:, i] for i, n in enumerate(FEATURE_NAMES)}
        exposure = col["well_exposedness"] * (1.0 - col["clip_dark"] - col["clip_bright"])
        colour = np.exp(-np.abs(col["chroma_ratio"]))
        return np.stack([col["mefssim_fine"], exposure, colour, col["mefssim_coarse"]], axis=1)

    values, ref = raw(np.asarray(features, np.float64)), raw(np.asarray(reference, np.float64))
    return np.stack([_rank_normalise(values[:, k], ref[:, k]) for k in range(4)], axis=1)


# -------------------------------------------------------------------------------- synthetic
def _blend_towards(fused: np.ndarray, source: np.ndarray, amount: float) -> np.ndarray:
    if fused.ndim == 3 and source.ndim == 2:
        source = np.repeat(source[..., None], 3, axis=2)
    if fused.ndim == 2 and source.ndim == 3:
        source = to_gray(source)
    return np.clip((1.0 - amount) * fused + amount * source, 0.0, 1.0).astype(np.float32)


def _sharpness_map(image: np.ndarray) -> np.ndarray:
    y = to_gray(image) if image.ndim == 3 else image
    lap = cv2.Laplacian(y.astype(np.float32), cv2.CV_32F)
    return cv2.GaussianBlur(lap * lap, (0, 0), 4.0)


def _wrong_focus(sources: Sequence[np.ndarray], fused: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    blob = random_blob(fused.shape[:2], 0.06 * level, rng)
    sharp = np.stack([_sharpness_map(s) for s in sources])
    blurrier = np.argmin(sharp, axis=0)
    out = fused.copy()
    for k, s in enumerate(sources):
        if s.ndim != fused.ndim:
            s = np.repeat(s[..., None], 3, axis=2) if fused.ndim == 3 else to_gray(s)
        region = blob & (blurrier == k)
        out[region] = s[region]
    return out


def _patch_exposure(fused: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    blob = cv2.GaussianBlur(random_blob(fused.shape[:2], 0.2, rng).astype(np.float32), (0, 0), 3.0)
    ev = 0.35 * level * (1 if rng.random() < 0.5 else -1)
    shifted = change_exposure(fused, ev)
    weight = blob[..., None] if fused.ndim == 3 else blob
    return (weight * shifted + (1 - weight) * fused).astype(np.float32)


#: graded operations per task: name → (sub-dimension index it lowers)
DEGRADATIONS: dict[str, dict[str, int]] = {
    "ivif": {"fusion.drop_infrared": 0, "fusion.drop_visible": 1, "haze.scattering": 1,
             "noise.gaussian": 2, "sensor.jpeg": 2, "noise.stripe": 2,
             "blur.defocus": 3, "resolution.low": 3},
    "mff": {"fusion.wrong_focus": 0, "blur.defocus": 1, "resolution.low": 1,
            "noise.gaussian": 2, "sensor.jpeg": 2,
            "fusion.patch_exposure": 3, "dynamic.move_object": 3},
}


def _apply(name: str, sources: Sequence[np.ndarray], fused: np.ndarray, level: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if name == "fusion.drop_infrared":
        return _blend_towards(fused, sources[0], 0.15 * level)
    if name == "fusion.drop_visible":
        return _blend_towards(fused, sources[1], 0.15 * level)
    if name == "fusion.wrong_focus":
        return _wrong_focus(sources, fused, level, rng)
    if name == "fusion.patch_exposure":
        return _patch_exposure(fused, level, rng)
    return degrade(name, fused, seed=seed, level=level).image


@dataclass
class SyntheticSet:
    """Feature rows of graded degradations with their ordering structure.

    Attributes:
        features: ``(N, F)`` features.
        group: source set (base fused image) of each row.
        operation: operation name (``"clean"`` for the undegraded fused image).
        level: severity (0 for clean).
        subscores: ``(N, 4)`` sub-dimension targets.
        target: ``(N,)`` overall synthetic target.
    """

    features: np.ndarray
    group: np.ndarray
    operation: np.ndarray
    level: np.ndarray
    subscores: np.ndarray
    target: np.ndarray
    names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.group)


def synthetic_orderings(task: str, stacks: Sequence[tuple[str, Sequence[np.ndarray], np.ndarray]],
                        levels: Sequence[int] = (1, 3, 5), seed: int = 0, side: int = DEFAULT_SIDE,
                        operations: Sequence[str] | None = None,
                        progress: Callable[[int, int], None] | None = None) -> SyntheticSet:
    """Graded degradations of fused images and their features.

    Args:
        task: ``"ivif"`` (sources: visible first, then infrared) or ``"mff"``.
        stacks: ``(name, sources, fused)`` per base image.
        levels: severities applied with every operation.
        seed: base seed (each image and operation gets its own).
        side: feature working size; images are shrunk to it before degrading.
        operations: subset of :data:`DEGRADATIONS[task]`.
        progress: ``progress(done, total)`` callback.

    Returns:
        :class:`SyntheticSet` with one clean row and ``len(operations)·len(levels)`` degraded
        rows per base image.
    """
    if task not in DEGRADATIONS:
        raise InputError(f"synthetic orderings exist for {', '.join(DEGRADATIONS)}, not '{task}'")
    table = DEGRADATIONS[task]
    ops = list(operations) if operations is not None else list(table)
    unknown = [o for o in ops if o not in table]
    if unknown:
        raise InputError(f"unknown {task} operation(s): {', '.join(unknown)}")
    rows, groups, names_op, lvls, subs, targets, names = [], [], [], [], [], [], []
    for g, (name, sources, fused) in enumerate(stacks):
        srcs, base = shrink_stack(sources, fused, side)
        variants = [("clean", 0, base)]
        for o, op in enumerate(ops):
            for level in levels:
                variants.append((op, int(level), _apply(op, srcs, base, int(level), seed * 7919 + g * 131 + o * 17 + level)))
        for op, level, image in variants:
            rows.append(fuscore_features(srcs, image, side))
            sub = np.full(4, _SUB_BASE)
            if level:
                sub[table[op]] = max(1.0, _SUB_BASE - _SUB_STEP * level)
            groups.append(g)
            names_op.append(op)
            lvls.append(level)
            subs.append(sub)
            targets.append((sub.mean() + sub.min()) / 2.0)
            names.append(name)
        if progress is not None:
            progress(g + 1, len(stacks))
    return SyntheticSet(np.stack(rows).astype(np.float32), np.asarray(groups), np.asarray(names_op),
                        np.asarray(lvls), np.stack(subs), np.asarray(targets), names)


def cached_synthetic(tag: str, build: Callable[[], SyntheticSet],
                     cache_dir: str | os.PathLike | None = None) -> SyntheticSet:
    """``build()``, stored as ``cache_dir/synthetic_<tag>.npz`` and read back from there when present."""
    cache = _cache_file(cache_dir, f"synthetic_{tag}_v{FEATURE_VERSION}")
    if cache is not None and cache.is_file():
        with np.load(cache) as stored:
            return SyntheticSet(stored["features"], stored["group"], stored["operation"].astype(str), stored["level"],
                                stored["subscores"], stored["target"], [str(n) for n in stored["names"]])
    data = build()
    if cache is not None:
        np.savez(cache, features=data.features, group=data.group, operation=data.operation.astype(str),
                 level=data.level, subscores=data.subscores, target=data.target, names=np.asarray(data.names, dtype=str))
    return data


def known_pairs(data: SyntheticSet) -> np.ndarray:
    """Index pairs ``(better, worse)`` whose order is known by construction (same base image:
    clean vs degraded, and one operation at a lower vs a higher severity).

    Example:
        >>> s = SyntheticSet(np.zeros((3, 1)), np.array([0, 0, 0]), np.array(["clean", "blur", "blur"]),
        ...                  np.array([0, 1, 3]), np.zeros((3, 4)), np.zeros(3))
        >>> known_pairs(s).tolist()
        [[0, 1], [0, 2], [1, 2]]
    """
    pairs = []
    for g in np.unique(data.group):
        index = np.flatnonzero(data.group == g)
        for a in index:
            for b in index:
                if a == b:
                    continue
                clean_vs = data.operation[a] == "clean" and data.operation[b] != "clean"
                same_op = (data.operation[a] == data.operation[b] and data.operation[a] != "clean"
                           and data.level[a] < data.level[b])
                if clean_vs or same_op:
                    pairs.append((a, b))
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
