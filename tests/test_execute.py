"""The execution environment: order, intermediates, prefix cache, traces and replay."""

from __future__ import annotations

import json

import numpy as np
import pytest

import fuseagent
from fuseagent.errors import InputError, ProtocolError
from fuseagent.execute import Environment, StepCache, image_hash


@pytest.fixture
def pair(camera):
    ir = camera[100:228, 100:260].copy()
    vis = np.clip(camera[100:228, 100:260] * 0.5 + 0.2, 0, 1).astype(np.float32)
    return [ir, vis]


class TestEnvironment:
    def test_run_keeps_intermediates(self, pair):
        env = Environment()
        res = env.run(pair, "ivif", "[task:denoise][model:nlm][on:vis] -> [task:fusion][model:laplacian]")
        assert len(res.states) == 3 and len(res.steps) == 2
        assert set(res.states[1].images) == {"ir", "vis"}
        assert np.array_equal(res.states[1].images["ir"], pair[0])  # only vis was denoised
        assert res.fused.shape == pair[0].shape and res.executed == 2
        assert all(s.seconds >= 0 for s in res.steps)

    def test_prefix_is_never_recomputed(self, pair):
        env = Environment()
        first = env.run(pair, "ivif", "[task:denoise][model:nlm][on:vis] -> [task:fusion][model:laplacian]")
        second = env.run(pair, "ivif", "[task:denoise][model:nlm][on:vis] -> [task:fusion][model:gff]")
        assert [s.cached for s in second.steps] == [True, False]
        assert second.steps[0].output_key == first.steps[0].output_key
        third = env.run(pair, "ivif", "[task:denoise][model:nlm][on:vis] -> [task:fusion][model:gff]")
        assert third.executed == 0 and np.array_equal(third.fused, second.fused)
        assert env.cache.hits == 3

    def test_hash_seconds_count_every_state_created_and_no_tool_time(self, pair, monkeypatch):
        import fuseagent.execute as execute

        delay, hashed = 0.02, []
        real_hash = execute.image_hash

        def slow_hash(image):
            hashed.append(image.shape)
            execute.time.sleep(delay)
            return real_hash(image)

        monkeypatch.setattr(execute, "image_hash", slow_hash)
        env = Environment()
        t0 = execute.time.perf_counter()
        res = env.run(pair, "ivif", "[task:denoise][model:nlm][on:vis] -> [task:fusion][model:laplacian]")
        wall = execute.time.perf_counter() - t0
        assert len(hashed) == 4  # the two inputs, the denoised visible image, the fused image
        assert env.hash_seconds >= 4 * delay
        # hashing is timed apart from the tools: both fit in the run's wall time side by side
        assert env.hash_seconds + sum(s.seconds for s in res.steps) <= wall
        before = env.hash_seconds
        env.run(pair, "ivif", "[task:denoise][model:nlm][on:vis] -> [task:fusion][model:laplacian]")
        assert len(hashed) == 6 and env.hash_seconds - before >= 2 * delay  # cached steps: only the inputs again

    def test_tool_seconds_sum_every_executed_step_and_failures(self, pair, monkeypatch):
        env = Environment()
        res = env.run(pair, "ivif", "[task:denoise][model:nlm][on:vis] -> [task:fusion][model:laplacian]")
        assert env.tool_seconds == pytest.approx(sum(s.seconds for s in res.steps), abs=1e-12)
        assert env.tool_seconds > 0
        before = env.tool_seconds
        env.run(pair, "ivif", "[task:denoise][model:nlm][on:vis] -> [task:fusion][model:laplacian]")
        assert env.tool_seconds == before  # answered by the cache: no tool ran
        state, _ = env.initial_state(pair, "ivif")

        def fail(*args, **kwargs):
            import time

            time.sleep(0.01)
            raise RuntimeError("tool failed")

        monkeypatch.setattr(env.tool("denoise.nlm"), "process", fail)
        with pytest.raises(RuntimeError, match="tool failed"):
            env.begin_step(state, fuseagent.protocol.Action("denoise", "nlm", "ir"), "ivif")
        assert env.tool_seconds >= before + 0.01  # a failing tool's time counts too

    def test_begin_step_leaves_the_hashing_to_finish(self, pair):
        from fuseagent.protocol import Action

        env = Environment()
        inputs, notes = env.validate_inputs(pair, "ivif")
        state = env.create_state(inputs)
        assert notes == [] and list(inputs) == ["ir", "vis"] and state.key == env.initial_state(pair, "ivif")[0].key
        action = Action("denoise", "nlm", "vis")
        pending = env.begin_step(state, action, "ivif")
        assert pending.result is None and not pending.cached and len(env.cache) == 0  # not hashed nor cached yet
        assert pending.targets == env.targets(state, action, "ivif") == ["vis"] and pending.images["ir"] is pair[0]
        new, record, cached = pending.finish()
        assert pending.finish()[0] is new and len(env.cache) == 1  # hashed once
        assert record.output_key == new.key and record.seconds == pending.seconds and not cached
        assert new.hashes["vis"] == image_hash(pending.images["vis"])
        again = Environment(env.cache).begin_step(state, action, "ivif")  # from the cache: nothing left to do
        assert again.cached and again.result[0] is new and again.finish()[2] is True
        step = Environment().step(state, action, "ivif")
        assert step[0].key == new.key and step[1].to_dict() | {"seconds": 0} == record.to_dict() | {"seconds": 0}

    def test_cache_bound(self, pair):
        cache = StepCache(max_bytes=pair[0].nbytes * 3)
        env = Environment(cache)
        env.run(pair, "ivif", "[task:denoise][model:nlm] -> [task:fusion][model:laplacian]")
        env.run(pair, "ivif", "[task:denoise][model:tv] -> [task:fusion][model:laplacian]")
        assert cache._bytes <= cache.max_bytes

    def test_different_sizes_are_resampled_not_fatal(self, pair):
        small_ir = pair[0][::2, ::2].copy()
        res = Environment().run([small_ir, pair[1]], "ivif", "[task:fusion][model:laplacian]")
        assert res.fused.shape == pair[1].shape and "resampled" in res.notes[0]

    def test_colour_visible(self, astronaut, camera):
        res = Environment().run([camera, astronaut], "ivif", "[task:fusion][model:gff]")
        assert res.fused.shape == astronaut.shape

    def test_invalid_plan(self, pair):
        with pytest.raises(ProtocolError):
            Environment().run(pair, "ivif", "[task:fusion][model:mertens]")
        with pytest.raises(InputError):
            Environment().run([pair[0]], "ivif", "[task:fusion][model:gff]")


class TestTrace:
    def test_trace_is_json_and_replays_bit_for_bit(self, pair):
        fused, trace = fuseagent.fuse(*pair, task="ivif",
                                      plan="[task:denoise][model:nlm][on:vis] -> [task:fusion][model:gff]")
        text = json.dumps(trace)
        again = Environment().replay(json.loads(text), pair)
        assert np.array_equal(again.fused, fused)
        assert trace["output"]["hash"] == image_hash(again.fused)

    def test_replay_checks_inputs(self, pair):
        _, trace = fuseagent.fuse(*pair, task="ivif", plan="[task:fusion][model:laplacian]")
        with pytest.raises(InputError, match="not the ones"):
            Environment().replay(trace, [pair[1], pair[0]])

    def test_predefined_pipeline_runs_for_every_task(self, camera, astronaut):
        a = astronaut[:200, :240]
        b = np.clip(a * 1.8, 0, 1)
        for task, images in (("ivif", [camera[:200, :240], a]), ("mef", [a * 0.4, b]), ("mff", [a, b])):
            fused, trace = fuseagent.fuse(*images, task=task)
            assert fused.shape[:2] == (200, 240)
            assert trace["steps"][-1]["tool"].startswith("fusion.")


class TestInvalidBorders:
    def test_fusion_never_sees_the_empty_border_of_a_warp(self, camera):
        from fuseagent.execute import _fill_invalid

        vis = camera[:64, :64].copy()
        ir = np.zeros_like(vis)
        ir[8:] = 0.9  # the top 8 rows were warped in from outside the image
        valid = np.ones_like(vis)
        valid[:8] = 0
        filled = _fill_invalid({"ir": ir, "vis": vis}, {"valid.ir": valid}, ["ir", "vis"])
        assert np.array_equal(filled[0][:8], vis[:8]) and np.array_equal(filled[0][8:], ir[8:])
        assert filled[1] is vis


class TestSizeChangingTools:
    def test_super_resolution_step_keeps_the_pipeline_size(self, camera):
        ir = camera[:96, :128].copy()
        vis = camera[:96, :128][::-1].copy()
        res = Environment().run([ir, vis], "ivif", "[task:sr][model:lanczos][on:ir] -> [task:fusion][model:gff]")
        assert res.states[1].images["ir"].shape == (96, 128)
        assert res.steps[0].info["ir"]["resampled_to"] == [128, 96]
        assert res.fused.shape == (96, 128)
