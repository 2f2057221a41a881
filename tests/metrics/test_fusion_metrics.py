"""Fusion metrics of VIFB / MEFB (fusion.py, structural.py): values, variants and robustness."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from fuseagent.errors import InputError
from fuseagent.metrics import create_metric, list_metrics, metric_card
from fuseagent.metrics import fusion as F
from fuseagent.metrics import structural as S

#: every metric registered by fusion.py / structural.py
OURS = ["en", "en_mefb", "sd", "sd_mefb", "sf", "sf_mefb", "sf_vifb", "ag", "ag_mefb", "ei", "ei_mefb",
        "ce", "ce_mefb", "mi", "psnr", "rmse", "psnr_vifb", "psnr_mefb", "rmse_vifb", "rmse_mefb",
        "ssim", "ssim_vifb", "qabf", "qabf_mefb", "nabf", "qcb", "qcb_mefb", "qcv", "qcv_mefb"]


def _pair(rng: np.random.Generator, shape: tuple[int, ...] = (48, 64, 3)) -> tuple[list[np.ndarray], np.ndarray]:
    """8-bit-valued random visible (colour), infrared (grey) and their average."""
    vis = (rng.integers(0, 256, shape) / 255.0).astype(np.float32)
    ir = (rng.integers(0, 256, shape[:2]) / 255.0).astype(np.float32)
    fused = np.round((vis + ir[..., None]) / 2 * 255) / 255.0 if vis.ndim == 3 else (vis + ir) / 2
    return [vis, ir], fused.astype(np.float32)


class TestRegistry:
    def test_all_registered_with_cards(self):
        names = list_metrics(mode="fusion")
        for name in OURS:
            assert name in names
            card = metric_card(name)
            assert card.mode == "fusion"
            assert card.range[0] < card.range[1]
            assert card.reference

    def test_direction(self):
        assert metric_card("qcv").lower_better and metric_card("ce").lower_better
        assert metric_card("nabf").lower_better and metric_card("rmse_vifb").lower_better
        assert not metric_card("qabf").lower_better and not metric_card("en").lower_better

    def test_variants(self):
        assert metric_card("en").variant == "vifb"
        assert metric_card("en_mefb").variant == "mefb"
        assert metric_card("sf_vifb").variant == "vifb"


class TestSmoke:
    @pytest.mark.parametrize("name", OURS)
    def test_finite_on_colour_and_grey(self, name, rng):
        metric = create_metric(name)
        for shape in ((48, 64, 3), (48, 64)):
            sources, fused = _pair(rng, shape)
            value = metric(sources, fused)
            assert isinstance(value, float) and math.isfinite(value)
            low, high = metric.card.range
            assert low - 1e-9 <= value <= high + 1e-9

    def test_fusion_scores_match_single_calls(self, rng):
        sources, fused = _pair(rng)
        names = ["en", "qabf", "ssim_vifb", "qcb", "qcv", "mi", "sf_vifb"]
        batch = F.fusion_scores(sources, fused, names)
        assert list(batch) == names
        for name in names:
            assert batch[name] == pytest.approx(create_metric(name)(sources, fused), rel=1e-12)

    def test_fusion_scores_rejects_non_fusion_metric(self, rng):
        nr = list_metrics(mode="nr")
        if not nr:
            pytest.skip("no no-reference metric registered")
        sources, fused = _pair(rng)
        with pytest.raises(InputError, match="not a fusion metric"):
            F.fusion_scores(sources, fused, [nr[0]])


class TestReferenceValues:
    """Values computed by hand or by independent implementations."""

    def test_entropy_of_uniform_ramp(self):
        ramp = np.tile(np.arange(256) / 255.0, (4, 1))
        assert F.en([ramp, ramp], ramp) == pytest.approx(8.0)
        half = np.tile(np.repeat([0.0, 1.0], 8), (4, 1))
        assert F.en([half, half], half) == pytest.approx(1.0)

    def test_entropy_matches_skimage(self, camera):
        from skimage.measure import shannon_entropy

        assert F.en([camera, camera], camera) == pytest.approx(shannon_entropy(np.round(camera * 255)), rel=1e-9)

    def test_sd_is_population_std(self, astronaut):
        expected = np.mean([np.round(astronaut[..., k] * 255).std() for k in range(3)])
        assert F.sd([astronaut, astronaut], astronaut) == pytest.approx(expected, rel=1e-9)

    def test_spatial_frequency_by_hand(self):
        f = np.array([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0]])  # 0-255: [[0,255,0],[255,255,255]]
        row = (255**2 * 2) / 6
        col = (255**2 * 2) / 6
        assert F.sf([f, f], f) == pytest.approx(math.sqrt(row + col))

    def test_vifb_spatial_frequency_crosses_channel_seams(self):
        f = np.zeros((2, 2, 3))
        f[:, :, 1] = 1.0  # green channel 255: seams R|G and G|B each jump by 255 on both rows
        seam_rows = 4 * 255.0**2 / (2 * 6)
        assert F.sf_vifb([f, f], f) == pytest.approx(math.sqrt(seam_rows))
        assert F.sf([f, f], f) == 0.0

    def test_average_gradient_of_linear_ramp(self):
        f = np.tile(np.linspace(0, 1, 6), (6, 1))  # slope 51 per pixel along x
        expected = 36 * (51 / math.sqrt(2)) / 25
        assert F.ag([f, f], f) == pytest.approx(expected)

    def test_edge_intensity_of_step(self):
        f = np.zeros((4, 4))
        f[:, 2:] = 1.0
        # Sobel x response 4·255 on the two columns beside the step, replicated borders elsewhere 0
        assert F.ei([f, f], f) == pytest.approx(8 * 4 * 255 / 16)

    def test_cross_entropy(self):
        a = np.tile(np.repeat([0.0, 1.0], 8), (4, 1))  # 50/50 at 0 and 255
        f = np.tile(np.repeat([0.0, 1.0], [12, 4]), (4, 1))  # 75/25
        expected = 0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)
        assert F.ce([a, a], f) == pytest.approx(expected)
        assert F.ce([a, a], a) == 0.0

    def test_mutual_information(self):
        ramp = np.tile(np.arange(256) / 255.0, (4, 1))
        assert F.mi([ramp, ramp], ramp) == pytest.approx(2 * math.log(256))
        noise = np.random.default_rng(0).random((64, 64))
        assert F.mi([noise, noise], np.zeros((64, 64))) == 0.0

    def test_vifb_psnr_and_rmse_definition(self):
        a = np.zeros((10, 10))
        f = np.full((10, 10), 0.1)  # 25.5 everywhere: sqrt(100·25.5²)/100 = 2.55
        assert F.rmse_vifb([a, a], f) == pytest.approx(2.55)
        assert F.psnr_vifb([a, a], f) == pytest.approx(20 * math.log10(255 / math.sqrt(2.55)))
        assert F.rmse([a, a], f) == pytest.approx(25.5)
        assert F.psnr([a, a], f) == pytest.approx(20.0)

    def test_identical_images_give_capped_psnr(self):
        x = np.random.default_rng(0).random((16, 16))
        assert F.psnr([x, x], x) == F.PSNR_CAP
        assert F.psnr_vifb([x, x], x) == F.PSNR_CAP

    def test_ssim_matches_skimage_valid_region(self, camera):
        from skimage.metrics import structural_similarity

        noisy = np.clip(camera + np.random.default_rng(1).normal(0, 0.05, camera.shape), 0, 1)
        noisy = np.round(noisy * 255) / 255
        a255, b255 = np.round(camera * 255), noisy * 255
        reference = structural_similarity(a255, np.round(b255), data_range=255, gaussian_weights=True,
                                          sigma=1.5, use_sample_covariance=False, win_size=11)
        assert S.ssim_map_mean(a255, np.round(b255)) == pytest.approx(reference, rel=1e-6)
        assert S.ssim_vifb([camera, camera], noisy) == pytest.approx(2 * reference, rel=1e-6)
        assert S.ssim([camera, camera], noisy) == pytest.approx(reference, rel=1e-6)

    def test_qabf_identity_and_degradation(self, camera):
        q_same = S.qabf([camera, camera], camera)
        assert q_same == pytest.approx(S._TG / (1 + math.exp(S._KG * 0.5)) * S._TA / (1 + math.exp(S._KA * 0.2)),
                                       rel=1e-3)
        blurred = np.asarray(__import__("cv2").GaussianBlur(camera, (9, 9), 3))
        assert S.qabf([camera, camera], blurred) < q_same - 0.2

    def test_nabf_counts_only_added_edges(self, camera):
        assert S.nabf([camera, camera], camera) == 0.0
        sharpened = np.clip(camera + 2 * (camera - __import__("cv2").GaussianBlur(camera, (5, 5), 1.5)), 0, 1)
        assert S.nabf([camera, camera], sharpened) > 0.01

    def test_qcb_and_qcv_identity(self, camera):
        small = camera[:96, :128]
        assert S.qcb([small, small], small) == pytest.approx(1.0)
        assert S.qcv([small, small], small) == 0.0
        other = np.clip(small + 0.2 * np.random.default_rng(3).standard_normal(small.shape), 0, 1)
        assert S.qcb([small, small], other) < 0.9
        assert S.qcv([small, small], other) > 10.0

    def test_many_sources(self, rng):
        (vis, ir), fused = _pair(rng, (40, 40))
        third = np.clip(vis * 0.5 + 0.2, 0, 1)
        for name in ("qabf", "qcb", "qcv", "ssim", "mi", "ce", "nabf"):
            assert math.isfinite(create_metric(name)([vis, ir, third], fused))


class TestColourHandling:
    def test_grey_sources_replicated_per_channel(self, rng):
        (vis, ir), fused = _pair(rng)
        # a colour fused image with the grey infrared: every channel sees the same infrared
        per_channel = np.mean([F.ce([vis[..., k], ir], fused[..., k]) for k in range(3)])
        assert F.ce([vis, ir], fused) == pytest.approx(per_channel)
        per_channel = np.mean([S.qabf([vis[..., k], ir], fused[..., k]) for k in range(3)])
        assert S.qabf([vis, ir], fused) == pytest.approx(per_channel)

    def test_grey_fused_with_colour_source_uses_matlab_rgb2gray(self, rng):
        (vis, ir), fused = _pair(rng)
        grey_vis = np.floor(np.round(vis * 255) @ F._RGB2GRAY + 0.5) / 255
        fused_grey = fused[..., 0]
        assert F.mi([vis, ir], fused_grey) == pytest.approx(F.mi([grey_vis, ir], fused_grey))

    def test_mefb_uses_first_channel_for_grey_sources(self, rng):
        _, fused = _pair(rng)
        a, b = fused[..., 1], fused[..., 2]
        assert F.en([a, b], fused, variant="mefb") == pytest.approx(F.en([a, b], fused[..., 0]))
        assert create_metric("qabf_mefb")([a, b], fused) == pytest.approx(S.qabf([a, b], fused[..., 0]))
        # VIFB averages the three channels instead
        expected = np.mean([F.en([a, b], fused[..., k]) for k in range(3)])
        assert F.en([a, b], fused) == pytest.approx(expected)

    def test_mefb_average_gradient_uses_unrounded_luma(self, rng):
        _, fused = _pair(rng)
        grey = np.round(fused * 255) @ F._RGB2GRAY / 255
        a = fused[..., 0]
        assert create_metric("ag_mefb")([a, a], fused) == pytest.approx(F.ag([a, a], grey), rel=1e-9)

    def test_unknown_variant(self, rng):
        sources, fused = _pair(rng)
        with pytest.raises(InputError, match="variant"):
            F.en(sources, fused, variant="matlab")


class TestRobustness:
    """Constant, tiny, odd and mismatched inputs: a defined value or a one-line InputError."""

    @pytest.mark.parametrize("name", OURS)
    def test_constant_images(self, name):
        metric = create_metric(name)
        for level in (0.0, 0.5, 1.0):
            flat = np.full((32, 32, 3), level, np.float32)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                value = metric([flat, flat[..., 0]], flat)
                value2 = metric([flat, np.full((32, 32), 0.25, np.float32)], flat)
            assert math.isfinite(value) and math.isfinite(value2)

    @pytest.mark.parametrize("name", OURS)
    def test_tiny_images(self, name, rng):
        metric = create_metric(name)
        sources, fused = _pair(rng, (8, 8, 3))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                value = metric(sources, fused)
        except InputError as exc:
            assert "\n" not in str(exc) and "11x11" in str(exc)
            return
        assert math.isfinite(value)

    @pytest.mark.parametrize("name", OURS)
    def test_mismatched_sizes(self, name, rng):
        (vis, ir), fused = _pair(rng)
        with pytest.raises(InputError, match="sizes must match"):
            create_metric(name)([vis, ir[:40]], fused)

    def test_one_source_and_bad_shapes(self, rng):
        (vis, ir), fused = _pair(rng)
        with pytest.raises(InputError, match="at least 2"):
            F.en([vis], fused)
        with pytest.raises(InputError, match="expected"):
            F.en([vis, ir], np.zeros((48, 64, 2)))
        with pytest.raises(InputError, match="too small"):
            F.en([vis[:1], ir[:1]], fused[:1])

    def test_nan_and_out_of_range_inputs_are_sanitised(self, rng):
        (vis, ir), fused = _pair(rng)
        bad = fused.copy()
        bad[0, 0, 0] = np.nan
        bad[1, 1, 1] = 3.0
        for name in ("en", "qabf", "qcb", "ssim_vifb"):
            assert math.isfinite(create_metric(name)([vis, ir], bad))

    def test_uint8_input(self, rng):
        (vis, ir), fused = _pair(rng)
        as_uint8 = [np.round(x * 255).astype(np.uint8) for x in (vis, ir, fused)]
        assert F.en(as_uint8[:2], as_uint8[2]) == pytest.approx(F.en([vis, ir], fused))
