"""Rationales (rules of the seed paper's prompt) and SFT perturbations."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from fuseagent.data.perturb import independent, perturbations
from fuseagent.data.rationale import MAX_CHARS, check_rationale, refine_rationale, template_rationale
from fuseagent.plan.findings import Findings
from fuseagent.protocol import Action, format_actions, parse_actions, validate

TRAJECTORIES = [
    ("ivif", "[task:destripe][model:column][on:ir] -> [task:denoise][model:nlm][on:vis] -> "
             "[task:dehaze][model:dcp][on:vis] -> [task:registration][model:sift] -> [task:fusion][model:gff]"),
    ("mef", "[task:derain][model:gf] -> [task:white_balance][model:greyworld] -> [task:flow][model:dis] -> "
            "[task:inpaint][model:telea] -> [task:fusion][model:mertens]"),
    ("mff", "[task:sr][model:lanczos][on:b] -> [task:deblur][model:wiener][on:a] -> [task:lighten][model:clahe] -> "
            "[task:exposure][model:gamma] -> [task:fusion][model:focus]"),
    ("ivif", "[task:fusion][model:laplacian]"),
]


class TestTemplateRationale:
    @pytest.mark.parametrize(("task", "text"), TRAJECTORIES)
    def test_follows_the_rules(self, task: str, text: str) -> None:
        findings = Findings({"vis": {"noise": 3, "haze": 2}, "a": {"low_light": 4}})
        rationale = template_rationale(findings, parse_actions(text), task)
        assert check_rationale(rationale) == []
        assert rationale.startswith("I see a ") and len(rationale) <= MAX_CHARS
        assert "Then I merge" in rationale

    def test_why_comes_before_how(self) -> None:
        long = template_rationale(Findings(), parse_actions(TRAJECTORIES[0][1]), "ivif")  # short form
        assert long.startswith("I see an infrared-visible pair. The infrared image is striped, so I remove")
        assert long.index("striped") < long.index("grainy") < long.index("hazy") < long.index("offset")
        two = parse_actions("[task:destripe][model:column][on:ir] -> [task:registration][model:sift] -> "
                            "[task:fusion][model:gff]")
        text = template_rationale(Findings({"ir": {"stripe": 2}}), two, "ivif")
        assert text == ("I see a striped infrared-visible pair. The infrared image carries vertical sensor stripes, "
                        "so I remove them. The two views are offset, so I align the infrared image onto its partner. "
                        "Then I merge the two, keeping the warm targets of the infrared and the detail of the visible.")

    def test_a_very_long_trajectory_still_fits(self) -> None:
        steps = " -> ".join(["[task:denoise][model:nlm][on:a]", "[task:dehaze][model:dcp][on:b]"] * 8)
        text = template_rationale(Findings(), parse_actions(steps + " -> [task:fusion][model:gff]"), "mef")
        assert len(text) <= MAX_CHARS and check_rationale(text) == [] and text.endswith("Then I merge them.")

    def test_nothing_to_fix(self) -> None:
        text = template_rationale(Findings({"vis": {"rain": 3}}), parse_actions("[task:fusion][model:gff]"), "ivif")
        assert text.startswith("I see a rainy infrared-visible pair.")
        assert "would not improve the result" in text


class TestCheckRationale:
    def test_flags_each_rule(self) -> None:
        assert check_rationale("I fuse it with gff.") == ["names a method: gff"]
        assert check_rationale("The image is dark.") == ["not in the first person"]
        assert check_rationale("I " + "x" * 400)[0].startswith("longer than 400")
        assert check_rationale("I run [task:fusion][model:gff]")[0] == "contains protocol tags"


class _ChatServer:
    """A local OpenAI-compatible endpoint answering one fixed reply."""

    def __init__(self, reply: str):
        body = json.dumps({"choices": [{"message": {"content": reply}}]}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


class TestRefineRationale:
    def test_a_good_rewrite_is_kept(self) -> None:
        server = _ChatServer("I see a dim street. It is too dark to read, so I brighten it, then I merge both.")
        try:
            text, source = refine_rationale("draft", "a dark pair", parse_actions("[task:fusion][model:gff]"),
                                            url=server.url, model="m")
        finally:
            server.close()
        assert (text, source) == ("I see a dim street. It is too dark to read, so I brighten it, then I merge both.",
                                  "vlm")

    def test_a_rule_breaking_rewrite_is_dropped(self) -> None:
        server = _ChatServer("I use clahe and then gff.")
        try:
            result = refine_rationale("I see a pair. Then I merge them.", "", parse_actions("[task:fusion][model:gff]"),
                                      url=server.url, model="m")
        finally:
            server.close()
        assert result == ("I see a pair. Then I merge them.", "template")

    def test_unreachable_endpoint_keeps_the_draft(self) -> None:
        result = refine_rationale("I see a pair.", "", [], url="http://127.0.0.1:9/v1", model="m", timeout=2)
        assert result == ("I see a pair.", "template")


class TestPerturbations:
    def test_independent_steps(self) -> None:
        roles = ["ir", "vis"]
        assert independent(Action("denoise", "nlm", "vis"), Action("destripe", "column", "ir"), "ivif", roles)
        assert not independent(Action("denoise", "nlm", "vis"), Action("dehaze", "dcp", "vis"), "ivif", roles)
        assert not independent(Action("denoise", "nlm"), Action("destripe", "column", "ir"), "ivif", roles)
        assert not independent(Action("registration", "sift"), Action("denoise", "nlm", "vis"), "ivif", roles)

    def test_reorders_then_swaps_all_valid_and_new(self) -> None:
        best = parse_actions("[task:destripe][model:column][on:ir] -> [task:denoise][model:nlm][on:vis] -> "
                             "[task:fusion][model:gff]")
        variants = perturbations(best, "ivif", ["ir", "vis"])
        kinds = [k for k, _ in variants]
        assert kinds[0] == "reorder" and kinds.count("reorder") == 1 and set(kinds[1:]) == {"swap"}
        assert format_actions(variants[0][1]).startswith("[task:denoise][model:nlm][on:vis] -> [task:destripe]")
        texts = [format_actions(v) for _, v in variants]
        assert len(set(texts)) == len(texts) and format_actions(best) not in texts
        for _, variant in variants:
            validate(variant, "ivif")
            assert [a.task for a in variant] in (["destripe", "denoise", "fusion"], ["denoise", "destripe", "fusion"])
        assert any("[model:laplacian]" in t for t in texts) and any("[model:wavelet][on:vis]" in t for t in texts)
        assert perturbations(best, "ivif", ["ir", "vis"], exclude=texts[:1])[0][0] == "swap"
