"""Quality rewards: directions (higher = better), normalisation to [0, 1], configuration, errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fuseagent.errors import InputError
from fuseagent.io import match_sizes, read_image
from fuseagent.metrics import create_metric, metric_card
from fuseagent.metrics.rewards import (
    HQAConfig, IntrinsicConfig, RelationalConfig, Reward, hqa, intrinsic_reward, relational_reward,
    transform_plausibility,
)


def _noisy(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(image + rng.normal(0, sigma, image.shape), 0, 1).astype(np.float32)


def _warp(image: np.ndarray, matrix: np.ndarray, border: int = cv2.BORDER_CONSTANT) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.warpPerspective(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=border)


@pytest.fixture(scope="module")
def tno_pair(shared_data: Path) -> tuple[np.ndarray, np.ndarray]:
    """TNO pair 01 (infrared, visible), grey, same size."""
    ir = read_image(shared_data / "ivif" / "tno" / "ir" / "01.png", "gray")
    vis = read_image(shared_data / "ivif" / "tno" / "vis" / "01.png", "gray")
    ir, vis = match_sizes([ir, vis])
    return ir, vis


@pytest.fixture(scope="module")
def road_pair(shared_data: Path) -> tuple[np.ndarray, np.ndarray]:
    """RoadScene pair FLIR_00006 (infrared, visible), grey, same size."""
    ir = read_image(shared_data / "ivif" / "roadscene" / "ir" / "FLIR_00006.jpg", "gray")
    vis = read_image(shared_data / "ivif" / "roadscene" / "vis" / "FLIR_00006.jpg", "gray")
    ir, vis = match_sizes([ir, vis])
    return ir, vis


class TestReward:
    def test_float_conversion(self) -> None:
        assert float(Reward(0.25, {"a": 0.25})) == 0.25


class TestIntrinsicReward:
    def test_noise_lowers_the_reward_monotonically(self, camera: np.ndarray) -> None:
        values = [intrinsic_reward(_noisy(camera, s)).value for s in (0.0, 0.02, 0.05, 0.1)]
        assert all(0.0 <= v <= 1.0 for v in values)
        assert values[0] > values[1] > values[2] > values[3]
        assert values[0] - values[3] > 0.3

    def test_blur_and_darkening_lower_it(self, camera: np.ndarray) -> None:
        clean = intrinsic_reward(camera)
        blurred = intrinsic_reward(cv2.GaussianBlur(camera, (0, 0), 3))
        dark = intrinsic_reward(camera * 0.15)
        assert blurred.value < clean.value - 0.2
        assert dark.terms["exposure"] < clean.terms["exposure"] - 0.3
        assert dark.value < clean.value

    def test_terms_are_unit_and_named(self, astronaut: np.ndarray) -> None:
        reward = intrinsic_reward(astronaut)
        assert set(reward.terms) == {"brisque", "niqe", "piqe", "exposure", "contrast"}
        assert all(0.0 <= v <= 1.0 for v in reward.terms.values())
        weights = IntrinsicConfig().weights()
        expected = sum(weights[k] * v for k, v in reward.terms.items()) / sum(weights.values())
        assert reward.value == pytest.approx(expected)

    def test_real_visible_image_clean_vs_noisy(self, tno_pair: tuple[np.ndarray, np.ndarray]) -> None:
        _, vis = tno_pair
        assert intrinsic_reward(_noisy(vis, 0.05)).value < intrinsic_reward(vis).value - 0.2

    def test_zero_weights_skip_terms(self, camera: np.ndarray) -> None:
        config = IntrinsicConfig(brisque=0.0, niqe=0.0, piqe=1.0, exposure=0.0, contrast=0.0)
        reward = intrinsic_reward(camera, config)
        assert set(reward.terms) == {"piqe"} and reward.value == pytest.approx(reward.terms["piqe"])

    def test_small_image_leaves_niqe_out(self) -> None:
        image = cv2.GaussianBlur(np.random.default_rng(0).random((64, 80)).astype(np.float32), (0, 0), 1.5)
        assert "niqe" not in intrinsic_reward(image).terms

    def test_max_side_shrinks_before_scoring(self, camera: np.ndarray) -> None:
        shrunk = intrinsic_reward(camera, IntrinsicConfig(max_side=256))
        direct = intrinsic_reward(cv2.resize(camera, (256, 256), interpolation=cv2.INTER_AREA))
        assert shrunk.value == pytest.approx(direct.value, abs=1e-6)

    def test_all_weights_zero(self, camera: np.ndarray) -> None:
        config = IntrinsicConfig(brisque=0, niqe=0, piqe=0, exposure=0, contrast=0)
        with pytest.raises(InputError, match="every weight is 0"):
            intrinsic_reward(camera, config)

    def test_registered_as_metric(self, camera: np.ndarray) -> None:
        assert not metric_card("iqr").lower_better
        assert create_metric("iqr")(camera) == pytest.approx(intrinsic_reward(camera).value)


class TestEnhancementReward:
    def test_denoising_step_gains(self, tno_pair: tuple[np.ndarray, np.ndarray]) -> None:
        ir, vis = tno_pair
        noisy = _noisy(vis, 0.06)
        denoised = cv2.fastNlMeansDenoising((noisy * 255).astype(np.uint8), None, h=18).astype(np.float32) / 255
        reward = relational_reward("enhancement", noisy, denoised, ir)
        assert reward.value > 0.5 and reward.terms["gain"] > 0
        assert reward.terms["gradient"] > 0.5

    def test_adding_noise_loses_and_identity_is_neutral(self, tno_pair: tuple[np.ndarray, np.ndarray]) -> None:
        ir, vis = tno_pair
        assert relational_reward("enhancement", vis, _noisy(vis, 0.06), ir).value < 0.5
        assert relational_reward("enhancement", vis, vis, ir).value == pytest.approx(0.5)

    def test_synthetic_scene(self) -> None:
        rng = np.random.default_rng(3)
        scene = cv2.GaussianBlur(rng.random((96, 96)).astype(np.float32), (0, 0), 2)
        noisy = _noisy(scene, 0.08)
        denoised = cv2.GaussianBlur(noisy, (5, 5), 1.2)
        reward = relational_reward("enhancement", noisy, denoised, scene)
        assert 0.5 < reward.value <= 1.0 and reward.terms["ssim"] > 0.5

    def test_resizes_to_the_output(self, camera: np.ndarray) -> None:
        small = cv2.resize(camera, (128, 128), interpolation=cv2.INTER_AREA)
        reward = relational_reward("enhancement", small, camera, camera)
        assert reward.value > 0.5

    def test_errors(self, camera: np.ndarray) -> None:
        with pytest.raises(InputError, match="unknown kind"):
            relational_reward("sharpen", camera, camera, camera)
        with pytest.raises(InputError, match="needs the other image"):
            relational_reward("enhancement", camera, camera)
        with pytest.raises(InputError, match="at least 11x11"):
            tiny = np.zeros((8, 8), np.float32)
            relational_reward("enhancement", tiny, tiny, tiny)


class TestTransformPlausibility:
    def test_identity_and_nominal_stretch(self) -> None:
        assert transform_plausibility(np.eye(3), (100, 120), (100, 120)) == pytest.approx(1.0)
        stretch = np.array([[2.0, 0.0, 0.5], [0.0, 2.0, 0.5], [0.0, 0.0, 1.0]])  # centres: (x + .5)·2 − .5
        assert transform_plausibility(stretch, (50, 60), (100, 120)) == pytest.approx(1.0)

    def test_penalties(self) -> None:
        small_shift = np.array([[1.0, 0.0, 5.0], [0.0, 1.0, -3.0], [0.0, 0.0, 1.0]])
        zoom = np.diag([1.6, 1.6, 1.0])
        mirror = np.diag([-1.0, 1.0, 1.0])
        plaus = [transform_plausibility(m, (200, 200), (200, 200)) for m in (small_shift, zoom, mirror)]
        assert plaus[0] > 0.99 and plaus[1] < 0.2 and plaus[2] == 0.0
        assert transform_plausibility(np.full((3, 3), np.nan), (10, 10), (10, 10)) == 0.0

    def test_folding_perspective_is_rejected(self) -> None:
        fold = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-0.012, 0.0, 1.0]])  # w < 0 inside the frame
        assert transform_plausibility(fold, (100, 200), (100, 200)) == 0.0

    def test_shape_error(self) -> None:
        with pytest.raises(InputError, match="3x3"):
            transform_plausibility(np.eye(2), (10, 10), (10, 10))


class TestAlignmentReward:
    H_TRUE = np.array([[np.cos(0.03), -np.sin(0.03), 9.0], [np.sin(0.03), np.cos(0.03), -6.0], [0.0, 0.0, 1.0]])

    def test_misregistered_is_lower_than_aligned(self, road_pair: tuple[np.ndarray, np.ndarray]) -> None:
        ir, vis = road_pair
        # the visible camera knocked out of alignment with the infrared one (a full frame: no black border)
        moving = _warp(vis, self.H_TRUE, cv2.BORDER_REFLECT)
        back = np.linalg.inv(self.H_TRUE)  # moving → reference

        def reward(matrix: np.ndarray):
            # the warp and its valid mask, as the registration tool returns them
            valid = _warp(np.ones_like(vis), matrix) > 0.999
            return relational_reward("alignment", moving, _warp(moving, matrix), ir, transform=matrix, valid=valid)

        good, unchanged, worse = reward(back), reward(np.eye(3)), reward(self.H_TRUE)
        assert good.value > 0.6
        assert unchanged.value == pytest.approx(0.5)
        assert worse.value < 0.4
        assert good.value > unchanged.value > worse.value
        assert good.terms["plausibility"] > 0.9

    def test_implausible_transform_is_penalised(self, road_pair: tuple[np.ndarray, np.ndarray]) -> None:
        ir, vis = road_pair
        moving = _warp(vis, self.H_TRUE, cv2.BORDER_REFLECT)
        back = np.linalg.inv(self.H_TRUE)
        aligned = _warp(moving, back)
        valid = _warp(np.ones_like(vis), back) > 0.999
        sheared = np.array([[1.0, 0.9, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        honest = relational_reward("alignment", moving, aligned, ir, transform=back, valid=valid)
        suspicious = relational_reward("alignment", moving, aligned, ir, transform=sheared, valid=valid)
        assert suspicious.value < 0.2 < honest.value

    def test_synthetic_translation(self) -> None:
        rng = np.random.default_rng(5)
        reference = cv2.GaussianBlur(rng.random((120, 160)).astype(np.float32), (0, 0), 2)
        shift = np.array([[1.0, 0.0, 4.0], [0.0, 1.0, 3.0], [0.0, 0.0, 1.0]])
        moving = _warp(reference, shift, cv2.BORDER_REFLECT)
        back = np.linalg.inv(shift)
        assert relational_reward("alignment", moving, _warp(moving, back), reference, transform=back).value > 0.8

    def test_errors(self, camera: np.ndarray) -> None:
        with pytest.raises(InputError, match="registered image"):
            relational_reward("alignment", camera, camera[:100], camera)
        with pytest.raises(InputError, match="valid mask"):
            relational_reward("alignment", camera, camera, camera, valid=np.ones((3, 3), bool))

    def test_empty_valid_region_scores_zero(self, camera: np.ndarray) -> None:
        reward = relational_reward("alignment", camera, camera, camera, valid=np.zeros(camera.shape, np.float32))
        assert reward.value == 0.0 and reward.terms["plausibility"] == 0.0


class TestFusionReward:
    def test_average_beats_one_source(self, tno_pair: tuple[np.ndarray, np.ndarray],
                                      road_pair: tuple[np.ndarray, np.ndarray]) -> None:
        for ir, vis in (tno_pair, road_pair):
            average = relational_reward("fusion", [ir, vis], (ir + vis) / 2).value
            for only in (ir, vis):
                assert average > relational_reward("fusion", [ir, vis], only).value + 0.15

    def test_terms_in_unit_range(self, road_pair: tuple[np.ndarray, np.ndarray]) -> None:
        ir, vis = road_pair
        reward = relational_reward("fusion", [ir, vis], np.maximum(ir, vis))
        assert set(reward.terms) == {"structure", "spatial_frequency", "average_gradient", "iqa"}
        assert all(0.0 <= v <= 1.0 for v in reward.terms.values())

    def test_mef_uses_mef_ssim(self, camera: np.ndarray) -> None:
        under = (camera * 0.35).astype(np.float32)
        over = np.clip(camera * 2.5, 0, 1).astype(np.float32)
        merge = cv2.createMergeMertens()
        fused = np.clip(merge.process([np.repeat((x * 255).astype(np.uint8)[..., None], 3, 2) for x in (under, over)]),
                        0, 1)[..., 0].astype(np.float32)
        good = relational_reward("fusion", [under, over], fused, task="mef")
        bad = relational_reward("fusion", [under, over], under, task="mef")
        assert good.value > bad.value + 0.1
        assert good.terms["structure"] > bad.terms["structure"]

    def test_small_images_use_single_scale_ssim(self) -> None:
        rng = np.random.default_rng(2)
        a = cv2.GaussianBlur(rng.random((64, 64)).astype(np.float32), (0, 0), 2)
        b = cv2.GaussianBlur(rng.random((64, 64)).astype(np.float32), (0, 0), 2)
        reward = relational_reward("fusion", [a, b], (a + b) / 2)
        assert 0.0 < reward.terms["structure"] < 1.0

    def test_errors(self, camera: np.ndarray) -> None:
        with pytest.raises(InputError, match="sequence of at least 2"):
            relational_reward("fusion", [camera], camera)
        with pytest.raises(InputError, match="source 1"):
            relational_reward("fusion", [camera, camera[:200]], camera)
        with pytest.raises(InputError, match="unknown task"):
            relational_reward("fusion", [camera, camera], camera, task="hdr")


class TestHQA:
    def test_ranks_fusions(self, road_pair: tuple[np.ndarray, np.ndarray]) -> None:
        ir, vis = road_pair
        good, bad = hqa([ir, vis], (ir + vis) / 2), hqa([ir, vis], vis)
        assert good.value > bad.value
        assert good.value == pytest.approx(good.terms["fusion"])

    def test_step_rewards_enter_with_their_weight(self, road_pair: tuple[np.ndarray, np.ndarray]) -> None:
        ir, vis = road_pair
        fused = (ir + vis) / 2
        config = HQAConfig(fusion=3.0, steps=1.0)
        with_steps = hqa([ir, vis], fused, [Reward(1.0), 0.6], config=config)
        fusion = with_steps.terms["fusion"]
        assert with_steps.terms["steps"] == pytest.approx(0.8)
        assert with_steps.value == pytest.approx((3 * fusion + 0.8) / 4)

    def test_invalid_step_reward(self, road_pair: tuple[np.ndarray, np.ndarray]) -> None:
        ir, vis = road_pair
        with pytest.raises(InputError, match=r"\[0, 1\]"):
            hqa([ir, vis], vis, [1.5])

    def test_registered_as_metric(self, road_pair: tuple[np.ndarray, np.ndarray]) -> None:
        ir, vis = road_pair
        fused = (ir + vis) / 2
        assert create_metric("hqa")([ir, vis], fused) == pytest.approx(hqa([ir, vis], fused).value)

    def test_config_weights_change_the_balance(self, road_pair: tuple[np.ndarray, np.ndarray]) -> None:
        ir, vis = road_pair
        structure_only = HQAConfig(relational=RelationalConfig(spatial_frequency=0, average_gradient=0, iqa=0))
        reward = hqa([ir, vis], (ir + vis) / 2, config=structure_only)
        assert reward.value == pytest.approx(reward.terms["structure"])


class TestHQAWithFuScore:
    def test_fuscore_term_joins_hqa_when_weighted(self, camera):
        from fuseagent.metrics.fuscore import fuscore_reward
        from fuseagent.metrics.rewards import HQAConfig, hqa

        a = camera[:128, :128]
        b = np.ascontiguousarray(camera[:128, :128][:, ::-1])
        fused = (a + b) / 2
        plain = hqa([a, b], fused, task="ivif")
        mixed = hqa([a, b], fused, task="ivif", config=HQAConfig(fuscore=1.0))
        unit = fuscore_reward([a, b], fused, "ivif")
        assert "fuscore" not in plain.terms and mixed.terms["fuscore"] == pytest.approx(unit)
        assert mixed.value == pytest.approx((3 * plain.terms["fusion"] + unit) / 4, abs=1e-6)
