"""Perception: measured estimators, alignment, relations, the report, the API and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import fuseagent
from fuseagent.cli import main
from fuseagent.degrade import degrade
from fuseagent.degrade.sensor import jpeg_roundtrip
from fuseagent.degrade.weather import add_haze
from fuseagent.errors import FuseAgentError, ImageReadError, InputError
from fuseagent.io import write_image
from fuseagent.perceive import perceive, severity_to_value
from fuseagent.perceive.align import estimate_alignment
from fuseagent.perceive.features import (FEATURE_NAMES, PAIR_FEATURES, dct_quantisation, estimate_blockiness,
                                         estimate_blur_width,
                                         estimate_haze_density, estimate_noise, estimate_precipitation, estimate_stripe,
                                         falling_streaks, grid_blockiness, segment_sharpness, highlight_clipping, histogram_combing,
                                         image_features, interpolation_periodicity, line_edge_widths, luminance,
                                         oriented_streak_energy, pair_context)
from fuseagent.perceive.model import DegradationModel, load_model
from fuseagent.perceive.relational import complementarity, detect_motion, exposure_mismatch_ev
from fuseagent.perceive.train import ground_truth, transform_error, tune_threshold


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from skimage import data

    return cv2.resize(data.astronaut(), (640, 480), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


@pytest.fixture(scope="module")
def gray(photo) -> np.ndarray:
    return fuseagent.io.to_gray(photo)


class TestEstimators:
    @pytest.mark.parametrize("sigma", [0.01, 0.03, 0.08])
    def test_noise_on_a_photograph(self, gray, sigma):
        noisy = degrade("noise.gaussian", gray, seed=0, sigma=sigma).image
        assert estimate_noise(noisy) == pytest.approx(sigma, rel=0.25, abs=0.004)

    @pytest.mark.parametrize("std", [1.5, 3.0])
    def test_blur_width(self, std):
        step = np.zeros((96, 96), np.float32)
        step[:, 48:] = 0.8
        blurred = cv2.GaussianBlur(step, (0, 0), std)
        assert estimate_blur_width(blurred)[1] == pytest.approx(std, rel=0.15)

    def test_haze_raises_dark_channel_density(self, photo):
        hazy = degrade("haze.scattering", photo, seed=0, density=0.6, airlight=0.9, tint=0.0).image
        assert estimate_haze_density(hazy)[0] > estimate_haze_density(photo)[0] + 0.3

    def test_haze_lifts_the_top_darkest_patches_more(self, photo):
        # transmission falling upwards (distance) lifts the top third's darkest patches above the bottom's
        veil = np.linspace(0.5, 0.9, photo.shape[0], dtype=np.float32)[:, None] * np.ones((1, photo.shape[1]), np.float32)
        hazy = add_haze(photo, veil, 0.9)
        clear, lifted = image_features(photo, "vis"), image_features(hazy, "vis")
        assert lifted["dark_rise"] > clear["dark_rise"] + 0.1 and lifted["dark_top"] > clear["dark_top"] + 0.2
        assert image_features(hazy[..., 0], "ir")["dark_rise"] == 0.0  # a photograph's cue, not measured on infrared

    def test_stripe_measures_column_pattern(self, gray):
        out = degrade("noise.stripe", gray, seed=0, amplitude=0.04, gain_share=0.0, orientation="vertical")
        col, row = estimate_stripe(out.image)
        assert col == pytest.approx(out.params["pattern_std"], rel=0.3) and row < col / 3

    def test_blockiness_grows_with_compression(self, gray):
        assert estimate_blockiness(jpeg_roundtrip(gray, 10)) > estimate_blockiness(jpeg_roundtrip(gray, 90)) + 0.2

    @pytest.mark.parametrize("std", [1.5, 3.0])
    def test_line_edge_widths_of_a_blurred_step(self, std):
        step = np.zeros((128, 128), np.float32)
        step[:, 64:] = 0.8
        along_x, along_y, p75, direction = line_edge_widths(cv2.GaussianBlur(step, (0, 0), std))
        # the step's only edges are vertical: rows see them, columns see none
        assert along_x == pytest.approx(std, rel=0.15) and along_y == 0.0 and p75 == pytest.approx(std, rel=0.2)

    def test_line_edge_widths_see_the_direction_of_motion_blur(self, gray):
        sharp = line_edge_widths(gray)
        moved = line_edge_widths(degrade("blur.motion", gray, seed=0, std=2.5, angle=0.0).image)
        # horizontal motion widens edges along rows (index 0) far more than along columns (index 1)
        assert moved[0] > sharp[0] + 0.8 and moved[0] - sharp[0] > 2 * (moved[1] - sharp[1])
        assert moved[3] > sharp[3] + 0.2

    def test_grid_blockiness_at_the_grid_not_off_it(self, gray):
        coarse, fine = grid_blockiness(jpeg_roundtrip(gray, 10)), grid_blockiness(jpeg_roundtrip(gray, 90))
        assert coarse[0] > fine[0] + 0.2 and coarse[0] > coarse[1] + 0.2
        # the same compressed image shifted by 3 px keeps its grid, now off the 8-px phase
        shifted = grid_blockiness(jpeg_roundtrip(gray, 10)[3:, 3:])
        assert shifted[1] > shifted[0] + 0.2

    def test_grid_blockiness_ignores_clipped_areas(self, gray):
        clipped = gray.copy()
        clipped[:, ::8] = 1.0  # a bright column on the grid phase, surrounded by clipped pixels
        clipped[:, 1::8] = 1.0
        clipped[:, 7::8] = 1.0
        assert grid_blockiness(clipped)[0] < grid_blockiness(jpeg_roundtrip(gray, 10))[0]

    def test_falling_streaks_for_rain_not_noise_or_snow(self, gray):
        clean = falling_streaks(gray)
        rain = falling_streaks(degrade("weather.rain", gray, seed=0, level=4, angle=20.0).image)
        noisy = falling_streaks(degrade("noise.gaussian", gray, seed=0, sigma=0.05).image)
        snowy = falling_streaks(degrade("weather.snow", gray, seed=0, level=4).image)
        # noise makes thin bright and dark structures alike: the ratio (index 2) stays near its clean value
        assert rain[2] > clean[2] + 0.4 and rain[2] > noisy[2] + 0.25 and rain[1] > clean[1] + 0.001
        assert snowy[2] < rain[2] - 0.3  # round flakes are not falling streaks

    @pytest.mark.parametrize("angle", [-28.0, 0.0, 15.0, 28.0])
    def test_falling_streaks_in_any_direction_within_30_degrees(self, gray, angle):
        clean = falling_streaks(gray)
        rain = falling_streaks(degrade("weather.rain", gray, seed=1, level=2, angle=angle).image)
        # streaks share one direction: the ratio there (index 2) and its lead over the other
        # directions (index 3) both rise
        assert rain[2] > clean[2] + 0.3 and rain[3] > clean[3] + 0.3

    def test_falling_streaks_need_streaks_a_few_px_wide(self):
        lines = np.full((120, 120), 0.3, np.float32)
        thin, wide = lines.copy(), lines.copy()
        for c in range(10, 120, 12):
            thin[:, c] = 0.8
            wide[:, c:c + 3] = 0.8
        assert falling_streaks(thin) == (0.0, 0.0, 0.0, 0.0)  # one-pixel lines are texture, not falling drops
        # the centre column of each of the 10 three-px lines, in the upright direction
        assert falling_streaks(wide)[0] == pytest.approx(10 / 120)

    @pytest.mark.parametrize("factor", [1.7, 2.0, 3.0])
    def test_segment_sharpness_tells_down_sampling_from_partial_defocus(self, gray, factor):
        from fuseagent.degrade.generators import multifocus_stack

        low = segment_sharpness(degrade("resolution.low", gray, seed=0, factor=factor).image)
        clean = segment_sharpness(gray)
        focus = multifocus_stack(gray, 2, seed=0, mode="region", max_std=4.0).images
        # the sharpest runs (99th percentile) keep the finest band where any part is in focus
        assert low[1] < clean[1] - 1.0
        assert all(segment_sharpness(frame)[1] > low[1] + 0.6 for frame in focus)

    @pytest.mark.parametrize("factor", [1.7, 2.5])
    def test_low_resolution_cues_see_past_stripes(self, gray, factor):
        low = degrade("resolution.low", gray, seed=0, factor=factor).image
        striped = degrade("noise.stripe", low, seed=1, level=2).image
        clean, plain, noisy = (image_features(x, "ir") for x in (gray, low, striped))
        # the stripes make the pooled finest-detail cue read the down-sampled frame as sharper than the clean one ...
        assert noisy["segment_hf_q90"] > clean["segment_hf_q90"] + 0.5
        # ... but not the cue read along them
        assert noisy["segment_hf_least_q90"] == pytest.approx(plain["segment_hf_least_q90"], abs=0.1)
        assert noisy["segment_hf_least_q90"] < clean["segment_hf_least_q90"] - 0.5
        # the spectrum bands leave out the axes, where the stripes' additive part lies (their gain part is not)
        assert noisy["band_9"] < clean["band_9"] - 0.5

    @pytest.mark.parametrize("side", [48, 80])
    def test_spectrum_bands_of_a_small_image_have_a_reference(self, side):
        # bands are read relative to the lowest one, which must keep coefficients on a small crop too
        x = cv2.GaussianBlur(np.random.default_rng(0).random((side, side)).astype(np.float32), (0, 0), 1.0)
        bands = [v for k, v in image_features(x).items() if k.startswith("band_")]
        assert all(-8 < v < 1 for v in bands)

    def test_segment_sharpness_of_a_flat_or_tiny_image(self):
        assert segment_sharpness(np.full((100, 100), 0.5, np.float32)) == (0.0, 0.0, 0.0, 0.0)  # no textured run
        assert segment_sharpness(np.random.default_rng(0).random((30, 30)).astype(np.float32)) == (0.0, 0.0, 0.0, 0.0)

    @pytest.mark.parametrize("quality", [10, 30, 50, 75])
    def test_dct_quantisation_reads_the_quality(self, photo, quality):
        crop = (slice(96, 288), slice(128, 384))
        assert dct_quantisation(luminance(photo)[crop])[0] == 0.0  # never compressed: no step
        once = luminance(jpeg_roundtrip(photo, quality))[crop]
        loss, peak, _ = dct_quantisation(once)
        # 100 - quality, the jpeg severity scale's quantity, from the steps of the standard table
        assert loss == pytest.approx(100 - quality, abs=0.1 * (100 - quality) + 2) and peak > 0.5

    def test_dct_quantisation_tells_strong_recompression_from_a_fine_source(self, photo):
        crop = (slice(96, 288), slice(128, 384))
        fine = jpeg_roundtrip(photo, 92)  # a source saved once at high quality
        strong = jpeg_roundtrip(fine, 45)
        assert dct_quantisation(luminance(fine)[crop])[0] < 20 < 45 < dct_quantisation(luminance(strong)[crop])[0]
        # resampling destroys the block structure
        up = cv2.resize(cv2.resize(strong, (427, 320), interpolation=cv2.INTER_AREA), (640, 480),
                        interpolation=cv2.INTER_CUBIC)
        assert dct_quantisation(luminance(up)[crop])[0] == 0.0

    def test_pair_context_fills_partner_differences(self, photo):
        from fuseagent.degrade.photometric import change_exposure

        brighter = np.clip(change_exposure(photo, 1.0, 2.2), 0, 1)
        blurred = cv2.GaussianBlur(photo, (0, 0), 2.0)
        rows = np.array([[image_features(im)[n] for n in FEATURE_NAMES] for im in (photo, brighter)])
        out = pair_context(rows.copy(), 1.0)
        mean = FEATURE_NAMES.index("pair_mean")
        assert out[1, mean] == pytest.approx(rows[1, FEATURE_NAMES.index("mean")] - rows[0, FEATURE_NAMES.index("mean")])
        assert out[1, mean] > 0.1 and out[0, mean] == -out[1, mean]
        sharp_blurred = np.array([[image_features(im)[n] for n in FEATURE_NAMES] for im in (photo, blurred)])
        with_sharpness = pair_context(sharp_blurred.copy(), 0.0)
        without = pair_context(sharp_blurred.copy(), 0.0, sharpness=False)
        w50 = FEATURE_NAMES.index("pair_line_w50")
        assert with_sharpness[1, w50] > 0.5 and with_sharpness[0, w50] < -0.5 and without[1, w50] == 0.0
        spikes = FEATURE_NAMES.index("pair_spikes")
        own = rows[:, FEATURE_NAMES.index("hist_spikes")]
        assert out[0, spikes] == pytest.approx(own[0] - own[1]) and out[1, spikes] == -out[0, spikes]

    def test_precipitation_streaks_for_rain_only(self, gray):
        clean = estimate_precipitation(gray)
        rain = estimate_precipitation(degrade("weather.rain", gray, seed=0, level=4).image)
        noisy = estimate_precipitation(degrade("noise.gaussian", gray, seed=0, sigma=0.08).image)
        # bright streaks (index 3) and their direction coherence (index 4) rise with rain, not with noise
        assert rain[3] > 2 * clean[3] > 2 * noisy[3]
        assert rain[4] > clean[4] > noisy[4]
        assert rain[0] > clean[0] > noisy[0]

    def test_oriented_streak_energy_rises_with_rain_not_noise(self, gray):
        def excess(image: np.ndarray) -> float:
            return oriented_streak_energy(cv2.resize(image, (320, 240), interpolation=cv2.INTER_AREA))[0]

        clean = excess(gray)
        rain = excess(degrade("weather.rain", gray, seed=0, level=4).image)
        noisy = excess(degrade("noise.gaussian", gray, seed=0, sigma=0.05).image)
        assert rain > clean + 0.02 and rain > noisy + 0.02

    def test_interpolation_periodicity_separates_low_resolution_from_blur(self, gray):
        low = interpolation_periodicity(degrade("resolution.low", gray, seed=0, factor=3.0).image)
        blurred = interpolation_periodicity(cv2.GaussianBlur(gray, (0, 0), 1.5))
        assert min(low) > 2 * max(blurred)

    def test_highlight_clipping_after_over_exposure(self, gray):
        from fuseagent.degrade.photometric import change_exposure

        regions, largest, texture = highlight_clipping(change_exposure(gray, 2.0))
        clean = highlight_clipping(gray)
        assert regions > clean[0] + 0.1 and largest > clean[1] and texture < clean[2]

    def test_histogram_combing_after_digital_re_exposure(self, photo):
        from fuseagent.degrade.photometric import change_exposure

        def quantised(image: np.ndarray) -> np.ndarray:
            return (np.round(np.clip(image, 0, 1) * 255) / 255).astype(np.float32)

        clean = histogram_combing(quantised(photo))
        brighter = histogram_combing(quantised(change_exposure(quantised(photo), 1.0)))
        darker = histogram_combing(quantised(change_exposure(quantised(photo), -1.5)))
        # stretching the codes leaves empty ones between used ones; compressing them makes spikes
        assert clean[0] < 0.02 and brighter[0] > 0.15
        assert darker[1] > clean[1] + 0.03

    def test_luminance_is_bt601(self, photo):
        assert np.allclose(luminance(photo), fuseagent.io.to_gray(photo), atol=1e-5)
        assert luminance(photo).dtype == np.float32 and luminance(photo).flags.c_contiguous

    def test_feature_vector_complete(self, photo):
        f = image_features(photo)
        assert tuple(f) == FEATURE_NAMES and all(np.isfinite(v) for v in f.values())


class TestAlignment:
    def test_recovers_a_homography(self, photo):
        out = degrade("geometric.homography", photo, seed=3, displacement=12.0)
        est = estimate_alignment(photo, out.image)
        assert transform_error(out.transform, est.transform, photo.shape[:2]) < 0.5

    def test_contrast_inverted_pair(self, gray):
        out = degrade("geometric.affine", 1.0 - gray, seed=1, displacement=6.0)
        est = estimate_alignment(gray, out.image)
        assert transform_error(out.transform, est.transform, gray.shape) < 0.7

    def test_aligned_pair(self, photo):
        est = estimate_alignment(photo, photo)
        assert est.displacement_px < 0.05

    def test_relations_reuse_the_working_copies_bit_for_bit(self, photo, monkeypatch):
        import dataclasses

        import fuseagent.perceive as perceive_module
        from fuseagent.perceive import measure

        moved = degrade("geometric.homography", photo, seed=3, displacement=8.0).image
        shared = measure([photo, moved], "mef")
        assert shared.alignment.work_images[0].shape == (192, 256)
        real = perceive_module.estimate_alignment
        monkeypatch.setattr(perceive_module, "estimate_alignment",
                            lambda *a, **k: dataclasses.replace(real(*a, **k), work_images=None))
        alone = measure([photo, moved], "mef")  # the relations resample the images themselves
        assert shared.features.tobytes() == alone.features.tobytes()
        assert shared.exposure_ev == alone.exposure_ev and shared.complementarity == alone.complementarity
        assert np.array_equal(shared.motion.mask, alone.motion.mask) and shared.log_rb == alone.log_rb


class TestRelations:
    def test_exposure_ev(self, photo):
        from fuseagent.degrade.photometric import change_exposure

        assert exposure_mismatch_ev(photo, change_exposure(photo, -1.5, 2.2)) == pytest.approx(-1.5, abs=0.15)

    def test_motion_found_where_the_object_moved(self, photo):
        out = degrade("dynamic.move_object", photo, seed=2, area=0.05, shift=1.0, angle=0.0, shape="blob")
        est = detect_motion(photo, out.image)
        truth = out.masks["motion"]
        iou = (est.mask & truth).sum() / max(1, (est.mask | truth).sum())
        assert est.score > 0 and iou > 0.3

    def test_no_motion_in_a_static_pair(self, photo):
        noisy = degrade("noise.gaussian", photo, seed=0, sigma=0.01).image
        moved = degrade("dynamic.move_object", photo, seed=2, area=0.05, shift=1.0, angle=0.0, shape="blob").image
        assert detect_motion(photo, noisy).score < detect_motion(photo, moved).score

    def test_complementarity_of_a_focus_pair(self, photo):
        from fuseagent.degrade.generators import multifocus_stack

        g = multifocus_stack(photo, 2, seed=0, mode="region", max_std=3.0)
        comp = complementarity(g.images[0], g.images[1])
        fg = g.masks[0]["focus"].mean()
        assert comp["focus"]["a"] == pytest.approx(fg, abs=0.15)


class TestTraining:
    def test_threshold_tuning(self):
        assert tune_threshold(np.array([0.0, 1.0, 2.0, 3.0]), np.array([0, 0, 1, 1], bool)) == 1.5

    def test_threshold_tolerance_takes_the_middle_of_a_plateau(self):
        # clean classes 0-0.3 and 0.7-1.0, one stray of each kind near the other side: the averaged
        # F1 peaks by a hair just above 0.3, and is within 0.005 of that peak over the whole gap
        scores = np.concatenate([np.linspace(0, 0.3, 31), [0.68], np.linspace(0.7, 1.0, 31), [0.32]])
        truth = np.arange(64) >= 32
        assert tune_threshold(scores, truth, window=0.05) == pytest.approx(0.35, abs=0.01)
        assert tune_threshold(scores, truth, window=0.05, tolerance=0.005) == pytest.approx(0.5, abs=0.01)

    def test_ground_truth_masks_inherent_types(self):
        rec = {"task": "mef", "roles": ["a", "b"], "inherent": ["low_light", "over_exposure"],
               "labels": {"a": {"noise": 3}, "b": {"motion": 2, "misalignment": 4}},
               "steps": [], "misalignment": {"displacement_px": 12.0, "transform": np.eye(3).tolist()}}
        gt = ground_truth(rec)
        types = list(fuseagent.degrade.PERCEIVED_TYPES)
        assert gt["levels"][0, types.index("noise")] == 3 and gt["motion"]
        assert not gt["known"][0, types.index("low_light")] and gt["known"][0, types.index("noise")]
        assert gt["ev"] is None

    def test_stack_sources_leave_out_excluded_scenes(self, tmp_path):
        from fuseagent.perceive.train import tuning_sources

        for scene, order in (("Balloons_Someone", (0.2, 0.5, 0.8)), ("Office_Other", (0.8, 0.1, 0.45, 0.3))):
            folder = tmp_path / "stacks" / scene
            folder.mkdir(parents=True)
            for i, level in enumerate(order):
                write_image(folder / f"f{i}.png", np.full((16, 16), level, np.float32))
        cfg = {"roadscene_train": 0, "exclude_scenes": ["balloons"],
               "sources": {"mef_stacks": ["stacks:stacks"], "mff": ["middle:stacks"]}}
        (tmp_path / "ivif" / "roadscene" / "ir").mkdir(parents=True)
        pairs = tuning_sources("mef_stacks", cfg, tmp_path)
        assert {s.name.split(":")[0] for s in pairs} == {"Office_Other"}
        # frames are ordered by brightness: a is the darker frame of every pair
        office = tmp_path / "stacks" / "Office_Other"
        assert any(s.files == {"a": str(office / "f1.png"), "b": str(office / "f0.png")} for s in pairs)
        middles = tuning_sources("mff", cfg, tmp_path)
        assert [Path(s.files["image"]).name for s in middles] == ["f2.png", "f3.png"]
        # "*K" repeats a spec's sources so that a small collection is drawn K times as often
        cfg["sources"]["mff"] = ["middle:stacks*3"]
        assert [Path(s.files["image"]).name for s in tuning_sources("mff", cfg, tmp_path)] == ["f2.png", "f3.png"] * 3

    def test_tuning_never_sees_report_scenes(self, shared_data):
        from fuseagent.perceive.train import load_config, tuning_sources

        cfg = load_config()
        mefb = {p.name.lower() for p in (shared_data / "mef" / "mefb").iterdir()}
        used = {s.name.split(":")[0].split("_")[0].lower() for key in cfg["sources"]
                for s in tuning_sources(key, cfg, shared_data) if not s.single}
        assert used and not used & mefb
        paths = {f for key in cfg["sources"] for s in tuning_sources(key, cfg, shared_data) for f in s.files.values()}
        assert not any(("/vifb/" in f or "/lytro" in f or "/mefb/" in f) for f in paths)
        # RoadScene pairs after the first ``roadscene_train`` (sorted) are the report's IVIF sources
        from fuseagent.perceive.train import roadscene_split, single_sources

        _, report = roadscene_split(shared_data, int(cfg["roadscene_train"]))
        paths |= {f for f, _ in single_sources(cfg, shared_data)}
        assert report and not any(Path(f).stem in set(report) for f in paths if "/roadscene/" in f)

    @pytest.mark.parametrize("window, tolerance", [(0.0, 0.0), (0.05, 0.0), (0.05, 0.02)])
    def test_fit_learns_a_separable_type(self, window, tolerance):
        from fuseagent.perceive.train import fit

        rng = np.random.default_rng(0)
        types = list(fuseagent.degrade.PERCEIVED_TYPES)
        rows = []
        for i in range(120):
            feats = np.zeros((1, len(FEATURE_NAMES)))  # only noise_flat carries information
            level = 0 if i % 2 else int(rng.integers(1, 6))
            feats[0, 2] = level + 0.1 * rng.normal()  # noise_flat carries the noise level
            levels = np.zeros((1, len(types)), np.int64)
            levels[0, types.index("noise")] = level
            rows.append({"task": "single", "features": feats, "levels": levels,
                         "known": np.ones((1, len(types)), bool)})
        cfg = {"seed": 0, "folds": 3, "hidden": [16], "epochs": 800, "learning_rate": 0.01, "weight_decay": 0.0,
               "threshold_window": window, "threshold_tolerance": tolerance,
               "exclude_features": ["saturation", "saturation_p90"]}
        model, summary = fit(rows, cfg)
        assert summary["out_of_fold"]["noise"]["f1"] > 0.9
        assert "saturation" not in model.feature_names and len(model.feature_names) == len(FEATURE_NAMES) - 2
        x = np.zeros((2, len(FEATURE_NAMES)))
        x[:, 2] = [0.0, 4.0]
        prob, severity = model.predict(x)
        j = types.index("noise")
        assert prob[0, j] < model.thresholds[j] < prob[1, j] and abs(severity[1, j] - 4) < 1.0

    def test_out_of_fold_predictions_never_see_the_scene(self):
        """Cross-validation by scene: what a model memorised of a scene cannot score its other samples."""
        from fuseagent.perceive.train import fit

        rng = np.random.default_rng(1)
        types = list(fuseagent.degrade.PERCEIVED_TYPES)
        signature = rng.normal(size=(24, 6))  # a scene's look, unrelated to the label across scenes
        noisy = rng.random(24) < 0.5
        rows = []
        for i in range(144):
            scene = i % 24
            feats = np.zeros((1, len(FEATURE_NAMES)))
            feats[0, 2:8] = signature[scene] + 0.05 * rng.normal(size=6)
            levels = np.zeros((1, len(types)), np.int64)
            levels[0, types.index("noise")] = 3 if noisy[scene] else 0
            rows.append({"task": "single", "scene": f"s{scene}", "features": feats, "levels": levels,
                         "known": np.ones((1, len(types)), bool)})
        cfg = {"seed": 0, "folds": 3, "hidden": [16], "epochs": 400, "learning_rate": 0.01, "weight_decay": 0.0}
        by_sample = fit([{k: v for k, v in r.items() if k != "scene"} for r in rows], cfg)[1]["out_of_fold"]["noise"]
        by_scene = fit(rows, cfg)[1]["out_of_fold"]["noise"]
        assert by_sample["precision"] > 0.9 and by_scene["precision"] < 0.8

    def test_ensemble_averages_and_round_trips(self, tmp_path):
        types = tuple(fuseagent.degrade.PERCEIVED_TYPES)
        t = len(types)
        rng = np.random.default_rng(0)

        def member(bias: float) -> list[tuple[np.ndarray, np.ndarray]]:
            return [(rng.normal(0, 0.1, (2, 4)), np.zeros(4)), (rng.normal(0, 0.1, (4, 2 * t)), np.full(2 * t, bias))]

        first, second = member(-1.0), member(3.0)
        names = ("noise_flat", "blur_w50")
        model = DegradationModel(names, types, np.zeros(2), np.ones(2), first, np.full(t, 0.5), {"k": 1}, [second])
        x = rng.random((3, 2))
        single = DegradationModel(names, types, np.zeros(2), np.ones(2), first, np.full(t, 0.5), {})
        other = DegradationModel(names, types, np.zeros(2), np.ones(2), second, np.full(t, 0.5), {})
        prob, severity = model.predict(x)
        assert np.allclose(prob, (single.predict(x)[0] + other.predict(x)[0]) / 2)
        assert np.allclose(severity, (single.predict(x)[1] + other.predict(x)[1]) / 2)
        model.save(tmp_path / "w.npz")
        assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]  # written atomically, no temporary left
        loaded = load_model(str(tmp_path / "w.npz"))
        assert len(loaded.extra_members) == 1 and loaded.settings == {"k": 1}
        assert np.allclose(loaded.predict(x)[0], prob, atol=1e-5)
        # rows of every measured feature are read by name: the model sees its two columns only
        full = np.zeros((3, len(FEATURE_NAMES)))
        full[:, FEATURE_NAMES.index("noise_flat")], full[:, FEATURE_NAMES.index("blur_w50")] = x[:, 0], x[:, 1]
        assert np.allclose(loaded.predict(full)[0], prob, atol=1e-5)

    def test_weights_on_unknown_features_are_refused(self, tmp_path):
        types = tuple(fuseagent.degrade.PERCEIVED_TYPES)
        layers = [(np.zeros((1, 2 * len(types))), np.zeros(2 * len(types)))]
        DegradationModel(("no_such_feature",), types, np.zeros(1), np.ones(1), layers, np.full(len(types), 0.5),
                         {}).save(tmp_path / "w.npz")
        with pytest.raises(FuseAgentError, match="other features"):
            load_model(str(tmp_path / "w.npz"))

    def test_severity_scale_round_trip(self):
        for kind in fuseagent.degrade.PERCEIVED_TYPES:
            for lvl in range(1, 6):
                assert fuseagent.degrade.level_of(kind, severity_to_value(kind, float(lvl))) == lvl


class TestPerceive:
    def test_report_is_json_safe(self, photo, gray):
        rep = fuseagent.perceive(gray, photo, "ivif")
        data = json.loads(rep.to_json())
        assert [im["role"] for im in data["images"]] == ["ir", "vis"]
        assert set(data["images"][1]["degradations"]) == set(fuseagent.degrade.PERCEIVED_TYPES)
        assert data["caption"].startswith("An infrared-visible pair.")
        assert 0 <= data["misalignment"]["displacement_px"] < 1.0

    def test_detects_strong_noise(self, photo, gray):
        noisy = degrade("noise.gaussian", photo, seed=0, sigma=0.09).image
        rep = perceive(gray, noisy, "ivif")
        noise = rep.image("vis").degradations["noise"]
        clean = perceive(gray, photo, "ivif").image("vis").degradations["noise"]
        # per-channel sigma 0.09 is 0.09 * |BT.601 luma weights| = 0.06 on the luma the estimator sees
        assert noise.level >= 3 and clean.level == 0
        assert noise.measured == pytest.approx(0.06, rel=0.4) and clean.measured < 0.01
        assert "noise" in rep.caption

    def test_detects_misalignment(self, photo):
        out = degrade("geometric.homography", photo, seed=0, displacement=15.0)
        rep = perceive(photo, out.image, "mef")
        assert rep.misalignment["detected"] and rep.misalignment["displacement_px"] == pytest.approx(15.0, abs=1.0)

    def test_relative_exposure_is_a_pair_feature(self, photo, gray):
        from fuseagent.degrade.photometric import change_exposure
        from fuseagent.perceive import measure

        column = FEATURE_NAMES.index("relative_ev")
        brighter = np.clip(change_exposure(photo, 1.0, 2.2), 0, 1)
        same_scene = measure([photo, brighter], "mff").features[:, column]
        assert same_scene == pytest.approx([-1.0, 1.0], abs=0.15)
        assert measure([gray, photo], "ivif").features[:, column].tolist() == [0.0, 0.0]
        assert all(image_features(brighter)[name] == 0.0 for name in PAIR_FEATURES)
        # an exposure difference is a bracket's nature (MEF), a mis-exposure in a focus pair (MFF)
        bracket = FEATURE_NAMES.index("pair_bracket")
        assert measure([photo, brighter], "mef").features[:, bracket].tolist() == [1.0, 1.0]
        assert measure([photo, brighter], "mff").features[:, bracket].tolist() == [0.0, 0.0]

    def test_jpeg_level_read_from_the_quantisation_step(self, photo):
        fine = jpeg_roundtrip(photo, 92)  # a source saved once at high quality: not a degradation
        strong = jpeg_roundtrip(photo, 25)  # 100 - quality = 75: level 3 on the jpeg scale
        rep = perceive(fine, strong, "mff")
        assert rep.image("a").degradations["jpeg"].level == 0
        jpeg = rep.image("b").degradations["jpeg"]
        assert jpeg.level == 3 and jpeg.estimate == pytest.approx(75, abs=8)

    def test_haze_is_shared_by_a_same_scene_pair(self, photo, gray):
        hazy = degrade("haze.scattering", photo, seed=0, density=0.5, airlight=0.85, tint=0.0).image
        mff = perceive(hazy, photo, "mff")
        a, b = (mff.image(r).degradations["haze"] for r in ("a", "b"))
        assert a.probability == b.probability  # one decision for the scene (each frame keeps its severity)
        # an infrared-visible pair is not pooled: the visible frame decides alone
        vis = perceive(gray, hazy, "ivif").image("vis").degradations["haze"]
        clear = perceive(gray, photo, "ivif").image("vis").degradations["haze"]
        assert vis.level >= 1 and clear.level == 0 and vis.probability > clear.probability

    def test_small_images(self):
        x = np.random.default_rng(0).random((20, 24)).astype(np.float32)
        rep = perceive(x, x, "mef")
        assert rep.misalignment["displacement_px"] == 0.0 and len(rep.images) == 2

    def test_paths_and_errors(self, photo, tmp_path):
        write_image(tmp_path / "a.png", photo)
        (tmp_path / "bad.png").write_bytes(b"nope")
        assert perceive(tmp_path / "a.png", tmp_path / "a.png", "mff").task == "mff"
        with pytest.raises(ImageReadError):
            perceive(tmp_path / "bad.png", tmp_path / "a.png", "mff")
        with pytest.raises(InputError, match="unknown fusion task"):
            perceive(photo, photo, "hdr")

    def test_missing_weights(self, tmp_path):
        with pytest.raises(FuseAgentError, match="weights not found"):
            load_model(str(tmp_path / "none.npz"))

    def test_fast_enough(self, photo, gray):
        import time

        perceive(gray, photo, "ivif")
        t = time.perf_counter()
        perceive(gray, photo, "ivif")
        assert time.perf_counter() - t < 2.0


class TestPerceiveCli:
    def test_json(self, photo, tmp_path, capsys):
        # haze is in the scene: both frames of a multi-focus pair show it (and are decided together)
        hazy = degrade("haze.scattering", photo, seed=0, density=0.7).image
        write_image(tmp_path / "a.png", hazy)
        write_image(tmp_path / "b.png", cv2.GaussianBlur(hazy, (0, 0), 2.0))
        assert main(["perceive", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--task", "mff", "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["task"] == "mff" and all(im["degradations"]["haze"]["level"] >= 1 for im in data["images"])

    def test_text(self, photo, tmp_path, capsys):
        write_image(tmp_path / "a.png", photo)
        assert main(["perceive", str(tmp_path / "a.png"), str(tmp_path / "a.png"), "--task", "mef"]) == 0
        out = capsys.readouterr().out
        assert out.startswith("A multi-exposure pair.") and "misalignment" in out

    def test_unreadable_is_one_line(self, tmp_path, capsys):
        (tmp_path / "x.png").write_bytes(b"")
        assert main(["perceive", str(tmp_path / "x.png"), str(tmp_path / "x.png")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("fuseagent: error:") and "\n" not in err
