"""Planners: registry, the random ablations, the expert's rules, the oracle's exhaustive search."""

from __future__ import annotations

import numpy as np
import pytest

from fuseagent.agent import Agent
from fuseagent.errors import InputError, UnknownNameError
from fuseagent.execute import Environment
from fuseagent.plan import PREDEFINED, Findings, PlanContext, create_planner, list_planners, predefined_plan
from fuseagent.plan.library import applicable_actions, models_for
from fuseagent.plan.oracle import OraclePlanner, candidate_prefixes
from fuseagent.protocol import Action, validate

NOISY_MISALIGNED = Findings({"ir": {"stripe": 2}, "vis": {"noise": 3, "haze": 2}}, {"misalignment": 2})


def ctx(task="ivif", findings=NOISY_MISALIGNED, seed=0, n=2, **kw) -> PlanContext:
    return PlanContext.create(task, n, findings=findings, seed=seed, **kw)


class TestRegistry:
    def test_all_planners_listed(self):
        assert set(list_planners()) >= {"predefined", "expert", "vlm", "oracle", "random", "random-order", "random-model"}

    def test_unknown_planner(self):
        with pytest.raises(UnknownNameError, match="did you mean expert"):
            create_planner("expret")

    @pytest.mark.parametrize("name", ["predefined", "expert", "random", "random-order", "random-model"])
    @pytest.mark.parametrize("task", ["ivif", "mef", "mff"])
    def test_every_plan_is_valid(self, name, task):
        roles = 2
        findings = Findings({r: {"noise": 2, "blur": 3, "low_light": 2} for r in (["ir", "vis"] if task == "ivif" else ["a", "b"])},
                            {"misalignment": 1, "motion": 2})
        trajectory = create_planner(name).plan(ctx(task, findings, n=roles))
        validate(list(trajectory.actions), task, roles)
        assert trajectory.actions[-1].task == "fusion" and trajectory.think


class TestPredefined:
    def test_blind_template(self):
        for task in PREDEFINED:
            assert predefined_plan(task).text() == PREDEFINED[task]

    def test_nothing_found_fuses_directly(self):
        for task, fusion in (("ivif", "wavelet"), ("mef", "spd_global"), ("mff", "focus")):
            assert create_planner("predefined").plan(ctx(task, Findings())).text() == f"[task:fusion][model:{fusion}]"

    def test_findings_fill_the_template_with_fixed_models_in_canonical_order(self):
        findings = Findings({"ir": {"noise": 2, "stripe": 3}, "vis": {"low_light": 4, "noise": 1, "haze": 2}},
                            {"misalignment": 2})
        assert create_planner("predefined").plan(ctx("ivif", findings)).text() == (
            "[task:destripe][model:column][on:ir] -> [task:denoise][model:nlm] -> [task:dehaze][model:dcp][on:vis] -> "
            "[task:lighten][model:clahe][on:vis] -> [task:registration][model:ecc][on:ir] -> [task:fusion][model:wavelet]")

    def test_ignores_experience(self):
        from fuseagent.plan.experience import Experience

        exp = Experience()
        for _ in range(4):
            exp.add_tool("mef", "denoise", "tv", failed=False, gain=0.1)
            exp.add_tool("mef", "denoise", "nlm", failed=True, gain=-0.1)
            exp.add_fusion("mef", "spd", won=True, score=1.0)
        findings = Findings({"a": {"noise": 3}, "b": {"noise": 3}}, {"misalignment": 2})
        fixed = "[task:denoise][model:nlm] -> [task:registration][model:sift] -> [task:fusion][model:spd_global]"
        assert create_planner("predefined").plan(ctx("mef", findings, experience=exp)).text() == fixed
        assert create_planner("expert").plan(ctx("mef", findings, experience=exp)).text() != fixed


class TestExpert:
    def test_restores_only_affected_images_in_canonical_order(self):
        t = create_planner("expert").plan(ctx())
        assert [a.text() for a in t.actions] == [
            "[task:destripe][model:column][on:ir]",
            "[task:denoise][model:nlm][on:vis]",
            "[task:dehaze][model:dcp][on:vis]",
            "[task:registration][model:sift]",
            "[task:fusion][model:regionlp]",
        ]
        assert "noise level 3 on vis" in t.think

    def test_models_suit_the_image_kind(self):
        acts = applicable_actions(Findings({"ir": {"rain": 3}, "vis": {"stripe": 3}}), "ivif", ["ir", "vis"])
        assert acts == []  # derain models are for visible images, destripe models for infrared
        both = applicable_actions(Findings({"ir": {"noise": 2}, "vis": {"noise": 2}}), "ivif", ["ir", "vis"])
        assert both == [Action("denoise", "nlm", None)]

    def test_exposure_drift_is_matched_between_frames(self):
        acts = applicable_actions(Findings({}, {"exposure_mismatch": 2}), "mff", ["a", "b"])
        assert acts == [Action("exposure", "histmatch", None)]

    def test_fusion_task_rules(self):
        mff = applicable_actions(Findings({"a": {"blur": 5}, "b": {"blur": 5}}), "mff", ["a", "b"])
        assert mff == []  # defocus blur is the signal of multi-focus fusion
        mef = applicable_actions(Findings({"a": {"low_light": 4}, "b": {"over_exposure": 4}}), "mef", ["a", "b"])
        assert mef == []
        ir = applicable_actions(Findings({"ir": {"haze": 4}, "vis": {}}), "ivif", ["ir", "vis"])
        assert all(a.task != "dehaze" for a in ir)

    def test_degradation_on_every_image_is_one_action(self):
        acts = applicable_actions(Findings({"a": {"noise": 2}, "b": {"noise": 4}}), "mef", ["a", "b"])
        assert acts == [Action("denoise", "nlm", None)]

    def test_min_level(self):
        t = create_planner("expert", min_level=4).plan(ctx())
        assert [a.task for a in t.actions] == ["fusion"]

    def test_clean_inputs_fuse_directly(self):
        assert len(create_planner("expert").plan(ctx(findings=Findings())).actions) == 1


class TestRandomAblations:
    def test_same_tasks_as_predefined(self):
        predefined = create_planner("predefined").plan(ctx()).actions[:-1]
        assert len(predefined) > 1
        for name in ("random", "random-order", "random-model"):
            acts = create_planner(name).plan(ctx(seed=3)).actions[:-1]
            assert sorted((a.task, a.target) for a in acts) == sorted((a.task, a.target) for a in predefined)

    def test_random_order_keeps_models_random_model_keeps_order(self):
        predefined = create_planner("predefined").plan(ctx()).actions
        orders, models = set(), set()
        for seed in range(12):
            ro = create_planner("random-order").plan(ctx(seed=seed)).actions
            assert sorted(a.text() for a in ro) == sorted(a.text() for a in predefined)
            orders.add(tuple(a.task for a in ro))
            rm = create_planner("random-model").plan(ctx(seed=seed)).actions
            assert [(a.task, a.target) for a in rm] == [(a.task, a.target) for a in predefined]
            models.add(tuple(a.model for a in rm))
        assert len(orders) > 1 and len(models) > 1

    def test_seeded(self):
        a = create_planner("random").plan(ctx(seed=5)).text()
        assert a == create_planner("random").plan(ctx(seed=5)).text()
        assert len({create_planner("random").plan(ctx(seed=s)).text() for s in range(10)}) > 1


class TestOracle:
    def test_prefix_enumeration(self):
        slots = [Action("denoise", "nlm", "vis"), Action("registration", "sift"), Action("dehaze", "x", "vis")]
        models = {("denoise", "vis"): ["nlm", "tv"], ("registration", None): ["sift", "ecc"], ("dehaze", "vis"): ["x"]}
        prefixes = candidate_prefixes(slots, models, 10_000)
        assert prefixes[0] == () and len(prefixes) == len(set(prefixes))
        # 1 + (2+2+1) + (4+2+4+2+2+2) + 6 orders × 4 = 1 + 5 + 16 + 24
        assert len(prefixes) == 46 and len(candidate_prefixes(slots, models, 7)) == 7

    def test_picks_the_best_and_shares_prefixes(self, small_pair):
        target = (small_pair[0] + small_pair[1]) / 2

        def closeness(fused, sources, task, step_rewards=()):
            return -float(np.abs(fused - target).mean())

        env = Environment()
        oracle = OraclePlanner(models_per_task=2, scorer=closeness)
        context = ctx(findings=Findings({"vis": {"noise": 3}}), images={"ir": small_pair[0], "vis": small_pair[1]},
                      environment=env)
        trajectory = oracle.plan(context)
        scores = [r["score"] for r in oracle.last_search if r["score"] is not None]
        best = max(scores)
        assert closeness(env.run(small_pair, "ivif", trajectory).fused, None, "ivif") == pytest.approx(best)
        n_fusion = min(4, len(models_for("fusion", "ivif")))  # the oracle tries the 4 best-ranked operators
        assert len(oracle.last_search) == len(candidate_prefixes(oracle.slots(context), {
            (a.task, a.target): ["m"] * 2 for a in oracle.slots(context)}, 64)) * n_fusion
        # every distinct (prefix, action) ran once: misses = distinct steps, everything else came from the cache
        assert env.cache.misses < len(oracle.last_search) * 2

    def test_agent_does_not_reflect_on_oracle(self, small_pair):
        oracle = OraclePlanner(models_per_task=1, max_prefixes=2, scorer=lambda f, s, t, r: float(f.mean()))
        res = Agent(planner=oracle, perceive=False, scorer=lambda b, a, r, t: {"total": 0.0}).run(
            *small_pair, "ivif", findings=Findings({"vis": {"noise": 3}}))
        assert all(s.status in ("planned", "accepted") for s in res.steps)
        assert res.tool_calls == 0  # the oracle already executed its trajectory


class TestScoreTrajectories:
    """Candidates are scored in the agent's worker thread while the next ones run: same results."""

    CANDIDATES = [
        [Action("fusion", "laplacian")],
        [Action("denoise", "wavelet", "vis"), Action("fusion", "laplacian")],
        [Action("denoise", "wavelet", "vis"), Action("fusion", "gff")],
        [Action("denoise", "wavelet", "vis"), Action("lighten", "clahe", "vis"), Action("fusion", "wavelet")],
        [Action("lighten", "clahe", "vis"), Action("fusion", "laplacian")],
    ]

    def test_pipelined_scores_equal_one_after_the_other(self, small_pair):
        import threading

        from fuseagent.agent import trajectory_hqa
        from fuseagent.plan.oracle import hqa_score, score_trajectories

        threads = []

        def scorer(fused, sources, task, step_rewards):
            threads.append(threading.current_thread().name)
            return hqa_score(fused, sources, task, step_rewards)

        env = Environment()
        state0, _ = env.initial_state(small_pair, "ivif")
        piped = score_trajectories(env, state0, "ivif", self.CANDIDATES, scorer)
        serial = score_trajectories(Environment(), state0, "ivif", self.CANDIDATES, in_flight=0)
        assert [r["trajectory"] for r in piped] == [list(t) for t in self.CANDIDATES]
        assert [r["score"] for r in piped] == [r["score"] for r in serial]
        assert len(threads) == len(self.CANDIDATES) and any(n.startswith("fuseagent-agent") for n in threads)
        # each score is the HQA of the executed trajectory
        for result in piped:
            execution = Environment().run(small_pair, "ivif", result["trajectory"])
            assert result["score"] == trajectory_hqa(execution.states, execution.actions, execution.steps, "ivif")

    def test_cheapest_prefix_runs_first_and_results_keep_their_order(self, small_pair, monkeypatch):
        from fuseagent.execute import ToolTimes
        from fuseagent.plan import oracle

        times = ToolTimes()
        times.observe("denoise.wavelet", 1_000_000, 5.0)  # as if wavelet denoising were slow
        times.observe("lighten.clahe", 1_000_000, 0.01)
        monkeypatch.setattr(oracle, "TOOL_TIMES", times)
        ran = []
        real = Environment.step

        def step(env, state, action, task):
            ran.append(action.text())
            return real(env, state, action, task)

        monkeypatch.setattr(Environment, "step", step)
        state0, _ = Environment().initial_state(small_pair, "ivif")
        results = oracle.score_trajectories(Environment(), state0, "ivif", self.CANDIDATES, in_flight=0)
        assert [r["trajectory"] for r in results] == [list(t) for t in self.CANDIDATES]
        # the fusion alone, then CLAHE's candidate, then the three behind the slow denoising
        assert ran[:3] == ["[task:fusion][model:laplacian]", "[task:lighten][model:clahe][on:vis]",
                           "[task:fusion][model:laplacian]"]
        assert ran[3] == "[task:denoise][model:wavelet][on:vis]"

    def test_candidates_of_one_stack_share_its_analysis(self, astronaut, monkeypatch):
        import fuseagent.metrics.rewards as rewards
        from fuseagent.plan.oracle import hqa_score, score_trajectories

        a = astronaut[:128, :160]
        stack = [np.clip(a * 0.45, 0, 1).astype(np.float32), np.clip(a * 1.7, 0, 1).astype(np.float32)]
        fusions = [[Action("fusion", m)] for m in ("mertens", "spd_global", "wavelet")]
        calls = []
        real = rewards.mef_ssim_sources
        monkeypatch.setattr(rewards, "mef_ssim_sources", lambda s: calls.append(1) or real(s))
        state0, _ = Environment().initial_state(stack, "mef")
        shared = score_trajectories(Environment(), state0, "mef", fusions)
        assert len(calls) == 1  # the stack was analysed once for the three fused images
        alone = score_trajectories(Environment(), state0, "mef", fusions, lambda *args: hqa_score(*args))
        assert [r["score"] for r in shared] == [r["score"] for r in alone]  # the same values without the cache

    def test_downscaled_scorer_is_hqa_of_shrunk_copies(self, small_pair):
        from fuseagent.agent import _thumbnail
        from fuseagent.plan.oracle import downscaled_hqa_scorer, hqa_score

        fused = (0.5 * small_pair[0] + 0.5 * small_pair[1]).astype(np.float32)
        score = downscaled_hqa_scorer(64)
        expected = hqa_score(_thumbnail(fused, 64), [_thumbnail(s, 64) for s in small_pair], "ivif", [0.6])
        assert _thumbnail(fused, 64).shape == (48, 64)
        assert score(fused, small_pair, "ivif", [0.6]) == expected
        assert score(fused, small_pair, "ivif", [0.6]) == expected  # the second call reuses the copies
        assert expected != hqa_score(fused, small_pair, "ivif", [0.6])  # not the full-size score
        with pytest.raises(InputError, match="max_side"):
            downscaled_hqa_scorer(8)

    def test_downscaled_scorer_in_the_search(self, small_pair):
        from fuseagent.plan.oracle import downscaled_hqa_scorer, score_trajectories

        state0, _ = Environment().initial_state(small_pair, "ivif")
        shrunk = score_trajectories(Environment(), state0, "ivif", self.CANDIDATES, downscaled_hqa_scorer(64))
        full = score_trajectories(Environment(), state0, "ivif", self.CANDIDATES)
        assert [r["trajectory"] for r in shrunk] == [r["trajectory"] for r in full]
        assert all(0.0 <= r["score"] <= 1.0 for r in shrunk)
        assert [r["score"] for r in shrunk] != [r["score"] for r in full]

    def test_a_scorer_failure_is_that_candidate_error(self, small_pair):
        from fuseagent.plan.oracle import score_trajectories

        def scorer(fused, sources, task, step_rewards):
            if len(step_rewards) == 1:
                raise ValueError("no score for one-step prefixes")
            return float(fused.mean())

        state0, _ = Environment().initial_state(small_pair, "ivif")
        results = score_trajectories(Environment(), state0, "ivif", self.CANDIDATES, scorer)
        failed = [r for r in results if r["score"] is None]
        assert [len(r["trajectory"]) for r in failed] == [2, 2, 2]
        assert all(r["error"] == "no score for one-step prefixes" for r in failed)
        assert all(isinstance(r["score"], float) for r in results if len(r["trajectory"]) != 2)

    def test_called_from_the_worker_thread_it_scores_in_turn(self, small_pair):
        from fuseagent.agent import _background
        from fuseagent.plan.oracle import score_trajectories

        state0, _ = Environment().initial_state(small_pair, "ivif")
        scorer = lambda fused, sources, task, step_rewards: float(fused.std())  # noqa: E731
        inside = _background().submit(score_trajectories, Environment(), state0, "ivif", self.CANDIDATES,
                                      scorer).result(timeout=120)
        outside = score_trajectories(Environment(), state0, "ivif", self.CANDIDATES, scorer)
        assert inside == outside
