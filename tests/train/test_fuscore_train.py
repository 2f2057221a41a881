"""FuScore training: config, training sets, fitting, cross-validation, weights and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from fuseagent.cli import main
from fuseagent.errors import InputError
from fuseagent.learned.fuscore.data import (known_pairs, mef_proxy_subscores, mos_to_level,
                                            synthetic_orderings)
from fuseagent.learned.fuscore.features import FEATURE_NAMES
from fuseagent.metrics.fuscore import load_fuscore
from fuseagent.train.fuscore import (FuScoreConfig, cross_validate, feature_index, fit_ensemble, human_training_set,
                                     load_config, predict_scores, save_weights, synthetic_training_set)

FAST = {"epochs": 60, "ensemble": 1, "hidden": 4, "lr": 0.05}


def _rated(rng: np.random.Generator, scenes: int = 4, per_scene: int = 5) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features whose first column drives the MOS, plus noise columns."""
    features = rng.normal(size=(scenes * per_scene, len(FEATURE_NAMES))).astype(np.float32)
    mos = np.clip(5.5 + 2.0 * features[:, 0], 1, 10)
    return features, mos, [f"s{k // per_scene}" for k in range(scenes * per_scene)]


class TestConfig:
    def test_repository_config_loads(self) -> None:
        config = load_config(Path(__file__).resolve().parents[2] / "configs" / "fuscore.json")
        assert config.tasks == ("mef", "ivif", "mff")
        assert config.loss.dist > 0 and config.loss.within > 0 and config.loss.cross > 0
        assert feature_index(config, "mef").tolist() == [0, 1, 2, 19, 25]
        assert len(feature_index(config, "ivif")) == len(FEATURE_NAMES)

    @pytest.mark.parametrize("content, message", [
        ({"epochs": 3, "colour": 1}, "unknown key"),
        ({"loss": {"dist": 1.0, "rank": 1.0}}, "unknown loss weight"),
        ({"features": {"mef": ["sharpness_everywhere"]}}, "features of 'mef'"),
    ])
    def test_bad_configs(self, tmp_path: Path, content: dict, message: str) -> None:
        path = tmp_path / "c.json"
        path.write_text(json.dumps(content))
        with pytest.raises(InputError, match=message):
            load_config(path)

    def test_missing_and_broken_files(self, tmp_path: Path) -> None:
        with pytest.raises(InputError, match="config file not found"):
            load_config(tmp_path / "none.json")
        (tmp_path / "bad.json").write_text("{")
        with pytest.raises(InputError, match="not valid JSON"):
            load_config(tmp_path / "bad.json")


class TestHumanTrainingSet:
    def test_pairs_labels_and_targets(self, rng: np.random.Generator) -> None:
        features, mos, scenes = _rated(rng, scenes=3, per_scene=4)
        data = human_training_set(features, mos, scenes, FuScoreConfig(max_cross_pairs=10))
        assert len(data.within) == 3 * 6 and len(data.cross) == 10
        assert np.allclose(data.labels.sum(axis=1), 1.0)
        assert np.allclose(data.target, mos_to_level(mos))
        i, j, p = data.within[0]
        assert (p > 0.5) == (mos[int(i)] > mos[int(j)])
        assert data.features.shape == (12, 5)  # the default MEF feature subset

    def test_proxies_lie_on_the_level_scale(self, rng: np.random.Generator) -> None:
        proxies = mef_proxy_subscores(rng.random((20, len(FEATURE_NAMES))))
        assert proxies.shape == (20, 4) and proxies.min() > 1.0 and proxies.max() == 5.0


class TestSyntheticOrderings:
    def test_known_pairs_and_targets(self, rng: np.random.Generator) -> None:
        image = np.clip(rng.random((64, 80, 3)), 0, 1).astype(np.float32)
        ir = image.mean(axis=2)
        data = synthetic_orderings("ivif", [("x", [image, ir], image)], levels=(1, 5),
                                   operations=["noise.gaussian", "fusion.drop_infrared"])
        assert len(data) == 5
        assert data.target.tolist() == pytest.approx([4.6, 4.1, 2.35, 4.1, 2.35])
        assert known_pairs(data).tolist() == [[0, 1], [0, 2], [0, 3], [0, 4], [1, 2], [3, 4]]
        training = synthetic_training_set(data, FuScoreConfig(), "ivif")
        assert len(training.within) == 6 and np.all(training.within[:, 2] == 1.0)

    def test_unknown_operation_and_task(self) -> None:
        image = np.zeros((64, 64), np.float32)
        with pytest.raises(InputError, match="unknown ivif operation"):
            synthetic_orderings("ivif", [("x", [image, image], image)], operations=["blur.gaussian"])
        with pytest.raises(InputError, match="synthetic orderings"):
            synthetic_orderings("mef", [("x", [image, image], image)])


class TestFit:
    def test_learns_a_monotone_score(self, rng: np.random.Generator) -> None:
        features, mos, scenes = _rated(rng)
        config = FuScoreConfig(**FAST)
        models = fit_ensemble(human_training_set(features, mos, scenes, config), config)
        scores = predict_scores(models, features[:, feature_index(config, "mef")])
        assert scores.min() >= 1.0 and scores.max() <= 5.0
        assert stats.spearmanr(scores, mos)[0] > 0.8

    def test_cross_validation_predicts_every_held_out_row(self, rng: np.random.Generator) -> None:
        features, mos, scenes = _rated(rng, scenes=3, per_scene=6)
        config = FuScoreConfig(**FAST, features={"mef": list(FEATURE_NAMES[:3])})
        predictions = cross_validate(features, mos, scenes, config)
        assert np.isfinite(predictions).all() and len(predictions) == 18
        assert stats.spearmanr(predictions, mos)[0] > 0.6


class TestWeights:
    def test_round_trip_through_the_metric_loader(self, rng: np.random.Generator, tmp_path: Path) -> None:
        features, mos, scenes = _rated(rng)
        config = FuScoreConfig(**{**FAST, "ensemble": 2})
        models = fit_ensemble(human_training_set(features, mos, scenes, config), config)
        path = save_weights(tmp_path / "fuscore_mef.pt", models, "mef", config, {"trained_on": "test"})
        loaded = load_fuscore("mef", path)
        assert loaded.record["trained_on"] == "test" and len(loaded.members) == 2
        # the loader averages the members' distributions: same ranking as the mean expectation
        direct = predict_scores(models, features[:, feature_index(config, "mef")])
        via_metric = np.array([r.score for r in loaded.assess_features(features)])
        assert stats.spearmanr(direct, via_metric)[0] > 0.99
        assert np.abs(direct - via_metric).max() < 0.2


class TestCommand:
    def test_listed_and_helpful(self, capsys: pytest.CaptureFixture) -> None:
        assert main(["train", "list"]) == 0
        assert "fuscore" in capsys.readouterr().out

    def test_bad_config_is_a_one_line_error(self, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
        path = tmp_path / "c.json"
        path.write_text(json.dumps({"layers": 3}))
        assert main(["train", "fuscore", "--config", str(path)]) == 2
        assert "unknown key" in capsys.readouterr().err

    def test_bench_parser_exists(self, capsys: pytest.CaptureFixture) -> None:
        with pytest.raises(SystemExit) as exit_info:
            main(["bench", "fuscore", "--help"])
        assert exit_info.value.code == 0
        assert "--parts" in capsys.readouterr().out
