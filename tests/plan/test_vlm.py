"""The VLM planner against a local fake OpenAI-compatible server: valid, malformed, slow and broken replies."""

from __future__ import annotations

import time

import numpy as np
import pytest

from fuseagent.agent import Agent
from fuseagent.errors import InputError
from fuseagent.plan import Findings, PlanContext, create_planner
from fuseagent.plan.vlm import VLMError, VLMPlanner, build_messages, chat_completion, lenient_parse

GOOD = "<think>the visible image is noisy</think><answer>[task:denoise][model:nlm][on:vis] -> [task:fusion][model:gff]</answer>"


def context(pair=None) -> PlanContext:
    images = {"ir": pair[0], "vis": pair[1]} if pair else {}
    return PlanContext.create("ivif", findings=Findings({"vis": {"noise": 3}}), images=images)


class TestVLMPlannerSmoke:
    def test_valid_reply_is_the_plan(self, fake_vlm, small_pair):
        server = fake_vlm([GOOD])
        proposal = VLMPlanner(url=server.url, model="fake-vl", api_key="k123").propose(context(small_pair))
        assert proposal.planner == "vlm"
        assert proposal.trajectory.text() == "[task:denoise][model:nlm][on:vis] -> [task:fusion][model:gff]"
        assert proposal.trajectory.think == "the visible image is noisy"
        request = server.requests[0]
        assert request["model"] == "fake-vl" and request["temperature"] == 0.0
        user = request["messages"][1]["content"]
        urls = [p["image_url"]["url"] for p in user if p["type"] == "image_url"]
        assert len(urls) == 2 and all(u.startswith("data:image/png;base64,") for u in urls)
        assert "noise level 3/5" in user[0]["text"] and "[task:denoise]" in user[0]["text"]
        assert server.headers[0]["Authorization"] == "Bearer k123"

    def test_key_from_environment(self, fake_vlm, monkeypatch):
        monkeypatch.setenv("FUSEAGENT_VLM_API_KEY", "envkey")
        server = fake_vlm([GOOD])
        planner = VLMPlanner(url=server.url)
        planner.propose(context())
        assert server.headers[0]["Authorization"] == "Bearer envkey"
        assert "envkey" not in repr(planner)

    def test_agent_completes_a_run(self, fake_vlm, small_pair):
        server = fake_vlm([GOOD])
        agent = Agent(planner="vlm", planner_options={"url": server.url}, perceive=False, reflect=False)
        result = agent.run(*small_pair, "ivif", findings=Findings({"vis": {"noise": 3}}))
        assert result.planner == "vlm" and result.trajectory.endswith("[task:fusion][model:gff]")
        assert result.trace()["agent"]["planner_attempts"][0]["reply"] == GOOD


class TestVLMPlannerMalformed:
    def test_reasked_with_parser_error_then_accepted(self, fake_vlm):
        server = fake_vlm(["I would fuse them nicely.",
                           "<answer>[task:denoise][model:nope] -> [task:fusion][model:gff]</answer>", GOOD])
        proposal = VLMPlanner(url=server.url, max_retries=2).propose(context())
        assert proposal.planner == "vlm" and len(proposal.attempts) == 3
        assert "not of the form" in proposal.attempts[0]["error"] or "empty" in proposal.attempts[0]["error"]
        assert "unknown model 'nope'" in proposal.attempts[1]["error"]
        follow_up = server.requests[2]["messages"]
        assert follow_up[-2]["role"] == "assistant" and "unknown model 'nope'" in follow_up[-1]["content"]
        assert "(valid:" in follow_up[-1]["content"]

    def test_falls_back_to_expert_after_retries(self, fake_vlm):
        server = fake_vlm(["garbage"] * 5)
        proposal = VLMPlanner(url=server.url, max_retries=1).propose(context())
        assert len(server.requests) == 2
        assert proposal.planner == "vlm->expert"
        assert proposal.trajectory.actions[0].text() == "[task:denoise][model:nlm][on:vis]"
        assert "fell back to expert" in proposal.trajectory.think

    def test_reply_text_is_never_executed(self, fake_vlm):
        server = fake_vlm(["<answer>__import__('os').system('touch /tmp/pwned') -> [task:fusion][model:gff]</answer>"] * 3)
        proposal = VLMPlanner(url=server.url, max_retries=0).propose(context())
        assert proposal.planner == "vlm->expert"

    def test_prose_around_actions_is_accepted(self):
        t = lenient_parse("Plan:\n```\n[task:registration][model:sift] -> [task:fusion][model:gff]\n```")
        assert [a.tool for a in t.actions] == ["registration.sift", "fusion.gff"]

    def test_fusion_not_last_is_rejected(self, fake_vlm):
        server = fake_vlm(["<answer>[task:fusion][model:gff] -> [task:denoise][model:nlm]</answer>", GOOD])
        proposal = VLMPlanner(url=server.url).propose(context())
        assert "fusion must be the last" in proposal.attempts[0]["error"] and proposal.planner == "vlm"


class TestVLMPlannerTransport:
    def test_timeout_falls_back_quickly(self, fake_vlm):
        server = fake_vlm([("sleep", 3.0)])
        t0 = time.perf_counter()
        proposal = VLMPlanner(url=server.url, timeout=0.5).propose(context())
        assert time.perf_counter() - t0 < 2.5
        assert proposal.planner == "vlm->expert" and "timed out" in proposal.attempts[0]["error"]

    @pytest.mark.parametrize("reply, message", [(("status", 500), "HTTP 500"), (("raw", "{not json"), "not an OpenAI")])
    def test_server_errors(self, fake_vlm, reply, message):
        server = fake_vlm([reply])
        proposal = VLMPlanner(url=server.url).propose(context())
        assert message in proposal.attempts[0]["error"] and proposal.planner == "vlm->expert"

    def test_unreachable_without_fallback_raises(self):
        planner = VLMPlanner(url="http://127.0.0.1:9/v1", timeout=1, fallback=None)
        with pytest.raises(VLMError, match="unreachable|timed out"):
            planner.propose(context())

    def test_chat_completion_returns_text(self, fake_vlm):
        server = fake_vlm(["hello"])
        assert chat_completion(server.url, "m", [{"role": "user", "content": "hi"}]) == "hello"


class TestVLMPlannerOptions:
    def test_bad_options(self):
        with pytest.raises(InputError, match="http"):
            create_planner("vlm", url="ftp://x")
        with pytest.raises(InputError, match="timeout"):
            create_planner("vlm", timeout=0)

    def test_prompt_lists_only_suitable_fusion_models(self):
        text = build_messages(PlanContext.create("mef", 3), include_images=False)[1]["content"][0]["text"]
        assert "'a', 'b', 'c'" in text and "[task:fusion]" in text
        assert isinstance(np.float32(1), np.floating)


class TestFuseCommandWithVLM:
    def test_cli_run_with_malformed_then_valid_reply(self, fake_vlm, small_pair, tmp_path, capsys):
        from fuseagent.cli import main
        from fuseagent.io import read_image, write_image

        ir, vis = tmp_path / "ir.png", tmp_path / "vis.png"
        write_image(ir, small_pair[0])
        write_image(vis, small_pair[1])
        server = fake_vlm(["no idea", GOOD])
        out, report = tmp_path / "out.png", tmp_path / "run.html"
        code = main(["fuse", str(ir), str(vis), "--task", "ivif", "-o", str(out), "--planner", "vlm",
                     "--vlm-url", server.url, "--vlm-model", "fake", "--vlm-timeout", "5", "--report", str(report)])
        assert code == 0 and read_image(out).shape == small_pair[0].shape
        assert "planner vlm:" in capsys.readouterr().out
        page = report.read_text()
        assert "no idea" in page and "model exchanges" in page
        assert len(server.requests) == 2 and server.requests[0]["model"] == "fake"
