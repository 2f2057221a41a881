"""The ``learned`` planner: registration, weights from an explicit path, valid plans, the agent loop."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from fuseagent.agent import Agent
from fuseagent.data.rationale import check_rationale
from fuseagent.errors import InputError
from fuseagent.learned.policy import PolicyNet, build_vocab, save_policy
from fuseagent.plan import Findings, PlanContext, create_planner, list_planners
from fuseagent.plan.learned import SHIPPED_WEIGHTS, WEIGHTS_ENV, LearnedPlanner
from fuseagent.protocol import validate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from test_sft import TINY, toy_images, toy_records  # noqa: E402

torch.set_num_threads(1)

NOISY_VIS = Findings({"vis": {"noise": 3}})


@pytest.fixture(scope="module")
def toy_weights(tmp_path_factory) -> Path:
    """A tiny policy trained on the toy rules (noisy visible → denoise it, then gff)."""
    from fuseagent.train.sft import SFTSettings, train_sft

    out = tmp_path_factory.mktemp("policy") / "toy.pt"
    settings = SFTSettings(datasets=("toy",), policy=TINY, steps=100, batch=8, lr=1e-2, warmup=5, log_every=100,
                           val_fraction=0.0, perturbed=False, out=str(out))
    train_sft(settings, records=toy_records(6), image_loader=toy_images)
    return out


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_policy(tmp_path_factory.mktemp("policy") / "random.pt", PolicyNet(build_vocab()))


def _context(task: str, findings: Findings | None = None, seed: int = 0) -> PlanContext:
    rng = np.random.default_rng(seed)
    images = {r: rng.random((48, 64)).astype(np.float32) for r in (["ir", "vis"] if task == "ivif" else ["a", "b"])}
    return PlanContext(task=task, roles=list(images), findings=findings or Findings(), images=images, seed=seed)


class TestRegistration:
    def test_listed_and_created_without_loading(self, monkeypatch):
        monkeypatch.delenv(WEIGHTS_ENV, raising=False)
        assert "learned" in list_planners()
        planner = create_planner("learned")
        assert planner.name == "learned" and planner.weights == SHIPPED_WEIGHTS and planner._model is None

    def test_planning_without_weights_raises_input_error(self, monkeypatch, tmp_path):
        monkeypatch.delenv(WEIGHTS_ENV, raising=False)
        monkeypatch.setattr("fuseagent.plan.learned.SHIPPED_WEIGHTS", tmp_path / "policy.pt")
        with pytest.raises(InputError, match="needs its weights"):
            create_planner("learned").plan(_context("ivif"))

    def test_missing_file_raises_input_error(self, tmp_path):
        with pytest.raises(InputError, match="not found"):
            create_planner("learned", weights=str(tmp_path / "none.pt")).plan(_context("ivif"))

    def test_weights_from_the_environment(self, monkeypatch, toy_weights):
        monkeypatch.setenv(WEIGHTS_ENV, str(toy_weights))
        assert create_planner("learned").weights == toy_weights


class TestPlans:
    @pytest.mark.parametrize("task", ["ivif", "mef", "mff"])
    def test_random_policy_plans_are_valid_with_a_rationale(self, random_weights, task):
        for seed in range(3):
            for temperature in (0.0, 1.5):
                plan = LearnedPlanner(random_weights, temperature=temperature).plan(_context(task, seed=seed))
                validate(list(plan.actions), task)
                assert plan.think.startswith("I see a") and check_rationale(plan.think) == []

    def test_greedy_plan_is_deterministic(self, random_weights):
        a = LearnedPlanner(random_weights).plan(_context("mef", seed=4))
        b = LearnedPlanner(random_weights).plan(_context("mef", seed=4))
        assert a == b

    def test_fixed_input_gives_the_stored_plan(self, toy_weights):
        plan = LearnedPlanner(toy_weights).plan(_context("ivif", NOISY_VIS))
        assert plan.text() == "[task:denoise][model:nlm][on:vis] -> [task:fusion][model:gff]"
        assert plan.think.startswith("I see a grainy infrared-visible pair.")
        clean = LearnedPlanner(toy_weights).plan(_context("ivif"))
        assert clean.text() == "[task:fusion][model:laplacian]"

    def test_plans_in_well_under_a_second(self, random_weights):
        planner = LearnedPlanner(random_weights)
        rng = np.random.default_rng(0)
        images = {"ir": rng.random((480, 640)).astype(np.float32), "vis": rng.random((480, 640, 3)).astype(np.float32)}
        context = PlanContext(task="ivif", roles=["ir", "vis"], images=images)
        planner.plan(context)  # loads the weights
        t0 = time.perf_counter()
        planner.plan(context)
        assert time.perf_counter() - t0 < 1.0

    def test_alternatives_follow_the_policy_then_the_library(self, toy_weights):
        from fuseagent.plan.library import models_for

        planner = LearnedPlanner(toy_weights)
        context = _context("ivif", NOISY_VIS)
        plan = planner.plan(context)
        step = plan.actions[0]
        others = planner.alternatives(context, step)
        assert step.model not in {a.model for a in others}
        assert {a.model for a in others} == set(models_for("denoise", "ivif", "vis")) - {step.model}
        assert all(a.task == "denoise" and a.target == "vis" for a in others)


class TestAgentLoop:
    def test_runs_with_reflection_and_rollback(self, toy_weights, small_pair):
        calls = []

        def scorer(before, after, roles, task):
            calls.append(tuple(roles))
            return {"total": 0.0 if roles != ["fused"] else 0.6}  # every restoration step makes things worse

        agent = Agent(planner=LearnedPlanner(toy_weights), perceive=False, scorer=scorer, reflect_size=64,
                      max_candidates=2, reschedule=False)
        result = agent.run(*small_pair, task="ivif", findings=NOISY_VIS)
        assert result.proposal.trajectory.text() == "[task:denoise][model:nlm][on:vis] -> [task:fusion][model:gff]"
        statuses = [(s.kind, s.status, s.attempt) for s in result.steps]
        assert ("step", "rolled_back", 0) in statuses and ("step", "rolled_back", 1) in statuses
        assert ("drop", "dropped", 0) in statuses
        assert result.trajectory == "[task:fusion][model:gff]"
        assert result.fused.shape == (96, 128)

    def test_accepted_plan_is_executed(self, toy_weights, small_pair):
        agent = Agent(planner=LearnedPlanner(toy_weights), perceive=False, reflect=False)
        result = agent.run(*small_pair, task="ivif", findings=NOISY_VIS)
        assert result.trajectory == "[task:denoise][model:nlm][on:vis] -> [task:fusion][model:gff]"
        assert result.planner == "learned"
        assert result.planning_tool_calls == 0 and result.tool_calls == 2

    def test_tools_run_while_planning_are_counted_apart(self, toy_weights, small_pair):
        agent = Agent(planner=LearnedPlanner(toy_weights, candidates=3), perceive=False)
        result = agent.run(*small_pair, task="ivif", findings=NOISY_VIS)
        # the proposals were executed while planning; the agent then replays the chosen one from cache
        assert result.planning_tool_calls >= 2 and result.tool_calls == 0
        assert result.trace()["agent"]["planning_tool_calls"] == result.planning_tool_calls


class TestBestOfCandidates:
    """``candidates=k``: the k most probable plans are executed and the best by HQA is kept."""

    def test_beam_plans_are_distinct_valid_and_ranked(self, random_weights):
        from fuseagent.learned.policy import beam_plans, decode_actions, load_policy, policy_input

        model, _ = load_policy(random_weights)
        ctx = _context("ivif", NOISY_VIS)
        x = policy_input([ctx.images["ir"], ctx.images["vis"]], "ivif", None, ctx.findings, ctx.roles,
                         model.config.image_size)
        plans = beam_plans(model, x, 5)
        assert len(plans) == 5
        assert len({tuple(p.ids) for p in plans}) == 5
        scores = [sum(p.logprobs) for p in plans]
        assert scores == sorted(scores, reverse=True)
        for p in plans:
            assert validate(decode_actions(model.vocab, p.ids)[1], "ivif")
        with pytest.raises(InputError, match="beam width"):
            beam_plans(model, x, 0)

    def test_keeps_the_best_proposal(self, toy_weights, small_pair):
        from fuseagent.execute import Environment
        from fuseagent.plan.oracle import score_trajectories

        images = dict(zip(["ir", "vis"], small_pair))
        ctx = PlanContext(task="ivif", roles=["ir", "vis"], findings=NOISY_VIS, images=images, seed=0)
        greedy = LearnedPlanner(toy_weights).plan(ctx)
        env = Environment()
        best = LearnedPlanner(toy_weights, candidates=4).plan(
            PlanContext(task="ivif", roles=["ir", "vis"], findings=NOISY_VIS, images=images, seed=0, environment=env))
        assert "most likely plans" in best.think
        assert check_rationale(best.think) == []
        assert env.cache.misses >= 2  # it executed its proposals
        state0, _ = env.initial_state(images, "ivif")
        scores = {" -> ".join(a.text() for a in r["trajectory"]): r["score"]
                  for r in score_trajectories(env, state0, "ivif", [greedy.actions, best.actions])}
        assert scores[best.text()] >= scores[greedy.text()]

    def test_a_searched_plan_is_not_reflected_on_again(self, toy_weights):
        assert LearnedPlanner(toy_weights).reflect is True
        assert LearnedPlanner(toy_weights, candidates=3).reflect is False

    def test_invalid_candidates_raise(self, toy_weights):
        with pytest.raises(InputError, match="candidates"):
            LearnedPlanner(toy_weights, candidates=0)
        with pytest.raises(InputError, match="score_side"):
            LearnedPlanner(toy_weights, candidates=3, score_side=8)

    def test_candidates_scored_on_shrunk_copies(self, toy_weights, small_pair, monkeypatch):
        import fuseagent.plan.oracle as oracle

        sizes = []
        real = oracle.hqa_score
        monkeypatch.setattr(oracle, "hqa_score", lambda fused, *a, **k: sizes.append(fused.shape) or real(fused, *a, **k))
        images = dict(zip(["ir", "vis"], small_pair))
        plan = LearnedPlanner(toy_weights, candidates=3, score_side=64).plan(
            PlanContext(task="ivif", roles=["ir", "vis"], findings=NOISY_VIS, images=images, seed=0))
        assert "most likely plans" in plan.think
        assert sizes and all(max(s[:2]) == 64 for s in sizes)


class TestShippedPolicy:
    """The policy shipped in ``fuseagent/weights/policy.pt`` (SFT + GRPO-F) plans the bundled examples as stored."""

    EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

    @pytest.mark.parametrize("task, folder, roles, findings, stored", [
        ("ivif", "ivif/tno_08", ["ir", "vis"], Findings({"vis": {"noise": 3}}),
         "[task:denoise][model:nlm][on:vis] -> [task:fusion][model:laplacian]"),
        ("mef", "mef/coffee", ["a", "b", "c"], Findings(),
         "[task:fusion][model:spd_global]"),
        ("mff", "mff/rocket", ["a", "b"], Findings({"a": {"haze": 2}, "b": {"haze": 2}}),
         "[task:dehaze][model:dcp] -> [task:fusion][model:wavelet]"),
    ])
    def test_fixed_input_gives_the_stored_plan(self, monkeypatch, task, folder, roles, findings, stored):
        from fuseagent.io import read_image

        monkeypatch.delenv(WEIGHTS_ENV, raising=False)
        images = {r: read_image(self.EXAMPLES / folder / f"{r}.png") for r in roles}
        plan = create_planner("learned").plan(PlanContext(task=task, roles=roles, findings=findings, images=images))
        assert plan.text() == stored
        assert check_rationale(plan.think) == []

    def test_small_and_loaded_offline(self):
        assert SHIPPED_WEIGHTS.is_file() and SHIPPED_WEIGHTS.stat().st_size < 3 * 1024 ** 2


class TestFuseCommand:
    @staticmethod
    def _fuse(monkeypatch, weights, pair, tmp_path, candidates: str, *extra: str) -> tuple[int, Path]:
        from fuseagent.cli import main
        from fuseagent.io import write_image

        monkeypatch.setenv(WEIGHTS_ENV, str(weights))
        ir, vis, out = tmp_path / "ir.png", tmp_path / "vis.png", tmp_path / "out.png"
        write_image(ir, pair[0])
        write_image(vis, pair[1])
        code = main(["fuse", str(ir), str(vis), "--task", "ivif", "-o", str(out), "--planner", "learned",
                     "--candidates", candidates, *extra])
        return code, out

    def test_cli_runs_the_learned_planner_with_candidates(self, monkeypatch, toy_weights, small_pair, tmp_path, capsys):
        from fuseagent.io import read_image

        code, out = self._fuse(monkeypatch, toy_weights, small_pair, tmp_path, "3")
        assert code == 0 and read_image(out).shape == small_pair[0].shape
        printed = capsys.readouterr().out
        assert "planner learned:" in printed
        # its proposals ran while it planned: the summary says so instead of "0 tool calls"
        searched = int(printed.split("(")[1].split(" tool calls while planning")[0])
        assert searched >= 2 and "while planning, 0 after" in printed
        # and their time counts as tool time, not as planning
        assert "s of them while planning), perception" in printed and "besides its tools" in printed

    def test_the_tools_run_while_planning_are_tool_time(self, toy_weights, small_pair):
        from fuseagent.agent import Agent
        from fuseagent.execute import Environment

        env = Environment()
        res = Agent(planner=LearnedPlanner(toy_weights, candidates=3), environment=env).run(*small_pair, "ivif")
        assert res.tool_seconds == 0 and res.planning_tool_calls >= 2  # the chosen plan ran while planning
        assert res.planning_tool_seconds == pytest.approx(env.tool_seconds) and res.planning_tool_seconds > 0
        assert res.planning_tool_seconds < res.planning_seconds
        assert res.all_tool_seconds == res.planning_tool_seconds
        assert res.overhead_seconds == pytest.approx(res.seconds - res.planning_tool_seconds)
        assert res.trace()["agent"]["planning_tool_seconds"] == round(res.planning_tool_seconds, 4)

    def test_without_a_plan_fuse_runs_the_learned_planner_with_the_validated_k(self, monkeypatch, toy_weights,
                                                                               small_pair, tmp_path, capsys):
        import json

        from fuseagent.cli import main
        from fuseagent.io import write_image
        from fuseagent.plan.learned import VALIDATED_CANDIDATES

        monkeypatch.setenv(WEIGHTS_ENV, str(toy_weights))
        ir, vis, out, trace = (tmp_path / n for n in ("ir.png", "vis.png", "out.png", "trace.json"))
        write_image(ir, small_pair[0])
        write_image(vis, small_pair[1])
        assert main(["fuse", str(ir), str(vis), "--task", "ivif", "-o", str(out), "--trace", str(trace)]) == 0
        assert "planner learned:" in capsys.readouterr().out
        agent = json.loads(trace.read_text())["agent"]
        assert agent["planner"] == "learned" and agent["planning_tool_calls"] >= 2
        assert f"Tried my {VALIDATED_CANDIDATES} most likely plans" in agent["think"]
        assert VALIDATED_CANDIDATES == 5  # the K chosen on validation suites (docs/BENCHMARKS.md)

    def test_cli_rejects_zero_candidates_in_one_line(self, monkeypatch, toy_weights, small_pair, tmp_path, capsys):
        code, out = self._fuse(monkeypatch, toy_weights, small_pair, tmp_path, "0")
        err = capsys.readouterr().err.strip()
        assert code != 0 and not out.exists()
        assert "candidates" in err and len(err.splitlines()) == 1

    def test_cli_scores_candidates_on_shrunk_copies(self, monkeypatch, toy_weights, small_pair, tmp_path, capsys):
        code, out = self._fuse(monkeypatch, toy_weights, small_pair, tmp_path, "3", "--score-side", "64")
        assert code == 0 and out.exists() and "planner learned:" in capsys.readouterr().out
        (tmp_path / "bad").mkdir()
        code, out = self._fuse(monkeypatch, toy_weights, small_pair, tmp_path / "bad", "3", "--score-side", "8")
        err = capsys.readouterr().err.strip()
        assert code != 0 and not out.exists() and "score_side" in err and len(err.splitlines()) == 1
