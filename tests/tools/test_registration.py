"""Registration tools: synthetic homography recovery, cross-modal IR → visible, fallbacks, errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fuseagent.errors import InputError
from fuseagent.io import read_image
from fuseagent.tools import create_tool, tool_card
from fuseagent.tools.registration import corner_errors, implausibility, resize_matrix, warp_homography

METHODS = ("sift", "orb", "xfeat", "ecc")
SAME_MODALITY_SCENES = ("carShadow.jpg", "fight.jpg", "kettle.jpg", "snow.jpg")


def random_homography(rng: np.random.Generator, hw: tuple[int, int], *, rotation: float = 5.0,
                      scale: float = 0.05, shift: float = 20.0, perspective: float = 5e-6) -> np.ndarray:
    """A small camera misalignment: rotation ≤ ``rotation``°, scale within ±``scale``, shift ≤
    ``shift`` px and a slight perspective, about the image centre."""
    h, w = hw
    centre = np.array([[1, 0, -(w - 1) / 2], [0, 1, -(h - 1) / 2], [0, 0, 1.0]])
    angle = np.deg2rad(rng.uniform(-rotation, rotation))
    factor = 1 + rng.uniform(-scale, scale)
    rot = np.array([[factor * np.cos(angle), -factor * np.sin(angle), 0],
                    [factor * np.sin(angle), factor * np.cos(angle), 0], [0, 0, 1.0]])
    persp = np.eye(3)
    persp[2, :2] = rng.uniform(-perspective, perspective, 2)
    move = np.array([[1, 0, rng.uniform(-shift, shift)], [0, 1, rng.uniform(-shift, shift)], [0, 0, 1.0]])
    return move @ np.linalg.inv(centre) @ persp @ rot @ centre


def warp_scene(image: np.ndarray, homography: np.ndarray) -> np.ndarray:
    """What a misaligned camera would see (borders reflected rather than black)."""
    h, w = image.shape[:2]
    out = cv2.warpPerspective(image, homography, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return np.clip(out, 0, 1).astype(np.float32)


def mean_corner_error(info: dict, truth_moving_to_reference: np.ndarray, hw: tuple[int, int]) -> float:
    return float(corner_errors(np.array(info["homography"]), truth_moving_to_reference, hw).mean())


@pytest.fixture(scope="module")
def vifb(shared_data: Path) -> Path:
    folder = shared_data / "ivif" / "vifb"
    if not (folder / "ir").is_dir():
        pytest.skip(f"VIFB not found under {folder}")
    return folder


@pytest.fixture(scope="module")
def scene(vifb: Path) -> np.ndarray:
    return read_image(vifb / "vis" / "fight.jpg")


class TestGeometryHelpers:
    def test_resize_matrix_maps_pixel_centres(self) -> None:
        m = resize_matrix((100, 200), (50, 100))
        # The centre of the 2×2 block (0.5, 0.5) becomes pixel (0, 0) of the half-size image.
        assert np.allclose(m @ [0.5, 0.5, 1.0], [0.0, 0.0, 1.0])

    def test_warp_mask_marks_uncovered_pixels(self) -> None:
        image = np.full((20, 30), 0.5, np.float32)
        out, valid = warp_homography(image, np.array([[1, 0, 5], [0, 1, 0], [0, 0, 1.0]]), (20, 30))
        assert valid[:, :4].max() == 0 and valid[:, 5:].min() == 1
        assert np.allclose(out[:, 6:], 0.5) and out[:, :4].max() == 0

    def test_plausibility_rejects_shear_and_perspective(self) -> None:
        limits = dict(max_scale=2.0, max_anisotropy=2.0, max_perspective=0.5, min_overlap=0.3, max_shift=0.25)
        centre = np.array([[1, 0, -49.5], [0, 1, -49.5], [0, 0, 1.0]])
        shear = np.linalg.inv(centre) @ np.array([[1, 1.5, 0], [0, 1, 0], [0, 0, 1.0]]) @ centre
        assert "anisotropy" in implausibility(shear, (100, 100), **limits)
        persp = np.array([[1, 0, 0], [0, 1, 0], [0.008, 0, 1.0]])
        assert "perspective" in implausibility(persp, (100, 100), **limits)
        far = np.array([[1, 0, 40], [0, 1, 0], [0, 0, 1.0]])
        assert "shift" in implausibility(far, (100, 100), **limits)
        assert implausibility(np.eye(3), (100, 100), **limits) is None


@pytest.mark.parametrize("method", METHODS)
class TestRegistrationSmoke:
    def test_output_has_reference_frame_and_info(self, method: str, scene: np.ndarray) -> None:
        truth = random_homography(np.random.default_rng(3), scene.shape[:2])
        moving = warp_scene(scene, truth)
        result = create_tool(f"registration.{method}")(moving, scene)
        assert result.image.shape == scene.shape and result.image.dtype == np.float32
        assert set(result.info) >= {"homography", "inliers", "method", "fallback", "motion"}
        assert result.info["fallback"] is None
        assert np.array(result.info["homography"]).shape == (3, 3)
        valid = result.masks["valid"]
        assert valid.shape == scene.shape[:2] and valid.dtype == np.float32
        assert 0.8 < valid.mean() < 1.0
        # The registered image matches the reference where the warp is valid.
        inside = valid > 0.5
        assert np.abs(result.image - scene)[inside].mean() < 0.5 * np.abs(moving - scene)[inside].mean()

    def test_different_sizes_are_registered_to_the_reference_size(self, method: str, scene: np.ndarray) -> None:
        h, w = scene.shape[:2]
        truth = random_homography(np.random.default_rng(4), (h, w))
        moving = cv2.resize(warp_scene(scene, truth), (w * 3 // 4, h * 3 // 4), interpolation=cv2.INTER_AREA)
        result = create_tool(f"registration.{method}")(moving, scene)
        assert result.image.shape == scene.shape
        expected = np.linalg.inv(truth) @ np.linalg.inv(resize_matrix((h, w), moving.shape[:2]))
        assert result.info["fallback"] is None
        assert mean_corner_error(result.info, expected, moving.shape[:2]) < 2.0

    def test_card(self, method: str) -> None:
        card = tool_card(f"registration.{method}")
        assert card.inputs == "pair" and card.task == "registration" and card.credit


class TestRegistrationExceptions:
    @pytest.mark.parametrize("name,params", [
        ("registration.sift", {"motion": "elastic"}),
        ("registration.sift", {"ratio": 1.5}),
        ("registration.orb", {"max_features": 2}),
        ("registration.xfeat", {"min_similarity": 2.0}),
        ("registration.ecc", {"motion": "similarity-ish"}),
        ("registration.ecc", {"levels": 0}),
        ("registration.ecc", {"max_scale": 0.5}),
        ("registration.sift", {"refine": "yes"}),
    ])
    def test_bad_parameter_values(self, name: str, params: dict) -> None:
        image = np.random.default_rng(0).random((64, 64)).astype(np.float32)
        with pytest.raises(InputError):
            create_tool(name)(image, image, **params)

    def test_unknown_parameter(self) -> None:
        with pytest.raises(InputError):
            create_tool("registration.sift", sigma=3)

    @pytest.mark.parametrize("method", METHODS)
    def test_tiny_images_fall_back_to_identity(self, method: str) -> None:
        tiny = np.random.default_rng(1).random((8, 8)).astype(np.float32)
        result = create_tool(f"registration.{method}")(tiny, tiny)
        assert result.info["fallback"]
        assert np.allclose(result.info["homography"], np.eye(3))
        assert np.allclose(result.image, tiny)

    @pytest.mark.parametrize("method", ("sift", "orb", "ecc"))
    def test_unrelated_images_fall_back(self, method: str) -> None:
        rng = np.random.default_rng(2)
        noise = cv2.GaussianBlur(rng.random((120, 160)).astype(np.float32), (0, 0), 2)
        flat = np.full((120, 160), 0.4, np.float32)
        result = create_tool(f"registration.{method}")(noise, flat)
        assert result.info["fallback"]
        assert np.allclose(result.info["homography"], np.eye(3))


class TestMotionModels:
    @pytest.mark.parametrize("motion,limit", [("homography", 0.1), ("affine", 0.3), ("similarity", 0.3)])
    def test_ecc_models_fit_a_small_homography(self, motion: str, limit: float, scene: np.ndarray) -> None:
        truth = random_homography(np.random.default_rng(3), scene.shape[:2])
        result = create_tool("registration.ecc", motion=motion)(warp_scene(scene, truth), scene)
        assert mean_corner_error(result.info, np.linalg.inv(truth), scene.shape[:2]) < limit

    @pytest.mark.parametrize("motion", ("euclidean", "translation"))
    def test_rigid_models_recover_a_pure_shift(self, motion: str, scene: np.ndarray) -> None:
        truth = random_homography(np.random.default_rng(3), scene.shape[:2], rotation=0, scale=0, perspective=0)
        result = create_tool("registration.ecc", motion=motion)(warp_scene(scene, truth), scene)
        assert mean_corner_error(result.info, np.linalg.inv(truth), scene.shape[:2]) < 0.1

    def test_models_keep_their_degrees_of_freedom(self, scene: np.ndarray) -> None:
        truth = random_homography(np.random.default_rng(3), scene.shape[:2])
        moving = warp_scene(scene, truth)
        shift = np.array(create_tool("registration.ecc", motion="translation")(moving, scene).info["homography"])
        rigid = np.array(create_tool("registration.ecc", motion="euclidean")(moving, scene).info["homography"])
        assert np.allclose(shift[:2, :2], np.eye(2)) and np.allclose(shift[2], [0, 0, 1])
        assert np.linalg.det(rigid[:2, :2]) == pytest.approx(1.0, abs=1e-6) and np.allclose(rigid[2], [0, 0, 1])

    @pytest.mark.parametrize("method", ("sift", "orb", "xfeat"))
    @pytest.mark.parametrize("motion", ("affine", "similarity"))
    def test_feature_models(self, method: str, motion: str, scene: np.ndarray) -> None:
        truth = random_homography(np.random.default_rng(3), scene.shape[:2])
        result = create_tool(f"registration.{method}", motion=motion)(warp_scene(scene, truth), scene)
        # The truth has a slight perspective these models cannot express (0.17 px at the corners).
        assert mean_corner_error(result.info, np.linalg.inv(truth), scene.shape[:2]) < 0.3


class TestSyntheticHomographyRecovery:
    """A known small homography applied to VIFB visible images is recovered to < 1 px (mean corner
    error, median over scenes)."""

    @pytest.mark.parametrize("method", METHODS)
    def test_median_corner_error_below_one_pixel(self, method: str, vifb: Path) -> None:
        rng = np.random.default_rng(7)
        tool = create_tool(f"registration.{method}")
        errors = []
        for name in SAME_MODALITY_SCENES:
            reference = read_image(vifb / "vis" / name)
            truth = random_homography(rng, reference.shape[:2])
            result = tool(warp_scene(reference, truth), reference)
            assert result.info["fallback"] is None, name
            errors.append(mean_corner_error(result.info, np.linalg.inv(truth), reference.shape[:2]))
        assert np.median(errors) < 1.0, errors

    @pytest.mark.parametrize("method", ("sift", "orb", "xfeat"))
    def test_feature_estimate_alone_is_within_two_pixels(self, method: str, vifb: Path) -> None:
        rng = np.random.default_rng(8)
        tool = create_tool(f"registration.{method}", refine=False)
        errors = []
        for name in SAME_MODALITY_SCENES:
            reference = read_image(vifb / "vis" / name)
            truth = random_homography(rng, reference.shape[:2])
            result = tool(warp_scene(reference, truth), reference)
            errors.append(mean_corner_error(result.info, np.linalg.inv(truth), reference.shape[:2]))
        assert np.median(errors) < 2.0, errors


@pytest.fixture(scope="module")
def cross_modal(vifb: Path) -> dict[str, np.ndarray]:
    """Each VIFB infrared image warped by a seeded random small homography and registered back
    onto its visible image with ``registration.ecc``; the unwarped pair is registered too.

    Returns the mean corner errors per pair against two ground truths: ``literal``, the inverse of
    the applied warp (it assumes the VIFB pair is exactly aligned), and ``consistency``, the
    registration of the unwarped pair composed with that inverse (it measures the recovery of the
    known warp alone; VIFB pairs are not all exactly aligned: kettle and tricycle, for one, show
    edges offset by 10-19 px before any warp)."""
    rng = np.random.default_rng(1)
    tool = create_tool("registration.ecc")
    literal, consistency = [], []
    for path in sorted((vifb / "ir").glob("*.jpg")):
        visible = read_image(vifb / "vis" / path.name)
        infrared = read_image(path)
        truth = random_homography(rng, visible.shape[:2])
        result = tool(warp_scene(infrared, truth), visible)
        own = np.array(tool(infrared, visible).info["homography"])
        literal.append(mean_corner_error(result.info, np.linalg.inv(truth), visible.shape[:2]))
        consistency.append(mean_corner_error(result.info, own @ np.linalg.inv(truth), visible.shape[:2]))
    return {"literal": np.array(literal), "consistency": np.array(consistency)}


@pytest.mark.slow
class TestCrossModal:
    """IR → visible registration of the 21 VIFB pairs under a known random small homography."""

    def test_known_warp_is_recovered(self, cross_modal: dict[str, np.ndarray]) -> None:
        errors = cross_modal["consistency"]
        assert len(errors) == 21
        # Measured: median 0.35 px, 15 of 21 under 3 px (the other 6 fall back to the identity).
        assert np.median(errors) < 1.0, np.round(errors, 1).tolist()
        assert (errors < 3.0).sum() >= 14, np.round(errors, 1).tolist()

    def test_error_against_the_dataset_alignment(self, cross_modal: dict[str, np.ndarray]) -> None:
        errors = cross_modal["literal"]
        # Measured 3.8 px, 10 of 21 pairs under 3 px: 6 night/low-structure pairs fall back to the
        # identity (ECC correlation < 0.12) and the rest of the gap is VIFB's own misalignment.
        assert np.median(errors) < 5.0, np.round(errors, 1).tolist()
        assert (errors < 3.0).sum() >= 9, np.round(errors, 1).tolist()


class TestEnvironment:
    def test_registration_then_fusion(self, vifb: Path) -> None:
        from fuseagent.execute import Environment
        from fuseagent.tools import list_tools

        if "fusion.laplacian" not in list_tools("fusion.*"):
            pytest.skip("fusion.laplacian is not registered")
        visible = read_image(vifb / "vis" / "fight.jpg")
        infrared = read_image(vifb / "ir" / "fight.jpg")
        truth = random_homography(np.random.default_rng(5), visible.shape[:2])
        result = Environment().run([warp_scene(infrared, truth), visible], "ivif",
                                   "[task:registration][model:ecc] -> [task:fusion][model:laplacian]")
        assert result.fused.shape[:2] == visible.shape[:2]
        step = result.steps[0].info["ir"]
        assert step["reference"] == "vis" and step["fallback"] is None
        assert mean_corner_error(step, np.linalg.inv(truth), visible.shape[:2]) < 3.0
        assert "valid.ir" in result.states[1].masks
