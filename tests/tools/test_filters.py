"""Tests of the shared filters: guided filter and noise-sigma estimator."""

from __future__ import annotations

import numpy as np
import pytest

from fuseagent.errors import InputError
from fuseagent.tools.filters import box_mean, check_integer, check_number, estimate_noise_sigma, guided_filter


class TestGuidedFilter:
    def test_flat_guide_gives_twice_box_filtered_source(self, rng: np.random.Generator) -> None:
        src = rng.random((40, 50)).astype(np.float32)
        out = guided_filter(np.full((40, 50), 0.3, np.float32), src, 3, 1e-2)
        assert np.allclose(out, box_mean(box_mean(src, 3), 3), atol=1e-5)  # a = 0, q = mean of b = mean_p

    def test_self_guided_keeps_strong_edge_and_smooths_noise(self, rng: np.random.Generator) -> None:
        step = np.zeros((64, 64), np.float32)
        step[:, 32:] = 1.0
        noisy = step + 0.02 * rng.standard_normal(step.shape).astype(np.float32)
        out = guided_filter(noisy, noisy, 4, 1e-2)
        flat = out[:, 4:26]
        assert flat.std() < 0.5 * noisy[:, 4:26].std()
        assert out[:, 34:].mean() - out[:, :30].mean() > 0.95

    def test_colour_guide_matches_per_pixel_solve(self, rng: np.random.Generator) -> None:
        guide = rng.random((24, 30, 3)).astype(np.float32)
        src = (0.5 * guide[..., 0] + 0.2 * guide[..., 2]).astype(np.float32)
        radius, eps = 2, 1e-3
        out = guided_filter(guide, src, radius, eps)
        mean_i, mean_p = box_mean(guide, radius), box_mean(src, radius)
        cov = box_mean(guide * src[..., None], radius) - mean_i * mean_p[..., None]
        sigma = np.empty((24, 30, 3, 3))
        for i in range(3):
            for j in range(3):
                sigma[..., i, j] = box_mean(guide[..., i] * guide[..., j], radius) - mean_i[..., i] * mean_i[..., j]
        a = np.linalg.solve(sigma + eps * np.eye(3), cov[..., None].astype(np.float64))[..., 0].astype(np.float32)
        b = mean_p - (a * mean_i).sum(axis=2)
        expected = (box_mean(a, radius) * guide).sum(axis=2) + box_mean(b, radius)
        assert np.abs(out - expected).max() < 1e-4
        # src is a linear function of the guide: the colour-guided filter reproduces it closely
        assert np.abs(out - src).mean() < 0.01

    def test_multichannel_source_with_grey_guide(self, rng: np.random.Generator) -> None:
        guide = rng.random((20, 20)).astype(np.float32)
        src = rng.random((20, 20, 3)).astype(np.float32)
        out = guided_filter(guide, src, 2, 1e-3)
        for c in range(3):
            assert np.allclose(out[..., c], guided_filter(guide, src[..., c], 2, 1e-3), atol=1e-6)

    def test_bad_arguments(self) -> None:
        x = np.zeros((8, 8), np.float32)
        with pytest.raises(InputError):
            guided_filter(x, np.zeros((8, 9), np.float32), 2, 1e-3)
        with pytest.raises(InputError):
            guided_filter(x, x, 0, 1e-3)
        with pytest.raises(InputError):
            guided_filter(x, x, 2, 0.0)


class TestEstimateNoiseSigma:
    @pytest.mark.parametrize("sigma", [0.02, 0.05, 0.1])
    @pytest.mark.parametrize("image_name", ["camera", "astronaut"])
    def test_within_20_percent(self, request: pytest.FixtureRequest, image_name: str, sigma: float) -> None:
        image = request.getfixturevalue(image_name)
        noisy = np.clip(image + sigma * np.random.default_rng(1).standard_normal(image.shape), 0, 1)
        estimate = estimate_noise_sigma(noisy)
        assert abs(estimate - sigma) <= 0.2 * sigma, estimate

    def test_clean_8bit_image_reads_low(self, camera: np.ndarray, astronaut: np.ndarray) -> None:
        assert estimate_noise_sigma(camera) < 0.01
        assert estimate_noise_sigma(astronaut) < 0.012

    def test_constant_and_tiny(self) -> None:
        assert estimate_noise_sigma(np.full((2, 2), 0.5, np.float32)) == 0.0
        assert np.isfinite(estimate_noise_sigma(np.random.default_rng(0).random((3, 5))))

    def test_rejects_bad_shape(self) -> None:
        with pytest.raises(InputError):
            estimate_noise_sigma(np.zeros((1, 10), np.float32))


class TestParameterChecks:
    def test_numbers(self) -> None:
        assert check_number("x", 2, 0, 3) == 2.0
        for bad in (True, "1", float("nan"), 4, -1):
            with pytest.raises(InputError):
                check_number("x", bad, 0, 3)

    def test_integers(self) -> None:
        assert check_integer("n", np.int64(3), 1, 5) == 3
        for bad in (0, 6, 2.0, False):
            with pytest.raises(InputError):
                check_integer("n", bad, 1, 5)
