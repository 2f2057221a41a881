"""Train the perception classifier and tune the relational thresholds on a tuning suite.

The tuning suite is synthesised in memory with the same code as ``fuseagent synth`` (the
recipes of every group), from sources that are NOT used by the accuracy report: TNO and the first
100 RoadScene pairs (sorted by name) for IVIF; single images (LOL "high", scikit-image's sample photographs,
RoadScene-train and TNO visible frames, the two best-exposed frames of each Waterloo MEF stack) turned
into exposure brackets and focus pairs for MEF/MFF; and real exposure pairs from the Waterloo MEF stacks
(``mef_stacks``; stacks of scenes that MEFB also holds are excluded, ``exclude_scenes``). Settings live in
``train_config.json`` beside this module. Usage::

    python -m fuseagent.perceive.train [--config FILE] [--data ../shared/data] [--cache FILE] [--out FILE]

Besides the pairs of every recipe, ``singles`` single frames with 0..2 random degradations give every
type more positives. Features are cached (``--cache``; ``--refit`` re-fits from the cache in a few
minutes). The classifier is an ensemble of ``members`` perceptrons; per-type thresholds maximise F1
over 5-fold out-of-fold probabilities of the synthesised pairs, folds by scene (a pair and the single
frames made from one scene fall in one fold; ``threshold_rows``; haze pooled over a
same-modality pair's frames, as :func:`fuseagent.perceive.perceive` decides it); the shipped model
is trained on all rows. The result is ``perceive_weights.npz`` (the ensemble, per-type thresholds,
relational thresholds), written atomically; collecting and fitting took about 5–7 minutes of one
core on a loaded 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..degrade.base import json_safe
from ..degrade.geometric import apply_points
from ..degrade.photometric import effective_ev
from ..degrade.recipes import resolve_recipe
from ..degrade.severity import PERCEIVED_TYPES
from ..degrade.suite import Source, discover_sources, limit_size, make_sample
from ..errors import InputError
from ..io import quantise
from .features import FEATURE_NAMES, image_features
from .model import WEIGHTS_PATH, DegradationModel, pool_scene_types

__all__ = ["CONFIG_PATH", "load_config", "roadscene_split", "tuning_sources", "ground_truth", "collect",
           "fit", "tune_threshold", "f1_score", "main", "collect_singles", "single_sources", "row_of",
           "transform_error", "rendering"]

CONFIG_PATH = Path(__file__).with_name("train_config.json")
TYPES: tuple[str, ...] = tuple(PERCEIVED_TYPES)


def load_config(path: str | Path | None = None) -> dict[str, Any]:
    """The training settings (``train_config.json`` by default)."""
    from ..train.config import read_config

    return read_config(path or CONFIG_PATH)


def roadscene_split(data: Path, n_train: int) -> tuple[list[str], list[str]]:
    """RoadScene pair names split by sorted order: the first ``n_train`` tune, the rest report."""
    names = sorted(p.stem for p in (data / "ivif" / "roadscene" / "ir").iterdir() if not p.name.startswith("."))
    return names[:n_train], names[n_train:]


def _singles(folder: Path, keep: set[str] | None = None) -> list[Source]:
    from ..io import IMAGE_SUFFIXES

    return [Source(p.stem, {"image": str(p)}) for p in sorted(folder.iterdir())
            if p.suffix.lower() in IMAGE_SUFFIXES and (keep is None or p.stem in keep)]


def _stack_frames(folder: Path) -> list[Path]:
    """Frames of one exposure stack, darkest first (by mean luminance; file order varies by scene)."""
    from ..io import IMAGE_SUFFIXES, read_image

    frames = [p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
    return sorted(frames, key=lambda p: float(read_image(p, mode="gray").mean()))


def _stacks(folder: Path, excluded: set[str]) -> list[Path]:
    """Scene folders of a stack collection whose name (before the first ``_``) is not excluded."""
    return [d for d in sorted(folder.iterdir()) if d.is_dir() and d.name.split("_")[0].lower() not in excluded]


def _stack_pairs(folder: Path, excluded: set[str]) -> list[Source]:
    """Real exposure pairs from stacks: per scene the extreme frames and frames one step inside them
    (a darker frame ``a``, a brighter frame ``b``)."""
    out = []
    for scene in _stacks(folder, excluded):
        frames = _stack_frames(scene)
        n = len(frames)
        picks = sorted({(i, j) for i, j in ((0, n - 1), (1, n - 2), (0, n - 2), (1, n - 1), (n // 4, n - 1 - n // 4))
                        if 0 <= i < j < n})
        out += [Source(f"{scene.name}:{i}-{j}", {"a": str(frames[i]), "b": str(frames[j])}) for i, j in picks]
    return out


def _stack_middles(folder: Path, excluded: set[str], per_scene: int = 2) -> list[Source]:
    """The ``per_scene`` best-exposed frames of every stack (mean luminance closest to 0.45) as
    single images."""
    from ..io import read_image

    out = []
    for scene in _stacks(folder, excluded):
        frames = sorted(_stack_frames(scene), key=lambda p: abs(float(read_image(p, mode="gray").mean()) - 0.45))
        out += [Source(f"{scene.name}:{p.stem}", {"image": str(p)}) for p in frames[:per_scene]]
    return out


def tuning_sources(task: str, cfg: dict[str, Any], data: Path) -> list[Source]:
    """Sources of the tuning suite ``task`` (a key of ``cfg["sources"]``; see the module docstring).

    A source spec is a folder under ``data``: pairs (IVIF), single images (MEF/MFF), ``skimage``
    (scikit-image's sample photographs), ``PATH:train`` (RoadScene's tuning split),
    ``stacks:PATH`` (real exposure pairs from stacks) or ``middle:PATH`` (the two best-exposed
    frames of each stack); stacks whose scene is named in ``exclude_scenes`` are left out. A spec
    ending in ``*K`` lists each of its sources K times, so that a collection with few images is
    drawn K times as often.
    """
    out: list[Source] = []
    for spec in cfg["sources"][task]:
        spec, _, repeat = spec.partition("*")
        out += _spec_sources(spec, task, cfg, data) * (int(repeat) if repeat else 1)
    if not out:
        raise InputError(f"no tuning sources for {task} under {data}")
    return out


def _spec_sources(spec: str, task: str, cfg: dict[str, Any], data: Path) -> list[Source]:
    """The sources of one spec of :func:`tuning_sources` (without its ``*K``)."""
    if spec == "skimage":
        from skimage import data as skdata

        folder = Path(skdata.data_dir)
        return [Source(Path(n).stem, {"image": str(folder / n)}) for n in cfg["skimage_images"]
                if (folder / n).is_file()]
    excluded = {name.lower() for name in cfg.get("exclude_scenes", [])}
    kind, _, rest = spec.partition(":")
    if kind == "stacks":
        return _stack_pairs(data / rest, excluded)
    if kind == "middle":
        return _stack_middles(data / rest, excluded)
    path, _, split = spec.partition(":")
    keep = set(roadscene_split(data, int(cfg["roadscene_train"]))[0]) if split == "train" else None
    if task.split("_")[0] == "ivif":
        return [s for s in discover_sources(data / path, "ivif") if keep is None or s.name in keep]
    return _singles(data / path, keep)


def scene_of(source_name: str) -> str:
    """The scene a tuning source shows: the stack of a stack's frames (``SCENE:…``), the name otherwise
    (an infrared–visible pair and its visible frame used alone share it).

    Example:
        >>> scene_of("Venice_HDRsoft:0-5"), scene_of("FLIR_00006")
        ('Venice_HDRsoft', 'FLIR_00006')
    """
    return source_name.split(":")[0]


def _ev_of(step: dict[str, Any]) -> float:
    """The step's exposure change as the image shows it (:func:`~fuseagent.degrade.photometric.effective_ev`)."""
    if step["op"] == "photometric.exposure":
        return effective_ev(step["params"]["ev"], step["params"]["gamma"])
    if step["op"] == "photometric.low_light":
        return -abs(effective_ev(step["params"]["ev"], step["params"]["gamma"]))
    return 0.0


def ground_truth(record: dict[str, Any]) -> dict[str, Any]:
    """Ground truth of a manifest record, as perception reports it.

    Returns a dict with ``levels`` (roles × types, 0..5), ``known`` (False where the type is
    inherent to the source and unknown), ``displacement_px``, ``transform``, ``motion`` (bool),
    ``ev`` (EV of the second image relative to the first, or None when unknown) and ``log_rb``.
    """
    roles = record["roles"]
    inherent = set(record.get("inherent", []))
    levels = np.array([[record["labels"][r].get(t, 0) for t in TYPES] for r in roles], np.int64)
    known = np.array([[t not in inherent for t in TYPES] for _ in roles], bool)
    motion = any(record["labels"][r].get("motion", 0) > 0 for r in roles)
    ev: float | None = None
    if record["task"] != "ivif" and (record["task"] == "mff" or "generator" in record):
        ev = sum(_ev_of(s) * (1 if s["role"] == roles[1] else -1) for s in record["steps"])
        if "generator" in record and "evs" in record["generator"]:
            evs = record["generator"]["evs"]
            ev += effective_ev(evs[1] - evs[0], record["generator"]["gamma"])
    log_rb = 0.0
    for s in record["steps"]:
        if s["op"] == "photometric.white_balance":
            log_rb += float(s["params"]["log_rb"]) * (1 if s["role"] == roles[1] else -1)
    return {"levels": levels, "known": known, "displacement_px": float(record["misalignment"]["displacement_px"]),
            "transform": np.array(record["misalignment"]["transform"], np.float64), "motion": motion, "ev": ev,
            "log_rb": log_rb if record["task"] != "ivif" else None}


def transform_error(true: np.ndarray, estimate: np.ndarray, size: tuple[int, int], step: int = 16) -> float:
    """Mean end-point error (px) between two reference→moving transforms over a pixel grid.

    Example:
        >>> transform_error(np.eye(3), np.array([[1, 0, 3], [0, 1, 4], [0, 0, 1.0]]), (32, 32))
        5.0
    """
    h, w = size
    ys, xs = np.mgrid[0:h:step, 0:w:step]
    pts = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
    return float(np.linalg.norm(apply_points(true, pts) - apply_points(estimate, pts), axis=1).mean())


def row_of(record: dict[str, Any], images: Sequence[np.ndarray]) -> dict[str, Any]:
    """Measurements of one sample next to its ground truth (one training/evaluation row)."""
    from . import measure, moving_and_reference

    m = measure(list(images), record["task"])
    gt = ground_truth(record)
    moving, reference = moving_and_reference(record["task"], record["roles"])
    size = images[record["roles"].index(reference)].shape[:2]
    return {
        "task": record["task"], "recipe": record["recipe"], "group": record["group"],
        "scene": scene_of(record["source"]["name"]),
        "features": m.features, "levels": gt["levels"], "known": gt["known"],
        "gt_displacement": gt["displacement_px"], "est_displacement": m.alignment.displacement_px,
        "transform_error": transform_error(gt["transform"], m.alignment.transform, size),
        "gt_motion": gt["motion"], "motion_score": m.motion.score, "motion_area": m.motion.area_fraction,
        "gt_ev": gt["ev"], "est_ev": m.exposure_ev[0], "gt_log_rb": gt["log_rb"], "est_log_rb": m.log_rb,
    }


def rendering(gains: Sequence[float] | None, seed: int, index: int) -> Callable[[np.ndarray], np.ndarray] | None:
    """The re-rendering of a tuning sample's single source image: its colour saturation scaled by a
    gain drawn log-uniformly from ``gains`` (``[low, high]``; cameras render one scene more or less
    vivid), on its own random stream ``[seed, index, 4243]`` so that every other draw of the sample is
    unchanged; None when ``gains`` is None.

    Example:
        >>> f = rendering([2.0, 2.0], 0, 0)
        >>> [round(float(v), 3) for v in f(np.array([[[0.6, 0.4, 0.2]]], np.float32))[0, 0]]
        [0.763, 0.363, 0.0]
    """
    if gains is None:
        return None
    from ..degrade.photometric import scale_saturation

    low, high = np.log(float(gains[0])), np.log(float(gains[1]))
    gain = float(np.exp(np.random.default_rng([seed, index, 4243]).uniform(low, high)))
    return lambda image: scale_saturation(image, gain)


def collect(task: str, sources: list[Source], n: int, seed: int, max_side: int, per_source: int,
            progress: bool = True, saturation_gains: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """Synthesise ``n`` samples of ``task`` in memory (all recipes) and measure them; a pair generated
    from a single image is rendered first with :func:`rendering` of ``saturation_gains``."""
    from tqdm import tqdm

    recipes = resolve_recipe(task, "all")
    if n > per_source * len(sources):
        raise InputError(f"{n} samples need more than {len(sources)} sources x {per_source}")
    rows = []
    n_src = len(sources)
    for i in tqdm(range(n), desc=f"tune {task}", disable=not progress):
        perm = np.random.default_rng([seed, i // n_src, 7919]).permutation(n_src)
        sample = make_sample(task, sources[int(perm[i % n_src])], recipes, seed, i, max_side,
                             rendering(saturation_gains, seed, i))
        images = [quantise(sample.images[r]) for r in sample.record["roles"]]
        rows.append(row_of(sample.record, images))
    return rows


_SINGLE_OPS = {
    "vis": ("noise.gaussian", "noise.poisson_gaussian", "blur.motion", "blur.defocus", "haze.scattering",
            "weather.rain", "weather.snow", "photometric.low_light", "photometric.exposure", "resolution.low",
            "sensor.jpeg"),
    "ir": ("noise.gaussian", "noise.stripe", "blur.motion", "blur.defocus", "resolution.low", "sensor.jpeg"),
}


def single_sources(cfg: dict[str, Any], data: Path) -> list[tuple[str, str]]:
    """``(path, modality)`` of every single frame of the tuning sources (infrared frames included)."""
    out = {(s.files["image"], "vis") for key in cfg["sources"] if key.split("_")[0] in ("mef", "mff")
           for s in tuning_sources(key, cfg, data) if s.single}
    out |= {(s.files["ir"], "ir") for s in tuning_sources("ivif", cfg, data)}
    return sorted(out)


def collect_singles(cfg: dict[str, Any], data: Path, n: int, seed: int, progress: bool = True) -> list[dict[str, Any]]:
    """Single images with 0..2 random degradations: balanced positives for every type.

    Each row holds one image's features and labels (``task`` = ``"single"``); it only trains the
    per-image classifier.
    """
    from tqdm import tqdm

    from ..degrade import degrade
    from ..degrade.recipes import STEP_ORDER
    from ..io import read_image
    
    frames = single_sources(cfg, data)
    scenes = {s.files[role]: scene_of(s.name) for key in cfg["sources"] for s in tuning_sources(key, cfg, data)
              for role in ("image", "ir") if role in s.files}
    rows = []
    for i in tqdm(range(n), desc="tune singles", disable=not progress):
        rng = np.random.default_rng([seed, i, 31])
        path, modality = frames[int(rng.integers(len(frames)))]
        image = quantise(limit_size(read_image(path, mode="gray" if modality == "ir" else "auto"), int(cfg["max_side"])))
        render = rendering(cfg.get("saturation_gains"), seed, i)
        if render is not None and modality == "vis":
            image = quantise(render(image))
        k = int(rng.choice([0, 1, 1, 2]))
        ops = sorted(rng.choice(_SINGLE_OPS[modality], size=k, replace=False).tolist(), key=STEP_ORDER.index)
        labels: dict[str, int] = {}
        for op in ops:
            out = degrade(op, image, rng, int(rng.integers(1, 6)))
            image = out.image
            for kind, lvl in out.labels.items():
                labels[kind] = max(labels.get(kind, 0), int(lvl))
        feats = image_features(quantise(image), modality)
        rows.append({"task": "single", "scene": scenes[path], "features": np.array([[feats[f] for f in FEATURE_NAMES]]),
                     "levels": np.array([[labels.get(t, 0) for t in TYPES]]), "known": np.ones((1, len(TYPES)), bool)})
    return rows


def f1_score(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """Precision, recall and F1 of boolean predictions.

    Example:
        >>> f1_score(np.array([1, 1, 0, 0], bool), np.array([1, 0, 1, 0], bool))
        (0.5, 0.5, 0.5)
    """
    tp = float((pred & truth).sum())
    p = tp / max(1.0, float(pred.sum()))
    r = tp / max(1.0, float(truth.sum()))
    return p, r, (2 * p * r / (p + r) if p + r > 0 else 0.0)


def tune_threshold(scores: np.ndarray, truth: np.ndarray, window: float = 0.0, tolerance: float = 0.0) -> float:
    """The threshold on ``scores`` (predict ``score >= t``) that maximises F1; ties → the middle.

    With ``window`` > 0 the F1 is first averaged over thresholds within ``± window`` (on a grid of
    step ``window / 5``): where the F1 curve is flat the single best point rests on a few samples and
    moves from one tuning run to the next, the middle of the best stretch does not. With a window,
    ``tolerance`` widens that stretch to every grid threshold whose averaged F1 is within
    ``tolerance`` of the best (its middle is taken), for a plateau whose highest point is noise.

    Example:
        >>> tune_threshold(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1], bool))
        0.5
        >>> rng = np.random.default_rng(4)
        >>> truth = rng.random(40) < 0.3
        >>> scores = np.clip(np.where(truth, 0.65, 0.35) + rng.normal(0, 0.25, 40), 0, 1)
        >>> round(tune_threshold(scores, truth), 3), round(tune_threshold(scores, truth, window=0.1), 3)
        (0.814, 0.715)
        >>> round(tune_threshold(scores, truth, window=0.1, tolerance=0.05), 3)
        0.555
    """
    if window > 0:
        step = window / 5
        grid = np.arange(float(scores.min()), float(scores.max()) + step, step)
        f1s = np.array([f1_score(scores >= g, truth)[2] for g in grid])
        smooth = np.convolve(np.pad(f1s, 5, mode="edge"), np.full(11, 1 / 11), mode="valid")
        best = np.flatnonzero(smooth >= smooth.max() - max(float(tolerance), 1e-12))
        return float(grid[best[len(best) // 2]])
    values = np.unique(scores)
    cands = np.concatenate([[values[0] - 1e-6], (values[1:] + values[:-1]) / 2, [values[-1] + 1e-6]])
    f1s = np.array([f1_score(scores >= c, truth)[2] for c in cands])
    best = np.flatnonzero(f1s >= f1s.max() - 1e-12)
    return float(cands[best[len(best) // 2]])


def _stack(rows: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.concatenate([r["features"] for r in rows])
    y = np.concatenate([r["levels"] for r in rows])
    k = np.concatenate([r["known"] for r in rows])
    return x, y, k


def _train_mlp(x: np.ndarray, present: np.ndarray, known: np.ndarray, severity: np.ndarray, hidden: Sequence[int],
               epochs: int, learning_rate: float, weight_decay: float, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Full-batch AdamW on the masked loss: weighted BCE for presence + 0.2 × MSE of the severity
    of present types (numpy; the model is tiny)."""
    rng = np.random.default_rng(seed)
    t = present.shape[1]
    sizes = [x.shape[1], *hidden, 2 * t]
    params = []
    for i in range(len(sizes) - 1):
        bound = np.sqrt(6.0 / (sizes[i] + sizes[i + 1]))
        params += [rng.uniform(-bound, bound, (sizes[i], sizes[i + 1])), np.zeros(sizes[i + 1])]
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    pos = (present * known).sum(0)
    neg = ((1 - present) * known).sum(0)
    pos_weight = np.sqrt(neg / np.maximum(pos, 1))
    sev_mask = present * known
    n_known, n_sev = max(1.0, known.sum()), max(1.0, sev_mask.sum())
    beta1, beta2 = 0.9, 0.999
    for step in range(1, epochs + 1):
        acts = [x]
        for i in range(0, len(params), 2):
            z = acts[-1] @ params[i] + params[i + 1]
            acts.append(np.maximum(z, 0) if i < len(params) - 2 else z)
        out = acts[-1]
        logits, sev = out[:, :t], out[:, t:]
        prob = 1 / (1 + np.exp(-np.clip(logits, -30, 30)))
        # d/dlogit of pos_weight*y*log(p) + (1-y)*log(1-p) (negated, averaged over known entries)
        grad_logit = (prob * (pos_weight * present + (1 - present)) - pos_weight * present) * known / n_known
        grad_sev = 0.2 * 2 * (sev - severity) * sev_mask / n_sev
        grad = np.concatenate([grad_logit, grad_sev], axis=1)
        grads = [None] * len(params)
        for i in range(len(params) - 2, -1, -2):
            grads[i] = acts[i // 2].T @ grad
            grads[i + 1] = grad.sum(0)
            if i > 0:
                grad = (grad @ params[i].T) * (acts[i // 2] > 0)
        for k, (p, g) in enumerate(zip(params, grads)):
            m, v = moments[k]
            m[:] = beta1 * m + (1 - beta1) * g
            v[:] = beta2 * v + (1 - beta2) * g * g
            m_hat, v_hat = m / (1 - beta1 ** step), v / (1 - beta2 ** step)
            if p.ndim == 2:
                p -= learning_rate * weight_decay * p
            p -= learning_rate * m_hat / (np.sqrt(v_hat) + 1e-8)
    return [(params[i], params[i + 1]) for i in range(0, len(params), 2)]


def fit(rows: list[dict[str, Any]], cfg: dict[str, Any]) -> tuple[DegradationModel, dict[str, Any]]:
    """Train the classifier on ``rows`` and tune every threshold; returns the model and a summary.

    The classifier is an ensemble of ``members`` perceptrons (seeds ``seed``, ``seed + 1``, ...)
    over the features not listed in ``exclude_features``. Per-type thresholds maximise F1 over
    out-of-fold probabilities (``folds``-fold cross-validation by scene: every sample made from one
    scene, pairs and single frames alike, falls in one fold, so that each is predicted by a model
    that never saw its scene; by sample for rows without a scene) of the rows named by
    ``threshold_rows``: ``"pairs"`` (the synthesised pairs, whose mix of degradations is the one
    the suites have; a type with fewer than 10 positives there falls back to every row) or
    ``"all"``, the F1 averaged over thresholds within ``± threshold_window``, at the middle of the
    thresholds within ``threshold_tolerance`` of the best average (see :func:`tune_threshold`). The
    shipped model is then trained on all rows.
    """
    rng = np.random.default_rng(int(cfg["seed"]))
    folds = int(cfg.get("folds", 5))
    if all("scene" in r for r in rows):
        scenes = sorted({r["scene"] for r in rows})
        fold_of_scene = dict(zip(scenes, rng.permutation(len(scenes)) % folds))
        fold_of = np.array([fold_of_scene[r["scene"]] for r in rows])
    else:  # a feature cache written before rows knew their scene
        fold_of = rng.permutation(len(rows)) % folds
    t = len(TYPES)
    excluded = set(cfg.get("exclude_features", []))
    names = tuple(n for n in FEATURE_NAMES if n not in excluded)
    columns = [FEATURE_NAMES.index(n) for n in names]
    members = max(1, int(cfg.get("members", 1)))

    def train(subset: list[dict[str, Any]]) -> DegradationModel:
        x, y, k = _stack(subset)
        x = x[:, columns]
        mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
        nets = [_train_mlp(np.clip((x - mean) / std, -8, 8), (y > 0).astype(np.float64), k.astype(np.float64),
                           np.maximum(y, 1).astype(np.float64), [int(h) for h in cfg["hidden"]], int(cfg["epochs"]),
                           float(cfg["learning_rate"]), float(cfg["weight_decay"]), int(cfg["seed"]) + m)
                for m in range(members)]
        return DegradationModel(names, TYPES, mean, std, nets[0], np.full(t, 0.5), {}, nets[1:])

    oof_prob, oof_y, oof_k, oof_pair = [], [], [], []
    for f in range(folds):
        part = train([r for r, g in zip(rows, fold_of) if g != f])
        held = [r for r, g in zip(rows, fold_of) if g == f]
        xv, yv, kv = _stack(held)
        # a same-modality pair's frames share the scene's degradations (as perceive() decides them)
        oof_prob.append(np.concatenate([pool_scene_types(part.predict(r["features"])[0], TYPES, r["task"])
                                        for r in held]))
        oof_y.append(yv)
        oof_k.append(kv)
        oof_pair.append(np.concatenate([np.full(r["features"].shape[0], r["task"] != "single") for r in held]))
    prob_v, yv, kv = np.concatenate(oof_prob), np.concatenate(oof_y), np.concatenate(oof_k)
    pair_v = np.concatenate(oof_pair)
    model = train(rows)
    scored = []
    for j in range(t):
        sel = kv[:, j] & pair_v if cfg.get("threshold_rows", "all") == "pairs" else kv[:, j]
        scored.append(sel if int((yv[sel, j] > 0).sum()) >= 10 else kv[:, j])
    window, tolerance = float(cfg.get("threshold_window", 0.0)), float(cfg.get("threshold_tolerance", 0.0))
    thresholds = np.array([tune_threshold(prob_v[sel, j], (yv[sel, j] > 0), window, tolerance) if sel.any() else 0.5
                           for j, sel in enumerate(scored)])
    model.thresholds = np.clip(thresholds, 0.05, 0.95)
    settings: dict[str, Any] = {"misalignment_px": {}, "motion_score": {}, "white_balance_log_rb": {}}
    for task in ("ivif", "mef", "mff"):
        sub = [r for r in rows if r["task"] == task]
        if not sub:
            continue
        est = np.array([r["est_displacement"] for r in sub])
        settings["misalignment_px"][task] = max(0.5, tune_threshold(est, np.array([r["gt_displacement"] >= 1.0 for r in sub])))
        score = np.array([r["motion_score"] for r in sub])
        settings["motion_score"][task] = max(1.0, tune_threshold(score, np.array([r["gt_motion"] for r in sub])))
        wb = [r for r in sub if r["est_log_rb"] is not None and r["gt_log_rb"] is not None]
        if wb:
            settings["white_balance_log_rb"][task] = max(0.03, tune_threshold(
                np.array([abs(r["est_log_rb"]) for r in wb]), np.array([abs(r["gt_log_rb"]) >= 0.06 for r in wb])))
    model.settings = json_safe(settings)
    summary = {"images": int(len(yv)), "folds": folds, "members": members, "features": len(names),
               "threshold_rows": cfg.get("threshold_rows", "all"), "out_of_fold": {}}
    for j, kind in enumerate(TYPES):
        sel = scored[j]
        p, r, f1 = f1_score(prob_v[sel, j] >= model.thresholds[j], yv[sel, j] > 0)
        summary["out_of_fold"][kind] = {"precision": round(p, 3), "recall": round(r, 3), "f1": round(f1, 3),
                                        "threshold": round(float(model.thresholds[j]), 3)}
    summary["settings"] = model.settings
    return model, summary


def _save_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    np.save(path, np.array(rows, dtype=object), allow_pickle=True)


def _load_rows(path: Path) -> list[dict[str, Any]]:
    return list(np.load(path, allow_pickle=True))


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m fuseagent.perceive.train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(CONFIG_PATH))
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[3].parent / "shared" / "data"))
    parser.add_argument("--cache", default=str(Path(__file__).resolve().parents[3] / "out" / "perception_tuning_rows.npy"),
                        help="feature cache (.npy; default under the git-ignored out/)")
    parser.add_argument("--out", default=str(WEIGHTS_PATH))
    parser.add_argument("--refit", action="store_true", help="only re-fit from the cache")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    cache = Path(args.cache)
    if args.refit and cache.is_file():
        rows = _load_rows(cache)
    else:
        data = Path(args.data)
        cache.parent.mkdir(parents=True, exist_ok=True)
        rows = collect_singles(cfg, data, int(cfg["singles"]), int(cfg["seed"]))
        _save_rows(cache, rows)
        for key, n in cfg["samples"].items():
            # "mef_stacks": a second MEF suite from other sources, on its own random streams
            task = key.split("_")[0]
            seed = int(cfg["seed"]) + (0 if key == task else 1)
            rows += collect(task, tuning_sources(key, cfg, data), int(n), seed, int(cfg["max_side"]),
                            int(cfg["per_source"]), saturation_gains=cfg.get("saturation_gains"))
            _save_rows(cache, rows)
    model, summary = fit(rows, cfg)
    model.save(args.out)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
