"""The decision benchmark on a tiny synthetic suite (rewards stubbed where noted, no real data needed)."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

import fuseagent.agent as agent_module
from fuseagent.bench.decision import run_decision, summarise, to_csv, to_markdown, write_outputs
from fuseagent.bench.suite import findings_from_labels, open_suite
from fuseagent.cli import main
from fuseagent.degrade.suite import Source, build_suite
from fuseagent.errors import InputError, UnknownNameError
from fuseagent.io import write_image


@pytest.fixture(scope="module")
def suite(tmp_path_factory, camera):
    root = tmp_path_factory.mktemp("decision")
    sources = []
    for i, (y, x) in enumerate([(40, 60), (200, 180)]):
        crop = camera[y:y + 192, x:x + 256]
        ir, vis = root / f"ir{i}.png", root / f"vis{i}.png"
        write_image(ir, np.clip(1 - crop * 0.8, 0, 1))
        write_image(vis, crop)
        sources.append(Source(f"s{i}", {"ir": str(ir), "vis": str(vis)}))
    out = root / "suite"
    build_suite("ivif", sources, "ivif-a1", 2, 7, out, progress=False)
    return out


@pytest.fixture
def stub_rewards(monkeypatch):
    """HQA stubbed by a simple image statistic (fast; the rewards are tested elsewhere)."""
    monkeypatch.setattr(agent_module, "trajectory_hqa", lambda states, actions, records, task: float(
        states[-1].images["fused"].std()))


class TestSuite:
    def test_open_and_labels(self, suite):
        settings, samples = open_suite(suite)
        assert settings["task"] == "ivif" and len(samples) == 2
        s = samples[0]
        assert set(s.images) == {"ir", "vis"} and s.clean["vis"].shape == s.images["vis"].shape
        assert s.findings.level("vis", "noise") >= 1 and s.findings.level("vis", "low_light") >= 1

    def test_relational_labels_go_to_the_pair(self):
        f = findings_from_labels({"b": {"motion": 2, "noise": 1}}, ["a", "b"], inherent=["blur"])
        assert f.relational == {"motion": 2} and f.images == {"a": {}, "b": {"noise": 1}}

    def test_not_a_suite(self, tmp_path):
        with pytest.raises(InputError, match="not a suite"):
            open_suite(tmp_path)


class TestDecisionBenchmark:
    def test_rows_summary_and_tables(self, suite, stub_rewards):
        rows = run_decision([suite], ["predefined", "expert", "random"], ablation=["expert"], ground_truth=True,
                            progress=False, limit=1)
        assert len(rows) == 4 and all(r.error is None for r in rows)
        labels = {r.label for r in rows}
        assert labels == {"predefined", "expert", "random", "expert (no reflection)"}
        for r in rows:
            assert 0 < r.fidelity <= 1 and r.hqa is not None and r.tool_calls >= 1 and r.seconds > 0
            assert r.brisque is not None and r.niqe is not None and r.piqe is not None
        summary = summarise(rows)["ivif"]
        assert summary["expert"]["n"] == 1
        assert summary["expert"]["hqa"] == pytest.approx(np.mean([r.hqa for r in rows if r.label == "expert"]))
        md = to_markdown(summarise(rows))
        assert "| planner | MS-SSIM | BRISQUE | NIQE | PIQE | HQA | tool calls | seconds | n |" in md
        assert md.count("\n| ") == 5  # header + 4 planners
        parsed = list(csv.DictReader(io.StringIO(to_csv(rows))))
        assert len(parsed) == 4 and parsed[0]["task"] == "ivif"

    def test_write_outputs(self, suite, stub_rewards, tmp_path):
        rows = run_decision([suite], ["predefined"], ablation=[], ground_truth=True, limit=1, progress=False)
        paths = write_outputs(tmp_path / "res", rows)
        assert sorted(p.name for p in paths.values()) == ["decision.csv", "decision.md", "runs.csv"]
        assert "predefined" in paths["decision.md"].read_text()

    def test_unknown_planner(self, suite):
        with pytest.raises(UnknownNameError):
            run_decision([suite], ["expret"], progress=False)


class TestBenchCommand:
    def test_decision_command(self, suite, stub_rewards, tmp_path, capsys):
        code = main(["bench", "decision", "--suite", str(suite), "--planners", "predefined,expert",
                     "--ablation", "", "--ground-truth", "--limit", "1", "--out", str(tmp_path / "o"), "--no-progress"])
        out = capsys.readouterr().out
        assert code == 0 and "## IVIF" in out and "| expert |" in out
        assert (tmp_path / "o" / "decision.csv").is_file()

    @pytest.mark.parametrize("extra, message", [
        (["--planners", "predefined", "--ablation", "expert"], "not in --planners"),
        (["--planners", "predefined", "--ablation", "", "--limit", "0"], "--limit"),
    ])
    def test_bad_options(self, suite, capsys, extra, message):
        assert main(["bench", "decision", "--suite", str(suite), *extra]) == 2
        assert message in capsys.readouterr().err
