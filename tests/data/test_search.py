"""Tool-call cache, pooled tools and the search: fewer executions, the same candidates and optimum."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fuseagent.agent import trajectory_hqa
from fuseagent.data.cache import CachedTool, CallLedger, ToolCallCache, call_key
from fuseagent.data.search import FusionTermMemo, SearchEnvironment, SearchOptions, ToolPool, naive_calls, search_pair
from fuseagent.execute import Environment, StepCache
from fuseagent.plan.base import PlanContext
from fuseagent.plan.findings import Findings
from fuseagent.plan.oracle import hqa_score
from fuseagent.protocol import parse_actions
from fuseagent.tools.base import ToolResult


def _pair(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = np.clip(np.cumsum(rng.normal(0, 1, (40, 56)), axis=1) / 15 + 0.5, 0, 1).astype(np.float32)
    noisy = np.clip(base[:, ::-1] + rng.normal(0, 0.08, base.shape), 0, 1).astype(np.float32)
    return {"ir": base, "vis": noisy}


class TestCallKey:
    def test_content_and_parameters_decide(self) -> None:
        a = np.zeros((4, 4), np.float32)
        assert call_key("t", [a], {"h": 1}) == call_key("t", [a.copy()], {"h": 1})
        assert call_key("t", [a], {"h": 1}) != call_key("t", [a], {"h": 2})
        assert call_key("t", [a], {}) != call_key("t", [a + 1], {})
        assert call_key("t", [[a, a]], {}) != call_key("t", [[a, a + 1]], {})
        assert call_key("t", [a], {"mask": a > 0}) != call_key("t", [a], {"mask": a >= 0})


class TestToolCallCache:
    def test_memory_is_bounded(self) -> None:
        cache = ToolCallCache(memory_bytes=3 * 64)
        for i in range(5):
            cache.put(str(i), ToolResult(np.full((4, 4), i, np.float32)))
        assert cache.get("0") is None and cache.get("4") is not None
        assert cache.stats()["memory_bytes"] <= 3 * 64

    def test_disk_round_trip_is_exact(self, tmp_path: Path) -> None:
        image = np.random.default_rng(1).random((6, 5, 3)).astype(np.float32)
        mask = np.eye(6, 5, dtype=bool)
        ToolCallCache(tmp_path).put("k1", ToolResult(image, {"sigma": 0.25, "h": [[1.0, 0.0]]}, {"valid": mask}))
        fresh = ToolCallCache(tmp_path)  # another worker or a later run
        hit = fresh.get("k1")
        assert hit is not None and fresh.disk_hits == 1
        assert hit.image.dtype == np.float32 and np.array_equal(hit.image, image)
        assert hit.info == {"sigma": 0.25, "h": [[1.0, 0.0]]}
        assert hit.masks["valid"].dtype == bool and np.array_equal(hit.masks["valid"], mask)
        assert not list(tmp_path.glob("*/.*"))

    def test_disk_is_bounded(self, tmp_path: Path) -> None:
        cache = ToolCallCache(tmp_path, disk_bytes=20_000)
        for i in range(12):
            cache.put(f"{i:02d}", ToolResult(np.zeros((40, 40), np.float32)))  # ~6.7 kB each
        assert cache.disk_usage() <= 20_000
        assert ToolCallCache(tmp_path).get("11") is not None


class TestCachedTool:
    def test_second_call_is_served_and_counted_once(self) -> None:
        pool = ToolPool()
        ledger = CallLedger()
        pool.attach(ledger)
        tool = pool.get("denoise.nlm")
        image = _pair()["vis"]
        first = tool(image)
        second = tool(image.copy())
        assert isinstance(tool, CachedTool) and tool.executed == 1
        assert np.array_equal(first.image, second.image)
        assert ledger.distinct == 1 and ledger.requests == 2 and ledger.by_tool() == {"denoise.nlm": 1}
        assert pool.get("denoise.nlm") is tool and pool.loaded == ["denoise.nlm"]


class TestNaiveCalls:
    def test_counts_one_call_per_image_and_per_fusion(self) -> None:
        acts = parse_actions("[task:denoise][model:nlm] -> [task:registration][model:sift] -> [task:fusion][model:gff]")
        assert naive_calls(acts, "ivif", ["ir", "vis"]) == 2 + 1 + 1
        assert naive_calls(acts, "mef", ["a", "b", "c"]) == 3 + 2 + 1


class TestFusionTermMemo:
    def test_bit_identical_to_the_oracle_scorer(self) -> None:
        images = _pair(3)
        memo = FusionTermMemo()
        fused = (images["ir"] + images["vis"]) / 2
        for rewards in ([], [0.5], [0.2, 0.9]):
            assert memo(fused, list(images.values()), "ivif", rewards) == hqa_score(fused, list(images.values()),
                                                                                    "ivif", rewards)
        assert memo.computed == 1 and memo.requests == 3


@pytest.fixture(scope="module")
def searched() -> tuple:
    """A small search: 6 prefixes x 2 fusion operators on a noisy, striped pair."""
    images = _pair(5)
    env = SearchEnvironment(ToolPool())
    state, _ = env.initial_state(images, "ivif")
    findings = Findings({"vis": {"noise": 3}, "ir": {"stripe": 2}})
    context = PlanContext(task="ivif", roles=["ir", "vis"], findings=findings, images=state.images, environment=env)
    options = SearchOptions(models_per_task=1, max_prefixes=6, max_fusion=2, top_k=3)
    return state.images, search_pair(env, state.images, "ivif", context, options)


class TestSearch:
    def test_fewer_executions_than_naive(self, searched: tuple) -> None:
        _, result = searched
        assert len(result.candidates) == result.prefixes * result.fusions == 12
        assert result.naive_executions == sum(naive_calls(parse_actions(c["trajectory"]), "ivif", ["ir", "vis"])
                                              for c in result.candidates)
        assert result.executions < result.naive_executions
        assert sum(result.by_tool.values()) == result.executions

    def test_same_scores_as_running_every_candidate_from_scratch(self, searched: tuple) -> None:
        images, result = searched
        for candidate in result.candidates:
            fresh = Environment(StepCache(0))  # nothing reused
            execution = fresh.run(images, "ivif", candidate["trajectory"])
            score = trajectory_hqa(execution.states, execution.actions, execution.steps, "ivif")
            assert candidate["hqa"] == score, candidate["trajectory"]
        best = max(result.candidates, key=lambda c: c["hqa"])
        assert result.best["trajectory"] == best["trajectory"] and result.best["hqa"] == best["hqa"]

    def test_top_k_with_state_hashes(self, searched: tuple) -> None:
        _, result = searched
        assert [t["rank"] for t in result.top] == [0, 1, 2]
        assert result.top[0]["hqa"] >= result.top[1]["hqa"] >= result.top[2]["hqa"]
        for top in result.top:
            assert len(top["states"]) == top["trajectory"].count("->") + 2
            assert all(len(h) == 32 for state in top["states"] for h in state.values())
        json.dumps(result.top)

    def test_execution_count_is_deterministic_with_a_warm_cache(self, searched: tuple) -> None:
        images, result = searched
        pool = ToolPool()
        for _ in range(2):  # the second search finds every call in the cache
            env = SearchEnvironment(pool)
            context = PlanContext(task="ivif", roles=["ir", "vis"],
                                  findings=Findings({"vis": {"noise": 3}, "ir": {"stripe": 2}}),
                                  images=images, environment=env)
            again = search_pair(env, images, "ivif", context,
                                SearchOptions(models_per_task=1, max_prefixes=6, max_fusion=2, top_k=3))
            assert again.executions == result.executions and again.candidates == result.candidates
        assert pool.executed == result.executions
