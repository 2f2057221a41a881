"""The fusion benchmark (``fuseagent bench fusion``): storage, operator checks, ranking, outputs, CLI,
and one real MEFB scene from the shared data."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from fuseagent.bench.fusion import (
    BENCHMARKS,
    MetricCache,
    RunResult,
    Score,
    check_operators,
    comparison_figure,
    leaderboard,
    quantise_8bit,
    run_fusion_benchmark,
    store_like_published,
    to_markdown,
    write_outputs,
)
from fuseagent.cli import main
from fuseagent.errors import InputError
from fuseagent.io import read_image


class TestStorage:
    def test_quantise_is_8_bit_grid(self) -> None:
        x = np.random.default_rng(0).random((9, 7, 3)).astype(np.float32)
        q = quantise_8bit(x)
        np.testing.assert_allclose(q * 255, np.rint(q * 255), atol=1e-4)
        assert np.abs(q - x).max() <= 0.5 / 255 + 1e-6

    def test_jpeg_subsamples_chroma(self) -> None:
        # A one-pixel red/blue checkerboard: 4:2:0 chroma averages it away, luminance survives.
        x = np.zeros((32, 32, 3), np.float32)
        checker = (np.add.outer(np.arange(32), np.arange(32)) % 2).astype(bool)
        x[checker, 0], x[~checker, 2] = 1.0, 1.0
        y = store_like_published(x)
        assert y.shape == x.shape and y.dtype == np.float32
        assert np.abs(y[..., 0] - x[..., 0]).mean() > 0.2

    def test_grey_stays_grey(self) -> None:
        x = np.tile(np.linspace(0, 1, 40, dtype=np.float32), (24, 1))
        y = store_like_published(x)
        assert y.shape == x.shape and np.abs(y - x).mean() < 0.02


class TestCheckOperators:
    def test_short_and_full_names(self) -> None:
        assert check_operators(["spd_global", "fusion.mertens"], "mef") == ["fusion.spd_global", "fusion.mertens"]

    @pytest.mark.parametrize("names, task, message", [
        (["nope"], "mef", "unknown fusion operator"),
        (["focus"], "mef", "not made for mef"),
        (["spd"], "ivif", "not made for ivif"),
        (["enfuse"], "ivif", "mef and mff only"),
        ([""], "mff", "no operators"),
        (["gff"], "xyz", "unknown fusion task"),
    ])
    def test_errors(self, names: list[str], task: str, message: str) -> None:
        with pytest.raises(InputError, match=message):
            check_operators(names, task)


def _result(task: str, scores: list[tuple[str, str, str, str, float]]) -> RunResult:
    return RunResult(task, [Score(*s) for s in scores])


class TestLeaderboard:
    def test_like_for_like_rank(self) -> None:
        scores = [("A", "published", "x", "Qabf", 0.70), ("B", "published", "x", "Qabf", 0.74),
                  ("C", "published", "x", "Qabf", 0.60),
                  ("fusion.focus", "lossless", "x", "Qabf", 0.76), ("fusion.focus", "jpeg75", "x", "Qabf", 0.72)]
        board = leaderboard(_result("mff", scores), "mff")
        ranks = {(e.method, e.storage): (e.rank, e.field_size) for e in board}
        assert ranks[("fusion.focus", "lossless")] == (1, 4)
        assert ranks[("fusion.focus", "jpeg75")] == (2, 4)       # our other entry does not count
        assert ranks[("B", "published")] == (1, 3) and ranks[("C", "published")] == (3, 3)
        assert [e.method for e in board][:2] == ["fusion.focus", "B"]

    def test_ivif_mean_rank(self) -> None:
        # Metrics in both directions (EN higher, RMSE, CE, Qcv lower is better): VIFB's mean rank.
        bench = BENCHMARKS["ivif"]
        lower_better = {"Cross_entropy", "Rmse", "Qcv"}
        metrics = {m: 0.0 for m in bench.metrics}
        scores = []
        for method, storage, level in [("P1", "published", 1.0), ("P2", "published", 2.0),
                                       ("fusion.gff", "lossless", 3.0)]:
            for metric in metrics:
                scores.append((method, storage, "x", metric, -level if metric in lower_better else level))
        board = leaderboard(_result("ivif", scores), "ivif")
        ours = next(e for e in board if e.storage == "lossless")
        assert ours.score == pytest.approx(1.0) and ours.rank == 1 and ours.field_size == 3
        published = {e.method: e.score for e in board if e.storage == "published"}
        assert published == {"P2": pytest.approx(1.0), "P1": pytest.approx(2.0)}

    def test_markdown_and_csv(self, tmp_path: Path) -> None:
        result = _result("mef", [("A", "published", "x", "MEF_SSIM", 0.95),
                                 ("fusion.spd", "lossless", "x", "MEF_SSIM", 0.97)])
        result.seconds["fusion.spd"], result.megapixels["fusion.spd"] = 2.0, 4.0
        text = to_markdown(result, "mef")
        assert "| 1 | **spd** | ours, lossless PNG | 0.9700 | 1 of 2 |" in text
        assert "| spd | 0.500 | 2.0 |" in text
        paths = write_outputs(tmp_path, result, "mef")
        rows = list(csv.DictReader(paths["leaderboard"].open()))
        assert [r["method"] for r in rows] == ["fusion.spd", "A"]
        assert rows[0]["seconds_per_megapixel"] == "0.5000" and rows[1]["seconds_per_megapixel"] == ""
        assert len(list(csv.DictReader(paths["scores"].open()))) == 2


class TestCacheAndFigure:
    def test_cache_round_trip(self, tmp_path: Path) -> None:
        image = np.random.default_rng(0).random((6, 6)).astype(np.float32)
        cache = MetricCache(tmp_path / "c.json")
        key = cache.key("b", "i", "m", image)
        assert key == cache.key("b", "i", "m", quantise_8bit(image))      # keyed by 8-bit pixels
        cache.put(key, 0.25)
        cache.save()
        assert MetricCache(tmp_path / "c.json").get(key) == 0.25

    def test_figure_size(self, tmp_path: Path) -> None:
        path = comparison_figure([("a", np.zeros((50, 100))), ("b", np.ones((100, 100, 3)))],
                                 tmp_path / "f.jpg", height=60)
        assert read_image(path, mode="rgb").shape == (82, 180, 3)


@pytest.mark.shared
class TestOnSharedData:
    def test_one_mefb_scene(self, shared_data: Path, tmp_path: Path) -> None:
        cache = MetricCache(tmp_path / "cache.json")
        result = run_fusion_benchmark("mef", ["mertens"], shared_data, out=tmp_path, limit=1, progress=False,
                                      cache=cache)
        published = [s for s in result.scores if s.storage == "published"]
        ours = {s.storage: s.value for s in result.scores if s.method == "fusion.mertens"}
        assert len(published) == 21 and {s.image for s in published} == {"Chair"}
        # MEFB's MATLAB value for FMMEF on Chair, read from the reference table
        fmmef = next(s.value for s in published if s.method == "FMMEF")
        assert 0.9 < fmmef < 1.0
        assert set(ours) == {"lossless", "jpeg75"}
        assert 0.93 < ours["jpeg75"] < ours["lossless"] < 1.0
        assert (tmp_path / "fused/mef/mertens/Chair.png").is_file()
        cached = dict(cache.values)
        again = run_fusion_benchmark("mef", ["mertens"], shared_data, limit=1, progress=False,
                                     cache=MetricCache(tmp_path / "cache.json"))
        assert {s.storage: s.value for s in again.scores if s.method == "fusion.mertens"} == ours
        assert MetricCache(tmp_path / "cache.json").values == cached

    @pytest.mark.skipif(shutil.which("enfuse") is None, reason="enfuse not installed")
    def test_enfuse_runs(self, shared_data: Path) -> None:
        result = run_fusion_benchmark("mef", ["enfuse"], shared_data, limit=1, progress=False)
        assert not result.errors
        assert result.seconds_per_megapixel("enfuse") > 0


class TestCommandLine:
    def test_bad_operator_is_a_user_error(self, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
        assert main(["bench", "fusion", "--task", "mef", "--operators", "nope", "--data", str(tmp_path)]) == 2
        assert "unknown fusion operator 'nope'" in capsys.readouterr().err

    def test_missing_data_folder(self, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
        code = main(["bench", "fusion", "--task", "mff", "--operators", "focus", "--data", str(tmp_path / "none")])
        assert code == 2
        assert "is not a folder" in capsys.readouterr().err
