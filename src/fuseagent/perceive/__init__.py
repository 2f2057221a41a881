"""Degradation perception: what is wrong with each image of a fusion input, and between them.

:func:`perceive` returns a :class:`~.report.PerceptionReport`: per image, a severity level on
AgenticIR's six-step scale and a continuous estimate for noise, blur, haze, rain, low light,
over-exposure, low resolution, stripe noise and JPEG (measured estimators feeding a small
classifier trained on synthesised degradations; JPEG read from the blocks' quantisation step
wherever that step is found); for the pair, misalignment (estimated
displacement), resolution, exposure and white-balance mismatch, moving objects (mask and area)
and complementarity (which image is in focus / well exposed where); and a caption.
"""

from __future__ import annotations

import os
import sys
import types
import time
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ..degrade.photometric import REFERENCE_GAMMA
from ..degrade.severity import SCALES, level_of
from ..errors import InputError
from ..io import check_image, read_image, resize_to
from ..offload import HelperError, offloadable
from ..protocol import roles_for
from .align import Alignment, estimate_alignment
from .features import FEATURE_NAMES, image_features, luminance, pair_context
from .model import DegradationModel, load_model, pool_scene_types
from .relational import MotionEstimate, complementarity, detect_motion, exposure_mismatch_ev, white_balance_mismatch
from .report import DegradationEstimate, ImagePerception, PerceptionReport, caption_for, unit_of

__all__ = ["perceive", "measure", "Measurements", "PerceptionReport", "ImagePerception", "DegradationEstimate",
           "severity_to_value", "moving_and_reference", "jpeg_from_blocks"]

_MEASURED = {"noise": "noise_flat", "blur": "blur_w50", "haze": "haze_density", "rain": "rain_excess",
             "low_resolution": "resample_2", "stripe": "stripe_col", "jpeg": "grid_block"}


def severity_to_value(kind: str, severity: float) -> float:
    """Continuous severity (1..5) → the type's physical quantity (level ``k`` ↔ its bin's middle).

    Example:
        >>> round(severity_to_value("noise", 3.0), 4)
        0.041
    """
    edges = SCALES[kind]
    return float(np.interp(severity, [0.5, 1.5, 2.5, 3.5, 4.5, 5.5], edges))


def moving_and_reference(task: str, roles: list[str]) -> tuple[str, str]:
    """The role that is registered onto the other (infrared for IVIF, the last image otherwise).

    Example:
        >>> moving_and_reference("ivif", ["ir", "vis"]), moving_and_reference("mef", ["a", "b"])
        (('ir', 'vis'), ('b', 'a'))
    """
    if task == "ivif":
        return roles[0], roles[1]
    return roles[-1], roles[0]


@dataclass
class Measurements:
    """Raw measurements of a pair (the classifier's inputs and the relational estimates)."""

    task: str
    roles: list[str]
    images: list[np.ndarray]
    features: np.ndarray
    alignment: Alignment
    motion: MotionEstimate
    exposure_ev: list[float]
    log_rb: float | None
    complementarity: dict[str, Any]
    scale: float


def _load(image: Any, name: str, modality: str) -> np.ndarray:
    if isinstance(image, (str, os.PathLike)):
        return read_image(image, mode="gray" if modality == "ir" else "auto")
    return check_image(np.asarray(image), name)


@offloadable("perceive.image_features")
def _image_features_in_helper(image: np.ndarray, modality: str) -> dict[str, float]:
    return image_features(image, modality)


def measure(images: list[np.ndarray], task: str, helper: Any = None) -> Measurements:
    """Compute every measured estimate of a pair (no classifier).

    ``helper``: a :class:`~fuseagent.offload.Helper` that measures one image's features (the
    smaller in bytes; of two alike, the second) while this process measures the other one and the
    alignment (the same values; when the helper cannot answer, they are measured here).
    """
    roles = roles_for(task, len(images))
    if len(images) != 2:
        raise InputError(f"perception takes a pair of images, got {len(images)}")
    moving_role, ref_role = moving_and_reference(task, roles)
    modalities = ["ir" if r == "ir" else "vis" for r in roles]
    far = None
    if helper is not None:
        # the smaller one crosses the pipe (an RGB frame costs this process more to send than its extra
        # features cost); of two alike, the second (IVIF: the visible image, whose features cost more)
        i_far = 0 if images[0].nbytes < images[1].nbytes else 1
        far = (i_far, helper.submit("perceive.image_features", images[i_far], modalities[i_far]))
    grays = [luminance(im) for im in images]
    dicts: list[dict[str, float] | None] = [
        None if far is not None and i == far[0] else image_features(im, modalities[i], grays[i])
        for i, im in enumerate(images)]
    i_ref, i_mov = roles.index(ref_role), roles.index(moving_role)
    ref, mov = images[i_ref], images[i_mov]
    scale = float(np.sqrt(mov.shape[0] * mov.shape[1] / (ref.shape[0] * ref.shape[1])))
    alignment = estimate_alignment(grays[i_ref], grays[i_mov])
    if far is not None:
        try:
            dicts[far[0]] = far[1].result()
        except HelperError:  # the helper is gone: measure here
            dicts[far[0]] = image_features(images[far[0]], modalities[far[0]], grays[far[0]])
    feats = np.array([[d[n] for n in FEATURE_NAMES] for d in dicts])
    # Relations are measured at a reduced size (work width 256) on luminance, the moving image warped there.
    h, w = ref.shape[:2]
    k = min(1.0, 256.0 / w)
    sh, sw = max(16, round(h * k)), max(16, round(w * k))
    to_small = np.diag([sw / w, sh / h, 1.0])
    small_t = to_small @ alignment.transform @ np.linalg.inv(to_small)

    def warped_small(image: np.ndarray) -> np.ndarray:
        return cv2.warpPerspective(resize_to(image, (sh, sw)), small_t, (sw, sh),
                                   flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT101)

    if (alignment.work_images is not None and alignment.work_images[0].shape == (sh, sw)
            and grays[i_mov].shape == grays[i_ref].shape):
        # the alignment's working copies are these very resamplings (area, same size), unclipped
        ref_s, mov_s = (np.clip(a, 0, 1).astype(np.float32) for a in alignment.work_images)
    else:
        ref_s, mov_s = resize_to(grays[i_ref], (sh, sw)), resize_to(grays[i_mov], (sh, sw))
    mov_aligned = warped_small(mov_s)  # already at (sh, sw): resize_to returns it as it is
    motion = detect_motion(ref_s, mov_aligned, same_modality=task != "ivif")
    if motion.mask.shape != (h, w):
        motion.mask = cv2.resize(motion.mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    first, second = (ref_s, mov_aligned) if i_ref == 0 else (mov_aligned, ref_s)
    ev = [exposure_mismatch_ev(first, second)]
    if task != "ivif":
        # Each image relative to its partner (same scene, same modality); a sharpness difference is
        # the nature of a multi-focus pair, not a degradation.
        pair_context(feats, ev[0], sharpness=task == "mef", bracket=task == "mef")
    log_rb = None
    if ref.ndim == 3 and mov.ndim == 3:
        colour_ref, colour_mov = resize_to(ref, (sh, sw)), warped_small(mov)
        log_rb = white_balance_mismatch(*((colour_ref, colour_mov) if i_ref == 0 else (colour_mov, colour_ref)))
    comp = complementarity(first, second)
    return Measurements(task, roles, images, feats, alignment, motion, ev, log_rb, comp, scale)


def _settings(model: DegradationModel, key: str, task: str, default: float) -> float:
    value = model.settings.get(key, default)
    if isinstance(value, dict):
        return float(value.get(task, default))
    return float(value)


def jpeg_from_blocks(f: dict[str, float]) -> tuple[bool, int, float] | None:
    """JPEG read directly from the blocks' DCT coefficients, when their quantisation step was found
    (features ``dct_quality_loss`` > 0 with ``dct_peak`` ≥ 0.5; :func:`~.features.dct_quantisation`):
    ``(present, level, 100 - quality)`` on the ``jpeg`` scale, present from its level-1 edge (45)
    on. ``None`` when no step was found (never compressed, compressed on another grid phase, or
    resampled since); the classifier decides then.

    The step is the compression's own parameter, measured the same way on any scene, so where it
    is found it decides instead of the classifier, whose boundary moves with the scenes it was
    tuned on (the reported ``probability`` stays the classifier's).

    Example:
        >>> jpeg_from_blocks({"dct_quality_loss": 62.0, "dct_peak": 0.8})
        (True, 2, 62.0)
        >>> jpeg_from_blocks({"dct_quality_loss": 27.0, "dct_peak": 0.7})
        (False, 0, 27.0)
        >>> jpeg_from_blocks({"dct_quality_loss": 0.0, "dct_peak": 0.1}) is None
        True
    """
    loss, peak = float(f["dct_quality_loss"]), float(f["dct_peak"])
    if loss <= 0 or peak < 0.5:
        return None
    level = level_of("jpeg", loss)
    return level > 0, level, loss


def _measured_value(kind: str, f: dict[str, float]) -> float:
    if kind in _MEASURED:
        return float(f[_MEASURED[kind]])
    lin_mean = float(np.clip(f["mean"], 1e-3, 1)) ** REFERENCE_GAMMA
    if kind == "low_light":
        return float(np.log2(0.18 / lin_mean))
    return float(f["frac_clipped"])  # over_exposure


def perceive(a: Any, b: Any, task: str = "ivif", *, model: DegradationModel | None = None,
             helper: Any = None) -> PerceptionReport:
    """Perceive the degradations of a fusion pair.

    Args:
        a: first image (IVIF: infrared; MEF/MFF: image A), an array or a path.
        b: second image (IVIF: visible; MEF/MFF: image B).
        task: ``ivif``, ``mef`` or ``mff``.
        model: classifier to use (default: the shipped weights).
        helper: a :class:`~fuseagent.offload.Helper` that measures one image meanwhile (:func:`measure`).

    Returns:
        A :class:`PerceptionReport`.

    Raises:
        InputError: unknown task or unusable images.

    Example:
        >>> import numpy as np, fuseagent
        >>> rng = np.random.default_rng(0)
        >>> x = np.clip(0.5 + 0.2 * rng.standard_normal((96, 128)), 0, 1).astype(np.float32)
        >>> rep = fuseagent.perceive(x, x, "mff")
        >>> rep.misalignment["displacement_px"]
        0.0
    """
    if task not in ("ivif", "mef", "mff"):
        raise InputError(f"unknown fusion task '{task}' (valid: ivif, mef, mff)")
    start = time.perf_counter()
    roles = roles_for(task, 2)
    images = [_load(im, f"image {r}", "ir" if r == "ir" else "vis") for im, r in zip((a, b), roles)]
    model = model or load_model()
    m = measure(images, task, helper)
    prob, severity = model.predict(m.features)
    prob = pool_scene_types(prob, model.types, task)
    per_image = []
    for i, role in enumerate(roles):
        f = dict(zip(FEATURE_NAMES, m.features[i]))
        degr = {}
        blocks = jpeg_from_blocks(f)
        for t, kind in enumerate(model.types):
            present = prob[i, t] >= model.thresholds[t]
            lvl = int(np.clip(np.round(severity[i, t]), 1, 5)) if present else 0
            est = severity_to_value(kind, float(severity[i, t])) if present else 0.0
            if kind == "jpeg" and blocks is not None:
                present, lvl, est = blocks[0], blocks[1], (blocks[2] if blocks[0] else 0.0)
            degr[kind] = DegradationEstimate(lvl, float(prob[i, t]), est, _measured_value(kind, f), unit_of(kind))
        im = images[i]
        per_image.append(ImagePerception(role, "ir" if role == "ir" else "vis", im.shape[:2], im.ndim == 3, degr))
    moving, reference = moving_and_reference(task, roles)
    disp = float(m.alignment.displacement_px)
    mis_thr = _settings(model, "misalignment_px", task, 1.0)
    misalignment = {"moving": moving, "reference": reference, "displacement_px": round(disp, 3),
                    "transform": np.round(m.alignment.transform, 8).tolist(), "model": m.alignment.model,
                    "level": level_of("misalignment", disp) if disp >= mis_thr else 0, "detected": disp >= mis_thr}
    resolution = {"scale": round(m.scale, 4), "detected": abs(np.log(m.scale)) > 0.05}
    ev = m.exposure_ev[0]
    exposure = {"ev": [round(ev, 3)],
                "level": level_of("exposure_mismatch", abs(ev)) if task != "ivif" else 0}
    wb_thr = _settings(model, "white_balance_log_rb", task, 0.1)
    wb = {"log_rb": None if m.log_rb is None else round(m.log_rb, 4),
          "detected": bool(m.log_rb is not None and abs(m.log_rb) >= wb_thr)}
    motion_thr = _settings(model, "motion_score", task, 10.0)
    detected = m.motion.score >= motion_thr
    moving_objects = {"detected": bool(detected), "area_fraction": round(m.motion.area_fraction if detected else 0.0, 4),
                      "score": round(m.motion.score, 3)}
    report = PerceptionReport(task, per_image, misalignment, resolution, exposure, wb, moving_objects,
                              m.complementarity, motion_mask=m.motion.mask if detected else np.zeros_like(m.motion.mask))
    report.caption = caption_for(report)
    report.seconds = time.perf_counter() - start
    return report



class _CallablePackage(types.ModuleType):
    """Lets ``fuseagent.perceive(a, b, task)`` work after the sub-package itself was imported
    (importing ``fuseagent.perceive`` binds the package to that attribute of ``fuseagent``)."""

    def __call__(self, a: Any, b: Any, task: str = "ivif", **kwargs: Any) -> PerceptionReport:
        return perceive(a, b, task, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
