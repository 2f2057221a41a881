"""Every degradation: smoke, errors, and a check that its ground truth is right."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fuseagent.degrade import degrade, degradation_card, level_of, list_degradations
from fuseagent.degrade.blur import convolve, kernel_std
from fuseagent.degrade.geometric import apply_points, mean_displacement, warp_image
from fuseagent.degrade.photometric import change_exposure, effective_ev, linearise, scale_saturation
from fuseagent.degrade.sensor import jpeg_roundtrip
from fuseagent.errors import InputError, UnknownNameError


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    """A 120×160 textured colour image."""
    rng = np.random.default_rng(3)
    base = cv2.GaussianBlur(rng.random((120, 160, 3)).astype(np.float32), (0, 0), 3)
    base = (base - base.min()) / (base.max() - base.min())
    return (0.15 + 0.7 * base).astype(np.float32)


def dot_image(h: int, w: int, x: float, y: float) -> np.ndarray:
    img = np.zeros((h, w), np.float32)
    cv2.circle(img, (int(x), int(y)), 2, 1.0, -1)
    return cv2.GaussianBlur(img, (0, 0), 1.0)


def centroid(img: np.ndarray) -> np.ndarray:
    w = np.clip(img - 0.2 * img.max(), 0, None)
    ys, xs = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    return np.array([(w * xs).sum() / w.sum(), (w * ys).sum() / w.sum()])


class TestApi:
    def test_lists_every_family(self):
        families = {degradation_card(n).family for n in list_degradations()}
        assert families == {"geometric", "dynamic", "photometric", "weather", "sensor", "blur", "resolution"}

    def test_unknown_name(self, scene):
        with pytest.raises(UnknownNameError, match="did you mean"):
            degrade("noise.gausian", scene)

    def test_unknown_parameter(self, scene):
        with pytest.raises(InputError, match="unknown parameter"):
            degrade("noise.gaussian", scene, radius=3)

    @pytest.mark.parametrize("level", [0, 6])
    def test_bad_level(self, scene, level):
        with pytest.raises(InputError, match="1..5"):
            degrade("noise.gaussian", scene, level=level)

    @pytest.mark.parametrize("name", list_degradations())
    def test_seeded_determinism(self, scene, name):
        first = degrade(name, scene, seed=11, level=3)
        again = degrade(name, scene, seed=11, level=3)
        np.testing.assert_array_equal(first.image, again.image)
        assert first.params == again.params
        assert first.image.dtype == np.float32 and 0 <= first.image.min() and first.image.max() <= 1

    @pytest.mark.parametrize("name", [n for n in list_degradations() if n not in ("photometric.vignetting",)])
    def test_other_seed_differs(self, scene, name):
        a = degrade(name, scene, seed=1, level=3)
        b = degrade(name, scene, seed=2, level=3)
        assert not np.array_equal(a.image, b.image) or a.params != b.params


class TestGeometric:
    @pytest.mark.parametrize("name", ["geometric.homography", "geometric.affine"])
    def test_transform_maps_points_as_the_image_moved(self, name):
        for x, y in [(40.0, 30.0), (120.0, 90.0), (80.0, 60.0)]:
            out = degrade(name, dot_image(120, 160, x, y), seed=5, level=4)
            expected = apply_points(out.transform, np.array([[x, y]]))[0]
            assert np.linalg.norm(centroid(out.image) - expected) < 0.5

    @pytest.mark.parametrize("name", ["geometric.homography", "geometric.affine"])
    def test_mean_displacement_is_requested(self, scene, name):
        out = degrade(name, scene, seed=2, displacement=7.5)
        assert mean_displacement(out.transform, scene.shape[:2]) == pytest.approx(7.5, abs=0.05)
        assert out.labels == {"misalignment": level_of("misalignment", 7.5)}

    def test_affine_has_no_perspective(self, scene):
        out = degrade("geometric.affine", scene, seed=0, level=5)
        np.testing.assert_allclose(out.transform[2], [0, 0, 1])

    def test_warp_keeps_fine_detail(self):
        # A half-pixel shift of a fine texture: bilinear interpolation keeps about half of its
        # second-difference energy, Lanczos about 85 % (bicubic 76 %).
        texture = cv2.GaussianBlur(np.random.default_rng(0).random((96, 96)).astype(np.float32), (0, 0), 0.7)
        shift = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1.0]])
        warped, _ = warp_image(texture, shift)

        def detail(x: np.ndarray) -> float:
            return float(np.abs(cv2.Laplacian(x[8:-8, 8:-8], cv2.CV_32F)).mean())

        assert detail(warped) > 0.8 * detail(texture)
        bilinear = cv2.warpPerspective(texture, shift, (96, 96), flags=cv2.INTER_LINEAR)
        assert detail(bilinear) < 0.6 * detail(texture)

    def test_valid_mask_marks_borders(self, scene):
        out = degrade("geometric.homography", scene, seed=0, displacement=12.0)
        assert out.masks["valid"].shape == scene.shape[:2]
        assert 0.7 < out.masks["valid"].mean() < 1.0


class TestResolution:
    def test_low_keeps_size_loses_detail(self, scene):
        out = degrade("resolution.low", scene, seed=0, factor=4.0)
        assert out.image.shape == scene.shape and out.labels == {"low_resolution": level_of("low_resolution", 4.0)}
        assert np.abs(np.diff(out.image, axis=1)).mean() < np.abs(np.diff(scene, axis=1)).mean()

    def test_mismatch_transform_maps_points(self):
        out = degrade("resolution.mismatch", dot_image(120, 160, 100.0, 40.0), seed=0, factor=2.0)
        assert out.image.shape == (60, 80)
        expected = apply_points(out.transform, np.array([[100.0, 40.0]]))[0]
        assert np.linalg.norm(centroid(out.image) - expected) < 0.3


class TestPhotometric:
    def test_scale_saturation(self):
        rng = np.random.default_rng(0)
        colour = rng.uniform(0.2, 0.8, (8, 8, 3)).astype(np.float32)
        grey = colour.mean(axis=2)
        np.testing.assert_allclose(scale_saturation(colour, 1.0), colour, atol=1e-6)
        assert scale_saturation(grey, 2.0) is grey  # nothing to scale in a grey image
        flat = scale_saturation(colour, 0.0)
        assert np.abs(flat - flat[..., :1]).max() < 1e-6  # gain 0: every channel is the luminance
        vivid = scale_saturation(colour, 1.5)
        spread = lambda x: (x.max(axis=2) - x.min(axis=2)).mean()  # noqa: E731
        assert spread(vivid) > 1.3 * spread(colour) and vivid.min() >= 0.0 and vivid.max() <= 1.0

    def test_exposure_round_trip(self, scene):
        up = change_exposure(scene * 0.4, 1.0, 2.2)
        np.testing.assert_allclose(change_exposure(up, -1.0, 2.2), scene * 0.4, atol=1e-5)

    def test_exposure_scales_radiance(self, scene):
        out = degrade("photometric.exposure", scene * 0.3, seed=0, ev=1.0, gamma=2.0)
        np.testing.assert_allclose(linearise(out.image, 2.0), linearise(scene * 0.3, 2.0) * 2, rtol=1e-4, atol=1e-6)
        # +1 EV through gamma 2.0 is the pixel gain of +1.1 EV through the reference gamma 2.2
        assert out.labels == {"over_exposure": level_of("over_exposure", 1.1), "exposure_mismatch": level_of("exposure_mismatch", 1.1)}
        assert out.labels["over_exposure"] == 2 and level_of("over_exposure", 1.0) == 1

    def test_same_pixels_same_labels(self, scene):
        """Exposure changes with equal ev / gamma give the same image, hence the same labels."""
        a = degrade("photometric.exposure", scene * 0.5, seed=0, ev=0.6, gamma=1.8)
        b = degrade("photometric.exposure", scene * 0.5, seed=0, ev=0.6 * 2.2 / 1.8, gamma=2.2)
        np.testing.assert_allclose(a.image, b.image, atol=2e-6)
        assert a.labels == b.labels == {"over_exposure": 1, "exposure_mismatch": 2}
        dark = [degrade("photometric.low_light", scene, seed=0, ev=-ev, gamma=g, peak=3000.0, read_sigma=0.002)
                for ev, g in ((1.8, 2.0), (1.8 * 1.1, 2.2))]
        assert dark[0].labels["low_light"] == dark[1].labels["low_light"] == level_of("low_light", 1.98)
        assert effective_ev(-1.8, 2.0) == pytest.approx(-1.98)

    def test_exposure_down_is_low_light(self, scene):
        out = degrade("photometric.exposure", scene, seed=0, ev=-2.0, gamma=2.2)
        assert out.labels["low_light"] == level_of("low_light", 2.0)

    def test_low_light_noise_label_matches_added_noise(self, scene):
        out = degrade("photometric.low_light", scene, seed=0, ev=-3.0, gamma=2.2, peak=300.0, read_sigma=0.01)
        dark = change_exposure(scene, -3.0, 2.2)
        assert out.image.mean() == pytest.approx(dark.mean(), abs=0.01)
        assert out.labels["noise"] == level_of("noise", out.params["noise_std"]) > 0

    def test_white_balance_gains(self, scene):
        out = degrade("photometric.white_balance", scene, seed=0, log_rb=0.4, log_g=0.0)
        lin_in, lin_out = linearise(scene, 2.2), linearise(out.image, 2.2)
        ok = out.image.max(axis=2) < 0.999
        ratio = np.log(lin_out[ok][:, 0] / lin_in[ok][:, 0]) - np.log(lin_out[ok][:, 2] / lin_in[ok][:, 2])
        assert np.median(ratio) == pytest.approx(0.4, abs=0.01)

    def test_white_balance_needs_colour(self, scene):
        with pytest.raises(InputError, match="colour"):
            degrade("photometric.white_balance", scene[..., 0])

    def test_vignetting_corner_gain(self):
        flat = np.full((101, 101), 0.8, np.float32)
        out = degrade("photometric.vignetting", flat, seed=0, corner_gain=0.6)
        assert out.image[0, 0] == pytest.approx(0.8 * 0.6, abs=1e-3)
        assert out.image[50, 50] == pytest.approx(0.8, abs=1e-4)

    def test_glare_centred_where_asked(self):
        dark = np.full((100, 200), 0.1, np.float32)
        out = degrade("photometric.glare", dark, seed=0, x=0.25, y=0.5, radius=0.05, strength=0.8, veil=0.0)
        y, x = np.unravel_index(np.argmax(out.image), out.image.shape)
        assert abs(x - 0.25 * 199) <= 1 and abs(y - 0.5 * 99) <= 1


class TestWeather:
    def test_haze_model_reproduces_output(self, scene):
        out = degrade("haze.scattering", scene, seed=0, density=0.5, airlight=0.9, tint=0.0)
        t = out.arrays["transmission"][..., None]
        np.testing.assert_allclose(out.image, np.clip(scene * t + 0.9 * (1 - t), 0, 1), atol=1e-5)
        assert 1 - out.arrays["transmission"].mean() == pytest.approx(0.5, abs=5e-3)
        assert out.labels == {"haze": level_of("haze", 0.5)}

    @pytest.mark.parametrize("name", ["weather.rain", "weather.snow"])
    def test_precipitation_mask_and_coverage(self, scene, name):
        out = degrade(name, scene, seed=0, level=3)
        mask = out.masks["precipitation"]
        assert mask.mean() == pytest.approx(out.params["coverage"], abs=1e-6)
        assert out.labels == {"rain": level_of("rain", float(mask.mean()))} and out.labels["rain"] == 3
        diff = (out.image - scene).max(axis=2)
        assert diff[~mask].max() <= 0.1 + 1e-5 and diff[mask].min() > 0.0


class TestSensor:
    def test_gaussian_sigma(self):
        flat = np.full((200, 200), 0.5, np.float32)
        out = degrade("noise.gaussian", flat, seed=0, sigma=0.05)
        assert np.std(out.image - flat) == pytest.approx(0.05, rel=0.03)
        assert out.labels == {"noise": level_of("noise", out.params["noise_std"])}

    def test_poisson_gaussian_is_signal_dependent(self):
        ramp = np.tile(np.linspace(0.1, 0.9, 200, dtype=np.float32), (200, 1))
        out = degrade("noise.poisson_gaussian", ramp, seed=0, sigma=0.05, read_share=0.1)
        resid = out.image - ramp
        assert resid[:, 150:].std() > 1.5 * resid[:, :30].std()

    def test_stripe_is_a_column_pattern(self):
        flat = np.full((80, 100), 0.5, np.float32)
        out = degrade("noise.stripe", flat, seed=0, amplitude=0.04, gain_share=0.0, orientation="vertical")
        resid = out.image - flat
        np.testing.assert_allclose(resid, np.broadcast_to(resid[0], resid.shape), atol=1e-6)
        np.testing.assert_allclose(resid[0], out.arrays["offsets"], atol=1e-6)
        assert out.params["pattern_std"] == pytest.approx(np.std(out.arrays["offsets"]), rel=1e-4)

    def test_jpeg_is_a_jpeg_round_trip(self, scene):
        out = degrade("sensor.jpeg", scene, seed=0, quality=20)
        np.testing.assert_array_equal(out.image, jpeg_roundtrip(scene, 20))
        assert out.labels == {"jpeg": level_of("jpeg", 80)}


class TestBlur:
    def test_defocus_kernel_std(self, scene):
        out = degrade("blur.defocus", scene, seed=0, std=2.0)
        assert kernel_std(out.arrays["kernel"]) == pytest.approx(2.0, rel=0.08)
        np.testing.assert_allclose(out.image, np.clip(convolve(scene, out.arrays["kernel"]), 0, 1), atol=1e-6)

    def test_motion_kernel_along_angle(self, scene):
        out = degrade("blur.motion", scene, seed=0, std=3.0, angle=0.0)
        k = out.arrays["kernel"]
        assert k.sum() == pytest.approx(1.0, abs=1e-5)
        rows_used = np.flatnonzero(k.sum(axis=1) > 0.05)
        assert len(rows_used) <= 2
        assert out.labels == {"blur": level_of("blur", 3.0)}


class TestDynamic:
    def test_object_moved_by_dx_dy(self, scene):
        out = degrade("dynamic.move_object", scene, seed=4, area=0.04, shift=1.0, angle=30.0, shape="blob")
        dx, dy = out.params["dx"], out.params["dy"]
        core = cv2.erode(out.masks["object"].astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
        ys, xs = np.nonzero(core)
        src = cv2.remap(scene, (xs - dx).astype(np.float32)[None], (ys - dy).astype(np.float32)[None],
                        cv2.INTER_LINEAR)[0]
        np.testing.assert_allclose(out.image[ys, xs], src, atol=0.01)
        motion = out.masks["motion"]
        assert np.all(motion >= out.masks["object"]) and np.all(motion >= out.masks["hole"])
        assert out.params["object_area"] == pytest.approx(0.04, rel=0.25)

    def test_outside_motion_unchanged(self, scene):
        out = degrade("dynamic.move_object", scene, seed=1, level=3)
        outside = ~cv2.dilate(out.masks["motion"].astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        np.testing.assert_allclose(out.image[outside], scene[outside], atol=1e-5)
