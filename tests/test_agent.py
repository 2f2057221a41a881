"""The agent loop: reflection, rollback to the next model, rescheduling, records, traces and replay."""

from __future__ import annotations

import json

import numpy as np
import pytest

import fuseagent
from fuseagent.agent import Agent, AgentStep, ReflectionError, Reflector
from fuseagent.errors import InputError
from fuseagent.execute import Environment, image_hash
from fuseagent.plan import Findings, FixedPlanner, PlanContext
from fuseagent.plan.predefined import PREDEFINED
from fuseagent.protocol import Action, parse_actions
from fuseagent.tools import TOOLS, ImageTool, ToolCard, register_tool


CLEAN: dict[str, np.ndarray] = {}


@pytest.fixture
def small_pair(camera) -> list[np.ndarray]:
    """A 96×128 IR-like / noisy visible pair cut from the camera image (clean versions in CLEAN)."""
    ir = camera[200:296, 180:308].copy()
    clean_vis = np.clip(camera[200:296, 180:308] * 0.8 + 0.1, 0, 1).astype(np.float32)
    noise = np.random.default_rng(3).normal(0, 0.06, ir.shape)
    vis = np.clip(clean_vis + noise, 0, 1).astype(np.float32)
    CLEAN.update(ir=ir, vis=clean_vis)
    return [ir, vis]


def detail_score(before, after, roles, task):
    """Toy step reward: 0.5 + how much closer to the clean images the changed images came."""
    if list(after) == ["fused"]:
        error = float(np.abs(after["fused"] - (CLEAN["ir"] + CLEAN["vis"]) / 2).mean())
        return {"total": 1 - error}

    def error(images):
        return float(np.mean([np.abs(images[r] - CLEAN[r]).mean() for r in roles]))

    gain = error(before) - error(after)
    return {"total": 0.5 + 0.5 * float(np.tanh(gain / 0.01)), "gain": gain}


@pytest.fixture
def toy_tools(black_tool):
    """A harmful tool (``zz_black``: returns black) and one that crashes, removed again after the test."""

    class Crash(ImageTool):
        card = ToolCard("dehaze", "zz_crash", "always raises", cost="low")

        def process(self, image):
            raise RuntimeError("boom")

    register_tool(Crash)
    yield
    TOOLS._entries.pop("dehaze.zz_crash", None)


class NoAlternatives(FixedPlanner):
    def alternatives(self, context, action):
        return []


def agent(plan, **kw) -> Agent:
    planner = plan if not isinstance(plan, str) else FixedPlanner(plan)
    return Agent(planner=planner, scorer=detail_score, perceive=False, **kw)


class TestAgentSmoke:
    def test_predefined_run_records_and_trace(self, small_pair):
        res = Agent(planner="predefined", scorer=detail_score, perceive=False, max_candidates=2).run(*small_pair, "ivif")
        assert res.fused.shape == small_pair[0].shape
        assert res.trajectory.endswith(PREDEFINED["ivif"].split(" -> ")[-1])  # the planned fusion operator
        kinds = [s.kind for s in res.steps]
        assert kinds[0] == "plan" and kinds[-1] == "fusion"
        assert {s.status for s in res.steps} <= {"planned", "accepted", "rolled_back", "failed", "rescheduled", "dropped"}
        trace = json.loads(json.dumps(res.trace()))
        assert trace["format"] == "fuseagent.trace/1" and trace["agent"]["planner"] == "predefined"
        assert trace["output"]["hash"] == image_hash(res.fused)
        steps = [AgentStep.from_dict(s) for s in trace["agent"]["steps"]]
        assert steps[-1].action == res.steps[-1].action and steps[-1].output_key == res.steps[-1].output_key
        assert 0 <= res.tool_seconds <= res.seconds and res.overhead_seconds == pytest.approx(res.seconds - res.tool_seconds)

    def test_outputs_are_hashed_in_a_worker_while_the_step_is_rated(self, small_pair, monkeypatch):
        import threading

        import fuseagent.execute as execute

        delay, hashed = 0.05, []
        real_hash = execute.image_hash

        def slow_hash(image):
            hashed.append(threading.current_thread() is threading.main_thread())
            execute.time.sleep(delay)
            return real_hash(image)

        def slow_score(before, after, roles, task):
            execute.time.sleep(delay)
            return detail_score(before, after, roles, task)

        monkeypatch.setattr(execute, "image_hash", slow_hash)
        plan = "[task:denoise][model:nlm][on:vis] -> [task:fusion][model:laplacian]"
        env = Environment()
        res = Agent(planner=FixedPlanner(plan), scorer=slow_score, perceive=False, environment=env).run(
            *small_pair, "ivif")
        # no perception to hide them behind: the inputs are hashed here; each step's output in the worker
        assert hashed == [True, True, False, False]
        assert env.hash_seconds >= 4 * delay  # the hashing itself, wherever it ran
        # the run waited for the inputs' hashes only: the outputs' were hashed while their steps were rated
        assert 2 * delay <= res.hashing_seconds < 3 * delay
        parts = res.tool_seconds + res.perception_seconds + res.planning_seconds + res.reflection_seconds
        assert parts + res.hashing_seconds <= res.seconds
        assert res.trace()["agent"]["hashing_seconds"] == round(res.hashing_seconds, 4)
        # the same records as executing and rating one step after the other
        monkeypatch.setattr(execute, "image_hash", real_hash)
        serial = Environment()
        state, _ = serial.initial_state(small_pair, "ivif")
        for record, action in zip(res.steps[1:], res.execution.actions):
            new, executed, _ = serial.step(state, action, "ivif")
            assert (record.input_key, record.output_key) == (state.key, new.key)
            if action.task != "fusion":
                scores = Reflector(detail_score).score_step(state.images, new.images, executed.targets, "ivif",
                                                            action.task, executed.info, new.masks)
                assert record.scores == scores and record.status == "accepted"
            state = new
        assert np.array_equal(state.images["fused"], res.fused)

    def test_perception_sees_the_inputs_while_they_are_hashed(self, small_pair):
        import dataclasses

        plan = FixedPlanner("[task:fusion][model:laplacian]")
        plan.card = dataclasses.replace(plan.card, uses_perception=True)  # this planner now asks for perception
        res = Agent(planner=plan, scorer=detail_score).run(*small_pair, "ivif")
        expected = fuseagent.agent.perception_report(small_pair, "ivif")
        assert res.perception == expected | {"seconds": res.perception["seconds"]}
        state, _ = Environment().initial_state(small_pair, "ivif")
        assert res.steps[1].input_key == state.key and res.trace()["inputs"][1]["hash"] == image_hash(small_pair[1])

    def test_replay_is_bit_for_bit(self, small_pair):
        res = Agent(planner="expert", scorer=detail_score, perceive=False).run(
            *small_pair, "ivif", findings=Findings({"vis": {"noise": 3}}))
        trace = json.loads(json.dumps(res.trace()))
        again = Agent(planner="expert").replay(trace, *small_pair)
        assert np.array_equal(again.fused, res.fused)
        assert np.array_equal(Environment().replay(trace, small_pair).fused, res.fused)

    def test_lazy_export_and_task_forms(self, small_pair):
        a = fuseagent.Agent(planner="predefined", perceive=False, reflect=False)
        res1 = a.run(small_pair, task="ivif")
        res2 = a.run(*small_pair, "ivif")
        assert np.array_equal(res1.fused, res2.fused) and res2.tool_calls == 0  # second run: all cached

    def test_mef_stack_of_three(self, astronaut):
        a = astronaut[:96, :128]
        stack = [np.clip(a * g, 0, 1).astype(np.float32) for g in (0.4, 1.0, 1.8)]
        res = agent("[task:fusion][model:mertens]", reflect=False).run(stack, task="mef")
        assert res.fused.shape == a.shape and list(res.execution.states[0].images) == ["a", "b", "c"]


class TestAgentRollback:
    def test_harmful_step_is_rolled_back_and_next_model_tried(self, small_pair, toy_tools):
        res = agent("[task:denoise][model:zz_black][on:vis] -> [task:fusion][model:gff]").run(*small_pair, "ivif")
        steps = [s for s in res.steps if s.kind == "step"]
        assert steps[0].action == "[task:denoise][model:zz_black][on:vis]" and steps[0].status == "rolled_back"
        assert steps[0].reward < 0.5 and steps[0].scores["gain"] < 0
        assert steps[1].status == "accepted" and steps[1].attempt == 1
        assert "zz_black" not in res.trajectory and res.trajectory.startswith("[task:denoise]")
        assert res.tool_calls == 3

    def test_real_reflection_after_a_crash_scores_as_in_order(self, small_pair, toy_tools):
        plan = FixedPlanner("[task:dehaze][model:zz_crash][on:vis] -> [task:fusion][model:laplacian]")
        reflector_size = 96
        res = Agent(planner=plan, perceive=False, reflect_size=reflector_size).run(*small_pair, "ivif")
        steps = [s for s in res.steps if s.kind == "step"]
        assert steps[0].status == "failed" and "boom" in steps[0].error  # its rating was prepared meanwhile
        rated = [s for s in steps[1:] if s.reward is not None]
        assert rated, "an alternative dehazing model was run and rated"
        fresh = Reflector(max_side=reflector_size)
        state0 = res.execution.states[0]
        for record in rated:
            action = parse_actions(record.action)[0]
            after = res.states[record.output_key]
            targets = Environment().targets(state0, action, "ivif")
            assert record.scores == fresh.score_step(state0.images, after.images, targets, "ivif", action.task, {},
                                                     after.masks)
        fusion = res.steps[-1]
        accepted = [s.reward for s in steps if s.status == "accepted"]
        assert fusion.reward == Reflector(max_side=reflector_size).score_fusion(
            list(state0.images.values()), res.fused, "ivif", accepted)["total"]

    def test_without_reflection_the_harmful_step_stays(self, small_pair, toy_tools):
        res = agent("[task:denoise][model:zz_black][on:vis] -> [task:fusion][model:gff]", reflect=False).run(
            *small_pair, "ivif")
        assert "zz_black" in res.trajectory and res.steps[1].status == "accepted"

    def test_threshold_rolls_back_steps_that_stay_low(self, small_pair):
        res = agent("[task:denoise][model:nlm][on:vis] -> [task:fusion][model:gff]", threshold=10.0,
                    max_candidates=2).run(*small_pair, "ivif")
        statuses = [s.status for s in res.steps if s.kind == "step"]
        assert statuses == ["rolled_back", "rolled_back"] and res.trajectory == "[task:fusion][model:gff]"
        assert res.steps[-1].kind == "fusion"

    def test_crashing_tool_is_a_failed_attempt(self, small_pair, toy_tools):
        planner = NoAlternatives("[task:dehaze][model:zz_crash][on:vis] -> [task:denoise][model:nlm][on:vis]"
                                 " -> [task:fusion][model:gff]")
        res = agent(planner).run(*small_pair, "ivif")
        records = [(s.kind, s.status, s.action) for s in res.steps[1:]]
        assert records[0] == ("step", "failed", "[task:dehaze][model:zz_crash][on:vis]")
        assert "RuntimeError: boom" in res.steps[1].error
        assert records[1] == ("reschedule", "rescheduled", "[task:dehaze][model:zz_crash][on:vis]")
        assert records[2][:2] == ("step", "accepted")
        assert records[3] == ("step", "failed", "[task:dehaze][model:zz_crash][on:vis]")
        assert records[4] == ("drop", "dropped", "[task:dehaze][model:zz_crash][on:vis]")
        assert res.trajectory == "[task:denoise][model:nlm][on:vis] -> [task:fusion][model:gff]"

    def test_no_reschedule_drops_at_once(self, small_pair, toy_tools):
        planner = NoAlternatives("[task:dehaze][model:zz_crash][on:vis] -> [task:denoise][model:nlm][on:vis]"
                                 " -> [task:fusion][model:gff]")
        res = agent(planner, reschedule=False).run(*small_pair, "ivif")
        assert [s.status for s in res.steps[1:3]] == ["failed", "dropped"]


class TestAgentReflectionFailures:
    def test_real_reflection_rolls_back_a_blackout(self, small_pair, toy_tools):
        res = Agent(planner=FixedPlanner("[task:denoise][model:zz_black][on:vis] -> [task:fusion][model:gff]"),
                    perceive=False, reflect_size=96, max_candidates=2).run(*small_pair, "ivif")
        steps = [s for s in res.steps if s.kind == "step"]
        assert steps[0].status == "rolled_back" and steps[0].reward < 0.5
        assert steps[1].status == "accepted" and steps[1].attempt == 1 and "zz_black" not in res.trajectory

    def test_metric_failure_is_a_failed_step_not_a_crash(self, small_pair, monkeypatch):
        import fuseagent.metrics.rewards as rewards

        def broken(*args, **kwargs):
            raise RuntimeError("metric broke")

        monkeypatch.setattr(rewards, "intrinsic_reward", broken)
        planner = NoAlternatives("[task:denoise][model:wavelet][on:vis] -> [task:fusion][model:gff]")
        # rated in this process: the helper process does not see the patched metric
        res = Agent(planner=planner, perceive=False, reflect_size=64, offload=False).run(*small_pair, "ivif")
        step, fusion = res.steps[1], res.steps[-1]
        assert step.status == "failed" and step.reward is None
        assert step.error == "reflection on denoise failed: RuntimeError: metric broke"
        assert res.trajectory == "[task:fusion][model:gff]" and fusion.status == "accepted"
        assert fusion.reward is None and "reflection on fusion failed: RuntimeError" in fusion.error
        assert res.fused.shape == small_pair[0].shape

    def test_non_finite_reward_is_a_failed_step(self, small_pair):
        def nan_score(before, after, roles, task):
            return {"total": float("nan")}

        planner = NoAlternatives("[task:denoise][model:wavelet][on:vis] -> [task:fusion][model:gff]")
        res = Agent(planner=planner, perceive=False, scorer=nan_score, reschedule=False).run(*small_pair, "ivif")
        assert [s.status for s in res.steps[1:]] == ["failed", "dropped", "accepted"]
        assert "no finite reward" in res.steps[1].error and res.steps[-1].reward is None


class TestAgentErrors:
    def test_missing_or_unknown_task(self, small_pair):
        with pytest.raises(InputError, match="no fusion task"):
            agent("[task:fusion][model:gff]").run(*small_pair)
        with pytest.raises(InputError, match="unknown task"):
            agent("[task:fusion][model:gff]").run(*small_pair, task="hdr")

    def test_invalid_plan_from_planner(self, small_pair):
        with pytest.raises(fuseagent.ProtocolError):
            agent("[task:denoise][model:nlm]").run(*small_pair, "ivif")

    def test_replay_on_other_images(self, small_pair):
        res = agent("[task:fusion][model:gff]").run(*small_pair, "ivif")
        with pytest.raises(InputError, match="not the ones"):
            Agent(planner="predefined").replay(res.trace(), small_pair[1], small_pair[0])


class TestReflector:
    def test_rewards_say_denoising_helps_and_blacking_out_hurts(self, small_pair):
        import cv2

        ir, vis = small_pair
        reflector = Reflector(max_side=128)
        before = {"ir": ir, "vis": vis}
        denoised = cv2.bilateralFilter(vis, 5, 0.15, 3)
        good = reflector.score_step(before, {"ir": ir, "vis": denoised}, ["vis"], "ivif", "denoise")
        bad = reflector.score_step(before, {"ir": ir, "vis": np.zeros_like(vis)}, ["vis"], "ivif", "denoise")
        assert 0 <= bad["total"] < 0.5 < good["total"] <= 1
        assert set(good) == {"total", "intrinsic", "relational", "iqr_gain"}
        assert reflector.seconds > 0

    def test_alignment_is_judged_by_the_relational_term_alone(self, small_pair):
        reflector = Reflector(max_side=64)
        ir, vis = small_pair
        scores = reflector.score_step({"ir": ir, "vis": vis}, {"ir": ir[:, ::-1].copy(), "vis": vis}, ["ir"], "ivif",
                                      "registration", {"ir": {"homography": np.eye(3).tolist()}})
        assert set(scores) == {"total", "relational"} and scores["total"] == scores["relational"]
        assert reflector._iqr == {}  # no intrinsic quality computed for a warp

    def test_a_raising_scorer_is_a_reflection_error(self, small_pair):
        def raising(before, after, roles, task):
            raise IndexError("bad index")

        with pytest.raises(ReflectionError, match="reflection on denoise failed: IndexError: bad index"):
            Reflector(raising).score_step({"a": small_pair[0]}, {"a": small_pair[1]}, ["a"], "mef", "denoise")

    def test_iqr_is_cached_by_content(self):
        reflector = Reflector()
        image = np.random.default_rng(0).random((64, 64)).astype(np.float32)
        first = reflector.iqr(image)
        assert reflector.iqr(image.copy()) == first and len(reflector._iqr) == 1

    def test_a_chain_of_steps_shares_analyses_and_scores_as_fresh_reflectors(self, small_pair):
        import cv2

        ir, vis = small_pair
        denoised = cv2.GaussianBlur(vis, (5, 5), 1.0)
        lighter = np.clip(denoised * 1.3, 0, 1).astype(np.float32)
        states = [{"ir": ir, "vis": vis}, {"ir": ir, "vis": denoised}, {"ir": ir, "vis": lighter}]
        reflector = Reflector(max_side=96)
        shared = [reflector.score_step(b, a, ["vis"], "ivif", "denoise") for b, a in zip(states, states[1:])]
        fresh = [Reflector(max_side=96).score_step(b, a, ["vis"], "ivif", "denoise")
                 for b, a in zip(states, states[1:])]
        assert shared == fresh
        # the infrared analysis is computed once; step 2 reuses step 1's compatibility of the denoised image
        assert reflector.cache.hits == 3
        assert len(reflector._iqr) == 3  # the denoised image's intrinsic quality was computed once
        fusion = reflector.score_fusion([ir, vis], (ir + lighter) / 2, "ivif", [s["total"] for s in shared])
        assert fusion == Reflector(max_side=96).score_fusion([ir, vis], (ir + lighter) / 2, "ivif",
                                                             [s["total"] for s in shared])

    def test_prepared_steps_score_as_unprepared_ones(self, small_pair):
        import cv2

        ir, vis = small_pair
        before = {"ir": ir, "vis": vis}
        after = {"ir": ir, "vis": cv2.GaussianBlur(vis, (5, 5), 1.0)}
        prepared = Reflector(max_side=96)
        prepared.prepare(before, ["vis"], "ivif", "denoise")
        # the input's intrinsic quality and both analyses and their compatibility are ready
        assert len(prepared._iqr) == 1 and len(prepared._thumbs) == 2
        hits = prepared.cache.hits
        scores = prepared.score_step(before, after, ["vis"], "ivif", "denoise")
        assert scores == Reflector(max_side=96).score_step(before, after, ["vis"], "ivif", "denoise")
        assert len(prepared._iqr) == 2 and prepared.cache.hits >= hits + 2  # other's analysis, before's compatibility

    def test_preparing_an_alignment_or_a_custom_scorer_computes_no_reward(self, small_pair):
        ir, vis = small_pair
        reflector = Reflector(max_side=96)
        reflector.prepare({"ir": ir, "vis": vis}, ["ir"], "ivif", "registration")
        assert not reflector._thumbs and not reflector._iqr and reflector.cache.hits == 0
        custom = Reflector(detail_score, max_side=96)
        custom.prepare({"ir": ir, "vis": vis}, ["vis"], "ivif", "denoise")
        assert not custom._thumbs and not custom._iqr
        broken = Reflector(max_side=96)
        broken.prepare({"vis": vis}, ["vis"], "ivif", "denoise")  # no infrared image: left to the rating to report
        with pytest.raises(ReflectionError, match="KeyError"):
            broken.score_step({"vis": vis}, {"vis": vis}, ["vis"], "ivif", "denoise")

    def test_fusion_score_is_hqa(self, small_pair):
        reflector = Reflector(max_side=96)
        fused = (small_pair[0] + small_pair[1]) / 2
        score = reflector.score_fusion(small_pair, fused, "ivif", [0.7])
        assert 0 < score["total"] < 1 and 0 < score["fusion"] < 1


class TestPlanContext:
    def test_alternatives_exclude_the_failed_model(self):
        ctx = PlanContext.create("ivif")
        alts = FixedPlanner("[task:fusion][model:gff]").alternatives(ctx, Action("denoise", "nlm", "vis"))
        assert alts and all(a.model != "nlm" and a.target == "vis" and a.task == "denoise" for a in alts)


class TestStateHashes:
    def test_unchanged_arrays_keep_their_hash_and_targets_are_rehashed(self):
        from fuseagent.execute import State

        rng = np.random.default_rng(1)
        a, b = rng.random((16, 16)).astype(np.float32), rng.random((16, 16)).astype(np.float32)
        first = State.create({"a": a, "b": b})
        a[0, 0] += 1  # a tool changing its input in place
        second = State.create({"a": a, "b": b}, previous=first, rehash=["a"])
        assert second.key != first.key and second.hashes["a"] == image_hash(a)
        assert second.hashes["b"] == first.hashes["b"] == image_hash(b)
        assert second.key == State.create({"a": a.copy(), "b": b.copy()}).key
