"""Tests of dehazing (dehaze.dcp, dehaze.cap), rain removal (derain.gf, derain.morph) and stripe
removal (destripe.column, destripe.wfft)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fuseagent.errors import InputError
from fuseagent.io import read_image
from fuseagent.tools import create_tool, list_tools, tool_card
from fuseagent.tools.weather import dark_channel, estimate_streak_angle

DEHAZERS = ["dehaze.dcp", "dehaze.cap"]
DERAINERS = ["derain.gf", "derain.morph"]
DESTRIPERS = ["destripe.column", "destripe.wfft"]
ALL = DEHAZERS + DERAINERS + DESTRIPERS
DRMF_NAMES = ["00001D", "00003N", "00009N", "00010N"]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


def _haze(image: np.ndarray, beta: float = 1.5, light: float = 0.9) -> np.ndarray:
    """``I = J t + A (1 - t)`` with depth growing towards the top of the frame."""
    depth = np.linspace(1.0, 0.0, image.shape[0], dtype=np.float32)[:, None]
    t = np.exp(-beta * depth)
    if image.ndim == 3:
        t = t[..., None]
    return (image * t + light * (1 - t)).astype(np.float32)


def _rain(image: np.ndarray, angle: float, count: int = 400, seed: int = 0, strength: float = 0.3) -> np.ndarray:
    """Bright anti-aliased streaks, 15–35 px long, within ±2° of ``angle`` (degrees from vertical)."""
    rng = np.random.default_rng(seed)
    height, width = image.shape[:2]
    layer = np.zeros((height, width), np.float32)
    for _ in range(count):
        length, a = rng.integers(15, 35), np.radians(angle + rng.normal(0, 2))
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        end = (int(x + length * np.sin(a)), int(y + length * np.cos(a)))
        cv2.line(layer, (int(x), int(y)), end, float(rng.uniform(0.6, 1.0)) * strength, 1, cv2.LINE_AA)
    return np.clip(image + (layer[..., None] if image.ndim == 3 else layer), 0, 1).astype(np.float32)


def _stripes(image: np.ndarray, amplitude: float = 0.04, seed: int = 0) -> np.ndarray:
    offsets = amplitude * np.random.default_rng(seed).standard_normal(image.shape[1]).astype(np.float32)
    return np.clip(image + (offsets[None, :, None] if image.ndim == 3 else offsets[None, :]), 0, 1).astype(np.float32)


def _stripe_energy(image: np.ndarray) -> float:
    """Variance of the column-mean profile minus its 15-column moving average."""
    profile = image.reshape(image.shape[0], image.shape[1], -1).mean(axis=(0, 2)).astype(np.float32)
    smooth = cv2.blur(profile[None, :], (15, 1), borderType=cv2.BORDER_REFLECT)[0]
    return float(np.var(profile - smooth))


class TestRegistration:
    def test_cards(self) -> None:
        names = set(list_tools("dehaze.*") + list_tools("derain.*") + list_tools("destripe.*"))
        assert set(ALL) <= names
        for name in ALL:
            card = tool_card(name)
            assert card.credit and card.description and card.colour == "native"
        assert "ir" in tool_card("destripe.column").modalities


class TestDehazeReference:
    @pytest.mark.parametrize("name", DEHAZERS)
    @pytest.mark.parametrize("image_name", ["camera", "astronaut"])
    def test_synthetic_haze(self, request: pytest.FixtureRequest, name: str, image_name: str) -> None:
        clean = request.getfixturevalue(image_name)
        hazy = _haze(clean)
        result = create_tool(name)(hazy)
        out = result.image
        assert dark_channel(out).mean() < 0.8 * dark_channel(hazy).mean()
        assert out.std() > 1.1 * hazy.std()
        assert _psnr(out, clean) > _psnr(hazy, clean) + 3.0
        light = result.info["atmospheric_light"]
        assert len(light) == (3 if clean.ndim == 3 else 1)
        assert all(0.75 < v <= 1.0 for v in light)  # true A = 0.9
        assert 0.0 < result.info["mean_transmission"] < 1.0

    @pytest.mark.parametrize("name", DEHAZERS)
    def test_real_low_contrast_ir(self, shared_data: Path, name: str) -> None:
        folder = shared_data / "ivif" / "drmf_degraded" / "ir_degraded"
        if not folder.is_dir():
            pytest.skip(f"{folder} not present")
        tool = create_tool(name)
        for stem in DRMF_NAMES:
            degraded = read_image(folder / f"{stem}.png", mode="gray")
            out = tool(degraded).image
            assert dark_channel(out).mean() < 0.6 * dark_channel(degraded).mean(), stem


class TestDeweatherSmoke:
    @pytest.mark.parametrize("name", ALL)
    def test_tiny_constant_grey_colour(self, name: str) -> None:
        tool = create_tool(name)
        tiny = np.random.default_rng(0).random((8, 8)).astype(np.float32)
        for image in (tiny, np.full((8, 8, 3), 0.5, np.float32), np.full((40, 40), 0.3, np.float32),
                      np.zeros((16, 16), np.float32), np.random.default_rng(1).random((30, 20, 3)).astype(np.float32)):
            out = tool(image).image
            assert out.shape == image.shape and out.dtype == np.float32 and np.isfinite(out).all()

    @pytest.mark.parametrize("name", DERAINERS + DESTRIPERS)
    def test_constant_image_unchanged(self, name: str) -> None:
        image = np.full((40, 40), 0.3, np.float32)
        assert np.allclose(create_tool(name)(image).image, image, atol=1e-4)


class TestDerainReference:
    @pytest.mark.parametrize("angle", [-10.0, 20.0])
    def test_streak_angle_estimate(self, camera: np.ndarray, angle: float) -> None:
        rainy = _rain(camera, angle, seed=5)
        detail = rainy - cv2.blur(rainy, (5, 5))
        assert abs(estimate_streak_angle(detail) - angle) <= 5.0

    @pytest.mark.parametrize("name", DERAINERS)
    @pytest.mark.parametrize("image_name, angle", [("camera", -10.0), ("astronaut", 15.0)])
    def test_lowers_error(self, request: pytest.FixtureRequest, name: str, image_name: str, angle: float) -> None:
        clean = request.getfixturevalue(image_name)
        rainy = _rain(clean, angle, seed=7)
        result = create_tool(name)(rainy)
        before, after = np.abs(rainy - clean).mean(), np.abs(result.image - clean).mean()
        assert after < 0.7 * before, f"{name}: MAE {before:.4f} -> {after:.4f}"
        assert _psnr(result.image, clean) > _psnr(rainy, clean) + 3.0
        assert abs(result.info["angle"] - angle) <= 5.0 and result.info["angle_estimated"]
        assert result.masks["rain"].shape == clean.shape[:2]

    @pytest.mark.parametrize("name", DERAINERS)
    def test_clean_image_barely_changes(self, name: str, camera: np.ndarray, astronaut: np.ndarray) -> None:
        for clean in (camera, astronaut):
            assert np.abs(create_tool(name)(clean).image - clean).mean() < 1.0 / 255

    @pytest.mark.parametrize("name", DERAINERS)
    def test_given_angle_is_used(self, name: str, camera: np.ndarray) -> None:
        result = create_tool(name, angle=-10.0)(_rain(camera, -10.0))
        assert result.info["angle"] == -10.0 and result.info["angle_estimated"] is False


class TestDestripeReference:
    @pytest.mark.parametrize("name, min_gain_db", [("destripe.column", 6.0), ("destripe.wfft", 4.0)])
    @pytest.mark.parametrize("image_name", ["camera", "astronaut"])
    def test_synthetic_stripes(self, request: pytest.FixtureRequest, name: str, min_gain_db: float,
                               image_name: str) -> None:
        clean = request.getfixturevalue(image_name)
        striped = _stripes(clean)
        out = create_tool(name)(striped).image
        assert _psnr(out, clean) > _psnr(striped, clean) + min_gain_db
        assert _stripe_energy(out) < 0.25 * _stripe_energy(striped)

    def test_horizontal_direction(self, camera: np.ndarray) -> None:
        striped = _stripes(camera.T.copy()).T.copy()  # row offsets
        for name in DESTRIPERS:
            vertical = create_tool(name)(striped).image
            horizontal = create_tool(name, direction="horizontal")(striped).image
            assert _psnr(horizontal, camera) > _psnr(vertical, camera) + 4.0

    @pytest.mark.parametrize("name, max_ratio", [("destripe.column", 0.1), ("destripe.wfft", 0.4)])
    def test_real_ir_stripes(self, shared_data: Path, name: str, max_ratio: float) -> None:
        folder = shared_data / "ivif" / "drmf_degraded" / "ir_degraded"
        if not folder.is_dir():
            pytest.skip(f"{folder} not present")
        tool = create_tool(name)
        for stem in DRMF_NAMES:
            degraded = read_image(folder / f"{stem}.png", mode="gray")
            assert _stripe_energy(tool(degraded).image) < max_ratio * _stripe_energy(degraded), stem


class TestWeatherExceptions:
    @pytest.mark.parametrize("name, params", [
        ("dehaze.dcp", {"patch": 0}),
        ("dehaze.dcp", {"omega": 1.5}),
        ("dehaze.dcp", {"t0": 0}),
        ("dehaze.cap", {"beta": -1}),
        ("dehaze.cap", {"patch": 3.5}),
        ("derain.gf", {"angle": "up"}),
        ("derain.gf", {"length": 1}),
        ("derain.gf", {"eps": 0}),
        ("derain.gf", {"coherence": 2}),
        ("derain.morph", {"width": 2}),
        ("derain.morph", {"angle": 200}),
        ("destripe.column", {"direction": "diagonal"}),
        ("destripe.column", {"smooth": 0}),
        ("destripe.wfft", {"wavelet": "nope"}),
        ("destripe.wfft", {"sigma": 0}),
        ("destripe.wfft", {"levels": 0}),
    ])
    def test_bad_params(self, name: str, params: dict) -> None:
        with pytest.raises(InputError):
            create_tool(name)(np.zeros((16, 16), np.float32), **params)

    def test_unknown_parameter(self) -> None:
        with pytest.raises(InputError):
            create_tool("dehaze.dcp", radius=3)
