"""FuScore: soft labels, Thurstone fidelity, features, the registered metric and its CLI use."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fuseagent.cli import main
from fuseagent.errors import InputError, ToolUnavailableError
from fuseagent.io import read_image, write_image
from fuseagent.learned.fuscore.features import FEATURE_NAMES, fuscore_features, shrink_stack
from fuseagent.learned.fuscore.model import (FuScoreNet, LossWeights, expectation_and_sigma, fidelity_loss,
                                             label_spread, soft_label, thurstone_preference, tripartite_loss)
from fuseagent.metrics import create_metric, list_metrics
from fuseagent.metrics.fuscore import (FuScoreResult, fuscore, fuscore_details, guess_task, load_fuscore,
                                       with_fuscore)
from fuseagent.metrics.rewards import Reward


def _scene(seed: int = 0, size: tuple[int, int] = (120, 160)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = cv2.GaussianBlur(rng.random((*size, 3)).astype(np.float32), (0, 0), 2.5)
    return ((image - image.min()) / (image.max() - image.min())).astype(np.float32)


class TestSoftLabel:
    def test_two_adjacent_levels_when_sub_scores_agree(self) -> None:
        assert soft_label(2.4, label_spread([2.4] * 4)).tolist() == pytest.approx([0.0, 0.6, 0.4, 0.0, 0.0])

    def test_fallback_keeps_the_target_as_expectation(self) -> None:
        label = soft_label(4.7, 0.1)
        assert float(label @ np.arange(1, 6)) == pytest.approx(4.7)

    def test_gaussian_spread_follows_disagreement(self) -> None:
        narrow = soft_label(3.0, label_spread([3, 3.2, 2.8, 3]))
        wide = soft_label(3.0, label_spread([1, 5, 1, 5]))
        assert narrow.sum() == pytest.approx(1.0) and wide.sum() == pytest.approx(1.0)
        assert narrow[2] > wide[2]
        assert wide[0] == pytest.approx(wide[4])

    def test_target_outside_the_scale_is_clipped(self) -> None:
        assert soft_label(7.0, 0.0).tolist() == [0.0, 0.0, 0.0, 0.0, 1.0]


class TestThurstoneFidelity:
    def test_preference_of_equal_scores_is_one_half(self) -> None:
        p = thurstone_preference(torch.tensor(3.0), torch.tensor(3.0), torch.tensor(0.5), torch.tensor(0.5))
        assert float(p) == pytest.approx(0.5)

    def test_preference_value(self) -> None:
        p = thurstone_preference(torch.tensor(4.0), torch.tensor(3.0), torch.tensor(0.5), torch.tensor(0.5))
        assert float(p) == pytest.approx(0.5 * (1 + math.erf(1.0 / math.sqrt(2))), abs=1e-5)

    def test_fidelity_is_zero_on_agreement_and_one_on_opposition(self) -> None:
        assert float(fidelity_loss(torch.tensor([0.3]), torch.tensor([0.3]))) == pytest.approx(0.0, abs=1e-6)
        assert float(fidelity_loss(torch.tensor([1.0]), torch.tensor([0.0]))) == pytest.approx(1.0, abs=1e-3)

    def test_expectation_of_a_one_hot_distribution(self) -> None:
        logits = torch.tensor([[-30.0, -30.0, -30.0, 30.0, -30.0]])
        _, mean, variance = expectation_and_sigma(logits)
        assert float(mean[0]) == pytest.approx(4.0) and float(variance[0]) == pytest.approx(0.0, abs=1e-6)


class TestTripartiteLoss:
    def _inputs(self) -> tuple:
        net = FuScoreNet(3, hidden=4)
        logits, sub = net(torch.randn(4, 3))
        labels = torch.full((4, 5), 0.2)
        pairs = (torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([1.0, 0.0]))
        return logits, sub, labels, torch.full((4, 4), 3.0), pairs

    def test_terms_reported_only_when_weighted(self) -> None:
        logits, sub, labels, sub_t, pairs = self._inputs()
        _, terms = tripartite_loss(logits, sub, labels, sub_t, pairs, pairs, LossWeights(1.0, 1.0, 0.0, 0.0))
        assert set(terms) == {"dist", "within"}

    def test_every_weight_zero_is_an_error(self) -> None:
        logits, sub, labels, sub_t, pairs = self._inputs()
        with pytest.raises(InputError):
            tripartite_loss(logits, sub, labels, sub_t, pairs, pairs, LossWeights(0.0, 0.0, 0.0, 0.0))

    def test_kl_of_a_uniform_prediction_to_a_uniform_label_is_zero(self) -> None:
        logits = torch.zeros(2, 5)
        empty = (torch.zeros(0, dtype=torch.long),) * 2 + (torch.zeros(0),)
        value, _ = tripartite_loss(logits, torch.ones(2, 4), torch.full((2, 5), 0.2), torch.ones(2, 4), empty, empty,
                                   LossWeights(1.0, 0.0, 0.0, 0.0))
        assert float(value) == pytest.approx(0.0, abs=1e-6)


class TestFeatures:
    def test_identical_images_give_perfect_structure(self) -> None:
        x = _scene()
        values = dict(zip(FEATURE_NAMES, fuscore_features([x, x], x)))
        assert values["mefssim_fine"] == pytest.approx(1.0, abs=1e-4)
        assert values["source_corr_min"] == pytest.approx(1.0, abs=1e-3)
        assert values["colour_flag"] == 1.0

    def test_grey_fused_image_has_no_colour_features(self) -> None:
        x = _scene()[..., 0]
        values = dict(zip(FEATURE_NAMES, fuscore_features([x, x], x)))
        assert values["colour_flag"] == 0.0 and values["chroma"] == 0.0

    def test_noise_raises_the_overshoot_and_lowers_structure(self, rng: np.random.Generator) -> None:
        x = _scene()
        noisy = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1).astype(np.float32)
        clean, dirty = fuscore_features([x, x], x), fuscore_features([x, x], noisy)
        index = {n: i for i, n in enumerate(FEATURE_NAMES)}
        assert dirty[index["gradient_overshoot"]] > clean[index["gradient_overshoot"]]
        assert dirty[index["mefssim_fine"]] < clean[index["mefssim_fine"]] - 0.1

    def test_shrinking_keeps_the_aspect(self) -> None:
        x = np.zeros((480, 640, 3), np.float32)
        sources, fused = shrink_stack([x, x[..., 0]], x, 320)
        assert fused.shape == (240, 320, 3) and sources[1].shape == (240, 320)

    @pytest.mark.parametrize("sources, fused, message", [
        ([np.zeros((64, 64))], np.zeros((64, 64)), "at least 2"),
        ([np.zeros((64, 64)), np.zeros((64, 60))], np.zeros((64, 64)), "resample"),
        ([np.zeros((40, 40)), np.zeros((40, 40))], np.zeros((40, 40)), "48x48"),
    ])
    def test_bad_stacks(self, sources: list, fused: np.ndarray, message: str) -> None:
        with pytest.raises(InputError, match=message):
            fuscore_features(sources, fused)


class TestRegisteredMetric:
    def test_names_and_cards(self) -> None:
        assert {"fuscore", "fuscore_ivif", "fuscore_mef", "fuscore_mff"} <= set(list_metrics("fuscore*"))
        card = create_metric("fuscore_mef").card
        assert card.mode == "fusion" and not card.lower_better and card.range == (1.0, 5.0)

    def test_score_lies_on_the_level_scale(self) -> None:
        x = _scene()
        value = create_metric("fuscore_mef")([x * 0.4, np.clip(x * 1.7, 0, 1)], x)
        assert 1.0 <= value <= 5.0

    def test_details_are_consistent(self) -> None:
        x = _scene()
        result = fuscore_details([x * 0.4, np.clip(x * 1.7, 0, 1)], x, "mef")
        assert isinstance(result, FuScoreResult)
        assert sum(result.distribution.values()) == pytest.approx(1.0, abs=1e-5)
        levels = np.arange(1, 6)
        assert result.score == pytest.approx(float(np.dot(list(result.distribution.values()), levels)), abs=1e-4)
        assert set(result.subscores) == {"structure_detail", "exposure", "colour", "halos_ghosts"}
        assert result.unit == pytest.approx((result.score - 1) / 4)

    def test_heavy_noise_scores_lower(self, rng: np.random.Generator) -> None:
        x = _scene()
        noisy = np.clip(x + rng.normal(0, 0.15, x.shape), 0, 1).astype(np.float32)
        sources = [x * 0.4, np.clip(x * 1.7, 0, 1).astype(np.float32)]
        assert fuscore(sources, noisy, "mef") < fuscore(sources, x, "mef")

    def test_unknown_task(self) -> None:
        with pytest.raises(InputError, match="unknown task"):
            load_fuscore("pansharpening")

    def test_missing_weights(self, tmp_path: Path) -> None:
        with pytest.raises(ToolUnavailableError, match="not found"):
            load_fuscore("mef", tmp_path / "none.pt")

    def test_shipped_weights_are_small(self) -> None:
        from fuseagent.metrics.fuscore import WEIGHTS_DIR

        files = sorted(WEIGHTS_DIR.glob("fuscore_*.pt"))
        assert files and all(f.stat().st_size < 200_000 for f in files)


class TestGuessTask:
    def test_guesses(self) -> None:
        colour = _scene()
        assert guess_task([colour, colour[..., 0]]) == "ivif"
        assert guess_task([colour * 0.3, colour]) == "mef"
        assert guess_task([colour, cv2.GaussianBlur(colour, (0, 0), 2)]) == "mff"

    def test_single_source(self) -> None:
        with pytest.raises(InputError):
            guess_task([_scene()])


class TestWithFuscore:
    def test_combines_values_and_keeps_terms(self) -> None:
        x = _scene()
        sources = [x * 0.4, np.clip(x * 1.7, 0, 1).astype(np.float32)]
        unit = fuscore_details(sources, x, "mef").unit
        combined = with_fuscore(Reward(0.5, {"iqa": 0.5}), sources, x, weight=1.0, base_weight=3.0, task="mef")
        assert combined.value == pytest.approx((3 * 0.5 + unit) / 4)
        assert combined.terms["iqa"] == 0.5 and combined.terms["fuscore"] == pytest.approx(unit)

    def test_bad_weights(self) -> None:
        x = _scene()
        with pytest.raises(InputError):
            with_fuscore(Reward(0.5), [x, x], x, weight=0.0, base_weight=0.0, task="mef")


class TestMetricsCommand:
    def test_files_and_folders(self, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
        x = _scene(size=(96, 128))
        for folder in ("a", "b", "f"):
            (tmp_path / folder).mkdir()
        for name, scale in (("one", 1.0), ("two", 0.8)):
            write_image(tmp_path / "a" / f"{name}.png", x * 0.4 * scale)
            write_image(tmp_path / "b" / f"{name}.png", np.clip(x * 1.7, 0, 1))
            write_image(tmp_path / "f" / f"{name}.png", x * scale)
        assert main(["metrics", "--metrics", "fuscore", "--a", str(tmp_path / "a"), "--b", str(tmp_path / "b"),
                     "--fused", str(tmp_path / "f"), "--csv"]) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        assert lines[0] == "image,fuscore" and [l.split(",")[0] for l in lines[1:]] == ["one", "two", "mean"]
        assert all(1.0 <= float(l.split(",")[1]) <= 5.0 for l in lines[1:])
        assert main(["metrics", "--metrics", "fuscore_mef", "--a", str(tmp_path / "a" / "one.png"),
                     "--b", str(tmp_path / "b" / "one.png"), "--fused", str(tmp_path / "f" / "one.png"), "--json"]) == 0
        assert '"fuscore_mef"' in capsys.readouterr().out


class TestWaterloo:
    def test_a_well_rated_fusion_beats_a_poorly_rated_one(self, shared_data: Path) -> None:
        root = shared_data / "quality" / "waterloo_mef"
        stack = [read_image(p, "rgb") for p in sorted((root / "sources" / "Landscape_HDRsoft").glob("*.png"))]
        good = fuscore(stack, read_image(root / "fused" / "Landscape_Li12.png", "rgb"), "mef")      # MOS 8.0
        poor = fuscore(stack, read_image(root / "fused" / "Landscape_lsaverage.png", "rgb"), "mef")  # MOS 3.6
        assert good > poor
