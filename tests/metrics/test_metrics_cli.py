"""``fuseagent metrics`` and ``fuseagent metrics list`` through ``fuseagent.cli.main``."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from fuseagent.cli import main
from fuseagent.cli.metrics import TASK_DEFAULTS, default_metrics, match_files, read_as_stored
from fuseagent.io import write_image
from fuseagent.metrics import create_metric


@pytest.fixture
def folders(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for sub in ("a", "b", "f"):
        (tmp_path / sub).mkdir()
    for name in ("p1", "p2"):
        a = rng.random((40, 48, 3)).astype(np.float32)
        b = rng.random((40, 48)).astype(np.float32)
        write_image(tmp_path / "a" / f"{name}.png", a)
        write_image(tmp_path / "b" / f"{name}.png", b)
        write_image(tmp_path / "f" / f"{name}.png", (a + b[..., None]) / 2)
    write_image(tmp_path / "f" / "orphan.png", np.zeros((40, 48), np.float32))
    return tmp_path


def _args(root: Path, *extra: str, single: bool = False) -> list[str]:
    suffix = "/p1.png" if single else ""
    return ["metrics", "--a", f"{root}/a{suffix}", "--b", f"{root}/b{suffix}", "--fused", f"{root}/f{suffix}", *extra]


class TestScoreCommand:
    def test_single_files_table(self, folders, capsys):
        assert main(_args(folders, "--task", "ivif", single=True)) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0].split() == ["image", *default_metrics("ivif")]
        assert out[2].split()[0] == "p1" and len(out) == 3

    def test_folders_csv_with_mean(self, folders, capsys):
        assert main(_args(folders, "--task", "mff", "--metrics", "qabf,en", "--csv")) == 0
        captured = capsys.readouterr()
        rows = list(csv.reader(io.StringIO(captured.out)))
        assert rows[0] == ["image", "qabf", "en"]
        assert [r[0] for r in rows[1:]] == ["p1", "p2", "mean"]
        values = np.array([[float(x) for x in r[1:]] for r in rows[1:]])
        assert values[2] == pytest.approx(values[:2].mean(axis=0), rel=1e-5)
        assert "orphan" in captured.err  # fused image without sources is reported, not scored

    def test_json_values_match_the_metrics(self, folders, capsys):
        assert main(_args(folders, "--metrics", "ssim_vifb,qcv", "--json")) == 0
        payload = json.loads(capsys.readouterr().out)
        assert payload["metrics"] == ["ssim_vifb", "qcv"]
        first = payload["images"][0]
        sources = [read_as_stored(folders / "a" / "p1.png"), read_as_stored(folders / "b" / "p1.png")]
        fused = read_as_stored(folders / "f" / "p1.png")
        assert first["image"] == "p1"
        assert first["qcv"] == pytest.approx(create_metric("qcv")(sources, fused))
        assert payload["mean"]["ssim_vifb"] == pytest.approx(np.mean([r["ssim_vifb"] for r in payload["images"]]))

    @pytest.mark.parametrize("extra, message", [
        (["--metrics", "qabff"], "unknown metric 'qabff'"),
        ([], "give --task"),
    ])
    def test_user_errors_exit_2_with_one_line(self, folders, capsys, extra, message):
        assert main(_args(folders, *extra)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0]

    def test_mixed_files_and_folders(self, folders, capsys):
        args = ["metrics", "--task", "ivif", "--a", str(folders / "a"), "--b", str(folders / "b" / "p1.png"),
                "--fused", str(folders / "f")]
        assert main(args) == 2
        assert "all files or all folders" in capsys.readouterr().err

    def test_missing_path_and_size_mismatch(self, folders, capsys):
        assert main(["metrics", "--task", "ivif", "--a", str(folders / "nope.png"), "--b", "x", "--fused", "y"]) == 2
        assert "does not exist" in capsys.readouterr().err
        write_image(folders / "small.png", np.zeros((20, 20), np.float32))
        args = ["metrics", "--metrics", "en", "--a", str(folders / "a" / "p1.png"), "--b", str(folders / "small.png"),
                "--fused", str(folders / "f" / "p1.png")]
        assert main(args) == 2
        assert "sizes must match" in capsys.readouterr().err


class TestListCommand:
    def test_table(self, capsys):
        assert main(["metrics", "list", "qc*"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].split()[:5] == ["metric", "mode", "variant", "better", "range"]
        names = [line.split()[0] for line in lines[2:]]
        assert {"qcb", "qcv", "qcb_mefb", "qcv_mefb"} <= set(names)
        assert all(n.startswith("qc") for n in names)

    def test_json(self, capsys):
        assert main(["metrics", "list", "psnr*", "--json"]) == 0
        cards = json.loads(capsys.readouterr().out)
        assert {c["name"] for c in cards} >= {"psnr", "psnr_vifb", "psnr_mefb"}
        assert all(c["mode"] == "fusion" for c in cards)


class TestHelpers:
    def test_default_sets_are_registered(self):
        assert default_metrics("ivif") == list(TASK_DEFAULTS["ivif"])
        assert len(default_metrics("mef")) >= 10
        assert "qabf" in default_metrics("mff")

    def test_read_as_stored_keeps_colour_files_colour(self, tmp_path):
        grey_in_rgb = np.repeat(np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)[..., None], 3, axis=2)
        write_image(tmp_path / "c.png", grey_in_rgb)
        write_image(tmp_path / "g.png", grey_in_rgb[..., 0])
        assert read_as_stored(tmp_path / "c.png").shape == (3, 4, 3)
        assert read_as_stored(tmp_path / "g.png").shape == (3, 4)

    def test_match_files(self, folders):
        pairs = match_files(folders / "a", folders / "b", folders / "f")
        assert [p[0] for p in pairs] == ["p1", "p2"]
        assert all(p[3].parent.name == "f" for p in pairs)


@pytest.fixture
def small_case(tmp_path: Path) -> Path:
    """A 60×64 MEF pair: large enough for every default MEF metric except VIF (81×81)."""
    rng = np.random.default_rng(1)
    for sub in ("a", "b", "f"):
        (tmp_path / sub).mkdir()
    under = rng.random((60, 64, 3)).astype(np.float32) * 0.5
    over = 0.5 + rng.random((60, 64, 3)).astype(np.float32) * 0.5
    write_image(tmp_path / "a" / "s.png", under)
    write_image(tmp_path / "b" / "s.png", over)
    write_image(tmp_path / "f" / "s.png", (under + over) / 2)
    return tmp_path


class TestNotComputableMetrics:
    def test_csv_marks_vif_not_computable_and_keeps_the_others(self, small_case, capsys):
        assert main(_args(small_case, "--task", "mef", "--csv")) == 0
        captured = capsys.readouterr()
        rows = list(csv.reader(io.StringIO(captured.out)))
        names = default_metrics("mef")
        assert rows[0] == ["image", *names]
        image_row = dict(zip(rows[0], rows[1], strict=True))
        assert image_row["vif_mefb"] == "n/a"
        computed = [m for m in names if m != "vif_mefb"]
        assert all(image_row[m] not in ("n/a", "nan") for m in computed)
        sources = [read_as_stored(small_case / "a" / "s.png"), read_as_stored(small_case / "b" / "s.png")]
        fused = read_as_stored(small_case / "f" / "s.png")
        assert float(image_row["qabf_mefb"]) == pytest.approx(create_metric("qabf_mefb")(sources, fused), rel=1e-5)
        assert dict(zip(rows[0], rows[2], strict=True))["vif_mefb"] == "n/a"  # mean row
        assert "s: vif_mefb not computable" in captured.err and "81" in captured.err

    def test_json_gives_null_and_the_reason(self, small_case, capsys):
        assert main(_args(small_case, "--task", "mef", "--json")) == 0
        payload = json.loads(capsys.readouterr().out)
        image = payload["images"][0]
        assert image["vif_mefb"] is None and payload["mean"]["vif_mefb"] is None
        assert list(image["not_computable"]) == ["vif_mefb"]
        assert "81x81" in image["not_computable"]["vif_mefb"].replace("×", "x")
        assert isinstance(image["mef_ssim"], float) and image["mef_ssim"] == payload["mean"]["mef_ssim"]

    def test_single_explicit_metric_is_an_error(self, small_case, capsys):
        assert main(_args(small_case, "--metrics", "vif_mefb")) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("fuseagent") and "s: " in err[0]
