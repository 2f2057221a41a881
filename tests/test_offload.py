"""The helper process: calls and replies, errors, death, the switch; the agent and perception with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fuseagent import offload
from fuseagent.agent import Agent, Reflector, RunAhead, perception_report
from fuseagent.errors import InputError
from fuseagent.execute import TOOL_TIMES, Environment, ToolTimes
from fuseagent.metrics.rewards import HQAConfig, intrinsic_reward
from fuseagent.offload import Helper, HelperError
from fuseagent.plan import Findings, FixedPlanner
from fuseagent.protocol import Action


class Marker:
    """A class only this test process can import."""


@pytest.fixture(scope="module")
def helper() -> Helper:
    h = offload.helper()
    if h is None or not h.wait_ready(60):
        pytest.fail("the helper process did not start")
    return h


@pytest.fixture
def pair(camera) -> list[np.ndarray]:
    ir = camera[180:276, 160:288].copy()
    vis = np.clip(camera[180:276, 160:288] * 0.6 + np.random.default_rng(5).normal(0, 0.05, ir.shape), 0, 1)
    return [ir, vis.astype(np.float32)]


class TestHelper:
    def test_round_trip_of_arrays(self, helper):
        x = np.random.default_rng(0).random((40, 30, 3)).astype(np.float32)
        back = helper.submit("offload.echo", {"x": x, "n": 3}).result(30)
        assert back["n"] == 3 and back["x"].dtype == np.float32 and np.array_equal(back["x"], x)

    def test_it_runs_this_very_package(self, helper):
        import fuseagent

        assert helper.submit("offload.package").result(30) == str(Path(fuseagent.__file__).resolve().parent)

    def test_the_functions_exception_comes_back(self, helper):
        with pytest.raises(InputError, match="too small"):
            helper.submit("agent.fused_iqa", np.zeros((4, 4), np.float32)).result(30)
        with pytest.raises(KeyError, match="no.such"):
            helper.submit("no.such", 1).result(30)
        assert helper.submit("offload.echo", 7).result(30) == 7  # still serving

    def test_a_reply_that_cannot_be_rebuilt_fails_its_call_only(self):
        import io
        import pickle
        import threading
        import types
        from concurrent.futures import Future

        from fuseagent.errors import UnknownNameError

        stream = io.BytesIO()
        # an exception whose constructor takes three arguments pickles, but does not unpickle
        offload._write(stream, (0, False, pickle.dumps(UnknownNameError("tool", "x", ["y"]))))
        offload._write(stream, (1, True, pickle.dumps(42)))
        stream.seek(0)
        reader = object.__new__(Helper)
        reader._process = types.SimpleNamespace(stdout=stream)
        reader._lock, reader._dead = threading.Lock(), None
        reader._pending = {0: Future(), 1: Future(), 2: Future()}
        first, second, third = reader._pending[0], reader._pending[1], reader._pending[2]
        reader._read_replies()  # reads both replies, then meets the end of the stream
        with pytest.raises(HelperError, match="reply could not be read: TypeError"):
            first.result(0)
        assert second.result(0) == 42
        with pytest.raises(HelperError, match="exited"):
            third.result(0)

    def test_an_argument_the_helper_cannot_rebuild_fails_its_call_only(self, helper):
        # pickled by reference to this test module, which the helper cannot import
        with pytest.raises(ModuleNotFoundError):
            helper.submit("offload.echo", Marker()).result(30)
        assert helper.alive and helper.submit("offload.echo", 10).result(30) == 10

    def test_unpicklable_argument_fails_its_call_only(self, helper):
        future = helper.submit("offload.echo", lambda: 1)
        with pytest.raises(HelperError, match="cannot send offload.echo"):
            future.result(1)
        assert helper.alive and helper.submit("offload.echo", 8).result(30) == 8

    def test_computes_what_this_process_computes(self, helper, pair):
        value, cpu = helper.submit("agent.fused_iqa", pair[1]).result(30)
        assert value == intrinsic_reward(pair[1], HQAConfig().relational.intrinsic).value and cpu > 0

    def test_a_dead_helper_fails_pending_and_later_calls(self):
        own = Helper()
        assert own.wait_ready(60)
        own._process.kill()
        own._process.wait()
        with pytest.raises(HelperError, match="exited|unreachable|cannot send"):
            own.submit("offload.echo", 1).result(10)
        assert not own.alive and not own.ready()
        with pytest.raises(HelperError):
            own.submit("offload.echo", 2).result(1)
        own.close()

    def test_switch_disables_it(self, monkeypatch):
        for off in ("0", "no", "False", "off"):
            monkeypatch.setenv(offload.ENV_SWITCH, off)
            assert offload.helper() is None and not offload.offload_enabled()
        monkeypatch.setenv(offload.ENV_SWITCH, "1")
        assert offload.offload_enabled()


def _run(pair, plan: str, offload_: bool, helper_=None, **kw):
    agent = Agent(planner=FixedPlanner(plan), perceive=False, offload=offload_, environment=Environment(),
                  reflect_size=64, **kw)
    agent.run_ahead = AlwaysAhead()  # whatever this process measured: the mechanics under test
    return agent.run(*pair, "ivif")


class AlwaysAhead(RunAhead):
    def worth(self, current_tool: str, next_tool: str, pixels: int) -> bool:
        return True


def _same_records(a, b) -> None:
    assert [(s.kind, s.status, s.action, s.attempt, s.reward, s.scores, s.input_key, s.output_key, s.error)
            for s in a.steps] == [(s.kind, s.status, s.action, s.attempt, s.reward, s.scores, s.input_key,
                                   s.output_key, s.error) for s in b.steps]
    assert a.trajectory == b.trajectory and np.array_equal(a.fused, b.fused)


class TestAgentWithHelper:
    PLAN = ("[task:denoise][model:wavelet][on:vis] -> [task:lighten][model:clahe][on:vis] -> "
            "[task:registration][model:ecc][on:ir] -> [task:fusion][model:laplacian]")

    def test_same_decisions_and_values_as_rating_here(self, helper, pair):
        here = _run(pair, self.PLAN, False)
        there = _run(pair, self.PLAN, True)
        _same_records(here, there)
        assert there.tool_calls == here.tool_calls
        rolled_back = [s for s in there.steps if s.status == "rolled_back"]
        assert rolled_back and (there.discarded_tool_seconds > 0)  # the step run ahead on it was not used
        assert there.steps[-1].reward is not None and there.reflection_seconds > 0

    def test_a_rolled_back_step_discards_the_step_run_ahead(self, helper, pair, black_tool):
        plan = "[task:denoise][model:zz_black][on:vis] -> [task:lighten][model:clahe][on:vis] -> [task:fusion][model:gff]"
        here = _run(pair, plan, False)
        there = _run(pair, plan, True)
        _same_records(here, there)
        black = there.steps[1]
        assert black.action.endswith("[model:zz_black][on:vis]") and black.status == "rolled_back"
        # CLAHE ran ahead on the black image while it was rated, and was thrown away
        assert there.discarded_tool_seconds > 0 and here.discarded_tool_seconds == 0
        assert there.tool_calls == here.tool_calls
        assert there.trace()["agent"]["discarded_tool_seconds"] == round(there.discarded_tool_seconds, 4)

    def test_tool_calls_count_every_executed_step_and_executions_every_tool_run(self, helper, pair, black_tool):
        plan = "[task:denoise][model:zz_black][on:vis] -> [task:lighten][model:clahe][on:vis] -> [task:fusion][model:gff]"
        runs = {}
        for offload_ in (False, True):
            env = Environment()
            agent = Agent(planner=FixedPlanner(plan), perceive=False, offload=offload_, environment=env, reflect_size=64)
            agent.run_ahead = AlwaysAhead()
            runs[offload_] = env, agent.run(*pair, "ivif")
        (env_here, here), (env_there, there) = runs[False], runs[True]
        assert here.tool_calls == there.tool_calls == env_here.executions  # the black step's rollback included
        assert env_there.executions == env_here.executions + 1  # CLAHE run ahead on the black image

    def test_a_helper_that_dies_leaves_the_rating_to_this_process(self, helper, pair, monkeypatch):
        dead = Helper()
        assert dead.wait_ready(60)
        monkeypatch.setattr("fuseagent.agent.offload_helper", lambda: dead)
        later = Reflector(max_side=64).score_step_later(dead, {"ir": pair[0], "vis": pair[1]},
                                                        {"ir": pair[0], "vis": pair[1] * 0.5}, ["vis"], "ivif",
                                                        "lighten")
        dead._process.kill()
        dead._process.wait()
        expected = Reflector(max_side=64).score_step({"ir": pair[0], "vis": pair[1]},
                                                     {"ir": pair[0], "vis": pair[1] * 0.5}, ["vis"], "ivif",
                                                     "lighten")
        assert later() == expected
        _same_records(_run(pair, self.PLAN, False), _run(pair, self.PLAN, True))

    def test_fusion_score_with_the_helper_is_hqa(self, helper, pair):
        fused = (pair[0] + pair[1]) / 2
        later = Reflector(max_side=64).score_fusion_later(helper, pair, fused, "ivif", [0.6])
        assert later() == Reflector(max_side=64).score_fusion(pair, fused, "ivif", [0.6])

    def test_perception_with_the_helper_is_the_same_report(self, helper, pair, astronaut):
        for images, task in ((pair, "ivif"), ([astronaut[:128, :160], np.clip(astronaut[:128, :160] * 1.6, 0, 1)], "mef")):
            with_helper = perception_report(images, task, helper)
            alone = perception_report(images, task)
            with_helper.pop("seconds"), alone.pop("seconds")
            assert with_helper == alone

    def test_expert_run_with_perception(self, helper, pair):
        findings = Findings({"vis": {"noise": 3, "low_light": 2}})
        here = Agent(planner="expert", offload=False, reflect_size=64).run(*pair, "ivif", findings=findings)
        there = Agent(planner="expert", reflect_size=64).run(*pair, "ivif", findings=findings)
        _same_records(here, there)


class TestRunAhead:
    def test_a_tool_faster_than_the_rating_always_runs_ahead(self):
        policy = RunAhead(rating_seconds=0.010, times=ToolTimes())
        policy.times.observe("lighten.clahe", 1_000_000, 0.005)
        for _ in range(50):
            policy.observe_outcome("denoise.nlm", False)  # even after a tool that is always rolled back
        assert policy.worth("denoise.nlm", "lighten.clahe", 640 * 480)

    def test_a_long_tool_runs_ahead_only_after_tools_rarely_rolled_back(self):
        policy = RunAhead(rating_seconds=0.010, times=ToolTimes())
        policy.times.observe("registration.sift", 307_200, 0.080)  # t = 80 ms against r = 10 ms
        assert policy.acceptance("sr.lanczos") == 0.75  # the prior: 3 of 4
        assert not policy.worth("sr.lanczos", "registration.sift", 307_200)  # 0.75·10 < 0.25·70
        for _ in range(26):
            policy.observe_outcome("sr.lanczos", True)
        assert policy.acceptance("sr.lanczos") == pytest.approx(29 / 30)
        assert policy.worth("sr.lanczos", "registration.sift", 307_200)  # 29/30·10 ≥ 1/30·70

    def test_the_rating_estimate_follows_measurements(self):
        policy = RunAhead(rating_seconds=0.010, times=ToolTimes())
        policy.observe_rating(0.020)
        assert policy.rating_seconds == pytest.approx(0.010 + 0.3 * 0.010)

    def test_the_agent_learns_outcomes(self, helper, pair, black_tool):
        agent = Agent(planner=FixedPlanner("[task:denoise][model:zz_black][on:vis] -> [task:fusion][model:gff]"),
                      perceive=False, environment=Environment(), reflect_size=64)
        agent.run_ahead = policy = RunAhead()
        agent.run(*pair, "ivif")
        assert policy.outcomes["denoise.zz_black"] == [0.0, 1.0]  # rolled back
        assert sum(policy.outcomes[k][0] for k in policy.outcomes) == 1.0  # its alternative was accepted


class TestToolTimes:
    def test_estimates_follow_measurements_per_megapixel(self):
        times = ToolTimes()
        assert times.estimate("denoise.nlm", 1_000_000) == ToolTimes.COST_SECONDS["medium"]  # its cost class
        assert times.estimate("no.such", 1_000_000) == ToolTimes.COST_SECONDS["high"]
        times.observe("denoise.nlm", 500_000, 0.1)
        times.observe("denoise.nlm", 500_000, 0.2)
        assert times.estimate("denoise.nlm", 1_000_000) == pytest.approx(0.2 + 0.3 * (0.4 - 0.2))
        times.observe("denoise.nlm", 0, 5.0)  # no pixels: nothing to learn
        assert times.estimate("denoise.nlm", 1_000_000) == pytest.approx(0.26)

    def test_every_tool_run_is_timed(self, pair):
        env = Environment()
        state, _ = env.initial_state(pair, "ivif")
        env.step(state, Action("denoise", "wavelet", "vis"), "ivif")
        assert "denoise.wavelet" in TOOL_TIMES.seconds_per_megapixel
