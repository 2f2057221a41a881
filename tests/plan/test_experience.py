"""Experience: exploration counts, rankings, learned orders, documents, and the explore command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fuseagent.cli import main
from fuseagent.errors import InputError
from fuseagent.plan import Findings, PlanContext, create_planner
from fuseagent.plan.experience import Experience, ExploreSample, explore
from fuseagent.plan.library import models_for


def closeness_to(target):
    def score(fused, sources, task, step_rewards=()):
        return -float(np.abs(fused - target).mean())

    return score


@pytest.fixture
def noisy_sample(camera):
    clean = camera[100:196, 100:228].copy()
    rng = np.random.default_rng(1)
    vis = np.clip(clean + rng.normal(0, 0.08, clean.shape), 0, 1).astype(np.float32)
    ir = np.clip(clean * 0.9 + 0.05, 0, 1).astype(np.float32)
    return ExploreSample("s0", "ivif", {"ir": ir, "vis": vis}, Findings({"vis": {"noise": 3, "haze": 1}})), clean


class TestExperienceCounts:
    def test_explore_counts_tools_orders_and_fusion(self, noisy_sample):
        sample, clean = noisy_sample
        exp = explore([sample], scorer=closeness_to(clean), models_per_task=2, meta={"suites": ["toy"]})
        section = exp.data["ivif"]
        assert sum(e["wins"] for e in section["fusion"].values()) == 1
        assert set(section["tools"]) == {"denoise.nlm", "denoise.wavelet", "dehaze.dcp", "dehaze.cap"}
        assert all(e["tried"] == 1 for e in section["tools"].values())
        assert section["tools"]["denoise.nlm"]["failed"] == 0  # denoising brings the fused image closer to clean
        assert set(section["orders"]) == {"denoise>dehaze", "dehaze>denoise"}
        assert sum(e["wins"] for e in section["orders"].values()) <= 1
        n_fusion = len(models_for("fusion", "ivif"))  # direct fusions + 2 models x 2 tasks + 2 orders
        assert exp.meta["samples"] == 1 and exp.meta["trajectories"] == n_fusion + 4 + 2

    def test_merge_and_roundtrip(self, tmp_path):
        a, b = Experience(), Experience()
        a.add_tool("mef", "denoise", "tv", failed=True, gain=-0.1)
        b.add_tool("mef", "denoise", "tv", failed=False, gain=0.3)
        a.merge(b)
        assert a.data["mef"]["tools"]["denoise.tv"] == {"tried": 2, "failed": 1, "gain": pytest.approx(0.2)}
        js, md = a.save(tmp_path / "exp")
        again = Experience.load(tmp_path / "exp")
        assert again.data == a.data and "denoise.tv" in md.read_text()


class TestExperienceConsult:
    def test_expert_follows_learned_order_and_models(self):
        exp = Experience()
        for _ in range(4):
            exp.add_order("ivif", "dehaze", "denoise", failed=False, won=True, gain=0.2)
            exp.add_order("ivif", "denoise", "dehaze", failed=True, won=False, gain=-0.1)
            exp.add_tool("ivif", "denoise", "tv", failed=False, gain=0.1)
            exp.add_tool("ivif", "denoise", "nlm", failed=True, gain=-0.1)
            exp.add_fusion("ivif", "laplacian", won=True, score=1.0)
            exp.add_fusion("ivif", "gff", won=False, score=0.5)
        ctx = PlanContext.create("ivif", findings=Findings({"vis": {"noise": 3, "haze": 3}}), experience=exp)
        plan = create_planner("expert").plan(ctx)
        assert plan.text() == "[task:dehaze][model:dcp][on:vis] -> [task:denoise][model:tv][on:vis] -> [task:fusion][model:laplacian]"
        notes = exp.prompt_notes("ivif")
        assert "do dehaze first" in notes and "'laplacian'" in notes

    def test_no_opinion_keeps_default(self):
        assert Experience().task_order(["registration", "denoise"], "mef", ("denoise", "registration")) == (
            "denoise", "registration")


class TestExperienceErrors:
    def test_bad_file(self, tmp_path):
        (tmp_path / "x.json").write_text(json.dumps({"format": "other"}))
        with pytest.raises(InputError, match="not a fuseagent experience"):
            Experience.load(tmp_path / "x.json")
        with pytest.raises(InputError, match="cannot read"):
            Experience.load(tmp_path / "missing.json")


class TestExploreCommand:
    def test_refuses_test_sets(self, tmp_path, capsys):
        suite = tmp_path / "s"
        suite.mkdir()
        (suite / "suite.json").write_text(json.dumps({"src": "/data/ivif/vifb", "task": "ivif"}))
        (suite / "manifest.jsonl").write_text(json.dumps({"id": "00000", "task": "ivif", "roles": ["ir", "vis"],
                                                          "files": {}, "source": {"name": "x"}}) + "\n")
        code = main(["explore", "--suite", str(suite), "--out", str(tmp_path / "exp")])
        assert code == 2 and "test set" in capsys.readouterr().err
        assert not (tmp_path / "exp").exists()
