"""The faster reflection metrics give the values of the formulations they replaced.

``REFERENCE`` holds numbers computed with the code before the speed-up (issue #5: BRISQUE, NIQE,
PIQE, the rewards and HQA of the agent's reflection) on the bundled TNO pair at the agent's
256×192 thumbnail size (the visible image darkened and noisy, as ``benchmarks/bench_agent.py``
builds it) and on a colour 200×150 image; the current code must agree to 1e-6 relative (it
agrees to ~1e-13: only NIQE's Mahalanobis solve and a gradient magnitude are rounded
differently). The helpers are checked against the numpy expressions they stand for.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from fuseagent.errors import InputError
from fuseagent.io import read_image, resize_to
from fuseagent.metrics import mefssim, nr, rewards, structural

SCENE = Path(__file__).resolve().parents[2] / "examples" / "ivif" / "tno_08"

#: values of the code before the speed-up (commit 79b6236), see the module docstring
REFERENCE = {
    "brisque.ir": 42.196777425095746,
    "niqe.ir": 7.491685392998846,
    "piqe.ir": 37.90403728154144,
    "iqr.ir": 0.48552650634866457,
    "brisque.vis": 71.86418620085462,
    "niqe.vis": 16.056344332323473,
    "piqe.vis": 66.47750255229144,
    "iqr.vis": 0.2729088062969591,
    "brisque.astronaut": 21.307538495216335,
    "niqe.astronaut": 4.592765501392602,
    "piqe.astronaut": 48.8998504176516,
    "iqr.astronaut": 0.7452155755019001,
    "enhancement.value": 0.9964273186693626,
    "enhancement.gain": 0.14077149533747563,
    "alignment.value": 0.09676369569090486,
    "alignment.gain": -0.022152937596450997,
    "hqa.ivif": 0.6334736171176232,
    "hqa.ivif.structure": 0.7890791520505832,
    "hqa.mef": 0.712525053738859,
    "ms_ssim": 0.7644681653827604,
}

#: a small homography (moving → reference) for the alignment reward
HOMOGRAPHY = np.array([[1.01, 0.01, 1.5], [-0.01, 0.99, -2.0], [0.0, 0.0, 1.0]])


@pytest.fixture(scope="module")
def thumbnails(astronaut: np.ndarray) -> dict[str, np.ndarray]:
    """The TNO pair at 256×192 (visible darkened and noisy) and astronaut at 200×150."""
    ir = resize_to(read_image(SCENE / "ir.png", mode="gray"), (192, 256))
    vis = resize_to(read_image(SCENE / "vis.png", mode="gray"), (192, 256))
    rng = np.random.default_rng(0)
    vis = np.clip(vis * 0.5 + rng.normal(0, 0.04, vis.shape), 0, 1).astype(np.float32)
    return {"ir": ir, "vis": vis, "astronaut": resize_to(astronaut, (150, 200))}


def _fused(ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
    return np.clip(0.5 * (ir + vis) + 0.2 * (vis - cv2.GaussianBlur(vis, (0, 0), 2)), 0, 1).astype(np.float32)


class TestNoReferenceValues:
    @pytest.mark.parametrize("name", ["ir", "vis", "astronaut"])
    def test_brisque_niqe_piqe_iqr_as_before(self, thumbnails: dict[str, np.ndarray], name: str) -> None:
        image = thumbnails[name]
        assert nr.brisque(image) == pytest.approx(REFERENCE[f"brisque.{name}"], rel=1e-6)
        assert nr.niqe(image) == pytest.approx(REFERENCE[f"niqe.{name}"], rel=1e-6)
        assert nr.piqe(image) == pytest.approx(REFERENCE[f"piqe.{name}"], rel=1e-6)
        assert rewards.intrinsic_reward(image).value == pytest.approx(REFERENCE[f"iqr.{name}"], rel=1e-6)

    def test_intrinsic_reward_terms_equal_the_metrics(self, thumbnails: dict[str, np.ndarray]) -> None:
        image = thumbnails["astronaut"]
        terms = rewards.intrinsic_reward(image).terms
        assert terms["brisque"] == 1.0 - nr.brisque(image) / 100.0
        assert terms["piqe"] == 1.0 - nr.piqe(image) / 100.0


class TestRelationalValues:
    def test_enhancement_as_before(self, thumbnails: dict[str, np.ndarray]) -> None:
        vis = thumbnails["vis"]
        reward = rewards.relational_reward("enhancement", vis, cv2.GaussianBlur(vis, (5, 5), 1.0), thumbnails["ir"])
        assert reward.value == pytest.approx(REFERENCE["enhancement.value"], rel=1e-6)
        assert reward.terms["gain"] == pytest.approx(REFERENCE["enhancement.gain"], rel=1e-6)

    def test_alignment_as_before(self, thumbnails: dict[str, np.ndarray]) -> None:
        ir = thumbnails["ir"]
        h, w = ir.shape
        warped = cv2.warpPerspective(ir, HOMOGRAPHY, (w, h), flags=cv2.INTER_LINEAR)
        valid = cv2.warpPerspective(np.ones((h, w), np.float32), HOMOGRAPHY, (w, h), flags=cv2.INTER_NEAREST) > 0.5
        reward = rewards.relational_reward("alignment", ir, warped, thumbnails["vis"], transform=HOMOGRAPHY,
                                           valid=valid)
        assert reward.value == pytest.approx(REFERENCE["alignment.value"], rel=1e-6)
        assert reward.terms["gain"] == pytest.approx(REFERENCE["alignment.gain"], rel=1e-6)

    def test_hqa_and_ms_ssim_as_before(self, thumbnails: dict[str, np.ndarray]) -> None:
        ir, vis = thumbnails["ir"], thumbnails["vis"]
        fused = _fused(ir, vis)
        result = rewards.hqa([ir, vis], fused, [0.6, 0.55], task="ivif")
        assert result.value == pytest.approx(REFERENCE["hqa.ivif"], rel=1e-6)
        assert result.terms["structure"] == pytest.approx(REFERENCE["hqa.ivif.structure"], rel=1e-6)
        mef = rewards.hqa([ir, vis, cv2.GaussianBlur(vis, (5, 5), 1.0)], fused, task="mef")
        assert mef.value == pytest.approx(REFERENCE["hqa.mef"], rel=1e-6)
        assert mefssim.ms_ssim(ir, fused) == pytest.approx(REFERENCE["ms_ssim"], rel=1e-6)


class TestRewardCache:
    def test_cached_rewards_equal_uncached_ones(self, thumbnails: dict[str, np.ndarray]) -> None:
        ir, vis = thumbnails["ir"], thumbnails["vis"]
        denoised = cv2.GaussianBlur(vis, (5, 5), 1.0)
        lighter = np.clip(denoised * 1.6, 0, 1).astype(np.float32)
        cache = rewards.RewardCache()
        hits = []
        for before, after in [(vis, denoised), (denoised, lighter)]:
            cached = rewards.relational_reward("enhancement", before, after, ir, cache=cache)
            assert cached == rewards.relational_reward("enhancement", before, after, ir)
            hits.append(cache.hits)
        # step 1 analyses the infrared image once for both compatibilities; step 2 reuses that
        # analysis and step 1's compatibility of the denoised image
        assert hits == [1, 3]
        fused = _fused(ir, vis)
        assert rewards.hqa([ir, vis], fused, [0.6], cache=cache) == rewards.hqa([ir, vis], fused, [0.6])
        assert cache.hits == 5  # both sources' SSIM moments came from the steps

    def test_key_follows_content_and_the_cache_is_bounded(self) -> None:
        cache = rewards.RewardCache(max_entries=2)
        a = np.zeros((4, 4), np.float32)
        assert cache.key(a) == cache.key(a.copy()) != cache.key(np.ones((4, 4), np.float32))
        assert cache.key(a) != cache.key(np.zeros((4, 4), np.float64))
        calls = []
        for k in range(3):
            cache.get(k, lambda k=k: calls.append(k))
        cache.get(2, lambda: calls.append("again"))
        cache.get(0, lambda: calls.append("recomputed"))  # evicted: the oldest went first
        assert calls == [0, 1, 2, "recomputed"] and cache.hits == 1


    def test_threads_asking_for_one_value_compute_it_once(self) -> None:
        import pickle
        import threading
        import time

        cache = rewards.RewardCache()
        calls, results = [], []

        def slow() -> int:
            calls.append(threading.current_thread().name)
            time.sleep(0.05)
            return 42

        threads = [threading.Thread(target=lambda: results.append(cache.get("k", slow))) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [42, 42, 42] and len(calls) == 1
        with pytest.raises(ZeroDivisionError):  # a failed computation is not stored; the next call retries
            cache.get("bad", lambda: 1 / 0)
        assert cache.get("bad", lambda: 7) == 7
        copy = pickle.loads(pickle.dumps(cache))  # its lock is not pickled: a new one is made
        assert copy.get("k", lambda: 0) == 42


class TestHelpers:
    @pytest.mark.parametrize("shape", [(192, 256), (6, 9), (1, 5)])
    def test_sliding_std_is_numpy_std(self, shape: tuple[int, int]) -> None:
        values = np.random.default_rng(1).normal(0, 2, shape + (16,))
        expected = sliding_window_view(values, 6, axis=-1).std(axis=-1, ddof=1)
        np.testing.assert_array_equal(nr._sliding_std(values, 6), expected)

    @pytest.mark.parametrize("shape", [(12, 16), (7, 9)])
    def test_products_with_shifts_are_roll_products(self, shape: tuple[int, int]) -> None:
        image = np.random.default_rng(2).normal(size=(3,) + shape)
        shifts = ((0, 1), (1, 0), (1, 1), (-1, 1), (1, -1))
        products = nr._products_with_shifts(image, shifts)
        for plane, shift in zip(products, shifts, strict=True):
            np.testing.assert_array_equal(plane, image * np.roll(image, shift, axis=(1, 2)))

    def test_mahalanobis_square_is_the_pseudo_inverse_form(self) -> None:
        rng = np.random.default_rng(3)
        basis = rng.normal(size=(36, 36))
        covariance = basis @ basis.T + np.eye(36)
        difference = rng.normal(size=36)
        expected = difference @ np.linalg.pinv(covariance) @ difference
        assert nr._mahalanobis_square(difference, covariance) == pytest.approx(expected, rel=1e-9)
        singular = np.diag([1.0, 0.0])  # not positive definite: the pseudo-inverse decides
        assert nr._mahalanobis_square(np.array([2.0, 5.0]), singular) == pytest.approx(4.0)

    @pytest.mark.parametrize("bins", [64, 10])
    def test_histograms_are_numpy_histograms(self, bins: int) -> None:
        rng = np.random.default_rng(4)
        x = np.concatenate([rng.random(5000), np.arange(bins + 1) / bins, [-0.1, 1.2]])
        y = np.concatenate([rng.random(5000) ** 2, np.linspace(0, 1, bins + 1), [0.5, 0.5]])
        np.testing.assert_array_equal(rewards._histogram(x, bins), np.histogram(x, bins, (0.0, 1.0))[0])
        expected = np.histogram2d(x, y, bins=bins, range=[[0.0, 1.0], [0.0, 1.0]])[0]
        np.testing.assert_array_equal(rewards._joint_histogram(x, y, bins), expected)

    def test_gradient_magnitude_is_hypot(self, thumbnails: dict[str, np.ndarray]) -> None:
        luma = thumbnails["vis"].astype(np.float64)
        gx, gy = rewards._sobel(luma)
        np.testing.assert_allclose(rewards._gradient_magnitude(luma), np.hypot(gx, gy), rtol=1e-15, atol=0)

    def test_ssim_with_moments_is_ssim_map_mean(self, thumbnails: dict[str, np.ndarray]) -> None:
        a, b = thumbnails["ir"] * 255.0, thumbnails["vis"] * 255.0
        moments_a, moments_b = structural.local_moments(a), structural.local_moments(b)
        assert structural.ssim_with_moments(a, b, moments_a, moments_b) == structural.ssim_map_mean(a, b)
        assert structural.ssim_with_moments(b, a, moments_b, moments_a) == structural.ssim_map_mean(a, b)

    def test_ms_ssim_many_is_ms_ssim(self, thumbnails: dict[str, np.ndarray]) -> None:
        ir, vis = thumbnails["ir"], thumbnails["vis"]
        fused = _fused(ir, vis)
        expected = [mefssim.ms_ssim(ir, fused), mefssim.ms_ssim(vis, fused)]
        assert mefssim.ms_ssim_many([ir, vis], fused) == expected
        moments = [structural.local_moments(ir.astype(np.float64) * 255.0), None]
        assert mefssim.ms_ssim_many([ir, vis], fused, moments) == expected
        with pytest.raises(InputError, match="moments given"):
            mefssim.ms_ssim_many([ir, vis], fused, moments[:1])

    @pytest.mark.parametrize("shape", [(37, 53), (96, 128)])
    def test_halving_filters_only_kept_samples(self, shape: tuple[int, int]) -> None:
        image = np.random.default_rng(5).random(shape)
        padded = np.pad(image, ((0, 1), (0, 1)), mode="symmetric")
        mean = (padded[:-1, :-1] + padded[1:, :-1] + padded[:-1, 1:] + padded[1:, 1:]) / 4.0
        np.testing.assert_array_equal(mefssim._halve(image), mean[::2, ::2])
