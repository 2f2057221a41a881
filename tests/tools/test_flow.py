"""Dense-flow deghosting tools: a synthetic moving object under a global shift and an exposure change."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fuseagent.errors import InputError
from fuseagent.tools import create_tool, tool_card
from fuseagent.tools.flow import match_histogram, warp_by_flow

METHODS = ("dis", "farneback")
OBJECT = 80
REFERENCE_OBJECT_AT = (200, 200)
MOVING_OBJECT_AT = (216, 210)
GLOBAL_SHIFT = (2.5, -1.5)
EXPOSURE = 0.6


def make_scene(camera: np.ndarray, astronaut: np.ndarray, object_at: tuple[int, int],
               shift: tuple[float, float]) -> np.ndarray:
    """``camera`` with an 80×80 patch of ``astronaut`` pasted at ``object_at`` (x, y), all shifted."""
    scene = camera.copy()
    x, y = object_at
    scene[y:y + OBJECT, x:x + OBJECT] = astronaut[100:100 + OBJECT, 180:180 + OBJECT].mean(axis=2)
    move = np.float32([[1, 0, shift[0]], [0, 1, shift[1]]])
    return cv2.warpAffine(scene, move, scene.shape[::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


@pytest.fixture(scope="module")
def pair(camera: np.ndarray, astronaut: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(moving, reference, disoccluded): the object moved by (16, 10) px, the whole view by
    (2.5, -1.5) px, and the moving frame is darker (a different exposure). ``disoccluded`` marks
    reference pixels whose content the moving frame hides behind the moved object."""
    reference = make_scene(camera, astronaut, REFERENCE_OBJECT_AT, (0, 0))
    moving = make_scene(camera, astronaut, MOVING_OBJECT_AT, GLOBAL_SHIFT) * EXPOSURE
    hidden = np.zeros(camera.shape, bool)
    x = round(MOVING_OBJECT_AT[0] + GLOBAL_SHIFT[0])
    y = round(MOVING_OBJECT_AT[1] + GLOBAL_SHIFT[1])
    hidden[y:y + OBJECT, x:x + OBJECT] = True
    rx, ry = REFERENCE_OBJECT_AT
    hidden[ry:ry + OBJECT, rx:rx + OBJECT] = False
    return moving.astype(np.float32), reference.astype(np.float32), hidden


class TestHelpers:
    def test_histogram_matching_equalises_exposures(self, camera: np.ndarray) -> None:
        matched = match_histogram(camera * 0.5, camera)
        assert np.abs(matched - camera).mean() < 0.01

    def test_warp_by_flow_translates(self, camera: np.ndarray) -> None:
        flow = np.zeros((*camera.shape, 2), np.float32)
        flow[..., 1] = 3
        assert np.allclose(warp_by_flow(camera, flow)[10:-10], camera[13:-7])


@pytest.mark.parametrize("method", METHODS)
class TestDeghosting:
    def test_alignment_error_drops_outside_occlusions(self, method: str, pair) -> None:
        moving, reference, _ = pair
        result = create_tool(f"flow.{method}")(moving, reference)
        trusted = result.masks["occlusion"] < 0.5
        before = np.abs(moving / EXPOSURE - reference)[trusted].mean()
        after = np.abs(result.image / EXPOSURE - reference)[trusted].mean()
        assert after < 0.4 * before, (before, after)
        assert after < 0.02

    def test_occlusion_mask_covers_the_disoccluded_area(self, method: str, pair) -> None:
        moving, reference, hidden = pair
        result = create_tool(f"flow.{method}")(moving, reference)
        occlusion = result.masks["occlusion"] > 0.5
        assert occlusion.shape == reference.shape
        assert occlusion[hidden].mean() > 0.85
        assert occlusion[~hidden].mean() < 0.1
        assert result.info["occluded_fraction"] == pytest.approx(occlusion.mean())

    def test_info_reports_flow(self, method: str, pair) -> None:
        moving, reference, _ = pair
        info = create_tool(f"flow.{method}")(moving, reference).info
        # The global shift is 2.9 px; the object moves 19 px.
        assert 2.0 < info["mean_flow"] < 5.0
        assert 14.0 < info["max_flow"] < 30.0
        assert info["normalise"] == "histogram"

    def test_colour_and_size_mismatch(self, method: str, astronaut: np.ndarray) -> None:
        moving = cv2.resize(np.roll(astronaut, 3, axis=1), (384, 384), interpolation=cv2.INTER_AREA)
        result = create_tool(f"flow.{method}")(moving, astronaut)
        assert result.image.shape == astronaut.shape and result.info["resized_moving"]
        trusted = result.masks["occlusion"] < 0.5
        assert np.abs(result.image - astronaut)[trusted].mean() < 0.03

    def test_card(self, method: str) -> None:
        card = tool_card(f"flow.{method}")
        assert card.inputs == "pair" and card.task == "flow" and card.credit


class TestFlowExceptions:
    @pytest.mark.parametrize("name,params", [
        ("flow.dis", {"preset": "slowest"}),
        ("flow.dis", {"normalise": "clahe"}),
        ("flow.dis", {"consistency": 0}),
        ("flow.farneback", {"window": 1}),
        ("flow.farneback", {"dilate": -1}),
    ])
    def test_bad_parameter_values(self, name: str, params: dict) -> None:
        image = np.random.default_rng(0).random((32, 32)).astype(np.float32)
        with pytest.raises(InputError):
            create_tool(name)(image, image, **params)

    @pytest.mark.parametrize("method", METHODS)
    def test_tiny_images(self, method: str) -> None:
        tiny = np.random.default_rng(1).random((8, 8)).astype(np.float32)
        result = create_tool(f"flow.{method}")(tiny, tiny)
        assert result.image.shape == (8, 8)
        assert np.abs(result.image - tiny).max() < 0.05


class TestEnvironmentMasks:
    def test_occlusion_mask_reaches_inpainting(self, pair) -> None:
        from fuseagent.execute import Environment

        moving, reference, hidden = pair
        result = Environment().run([reference, moving], "mef",
                                   "[task:flow][model:dis] -> [task:inpaint][model:telea][on:b] "
                                   "-> [task:fusion][model:mertens]")
        occlusion = result.states[1].masks["occlusion.b"] > 0.5
        assert occlusion[hidden].mean() > 0.85
        assert result.steps[0].info["b"]["reference"] == "a"
        assert result.steps[1].info["b"]["hole_source"] == "given"
        assert result.steps[1].info["b"]["hole_fraction"] == pytest.approx(occlusion.mean())
        assert result.fused.shape == reference.shape
