"""MEF-SSIM, MEF-SSIMd, MS-SSIM and VIFp (fuseagent.metrics.mefssim): smoke, errors, reference values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fuseagent.errors import InputError
from fuseagent.metrics import create_metric, metric_card
from fuseagent.metrics import mefssim

FUSION_NAMES = ["mef_ssim", "mef_ssimd", "ms_ssim_fusion", "vifp_fusion"]
FR_NAMES = ["ms_ssim", "vifp"]


def _scene(size: int = 96, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / float(size)
    return 0.5 + 0.2 * np.sin(9 * xx) * np.cos(7 * yy) + 0.03 * rng.standard_normal((size, size))


@pytest.fixture(scope="module")
def exposures() -> tuple[np.ndarray, np.ndarray]:
    scene = _scene(192)
    return np.clip(scene * 0.5, 0, 1).astype(np.float32), np.clip(scene * 1.5, 0, 1).astype(np.float32)


class TestRegistration:
    def test_cards(self) -> None:
        for name in FUSION_NAMES:
            assert metric_card(name).mode == "fusion"
        for name in FR_NAMES:
            assert metric_card(name).mode == "fr"
        assert metric_card("mef_ssim").variant == "mefb"
        assert metric_card("mef_ssim").tasks == ("mef",)


class TestSmoke:
    @pytest.mark.parametrize("name", FUSION_NAMES)
    def test_fusion_metrics_finite(self, name: str, exposures) -> None:
        dark, bright = exposures
        value = create_metric(name)([dark, bright], (dark + bright) / 2)
        assert math.isfinite(value) and value > 0

    @pytest.mark.parametrize("name", FR_NAMES)
    def test_full_reference_finite(self, name: str, exposures) -> None:
        dark, bright = exposures
        assert math.isfinite(create_metric(name)(dark, bright))

    @pytest.mark.parametrize("name", FUSION_NAMES)
    def test_colour_and_three_sources(self, name: str, exposures) -> None:
        dark, bright = (np.repeat(x[:, :, None], 3, axis=2) for x in exposures)
        mid = (dark + bright) / 2
        assert math.isfinite(create_metric(name)([dark, mid, bright], mid))

    @pytest.mark.parametrize("name", ["mef_ssim", "mef_ssimd"])
    def test_constant_stack(self, name: str) -> None:
        flat = np.full((64, 64), 0.5, np.float32)
        assert create_metric(name)([flat, flat], flat) == pytest.approx(1.0, abs=1e-6)


class TestExceptions:
    @pytest.mark.parametrize("name", FUSION_NAMES)
    def test_one_source(self, name: str, exposures) -> None:
        with pytest.raises(InputError):
            create_metric(name)([exposures[0]], exposures[1])

    @pytest.mark.parametrize("name", FUSION_NAMES)
    def test_mismatched_sizes(self, name: str, exposures) -> None:
        dark, bright = exposures
        with pytest.raises(InputError):
            create_metric(name)([dark, bright], dark[:100, :120])

    @pytest.mark.parametrize("name", FR_NAMES)
    def test_mismatched_pair(self, name: str, exposures) -> None:
        with pytest.raises(InputError):
            create_metric(name)(exposures[0], exposures[1][:, :100])

    @pytest.mark.parametrize("name", FUSION_NAMES)
    def test_tiny_images(self, name: str) -> None:
        tiny = np.random.default_rng(0).random((8, 8)).astype(np.float32)
        with pytest.raises(InputError):
            create_metric(name)([tiny, tiny], tiny)

    def test_smallest_accepted_sizes(self) -> None:
        rng = np.random.default_rng(1)
        x44 = rng.random((44, 44)).astype(np.float32)
        assert math.isfinite(mefssim.mef_ssim([x44, 1 - x44], x44))
        with pytest.raises(InputError):
            mefssim.mef_ssim([x44[:43], x44[:43]], x44[:43])
        x176 = rng.random((176, 176)).astype(np.float32)
        assert mefssim.ms_ssim(x176, x176) == pytest.approx(1.0)
        with pytest.raises(InputError):
            mefssim.ms_ssim(x176[:175], x176[:175])


class TestMefSsimValues:
    def test_identical_stack_and_result(self) -> None:
        x = _scene(64).astype(np.float32)
        assert mefssim.mef_ssim([x, x], x) == pytest.approx(1.0, abs=1e-9)

    def test_one_source_as_result_is_below_one(self, exposures) -> None:
        dark, bright = exposures
        value = mefssim.mef_ssim([dark, bright], dark)
        assert 0.3 < value < 1.0

    def test_fusion_beats_noise(self, exposures) -> None:
        dark, bright = exposures
        noisy = np.clip((dark + bright) / 2 + np.random.default_rng(2).normal(0, 0.1, dark.shape), 0, 1)
        assert mefssim.mef_ssim([dark, bright], (dark + bright) / 2) > mefssim.mef_ssim([dark, bright], noisy)

    def test_matches_mefb_published_value(self, shared_data) -> None:
        from fuseagent.metrics.calibration import load_case

        sources, fused = load_case("mefb", "Chair", "DEM", shared_data)
        assert mefssim.mef_ssim(sources, fused) == pytest.approx(0.91071, rel=1e-4)


class TestMefSsimdValues:
    @staticmethod
    def _moving_object() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        scene = _scene(96)
        yy = np.mgrid[0:96, 0:96][0] / 96.0
        first, second = scene.copy(), scene.copy()
        first[30:60, 10:40] = 0.9 - 0.3 * np.sin(20 * yy[30:60, 10:40])
        second[30:60, 50:80] = 0.9 - 0.3 * np.sin(20 * yy[30:60, 50:80])
        dark = np.clip(first * 0.5, 0, 1).astype(np.float32)
        bright = np.clip(second * 1.5, 0, 1).astype(np.float32)
        ghost_free = np.clip(first * 0.9, 0, 1).astype(np.float32)
        return dark, bright, ghost_free, ((dark + bright) / 2).astype(np.float32)

    def test_prefers_the_ghost_free_result(self) -> None:
        dark, bright, ghost_free, ghosted = self._moving_object()
        assert mefssim.mef_ssimd([dark, bright], ghost_free) > mefssim.mef_ssimd([dark, bright], ghosted) + 0.05
        # the static MEF-SSIM is fooled by the ghost: it rewards the blended object
        assert mefssim.mef_ssim([dark, bright], ghosted) > mefssim.mef_ssim([dark, bright], ghost_free)

    def test_identical_static_stack(self) -> None:
        x = _scene(64).astype(np.float32)
        assert mefssim.mef_ssimd([x, x], x) == pytest.approx(1.0, abs=1e-9)

    def test_histogram_match_is_monotone_and_matches_levels(self) -> None:
        rng = np.random.default_rng(4)
        source = rng.integers(0, 100, (32, 32)).astype(np.float64)
        target = np.clip(source * 2 + 20, 0, 255)
        matched = mefssim._histogram_match(source, target)
        order = np.argsort(source.ravel(), kind="stable")
        assert np.all(np.diff(matched.ravel()[order]) >= 0)
        assert np.array_equal(matched, target)


class TestMsSsimAndVifp:
    def test_identity(self) -> None:
        x = _scene(192).astype(np.float32)
        assert mefssim.ms_ssim(x, x) == pytest.approx(1.0, abs=1e-12)
        assert mefssim.vifp(x, x) == pytest.approx(1.0, abs=1e-9)
        assert mefssim.vifp_fusion([x, x], x) == pytest.approx(2.0, abs=1e-9)
        assert mefssim.ms_ssim_fusion([x, x], x) == pytest.approx(1.0, abs=1e-12)

    def test_monotone_in_noise(self) -> None:
        x = _scene(192).astype(np.float32)
        rng = np.random.default_rng(5)
        light = np.clip(x + rng.normal(0, 0.02, x.shape), 0, 1).astype(np.float32)
        heavy = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1).astype(np.float32)
        assert 1.0 > mefssim.ms_ssim(x, light) > mefssim.ms_ssim(x, heavy) > 0
        assert 1.0 > mefssim.vifp(x, light) > mefssim.vifp(x, heavy) > 0

    def test_vifp_rewards_contrast_gain(self) -> None:
        x = _scene(96).astype(np.float32)
        stretched = np.clip((x - 0.5) * 1.3 + 0.5, 0, 1).astype(np.float32)
        assert mefssim.vifp(x, stretched) > 1.0

    def test_ms_ssim_symmetric(self) -> None:
        x = _scene(192, seed=1).astype(np.float32)
        y = np.clip(x * 0.8 + 0.1, 0, 1).astype(np.float32)
        assert mefssim.ms_ssim(x, y) == pytest.approx(mefssim.ms_ssim(y, x), rel=1e-12)
