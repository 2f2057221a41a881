"""Training of IVTFuse on real infrared–visible pairs (RoadScene and TNO; never VIFB).

Loss (max-intensity + max-gradient, with Sobel gradients ``|∇x| = |Gx| + |Gy|``)::

    L = L1(F, max(IR, VIS_Y)) + λ · L1(|∇F|, max(|∇IR|, |∇VIS_Y|))

Each step draws ``batch`` random pairs, a random ``crop``×``crop`` window of each (reflect-padded
when the image is smaller) and a random horizontal flip, with a fixed seed; the caption of each pair
(:func:`fuseagent.models.text.describe_pair`: scene statistics, and half of the time the perceived
degradations) is embedded once by MiniLM before training. AdamW with a cosine learning-rate decay;
a checkpoint (model, optimiser, random states, loss curve) is written every ``checkpoint_every``
steps and a killed run resumes from it. The result is an fp16 weight file with the caption
embeddings and the training record.

Example configuration (``configs/ivtfuse.json``)::

    {"variant": "full", "datasets": ["ivif/roadscene", "ivif/tno"], "crop": 64, "batch": 8,
     "steps": 600, "lr": 0.001, "grad_weight": 10.0, "seed": 0, "threads": 2, "device": "auto"}
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .config import read_config

__all__ = [
    "TrainSettings",
    "load_settings",
    "PairData",
    "load_pairs",
    "sobel_magnitude",
    "fusion_loss",
    "Batcher",
    "train",
    "learning_rate",
    "resolve_device",
    "knockout_variant",
    "FORBIDDEN_DATASETS",
]

#: test sets that must never be trained on
FORBIDDEN_DATASETS: tuple[str, ...] = ("vifb", "mefb", "lytro")


@dataclass(frozen=True)
class TrainSettings:
    """Settings of one training run (a JSON or YAML config file holds any subset).

    Attributes:
        variant: ``full``, ``notext``, ``nofsa`` or ``nohpa`` (see ``VARIANTS``).
        model: :class:`~fuseagent.models.ivtfuse.IVTFuseConfig` overrides.
        data_root: folder holding ``ivif/`` (default: ``../shared/data`` / ``$FUSEAGENT_DATA``).
        datasets: pair folders under ``data_root``, each with ``ir/`` and ``vis/``.
        crop, batch, steps: random crop side, pairs per step, optimiser steps.
        lr, min_lr, weight_decay, warmup: AdamW and its cosine schedule (linear warm-up steps).
        grad_weight: λ of the gradient term.
        perception_captions: add perceived degradations to half of the captions.
        seed: seed of every random choice.
        threads: torch CPU threads.
        device: ``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda[:N]``.
        log_every, checkpoint_every: steps between log lines / checkpoints.
        snapshot_steps: steps at which a weight file ``<out stem>_stepN.pt`` is also written.
        time_budget_s: stop (checkpoint and export) after this many seconds of training (0: none);
            the learning-rate decay then also follows the elapsed fraction of the budget.
        run_dir: folder of the checkpoint and log.
        out: weight file to write (default: the shipped file of the variant).
    """

    variant: str = "full"
    model: Mapping[str, Any] = field(default_factory=dict)
    data_root: str | None = None
    datasets: tuple[str, ...] = ("ivif/roadscene", "ivif/tno")
    crop: int = 64
    batch: int = 8
    steps: int = 600
    lr: float = 1e-3
    min_lr: float = 2e-5
    weight_decay: float = 1e-4
    warmup: int = 20
    grad_weight: float = 10.0
    perception_captions: bool = True
    seed: int = 0
    threads: int = 2
    device: str = "auto"
    log_every: int = 10
    checkpoint_every: int = 25
    snapshot_steps: tuple[int, ...] = ()
    time_budget_s: float = 0.0
    run_dir: str = "out/train/ivtfuse"
    out: str | None = None

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainSettings:
        """Build from a mapping, rejecting unknown keys and checking values.

        Example:
            >>> TrainSettings.from_dict({"steps": 5, "datasets": ["ivif/tno"]}).datasets
            ('ivif/tno',)
        """
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise InputError(f"unknown training setting(s): {', '.join(sorted(unknown))} (valid: {', '.join(sorted(known))})")
        values = dict(values)
        for key in ("datasets", "snapshot_steps"):
            if key in values:
                values[key] = tuple(values[key])
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        """Raise :class:`InputError` on values that cannot train."""
        from ..models.ivtfuse import VARIANTS

        if self.variant not in VARIANTS:
            raise InputError(f"unknown variant '{self.variant}' (valid: {', '.join(VARIANTS)})")
        for name in ("crop", "batch", "threads", "log_every", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"training setting '{name}' must be >= 1")
        if self.steps < 0 or self.lr <= 0 or self.grad_weight < 0:
            raise InputError("steps must be >= 0, lr > 0 and grad_weight >= 0")
        for dataset in self.datasets:
            if any(bad in dataset.lower() for bad in FORBIDDEN_DATASETS):
                raise InputError(f"'{dataset}' is a test set ({', '.join(FORBIDDEN_DATASETS)}): never train on it")

    def replace(self, **changes: Any) -> TrainSettings:
        """A copy with some settings changed (checked)."""
        return TrainSettings.from_dict({**asdict(self), **changes})


def load_settings(path: str | os.PathLike | None, **overrides: Any) -> TrainSettings:
    """Read a JSON (``.json``) or YAML (``.yaml``/``.yml``) config; ``overrides`` win (None ignored)."""
    values = read_config(path)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainSettings.from_dict(values)


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when a GPU is usable, else ``cpu``; other values are checked.

    Example:
        >>> resolve_device("cpu")
        'cpu'
    """
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device '{device}' asked for but no CUDA GPU is usable (use 'cpu' or 'auto')")
    if not (device == "cpu" or device.startswith("cuda")):
        raise InputError(f"unknown device '{device}' (valid: auto, cpu, cuda, cuda:N)")
    return device


@dataclass
class PairData:
    """Training pairs in memory: infrared and visible luminance planes, names and captions."""

    names: list[str]
    ir: list[np.ndarray]
    vis: list[np.ndarray]
    captions: list[list[str]]


def _pair_files(folder: Path) -> list[tuple[str, Path, Path]]:
    from ..io import IMAGE_SUFFIXES

    ir_dir, vis_dir = folder / "ir", folder / "vis"
    if not (ir_dir.is_dir() and vis_dir.is_dir()):
        raise InputError(f"'{folder}' needs ir/ and vis/ subfolders")
    vis_by_stem = {p.stem: p for p in vis_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    return [(f"{folder.name}/{p.stem}", p, vis_by_stem[p.stem]) for p in sorted(ir_dir.iterdir())
            if p.suffix.lower() in IMAGE_SUFFIXES and p.stem in vis_by_stem]


def load_pairs(root: Path, datasets: Sequence[str], *, perception_captions: bool = True,
               limit: int | None = None, caption_cache: Path | None = None) -> PairData:
    """Read every pair of the datasets as luminance planes and caption them.

    Each pair gets one or two captions: the scene caption, and (``perception_captions``, when the
    perception model is installed and finds something) the caption with perceived degradations.
    ``caption_cache`` (a JSON file) keeps the captions of pairs already described, so runs of
    several variants perceive each pair once.
    """
    from ..io import read_image, to_gray
    from ..models.text import describe_pair

    cache: dict[str, list[str]] = {}
    cache_key = "perception" if perception_captions else "scene"
    if caption_cache is not None and caption_cache.is_file():
        cache = json.loads(caption_cache.read_text()).get(cache_key, {})

    files: list[tuple[str, Path, Path]] = []
    for dataset in datasets:
        files += _pair_files(root / dataset)
    if limit is not None:
        files = files[:limit]
    if not files:
        raise InputError(f"no training pairs found under {root} in {', '.join(datasets)}")
    data = PairData([], [], [], [])
    for name, ir_path, vis_path in files:
        ir, vis = read_image(ir_path), read_image(vis_path)
        if ir.shape[:2] != vis.shape[:2]:
            continue
        captions = cache.get(name)
        if captions is None:
            captions = [describe_pair(ir, vis)]
            if perception_captions:
                with_perception = describe_pair(ir, vis, perception=True)
                if with_perception != captions[0]:
                    captions.append(with_perception)
            cache[name] = captions
        data.names.append(name)
        data.ir.append(to_gray(ir))
        data.vis.append(to_gray(vis))
        data.captions.append(list(captions))
    if caption_cache is not None:
        from ..io import atomic_write

        stored = json.loads(caption_cache.read_text()) if caption_cache.is_file() else {}
        stored[cache_key] = {**stored.get(cache_key, {}), **cache}
        atomic_write(caption_cache, lambda tmp: Path(tmp).write_text(json.dumps(stored, indent=1)))
    return data


def cached_embeddings(captions: Sequence[str], cache: Path) -> dict[str, np.ndarray]:
    """MiniLM token embeddings of the captions, kept in an ``.npz`` file between runs.

    Only captions missing from ``cache`` are embedded (MiniLM is needed only for those), so a run
    directory prepared on one machine trains on another without the text encoder.
    """
    from ..io import atomic_write
    from ..models.text import embed_captions, normalise_caption

    stored: dict[str, np.ndarray] = {}
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as archive:
            names = [str(n) for n in archive["captions"]]
            stored = {name: archive[f"e{i}"] for i, name in enumerate(names)}
    wanted = list(dict.fromkeys(normalise_caption(c) for c in captions))
    missing = [c for c in wanted if c not in stored]
    if missing:
        stored.update(embed_captions(missing))
        ordered = sorted(stored)
        arrays = {f"e{i}": stored[name] for i, name in enumerate(ordered)}
        atomic_write(cache, lambda tmp: np.savez(tmp, captions=np.array(ordered), **arrays))
    return {c: stored[c] for c in wanted}


def sobel_magnitude(x: Any) -> Any:
    """``|Gx| + |Gy|`` of ``(B, 1, H, W)`` tensors with 3×3 Sobel kernels (replicate borders).

    Example:
        >>> import torch
        >>> ramp = torch.arange(5.0).repeat(5, 1)[None, None]
        >>> float(sobel_magnitude(ramp)[0, 0, 2, 2])
        8.0
    """
    import torch
    import torch.nn.functional as F

    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=x.dtype, device=x.device)
    kernels = torch.stack([kx, kx.T])[:, None]
    grads = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernels)
    return grads.abs().sum(1, keepdim=True)


def fusion_loss(fused: Any, ir: Any, vis: Any, grad_weight: float) -> tuple[Any, Any, Any]:
    """``(total, intensity, gradient)`` terms of the IVTFuse loss.

    Example:
        >>> import torch
        >>> a, b = torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)
        >>> [round(float(t), 3) for t in fusion_loss(b, a, b, 10.0)]
        [0.0, 0.0, 0.0]
    """
    import torch

    intensity = (fused - torch.maximum(ir, vis)).abs().mean()
    target = torch.maximum(sobel_magnitude(ir), sobel_magnitude(vis))
    gradient = (sobel_magnitude(fused) - target).abs().mean()
    return intensity + grad_weight * gradient, intensity, gradient


class Batcher:
    """Seeded random crops and flips of the pairs, with their caption embeddings padded."""

    def __init__(self, data: PairData, embeddings: Mapping[str, np.ndarray], crop: int, batch: int, seed: int):
        self.data, self.embeddings, self.crop, self.batch = data, embeddings, crop, batch
        self.rng = np.random.default_rng(seed)

    def _crop(self, plane: np.ndarray, y: int, x: int) -> np.ndarray:
        h, w = plane.shape
        ph, pw = max(0, self.crop - h), max(0, self.crop - w)
        if ph or pw:
            plane = np.pad(plane, ((0, ph), (0, pw)), mode="reflect" if ph < h and pw < w else "edge")
        return plane[y:y + self.crop, x:x + self.crop]

    def next(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(ir, vis, text, valid)``: ``(B, 1, c, c)`` planes, ``(B, L, 384)`` tokens, ``(B, L)`` mask."""
        irs, viss, texts = [], [], []
        for index in self.rng.integers(0, len(self.data.names), self.batch):
            ir, vis = self.data.ir[index], self.data.vis[index]
            h, w = ir.shape
            y = int(self.rng.integers(0, max(1, h - self.crop + 1)))
            x = int(self.rng.integers(0, max(1, w - self.crop + 1)))
            a, b = self._crop(ir, y, x), self._crop(vis, y, x)
            if self.rng.random() < 0.5:
                a, b = a[:, ::-1], b[:, ::-1]
            captions = self.data.captions[index]
            texts.append(self.embeddings[captions[int(self.rng.integers(0, len(captions)))]])
            irs.append(a)
            viss.append(b)
        length = max(len(t) for t in texts)
        text = np.zeros((self.batch, length, texts[0].shape[1]), np.float32)
        valid = np.zeros((self.batch, length), bool)
        for i, t in enumerate(texts):
            text[i, :len(t)] = t
            valid[i, :len(t)] = True
        stack = lambda planes: np.ascontiguousarray(np.stack(planes)[:, None], dtype=np.float32)  # noqa: E731
        return stack(irs), stack(viss), text, valid


def learning_rate(step: int, s: TrainSettings, elapsed: float = 0.0) -> float:
    """Linear warm-up, then cosine decay from ``lr`` to ``min_lr``.

    The decay follows the step fraction, or the elapsed fraction of ``time_budget_s`` when that is
    larger, so a run on a slow machine still ends annealed.

    Example:
        >>> s = TrainSettings(lr=1e-3, min_lr=0.0, warmup=0, steps=100)
        >>> [round(learning_rate(k, s), 6) for k in (0, 50, 100)]
        [0.001, 0.0005, 0.0]
        >>> round(learning_rate(10, s.replace(time_budget_s=100.0), elapsed=50.0), 6)
        0.0005
    """
    if step < s.warmup:
        return s.lr * (step + 1) / s.warmup
    progress = (step - s.warmup) / max(1, s.steps - s.warmup)
    if s.time_budget_s:
        progress = max(progress, elapsed / s.time_budget_s)
    return s.min_lr + 0.5 * (s.lr - s.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


def _data_root(settings: TrainSettings) -> Path:
    if settings.data_root:
        return Path(settings.data_root)
    from ..metrics.calibration import default_data_root

    return default_data_root()


def train(settings: TrainSettings, *, log: Callable[[str], None] = print, resume: bool = True,
          limit_pairs: int | None = None) -> dict[str, Any]:
    """Train one variant and write its weight file; returns the training record.

    Args:
        settings: the run's settings.
        log: where progress lines go.
        resume: continue from ``run_dir/<variant>/checkpoint.pt`` when it exists and its settings
            match (a different ``steps`` continues the run under the new total's schedule).
        limit_pairs: use only the first pairs (for quick tests).

    Returns:
        The training record stored in the weight file (settings, parameter count, curve, seconds).
    """
    import torch

    from ..io import atomic_write
    from ..models.ivtfuse import VARIANTS, IVTFuse, IVTFuseConfig, count_parameters, save_weights, weights_path
    from ..models.text import all_scene_captions, describe_pair

    torch.set_num_threads(int(settings.threads))
    device = resolve_device(settings.device)
    torch.manual_seed(settings.seed)
    np.random.seed(settings.seed)
    root = _data_root(settings)
    t_load = time.perf_counter()
    data = load_pairs(root, settings.datasets, perception_captions=settings.perception_captions, limit=limit_pairs,
                      caption_cache=Path(settings.run_dir) / "captions.json")
    captions = sorted({c for cs in data.captions for c in cs})
    default_caption = describe_pair(np.zeros((8, 8), np.float32), np.full((8, 8), 0.5, np.float32))
    embeddings = (cached_embeddings(captions + all_scene_captions(), Path(settings.run_dir) / "embeddings.npz")
                  if VARIANTS[settings.variant].get("use_text", True) else {})
    if not embeddings:
        embeddings = {c: np.zeros((1, 384), np.float32) for c in captions}
    log(f"{len(data.names)} pairs, {len(captions)} distinct captions, loaded in {time.perf_counter() - t_load:.1f}s")

    cfg = IVTFuseConfig.from_dict({**dict(settings.model), **VARIANTS[settings.variant]})
    model = IVTFuse(cfg).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    batcher = Batcher(data, embeddings, settings.crop, settings.batch, settings.seed)
    run_dir = Path(settings.run_dir) / settings.variant
    checkpoint_path = run_dir / "checkpoint.pt"
    out_path = Path(settings.out) if settings.out else weights_path(settings.variant)
    fingerprint = json.dumps({k: v for k, v in asdict(settings).items()
                              if k not in ("time_budget_s", "threads", "log_every", "checkpoint_every", "device", "steps",
                                           "snapshot_steps", "out")},
                             sort_keys=True, default=list)
    step, curve, seconds = 0, [], 0.0
    if resume and checkpoint_path.is_file():
        state = torch.load(checkpoint_path, map_location=device, weights_only=False)
        if state.get("fingerprint") == fingerprint:
            model.load_state_dict(state["model"])
            optimiser.load_state_dict(state["optimiser"])
            batcher.rng.bit_generator.state = state["rng"]
            torch.set_rng_state(state["torch_rng"])
            step, curve, seconds = state["step"], state["curve"], state["seconds"]
            log(f"resumed from {checkpoint_path} at step {step}")
        else:
            log(f"ignoring {checkpoint_path}: it was made with other settings")

    def checkpoint() -> None:
        payload = {"fingerprint": fingerprint, "model": model.state_dict(), "optimiser": optimiser.state_dict(),
                   "rng": batcher.rng.bit_generator.state, "torch_rng": torch.get_rng_state(), "step": step,
                   "curve": curve, "seconds": seconds}
        atomic_write(checkpoint_path, lambda tmp: torch.save(payload, tmp))

    def record() -> dict[str, Any]:
        return {"settings": json.loads(json.dumps(asdict(settings), default=list)), "variant": settings.variant,
                "device": device, "parameters": count_parameters(model), "steps": step, "seconds": round(seconds, 1),
                "pairs": len(data.names), "datasets": list(settings.datasets), "captions": len(captions),
                "curve": curve}

    def export(path: Path) -> None:
        keep = {c: embeddings[c] for c in embeddings} if cfg.use_text else {}
        save_weights(path, model, captions=keep, default_caption=default_caption, training=record())

    log(f"variant {settings.variant}: {count_parameters(model):,} parameters on {device}; "
        f"crop {settings.crop}, batch {settings.batch}, {settings.steps} steps")
    model.train()
    window: list[tuple[float, float, float]] = []
    start = time.perf_counter() - seconds
    while step < settings.steps:
        if settings.time_budget_s and time.perf_counter() - start >= settings.time_budget_s:
            log(f"time budget of {settings.time_budget_s:.0f}s reached at step {step}")
            break
        ir, vis, text, valid = (torch.from_numpy(a).to(device) for a in batcher.next())
        rate = learning_rate(step, settings, time.perf_counter() - start)
        for group in optimiser.param_groups:
            group["lr"] = rate
        fused = model(ir, vis, text, valid)
        total, intensity, gradient = fusion_loss(fused, ir, vis, settings.grad_weight)
        optimiser.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        step += 1
        seconds = time.perf_counter() - start
        window.append((total.item(), intensity.item(), gradient.item()))
        if step % settings.log_every == 0 or step == settings.steps:
            mean = np.mean(window, axis=0)
            curve.append({"step": step, "loss": round(float(mean[0]), 5), "intensity": round(float(mean[1]), 5),
                          "gradient": round(float(mean[2]), 5), "seconds": round(seconds, 1)})
            window = []
            log(f"step {step}/{settings.steps}  loss {mean[0]:.4f} (int {mean[1]:.4f}, grad {mean[2]:.4f})  "
                f"lr {rate:.2e}  {seconds:.0f}s")
        if step in settings.snapshot_steps:
            snapshot = out_path.with_name(f"{out_path.stem}_step{step}{out_path.suffix}")
            export(snapshot)
            log(f"snapshot {snapshot}")
        if step % settings.checkpoint_every == 0:
            checkpoint()
    checkpoint()
    model.eval()
    export(out_path)
    log(f"wrote {out_path} ({out_path.stat().st_size / 1e6:.2f} MB) after {step} steps, {seconds:.0f}s")
    return record()


def knockout_variant(source: str | os.PathLike, variant: str, out: str | os.PathLike,
                     generic_caption: str | None = None) -> Path:
    """Derive an ablation variant from trained full-model weights by removing one module.

    ``nofsa`` / ``nohpa`` drop the module (each is residual, so the rest of the network is kept as
    trained); ``notext`` replaces the caption by fixed query tokens, the projected tokens of one
    generic caption (default: the fusion instruction alone), so no image-specific text reaches the
    network. No retraining: this measures what the trained module contributes.

    Returns:
        The written weight file.
    """
    import torch

    from ..models.ivtfuse import VARIANTS, IVTFuse, IVTFuseConfig, load_weights, save_weights
    from ..models.text import FUSION_INSTRUCTION, CaptionEmbedder

    if variant not in VARIANTS or variant == "full":
        raise InputError(f"knock-out needs an ablation variant ({', '.join(v for v in VARIANTS if v != 'full')})")
    model, payload = load_weights(source)
    settings = {**payload["config"], **VARIANTS[variant]}
    state = dict(model.state_dict())
    queries = None
    if variant == "notext":
        tokens = CaptionEmbedder(payload.get("captions", {}))(generic_caption or FUSION_INSTRUCTION)
        with torch.no_grad():
            queries = model.text_proj(torch.from_numpy(tokens))
        settings["learned_queries"] = int(queries.shape[0])
    derived = IVTFuse(IVTFuseConfig.from_dict(settings))
    keep = {k: v for k, v in state.items() if k in derived.state_dict()}
    if queries is not None:
        keep["queries"] = queries
    missing = set(derived.state_dict()) - set(keep)
    if missing:
        raise InputError(f"cannot derive {variant}: no trained values for {', '.join(sorted(missing))}")
    derived.load_state_dict(keep)
    training = dict(payload.get("training", {}))
    training["derived"] = {"from": Path(source).name, "method": f"knock-out ({variant}), no retraining"}
    return save_weights(out, derived.eval(), captions=payload.get("captions", {}) if derived.cfg.use_text else {},
                        default_caption=payload.get("default_caption", ""), training=training)
