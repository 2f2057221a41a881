"""Build a wild benchmark suite: degraded pairs + clean sources + ``manifest.jsonl``.

Layout of ``OUT``::

    suite.json            the settings (a re-run with other settings is refused)
    manifest.jsonl        one JSON line per completed sample, written after its images
    00000/ir.png …        degraded inputs (roles ir/vis or a/b)
    00000/clean_ir.png …  the same inputs before degradation
    00000/reference.png   the clean image a generated pair came from (MEF/MFF from one image)
    00000/mask_motion_ir.png …  ground-truth masks

Each sample ``i`` draws everything from ``numpy.random.default_rng([seed, i])``, so a sample does
not depend on which others were built: an interrupted run is completed by running the same
command again (records without all their files, truncated manifest lines and temporary files are
dropped first, complete samples are skipped).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ImageReadError, InputError
from ..io import IMAGE_SUFFIXES, atomic_write, quantise, read_image, resize_to, write_image
from .base import degradation_card, degrade, json_safe
from .generators import exposure_bracket, multifocus_stack
from .geometric import mean_displacement
from .recipes import STEP_ORDER, Recipe, resolve_recipe

__all__ = ["Source", "Sample", "discover_sources", "make_sample", "build_suite", "read_manifest", "limit_size",
           "SUITE_VERSION"]

#: 2: clean inputs rounded to 8-bit levels before degrading (as captured frames are stored)
#: 3: geometric warps and moved objects interpolated with Lanczos, not bilinear (no unlabelled softening)
SUITE_VERSION = 3
_ID = re.compile(r"^\d{5,}$")
_IR_DIRS = ("ir", "IR", "infrared", "Infrared")
_VIS_DIRS = ("vis", "VIS", "visible", "Visible", "vi", "VI")


@dataclass(frozen=True)
class Source:
    """Where one sample's clean inputs come from: ``files`` maps roles to paths (a pair or a
    stack), or holds one path under ``"image"`` for a pair generated from a single image."""

    name: str
    files: dict[str, str]

    @property
    def single(self) -> bool:
        return list(self.files) == ["image"]


@dataclass
class Sample:
    """One generated sample before it is written."""

    images: dict[str, np.ndarray]
    clean: dict[str, np.ndarray]
    reference: np.ndarray | None
    masks: dict[str, np.ndarray]
    record: dict[str, Any] = field(default_factory=dict)


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not p.name.startswith("."))


def discover_sources(src: str | os.PathLike, task: str) -> list[Source]:
    """Find the clean sources of a task in ``src``.

    * IVIF: ``src/ir/NAME.*`` and ``src/vis/NAME.*`` with matching names.
    * MEF/MFF: sub-folders holding ≥ 2 images (a bracket or focus pair: first = ``a``, last = ``b``),
      and/or single images directly in ``src`` (a pair is generated from each).

    Raises:
        InputError: ``src`` is missing or holds no usable source.
    """
    root = Path(src)
    if not root.is_dir():
        raise InputError(f"source folder '{root}' does not exist")
    if task == "ivif":
        ir_dir = next((root / d for d in _IR_DIRS if (root / d).is_dir()), None)
        vis_dir = next((root / d for d in _VIS_DIRS if (root / d).is_dir()), None)
        if ir_dir is None or vis_dir is None:
            raise InputError(f"'{root}' needs ir/ and vis/ folders for IVIF sources")
        vis = {p.stem: p for p in _images_in(vis_dir)}
        pairs = [Source(p.stem, {"ir": str(p), "vis": str(vis[p.stem])}) for p in _images_in(ir_dir) if p.stem in vis]
        if not pairs:
            raise InputError(f"'{root}': no ir/ and vis/ images with matching names")
        return pairs
    if task not in ("mef", "mff"):
        raise InputError(f"unknown fusion task '{task}' (valid: ivif, mef, mff)")
    sources = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = _images_in(sub)
        if len(files) >= 2:
            sources.append(Source(sub.name, {"a": str(files[0]), "b": str(files[-1])}))
    sources += [Source(p.stem, {"image": str(p)}) for p in _images_in(root)]
    if not sources:
        raise InputError(f"'{root}' holds no images nor sub-folders with image pairs")
    return sources


def limit_size(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """Shrink ``image`` so that its long side is at most ``max_side`` (None or 0: unchanged)."""
    if not max_side or max(image.shape[:2]) <= max_side:
        return image
    scale = max_side / max(image.shape[:2])
    return resize_to(image, (max(2, round(image.shape[0] * scale)), max(2, round(image.shape[1] * scale))))


def _load_clean(task: str, source: Source, rng: np.random.Generator, max_side: int | None,
                prepare: Callable[[np.ndarray], np.ndarray] | None = None
                ) -> tuple[dict[str, np.ndarray], np.ndarray | None, dict[str, Any], dict[str, dict[str, int]], list[str]]:
    """Clean inputs per role, the reference image (generated pairs), generator facts, labels, and
    the perceived types that are inherent to the sources (not known, so not ground truth).

    The clean inputs are 8-bit frames, as a camera stores a capture (and as ``clean_*.png`` are
    written): a source shrunk to ``max_side`` or a generated bracket / focus pair is rounded to 8-bit
    levels before any degradation, so a re-exposure of it leaves the same histogram trace as on a
    frame read from disk. ``prepare`` (tuning only) re-renders a single source image before a pair
    is generated from it.
    """
    if task == "ivif":
        vis = limit_size(read_image(source.files["vis"]), max_side)
        ir = resize_to(read_image(source.files["ir"], mode="gray"), vis.shape[:2])
        return {"ir": quantise(ir), "vis": quantise(vis)}, None, {}, {"ir": {}, "vis": {}}, []
    inherent = ["blur"] if task == "mff" else []
    if not source.single:
        a = limit_size(read_image(source.files["a"]), max_side)
        b = resize_to(read_image(source.files["b"]), a.shape[:2])
        if b.ndim != a.ndim:
            a, b = (a, np.repeat(b[..., None], 3, 2)) if a.ndim == 3 else (np.repeat(a[..., None], 3, 2), b)
        if task == "mef":
            inherent += ["low_light", "over_exposure"]
        return {"a": quantise(a), "b": quantise(b)}, None, {}, {"a": {}, "b": {}}, inherent
    image = quantise(limit_size(read_image(source.files["image"]), max_side))
    if prepare is not None:
        image = quantise(prepare(image))
    if task == "mef":
        gen = exposure_bracket(image, 2, rng)
        # the darker frame first, like a bracket on disk
    else:
        gen = multifocus_stack(image, 2, rng, mode="region" if rng.random() < 0.5 else "depth")
    clean = {"a": quantise(gen.images[0]), "b": quantise(gen.images[1])}
    masks = {f"focus_{r}": m["focus"] for r, m in zip("ab", gen.masks) if "focus" in m}
    return clean, image, {"generator": json_safe(gen.params), "masks": masks}, {"a": gen.labels[0], "b": gen.labels[1]}, inherent


def _warp_mask(mask: np.ndarray, transform: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.warpPerspective(mask.astype(np.uint8), np.asarray(transform, np.float64), (size[1], size[0]),
                               flags=cv2.INTER_NEAREST, borderValue=0).astype(bool)


def make_sample(task: str, source: Source, recipes: Sequence[Recipe], seed: int, index: int,
                max_side: int | None = 640, prepare: Callable[[np.ndarray], np.ndarray] | None = None) -> Sample:
    """Build sample ``index`` of a suite (everything drawn from ``default_rng([seed, index])``);
    ``prepare`` re-renders a single source image first (see :func:`_load_clean`)."""
    rng = np.random.default_rng([int(seed), int(index)])
    recipe = recipes[int(rng.integers(len(recipes)))]
    clean, reference, gen_info, labels, inherent = _load_clean(task, source, rng, max_side, prepare)
    roles = list(clean)
    moving = roles[0] if task == "ivif" else roles[-1]
    images = {r: im.copy() for r, im in clean.items()}
    masks: dict[str, np.ndarray] = dict(gen_info.get("masks", {}))
    geometric = np.eye(3)
    steps_out: list[dict[str, Any]] = []
    planned = []
    for step in recipe.steps:
        level, fixed = step.draw(rng)
        planned.append((step, level, fixed))
    planned.sort(key=lambda item: STEP_ORDER.index(item[0].op))
    for step, level, fixed in planned:
        targets = roles if step.role == "both" else [step.role]
        shared: dict[str, Any] | None = None
        for role in targets:
            card = degradation_card(step.op)
            if card.needs_colour and images[role].ndim != 3:
                continue
            params = dict(fixed) if shared is None else shared
            out = degrade(step.op, images[role], rng, level, **params)
            if shared is None and step.role == "both":
                shared = {k: out.params[k] for k in card.params if k in out.params}
            old_size = images[role].shape[:2]
            images[role] = out.image
            if out.transform is not None:
                for name in [n for n in masks if n.endswith(f"_{role}")]:
                    masks[name] = _warp_mask(masks[name], out.transform, out.image.shape[:2])
                if step.op.startswith("geometric."):
                    geometric = out.transform @ geometric
            for name, mask in out.masks.items():
                if name in ("motion", "object", "hole", "precipitation"):
                    masks[f"{name}_{role}"] = mask
            for kind, lvl in out.labels.items():
                labels[role][kind] = max(labels[role].get(kind, 0), int(lvl))
            steps_out.append({"role": role, "op": step.op, "level": level, "params": out.params,
                              "labels": out.labels, "size_before": list(old_size)})
    record = {
        "task": task, "recipe": recipe.name, "group": recipe.group, "index": int(index), "seed": [int(seed), int(index)],
        "source": {"name": source.name, **source.files}, "roles": roles, "moving": moving,
        "size": {r: list(im.shape[:2]) for r, im in images.items()},
        "steps": steps_out, "labels": labels, "inherent": inherent,
        "misalignment": {"role": moving, "transform": np.round(geometric, 8).tolist(),
                         "displacement_px": round(mean_displacement(geometric, clean[moving].shape[:2]), 4)},
    }
    if "generator" in gen_info:
        record["generator"] = gen_info["generator"]
    return Sample(images, clean, reference, masks, json_safe(record))


def read_manifest(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Records of a manifest; a truncated last line (interrupted write) is ignored."""
    records = []
    path = Path(path)
    if not path.exists():
        return records
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and "id" in rec:
            records.append(rec)
    return records


def _settings(task: str, src: str, recipe: str, n: int, seed: int, per_source: int, max_side: int | None) -> dict[str, Any]:
    return {"version": SUITE_VERSION, "task": task, "src": src, "recipe": recipe, "n": int(n), "seed": int(seed),
            "per_source": int(per_source), "max_side": max_side}


def _write_json(path: Path, obj: Any) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=2) + "\n"))


def _clean_partial(out: Path, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep records whose files all exist; remove temporary files and sample folders without a record."""
    good = [r for r in records if all((out / f).is_file() for f in r.get("files", {}).values())]
    keep = {r["id"] for r in good}
    for p in out.rglob(".*"):
        if p.is_file():
            p.unlink()
    for d in out.iterdir():
        if d.is_dir() and _ID.match(d.name) and d.name not in keep:
            shutil.rmtree(d)
    return good


def build_suite(task: str, src: str | os.PathLike | Sequence[Source], recipe: str, n: int, seed: int,
                out: str | os.PathLike, *, per_source: int = 1, max_side: int | None = 640,
                progress: bool = True, on_sample: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Build (or complete) a suite of ``n`` samples in ``out``; returns the manifest records.

    Args:
        task: ``ivif``, ``mef`` or ``mff``.
        src: source folder (see :func:`discover_sources`) or an explicit list of sources.
        recipe: recipe name, group letter ``A``/``B``/``C`` or ``all``.
        n: number of samples (≥ 1, at most ``per_source`` × number of sources).
        seed: master seed.
        out: output folder.
        per_source: how many samples may use the same source (each with other degradations).
        max_side: sources larger than this are shrunk first (None: keep).
        progress: show a progress bar.
        on_sample: called with each new record.

    Raises:
        InputError: unknown task/recipe, ``n`` too large for the sources, a source that cannot be
            read, or ``out`` holding a suite built with other settings.
    """
    if task not in ("ivif", "mef", "mff"):
        raise InputError(f"unknown fusion task '{task}' (valid: ivif, mef, mff)")
    recipes = resolve_recipe(task, recipe)
    if isinstance(src, (str, os.PathLike)):
        sources, src_label = discover_sources(src, task), str(Path(src).resolve())
    else:
        sources, src_label = list(src), "explicit:" + ",".join(s.name for s in src)
    if n < 1:
        raise InputError(f"--n must be at least 1, got {n}")
    if per_source < 1:
        raise InputError(f"--per-source must be at least 1, got {per_source}")
    if n > per_source * len(sources):
        raise InputError(f"N={n} is too large for {len(sources)} sources at {per_source} sample(s) per source "
                         f"(raise --per-source to {-(-n // len(sources))} or lower N)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = _settings(task, src_label, recipe, n, seed, per_source, max_side)
    settings_path = out / "suite.json"
    if settings_path.exists():
        try:
            old = json.loads(settings_path.read_text())
        except json.JSONDecodeError:
            old = None
        if isinstance(old, dict) and old.get("version") != SUITE_VERSION:
            raise InputError(f"'{out}' holds a suite built by synthesis version {old.get('version')} "
                             f"(this is version {SUITE_VERSION}); use an empty folder")
        if old != settings:
            raise InputError(f"'{out}' holds a suite built with other settings; use an empty folder")
    else:
        _write_json(settings_path, settings)
    manifest = out / "manifest.jsonl"
    records = read_manifest(manifest)
    valid = _clean_partial(out, records)
    if len(valid) != len(records) or (manifest.exists() and len(manifest.read_text().splitlines()) != len(valid)):
        atomic_write(manifest, lambda tmp: Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in valid)))
    done = {r["index"] for r in valid}
    todo = [i for i in range(n) if i not in done]
    n_src = len(sources)

    def source_of(i: int) -> Source:
        perm = np.random.default_rng([int(seed), i // n_src, 7919]).permutation(n_src)
        return sources[int(perm[i % n_src])]

    from tqdm import tqdm

    bar = tqdm(total=n, initial=n - len(todo), desc=f"synth {task}", unit="pair", disable=not progress)
    try:
        for i in todo:
            source = source_of(i)
            try:
                sample = make_sample(task, source, recipes, seed, i, max_side)
            except ImageReadError as exc:
                raise InputError(f"unreadable source '{source.name}': {exc}") from None
            sid = f"{i:05d}"
            files: dict[str, str] = {}
            for role, im in sample.images.items():
                files[role] = f"{sid}/{role}.png"
                write_image(out / files[role], im)
            for role, im in sample.clean.items():
                files[f"clean_{role}"] = f"{sid}/clean_{role}.png"
                write_image(out / files[f"clean_{role}"], im)
            if sample.reference is not None:
                files["reference"] = f"{sid}/reference.png"
                write_image(out / files["reference"], sample.reference)
            for name, mask in sample.masks.items():
                files[f"mask_{name}"] = f"{sid}/mask_{name}.png"
                write_image(out / files[f"mask_{name}"], mask.astype(np.float32))
            record = {"id": sid, **sample.record, "files": files}
            with open(manifest, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            valid.append(record)
            if on_sample is not None:
                on_sample(record)
            bar.update(1)
    finally:
        bar.close()
    return sorted(valid, key=lambda r: r["index"])
