"""Training and cross-validation of FuScore (``fuseagent train fuscore --config configs/fuscore.json``).

* **MEF** is trained on the Waterloo MEF human scores (all 17 scenes for the shipped weights;
  leave-scenes-out folds for the evaluation). Pairs for the within-set fidelity are all pairs of
  images of one scene; pairs for the cross-set fidelity are (a seeded sample of) pairs of images of
  different scenes; their target preference is the Thurstone probability of the human targets
  ``Φ((t_i − t_j) / sqrt(σ_i² + σ_j²))`` with the soft-label spreads ``σ`` (at least
  ``min_spread``).
* **IVIF** is trained on graded degradations of RoadScene pairs fused by ``fusion.laplacian``;
  **MFF** on multi-focus pairs generated (:func:`fuseagent.degrade.generators.multifocus_stack`,
  region mode) from RoadScene visible images, the all-in-focus image being the clean fused result.
  Within-set pairs are the known orderings (:func:`~fuseagent.learned.fuscore.data.known_pairs`);
  cross-set pairs join images of different base images whose synthetic targets differ by at least
  ``synthetic_cross_margin`` (preference 1). VIFB, the MEFB validation scenes and Lytro are never used.

Every model is a small ensemble (``ensemble`` seeds) trained full-batch with Adam; the ensemble's
score is the mean of the members' expectations. Training a task takes seconds to a few minutes on
one CPU thread (most of it computing features).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .config import read_config
from ..learned.fuscore.data import (SUBDIMENSIONS, SyntheticSet, cached_synthetic, known_pairs, load_waterloo, mef_proxy_subscores,
                                    mos_to_level, synthetic_orderings, waterloo_features)
from ..learned.fuscore.features import DEFAULT_SIDE, FEATURE_NAMES
from ..learned.fuscore.model import LossWeights, label_spread, soft_label

__all__ = ["FuScoreConfig", "load_config", "TrainingSet", "human_training_set", "synthetic_training_set",
           "fit_ensemble", "predict_scores", "feature_index", "cross_validate", "save_weights", "train_task", "ivif_stacks",
           "mff_stacks", "ABLATIONS", "run", "add_arguments"]

#: features of the MEF model (136 rated images cannot support all 28; see docs/FUSCORE.md)
MEF_FEATURES: tuple[str, ...] = ("mefssim_fine", "mefssim_mid", "mefssim_coarse", "chroma_ratio", "halo_band")

#: loss ablations: name → weights overriding the config's (a removed term has weight 0)
ABLATIONS: dict[str, dict[str, float]] = {
    "full": {},
    "no_dist": {"dist": 0.0},
    "no_within": {"within": 0.0},
    "no_cross": {"cross": 0.0},
    "dist_only": {"within": 0.0, "cross": 0.0},
}


@dataclass(frozen=True)
class FuScoreConfig:
    """Settings of FuScore training (any subset in a JSON file).

    Attributes:
        side: feature working size (longer side, px).
        hidden, dropout: MLP size and dropout.
        epochs, lr, weight_decay: full-batch Adam schedule.
        ensemble: models per task (different seeds), averaged.
        seed: base seed.
        loss: weights of the tripartite loss.
        spread_base, spread_scale, min_spread: soft labels (see :mod:`~fuseagent.learned.fuscore.model`).
        max_cross_pairs: cap on sampled cross-set pairs.
        synthetic_levels: severities of the synthetic orderings.
        synthetic_train_images: RoadScene images used per synthetic task.
        synthetic_cross_margin: minimal target difference of a synthetic cross-set pair.
        synthetic_test_images: held-out base images per task in ``fuseagent bench fuscore``.
        tasks: tasks trained by ``fuseagent train fuscore``.
        features: per task, the names of the features the model sees (missing task: all of
            :data:`~fuseagent.learned.fuscore.features.FEATURE_NAMES`).
        weights_dir: where the ``fuscore_<task>.pt`` files are written.
        cache_dir: feature / baseline cache.
        threads: torch threads.
    """

    side: int = DEFAULT_SIDE
    hidden: int = 8
    dropout: float = 0.0
    epochs: int = 120
    lr: float = 0.02
    weight_decay: float = 0.01
    ensemble: int = 2
    seed: int = 0
    loss: LossWeights = field(default_factory=LossWeights)
    spread_base: float = 0.0
    spread_scale: float = 1.0
    min_spread: float = 0.25
    max_cross_pairs: int = 2000
    synthetic_levels: tuple[int, ...] = (1, 3, 5)
    synthetic_train_images: int = 14
    synthetic_cross_margin: float = 1.0
    synthetic_test_images: int = 10
    tasks: tuple[str, ...] = ("mef", "ivif", "mff")
    features: dict[str, list[str]] = field(default_factory=lambda: {"mef": list(MEF_FEATURES)})
    weights_dir: str = "src/fuseagent/weights"
    cache_dir: str = "~/.cache/fuseagent/fuscore"
    threads: int = 1


def load_config(path: str | os.PathLike | None = None, **overrides: Any) -> FuScoreConfig:
    """Read a JSON config (unknown keys are an error) and apply keyword overrides.

    Example:
        >>> load_config(None, epochs=5).epochs
        5
    """
    values = read_config(path)
    values.update(overrides)
    known = {f.name for f in fields(FuScoreConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(f"fuscore config: unknown key(s) {', '.join(unknown)}")
    if isinstance(values.get("loss"), dict):
        loss_keys = {f.name for f in fields(LossWeights)}
        bad = sorted(set(values["loss"]) - loss_keys)
        if bad:
            raise InputError(f"fuscore config: unknown loss weight(s) {', '.join(bad)}")
        values["loss"] = LossWeights(**values["loss"])
    for key in ("synthetic_levels", "tasks"):
        if key in values:
            values[key] = tuple(values[key])
    for task, names in dict(values.get("features", {})).items():
        bad = [n for n in names if n not in FEATURE_NAMES]
        if bad or not names:
            raise InputError(f"fuscore config: features of '{task}': unknown or empty ({', '.join(bad)})")
    return FuScoreConfig(**values)


def feature_index(config: FuScoreConfig, task: str) -> np.ndarray:
    """Column indices (into :data:`FEATURE_NAMES`) of the features a task's model sees.

    Example:
        >>> feature_index(load_config(None, features={"mef": ["luma_mean", "mefssim_fine"]}), "mef").tolist()
        [8, 0]
    """
    names = config.features.get(task) or list(FEATURE_NAMES)
    return np.array([FEATURE_NAMES.index(n) for n in names], dtype=np.int64)


# ------------------------------------------------------------------------------- training sets
@dataclass
class TrainingSet:
    """Everything one fit needs."""

    features: np.ndarray
    labels: np.ndarray
    subscores: np.ndarray
    target: np.ndarray
    within: np.ndarray  # (P, 3): i, j, preference
    cross: np.ndarray


def _spreads(subscores: np.ndarray, config: FuScoreConfig) -> np.ndarray:
    return np.array([label_spread(s, config.spread_base, config.spread_scale) for s in subscores])


def _labels(target: np.ndarray, spreads: np.ndarray, config: FuScoreConfig) -> np.ndarray:
    return np.stack([soft_label(t, s, config.min_spread) for t, s in zip(target, spreads)])


def _thurstone_targets(target: np.ndarray, spreads: np.ndarray, pairs: np.ndarray, min_spread: float) -> np.ndarray:
    sigma = np.maximum(spreads, min_spread)
    i, j = pairs[:, 0], pairs[:, 1]
    z = (target[i] - target[j]) / np.sqrt(sigma[i] ** 2 + sigma[j] ** 2)
    return 0.5 * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0)))


def _sample(pairs: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    if len(pairs) <= limit:
        return pairs
    return pairs[np.sort(rng.choice(len(pairs), limit, replace=False))]


def human_training_set(features: np.ndarray, mos: np.ndarray, scenes: Sequence[str], config: FuScoreConfig,
                       proxy_reference: np.ndarray | None = None) -> TrainingSet:
    """Soft labels, proxy sub-scores and Thurstone pairs of rated MEF images.

    Args:
        features: ``(N, F)`` features.
        mos: ``(N,)`` Waterloo MOS (1–10).
        scenes: scene of each row (the source set).
        config: label and pair settings.
        proxy_reference: rows defining the proxies' quantiles (default: ``features``).
    """
    scenes = np.asarray(scenes)
    target = mos_to_level(mos)
    subscores = mef_proxy_subscores(features, proxy_reference)
    spreads = _spreads(subscores, config)
    n = len(target)
    i, j = np.triu_indices(n, 1)
    same = scenes[i] == scenes[j]
    rng = np.random.default_rng(config.seed)
    within = np.stack([i[same], j[same]], axis=1)
    cross = _sample(np.stack([i[~same], j[~same]], axis=1), config.max_cross_pairs, rng)
    columns = feature_index(config, "mef")
    return TrainingSet(
        features[:, columns].astype(np.float32), _labels(target, spreads, config), subscores, target,
        np.column_stack([within, _thurstone_targets(target, spreads, within, config.min_spread)]),
        np.column_stack([cross, _thurstone_targets(target, spreads, cross, config.min_spread)]))


def synthetic_training_set(data: SyntheticSet, config: FuScoreConfig, task: str) -> TrainingSet:
    """Soft labels and known / margin pairs of a synthetic ordering set."""
    spreads = _spreads(data.subscores, config)
    within = known_pairs(data)
    i, j = np.triu_indices(len(data), 1)
    diff = data.target[i] - data.target[j]
    keep = (data.group[i] != data.group[j]) & (np.abs(diff) >= config.synthetic_cross_margin)
    better = np.where(diff[keep] > 0, i[keep], j[keep])
    worse = np.where(diff[keep] > 0, j[keep], i[keep])
    cross = _sample(np.stack([better, worse], axis=1), config.max_cross_pairs, np.random.default_rng(config.seed))
    return TrainingSet(
        data.features[:, feature_index(config, task)].astype(np.float32), _labels(data.target, spreads, config),
        data.subscores, data.target,
        np.column_stack([within, np.ones(len(within))]), np.column_stack([cross, np.ones(len(cross))]))


# ---------------------------------------------------------------------------------------- fit
def fit_ensemble(data: TrainingSet, config: FuScoreConfig, loss: LossWeights | None = None) -> list[Any]:
    """Train ``config.ensemble`` :class:`FuScoreNet` models (full batch, Adam).

    Returns:
        The trained models in eval mode.
    """
    import torch

    from ..learned.fuscore.model import FuScoreNet, tripartite_loss

    torch.set_num_threads(max(1, config.threads))
    loss = loss or config.loss
    x = torch.as_tensor(data.features, dtype=torch.float32)
    labels = torch.as_tensor(data.labels, dtype=torch.float32)
    sub = torch.as_tensor(data.subscores, dtype=torch.float32)

    def pairs(table: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        table = np.asarray(table).reshape(-1, 3)
        return (torch.as_tensor(table[:, 0], dtype=torch.long), torch.as_tensor(table[:, 1], dtype=torch.long),
                torch.as_tensor(table[:, 2], dtype=torch.float32))

    within, cross = pairs(data.within), pairs(data.cross)
    models = []
    for member in range(config.ensemble):
        torch.manual_seed(config.seed * 1000 + member)
        net = FuScoreNet(x.shape[1], config.hidden, config.dropout)
        net.set_normalisation(data.features)
        optimiser = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        net.train()
        for _ in range(config.epochs):
            optimiser.zero_grad()
            logits, sub_pred = net(x)
            value, _ = tripartite_loss(logits, sub_pred, labels, sub, within, cross, loss)
            value.backward()
            optimiser.step()
        net.eval()
        models.append(net)
    return models


def predict_scores(models: Sequence[Any], features: np.ndarray) -> np.ndarray:
    """Ensemble score (mean expectation on the 1–5 scale) of feature rows."""
    import torch

    from ..learned.fuscore.model import expectation_and_sigma

    x = torch.as_tensor(np.asarray(features, dtype=np.float32))
    with torch.no_grad():
        scores = [expectation_and_sigma(m(x)[0])[1].numpy() for m in models]
    return np.mean(scores, axis=0)


def cross_validate(features: np.ndarray, mos: np.ndarray, scenes: Sequence[str], config: FuScoreConfig,
                   loss: LossWeights | None = None, folds: Sequence[Sequence[str]] | None = None,
                   progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Held-out predictions of leave-scenes-out cross-validation on rated MEF images.

    Args:
        features, mos, scenes: the rated images.
        config: training settings.
        loss: loss weights (default ``config.loss``).
        folds: lists of held-out scenes (default: one fold per scene).
        progress: ``progress(done, total)`` callback.

    Returns:
        ``(N,)`` scores, each predicted by the model that never saw its scene.
    """
    scenes = np.asarray(scenes)
    folds = [[s] for s in dict.fromkeys(scenes)] if folds is None else folds
    out = np.full(len(scenes), np.nan)
    for k, held_out in enumerate(folds):
        test = np.isin(scenes, list(held_out))
        train = ~test
        data = human_training_set(features[train], mos[train], scenes[train], config)
        models = fit_ensemble(data, config, loss)
        out[test] = predict_scores(models, features[test][:, feature_index(config, "mef")])
        if progress is not None:
            progress(k + 1, len(folds))
    return out


# -------------------------------------------------------------------------------------- data
def _pairs_in(root: Path, first: str, second: str) -> list[tuple[str, Path, Path]]:
    from ..io import IMAGE_SUFFIXES

    a = {p.stem: p for p in sorted((root / first).iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    b = {p.stem: p for p in sorted((root / second).iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    return [(name, a[name], b[name]) for name in sorted(set(a) & set(b))]


def _read_limited(path: Path, side: int) -> np.ndarray:
    from ..io import read_image, resize_to

    image = read_image(path)
    scale = side / max(image.shape[:2])
    if scale < 1:
        image = resize_to(image, (round(image.shape[0] * scale), round(image.shape[1] * scale)), "area")
    return image


def ivif_stacks(data_root: Path, count: int, side: int, seed: int = 0) -> list[tuple[str, list[np.ndarray], np.ndarray]]:
    """RoadScene pairs (visible, infrared) fused by ``fusion.laplacian``, shrunk to ``side``."""
    from ..tools import create_tool

    pairs = _pairs_in(data_root / "ivif" / "roadscene", "vis", "ir")
    if not pairs:
        raise InputError(f"no RoadScene pairs under {data_root / 'ivif' / 'roadscene'}")
    rng = np.random.default_rng(seed)
    chosen = [pairs[i] for i in sorted(rng.choice(len(pairs), min(count, len(pairs)), replace=False))]
    fuser = create_tool("fusion.laplacian")
    stacks = []
    for name, vis_path, ir_path in chosen:
        vis = _read_limited(vis_path, side)
        ir = _read_limited(ir_path, side)
        if ir.shape[:2] != vis.shape[:2]:
            from ..io import resize_to

            ir = resize_to(ir, vis.shape[:2])
        if ir.ndim == 3:
            from ..io import to_gray

            ir = to_gray(ir)
        stacks.append((name, [vis, ir], fuser([vis, ir]).image))
    return stacks


def mff_stacks(data_root: Path, count: int, side: int, seed: int = 0) -> list[tuple[str, list[np.ndarray], np.ndarray]]:
    """Multi-focus pairs generated from RoadScene visible images (region mode); the sharp image is
    the clean fused result."""
    from ..degrade.generators import multifocus_stack
    from ..io import IMAGE_SUFFIXES

    folder = data_root / "ivif" / "roadscene" / "vis"
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
    if not paths:
        raise InputError(f"no RoadScene visible images under {folder}")
    rng = np.random.default_rng(seed + 1)
    chosen = [paths[i] for i in sorted(rng.choice(len(paths), min(count, len(paths)), replace=False))]
    stacks = []
    for k, path in enumerate(chosen):
        sharp = _read_limited(path, side)
        generated = multifocus_stack(sharp, 2, seed=seed * 100 + k, mode="region")
        stacks.append((path.stem, generated.images, sharp))
    return stacks


# ------------------------------------------------------------------------------------ weights
def save_weights(path: str | os.PathLike, models: Sequence[Any], task: str, config: FuScoreConfig,
                 record: dict[str, Any]) -> Path:
    """Write an ensemble as a small ``torch.save`` dict (loadable with ``weights_only=True``)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": "fuscore-1",
        "task": task,
        "feature_names": [FEATURE_NAMES[i] for i in feature_index(config, task)],
        "subdimensions": list(SUBDIMENSIONS[task]),
        "side": int(config.side),
        "hidden": int(config.hidden),
        "dropout": float(config.dropout),
        "members": [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in models],
        "record": json.dumps(record),
    }
    temporary = path.with_suffix(".tmp")
    torch.save(payload, temporary)
    os.replace(temporary, path)
    return path


def _data_root(data_root: str | os.PathLike | None) -> Path:
    from ..metrics.calibration import default_data_root

    root = Path(data_root) if data_root is not None else default_data_root()
    if not root.is_dir():
        raise InputError(f"data folder {root} does not exist (set $FUSEAGENT_DATA or --data)")
    return root


def train_task(task: str, config: FuScoreConfig, data_root: str | os.PathLike | None = None,
               out: str | os.PathLike | None = None, log: Callable[[str], None] = print) -> Path:
    """Train the shipped model of one task on all its training data and write its weights.

    Returns:
        Path of ``fuscore_<task>.pt``.
    """
    if task not in SUBDIMENSIONS:
        raise InputError(f"unknown task '{task}' (valid: {', '.join(SUBDIMENSIONS)})")
    root = _data_root(data_root)
    record: dict[str, Any] = {"config": json.loads(json.dumps(asdict(config), default=list))}
    if task == "mef":
        items = load_waterloo(root)
        features = waterloo_features(items, config.side, config.cache_dir)
        data = human_training_set(features, np.array([i.mos for i in items]), [i.scene for i in items], config)
        record["trained_on"] = "Waterloo MEF (Ma, Zeng & Wang, TIP 2015): 17 scenes x 8 methods, MOS of 23 raters"
    else:
        stacks = (ivif_stacks if task == "ivif" else mff_stacks)(root, config.synthetic_train_images, config.side,
                                                                config.seed)
        log(f"fuscore {task}: {len(stacks)} base images, computing synthetic orderings")
        tag = f"{task}_train_{len(stacks)}_{config.side}_{'-'.join(map(str, config.synthetic_levels))}_{config.seed}"
        synthetic = cached_synthetic(tag, lambda: synthetic_orderings(task, stacks, config.synthetic_levels, config.seed,
                                                                      config.side), config.cache_dir)
        data = synthetic_training_set(synthetic, config, task)
        record["trained_on"] = (f"graded degradations of {len(stacks)} RoadScene-based "
                                f"{'pairs fused by fusion.laplacian' if task == 'ivif' else 'generated multi-focus pairs'}"
                                " (no human scores)")
    log(f"fuscore {task}: {len(data.features)} images, {len(data.within)} within-set and {len(data.cross)} "
        f"cross-set pairs")
    models = fit_ensemble(data, config)
    folder = Path(out) if out is not None else Path(config.weights_dir)
    path = save_weights(folder / f"fuscore_{task}.pt", models, task, config, record)
    log(f"wrote {path}")
    return path


# ---------------------------------------------------------------------------------------- CLI
def add_arguments(p: Any) -> None:
    """Arguments of ``fuseagent train fuscore`` (the parser is made by :mod:`fuseagent.cli.train`)."""
    p.add_argument("--config", help="JSON config (default: built-in settings, as configs/fuscore.json)")
    p.add_argument("--task", action="append", choices=sorted(SUBDIMENSIONS),
                   help="train only this task (repeatable; default: the config's tasks)")
    p.add_argument("--data", help="data root holding quality/ and ivif/ (default: ../shared/data)")
    p.add_argument("--out", help="folder for fuscore_<task>.pt (default: the config's weights_dir)")
    p.set_defaults(func=run)


def run(args: Any) -> int:
    config = load_config(args.config)
    for task in args.task or config.tasks:
        train_task(task, config, args.data, args.out)
    return 0
