"""Inpainting tools: given and detected holes, untouched pixels, no-hole passthrough, errors."""

from __future__ import annotations

import numpy as np
import pytest

from fuseagent.errors import InputError
from fuseagent.tools import create_tool, tool_card
from fuseagent.tools.inpaint import detect_holes

METHODS = ("telea", "ns", "biharmonic")


@pytest.fixture(scope="module")
def holed(camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hole = np.zeros(camera.shape, bool)
    hole[200:230, 250:290] = True
    hole[400:412, 60:140] = True
    image = camera.copy()
    image[hole] = 0
    return image, hole


class TestDetectHoles:
    def test_border_regions_only(self, camera: np.ndarray) -> None:
        image = 0.1 + 0.8 * camera
        image[:, :12] = 0
        image[300:310, 300:310] = 0
        assert detect_holes(image).sum() == 512 * 12
        assert detect_holes(image, border_only=False).sum() == 512 * 12 + 100

    def test_natural_black_border_counts_as_hole(self, astronaut: np.ndarray) -> None:
        # scikit-image's astronaut has exactly black rows/columns at its bottom/right edges.
        assert detect_holes(astronaut).sum() > 0

    def test_threshold_and_colour(self, astronaut: np.ndarray) -> None:
        image = 0.1 + 0.8 * astronaut
        image[:10] = 0.01
        image[10:20, :, 0] = 0  # one dark channel is not a hole
        assert detect_holes(image).sum() == 0
        assert detect_holes(image, threshold=0.02).sum() >= 10 * 512


@pytest.mark.parametrize("method", METHODS)
class TestInpaint:
    def test_given_hole_is_filled(self, method: str, camera: np.ndarray, holed) -> None:
        image, hole = holed
        result = create_tool(f"inpaint.{method}")(image, mask=hole)
        zeros_error = np.abs(image - camera)[hole].mean()
        filled_error = np.abs(result.image - camera)[hole].mean()
        assert filled_error < 0.6 * zeros_error, (zeros_error, filled_error)
        assert np.array_equal(result.image[~hole], image[~hole])
        assert result.info["hole_fraction"] == pytest.approx(hole.mean())
        assert result.info["hole_source"] == "given"

    def test_warp_border_is_detected_and_filled(self, method: str, camera: np.ndarray) -> None:
        image = camera.copy()
        image[:, :24] = 0
        image[:16] = 0
        result = create_tool(f"inpaint.{method}")(image)
        assert result.info["hole_source"] == "detected"
        assert result.info["hole_fraction"] == pytest.approx((512 * 24 + 16 * 488) / 512 ** 2)
        assert np.abs(result.image - camera)[:, :24].mean() < 0.25 * np.abs(image - camera)[:, :24].mean()

    def test_colour_hole(self, method: str, astronaut: np.ndarray) -> None:
        image = astronaut.copy()
        hole = np.zeros(image.shape[:2], bool)
        hole[250:270, 300:330] = True
        image[hole] = 0
        result = create_tool(f"inpaint.{method}")(image, mask=hole.astype(np.float32))
        assert result.image.shape == astronaut.shape
        assert np.abs(result.image - astronaut)[hole].mean() < 0.5 * np.abs(image - astronaut)[hole].mean()

    def test_no_hole_leaves_image_unchanged(self, method: str, camera: np.ndarray) -> None:
        result = create_tool(f"inpaint.{method}")(camera)
        assert np.array_equal(result.image, camera)
        assert result.info["hole_fraction"] == 0.0

    def test_tiny_image(self, method: str) -> None:
        tiny = np.full((8, 8), 0.5, np.float32)
        tiny[0, :] = 0
        result = create_tool(f"inpaint.{method}")(tiny)
        assert np.allclose(result.image[0], 0.5, atol=0.05)

    def test_card(self, method: str) -> None:
        card = tool_card(f"inpaint.{method}")
        assert card.inputs == "image" and "mask" in card.params and card.credit


class TestInpaintExceptions:
    @pytest.mark.parametrize("name,params", [
        ("inpaint.telea", {"radius": 0}),
        ("inpaint.ns", {"radius": 2.5}),
        ("inpaint.biharmonic", {"max_hole_pixels": 1}),
        ("inpaint.telea", {"hole_threshold": 1.5}),
        ("inpaint.telea", {"mask": np.zeros((4, 4), bool)}),
        ("inpaint.telea", {"mask": np.array([["a"] * 16] * 16)}),
    ])
    def test_bad_parameter_values(self, name: str, params: dict) -> None:
        image = np.random.default_rng(0).random((16, 16)).astype(np.float32)
        with pytest.raises(InputError):
            create_tool(name)(image, **params)

    def test_whole_image_hole_is_reported_not_filled(self) -> None:
        image = np.zeros((10, 10), np.float32)
        result = create_tool("inpaint.telea")(image)
        assert result.info["fallback"] and np.array_equal(result.image, image)


class TestBiharmonicCost:
    def test_big_hole_is_solved_at_reduced_resolution(self, camera: np.ndarray) -> None:
        image = camera.copy()
        image[:, :40] = 0
        result = create_tool("inpaint.biharmonic", max_hole_pixels=4000)(image)
        assert result.info["solve_scale"] < 0.5
        assert np.abs(result.image - camera)[:, :40].mean() < 0.25 * np.abs(image - camera)[:, :40].mean()


class TestEnvironmentMasks:
    def test_registration_border_is_inpainted_before_fusion(self, camera: np.ndarray) -> None:
        import cv2

        from fuseagent.execute import Environment

        shifted = cv2.warpAffine(camera, np.float32([[1, 0, 9], [0, 1, -6]]), (512, 512),
                                 borderMode=cv2.BORDER_REFLECT)
        result = Environment().run([shifted, camera], "ivif",
                                   "[task:registration][model:sift] -> [task:inpaint][model:telea][on:ir] "
                                   "-> [task:fusion][model:laplacian]")
        registered = result.states[1].images["ir"]
        hole = result.states[1].masks["valid.ir"] < 0.5
        assert 0.02 < hole.mean() < 0.06
        assert registered[hole].max() == 0
        inpainted = result.states[2].images["ir"]
        assert result.steps[1].info["ir"]["hole_source"] == "given"
        assert np.abs(inpainted - camera)[hole].mean() < 0.3 * np.abs(registered - camera)[hole].mean()
