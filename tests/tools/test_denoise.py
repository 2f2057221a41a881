"""Tests of the denoising tools (denoise.nlm, denoise.wavelet, denoise.tv, denoise.oidn)."""

from __future__ import annotations

import numpy as np
import pytest

from fuseagent.errors import InputError
from fuseagent.tools import create_tool, list_tools, tool_card

DENOISERS = ["denoise.nlm", "denoise.wavelet", "denoise.tv", "denoise.oidn"]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


def _tool(name: str):
    tool = create_tool(name)
    if not tool.available():
        pytest.skip(f"{name}: optional dependency {tool.card.requires} not installed")
    return tool


@pytest.fixture(scope="module")
def camera_crop(camera: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(camera[96:352, 128:384])


@pytest.fixture(scope="module")
def astronaut_crop(astronaut: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(astronaut[:256, 128:384])


def _noisy(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    noise = sigma * np.random.default_rng(seed).standard_normal(image.shape)
    return np.clip(image + noise, 0, 1).astype(np.float32)


class TestRegistration:
    def test_all_registered_with_cards(self) -> None:
        assert set(DENOISERS) <= set(list_tools("denoise.*"))
        for name in DENOISERS:
            card = tool_card(name)
            assert card.task == "denoise" and card.credit and card.description
            assert "sigma" in card.params and card.params["sigma"] is None
        assert tool_card("denoise.oidn").requires == ("pyoidn",)


@pytest.mark.parametrize("name", DENOISERS)
class TestDenoiseSmoke:
    def test_grey_and_colour_shapes(self, name: str, camera_crop: np.ndarray, astronaut_crop: np.ndarray) -> None:
        tool = _tool(name)
        for image in (camera_crop, astronaut_crop):
            result = tool(_noisy(image, 0.05))
            assert result.image.shape == image.shape and result.image.dtype == np.float32
            assert result.info["sigma_estimated"] is True
            assert abs(result.info["sigma"] - 0.05) < 0.01

    def test_given_sigma_is_used(self, name: str, camera_crop: np.ndarray) -> None:
        result = _tool(name)(_noisy(camera_crop, 0.05), sigma=0.05)
        assert result.info == {"sigma": 0.05, "sigma_estimated": False}

    def test_zero_sigma_returns_input(self, name: str, camera_crop: np.ndarray) -> None:
        noisy = _noisy(camera_crop, 0.05)
        result = _tool(name)(noisy, sigma=0.0)
        assert np.array_equal(result.image, noisy) and "skipped" in result.info

    def test_tiny_and_constant_images(self, name: str) -> None:
        tool = _tool(name)
        tiny = np.random.default_rng(0).random((8, 8)).astype(np.float32)
        for image in (tiny, np.full((8, 8, 3), 0.4, np.float32), np.full((32, 32), 0.7, np.float32)):
            out = tool(image).image
            assert out.shape == image.shape and np.isfinite(out).all()
        constant = tool(np.full((32, 32), 0.7, np.float32)).image
        assert np.allclose(constant, 0.7, atol=1e-3)


@pytest.mark.parametrize("name", DENOISERS)
class TestDenoiseReference:
    @pytest.mark.parametrize("sigma", [0.05, 0.1])
    def test_raises_psnr_grey(self, name: str, sigma: float, camera_crop: np.ndarray) -> None:
        noisy = _noisy(camera_crop, sigma)
        out = _tool(name)(noisy).image
        gain = _psnr(out, camera_crop) - _psnr(noisy, camera_crop)
        assert gain > 3.0, f"{name}: PSNR gain {gain:.2f} dB at sigma {sigma}"

    @pytest.mark.parametrize("sigma", [0.05, 0.1])
    def test_raises_psnr_colour(self, name: str, sigma: float, astronaut_crop: np.ndarray) -> None:
        noisy = _noisy(astronaut_crop, sigma, seed=1)
        out = _tool(name)(noisy).image
        gain = _psnr(out, astronaut_crop) - _psnr(noisy, astronaut_crop)
        assert gain > 3.0, f"{name}: PSNR gain {gain:.2f} dB at sigma {sigma}"

    def test_clean_image_barely_changes(self, name: str, camera_crop: np.ndarray, astronaut_crop: np.ndarray) -> None:
        tool = _tool(name)
        for clean in (camera_crop, astronaut_crop):
            change = float(np.abs(tool(clean).image - clean).mean())
            assert change < 1.25 / 255, f"{name}: mean change {change * 255:.2f}/255 on a clean image"


class TestDenoiseExceptions:
    @pytest.mark.parametrize("name", DENOISERS)
    @pytest.mark.parametrize("sigma", [-0.1, 1.5, "0.1", float("nan")])
    def test_bad_sigma(self, name: str, sigma: object) -> None:
        with pytest.raises(InputError):
            _tool(name)(np.zeros((16, 16), np.float32), sigma=sigma)

    @pytest.mark.parametrize("name, params", [
        ("denoise.nlm", {"h_factor": 0}),
        ("denoise.nlm", {"patch_size": 0}),
        ("denoise.nlm", {"patch_distance": 2.5}),
        ("denoise.wavelet", {"method": "sure"}),
        ("denoise.wavelet", {"wavelet": "nope"}),
        ("denoise.tv", {"strength": -1.0}),
        ("denoise.oidn", {"quality": "ultra"}),
    ])
    def test_bad_method_params(self, name: str, params: dict) -> None:
        tool = _tool(name)
        with pytest.raises(InputError):
            tool(np.zeros((16, 16), np.float32), **params)

    def test_unknown_parameter(self) -> None:
        with pytest.raises(InputError):
            create_tool("denoise.tv", weight=0.1)
