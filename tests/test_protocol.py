"""The action protocol: parse ↔ format round-trips and structured errors."""

from __future__ import annotations

import pytest

from fuseagent.errors import ProtocolError
from fuseagent.protocol import (
    Action,
    format_actions,
    format_response,
    parse_actions,
    parse_response,
    resolve_targets,
    roles_for,
    validate,
)

SEED = "[task:registration][model:sift] -> [task:denoise][model:nlm][on:vis] -> [task:fusion][model:gff]"


class TestParse:
    def test_seed_example(self):
        actions = parse_actions(SEED)
        assert [a.tool for a in actions] == ["registration.sift", "denoise.nlm", "fusion.gff"]
        assert [a.target for a in actions] == [None, "vis", None]

    def test_roundtrip(self):
        assert format_actions(parse_actions(SEED)) == SEED
        response = format_response(parse_actions(SEED), "It is dark.")
        again = parse_response(response)
        assert again.think == "It is dark." and again.text() == SEED and again.response() == response

    def test_tolerates_spacing_case_and_unicode_arrow(self):
        actions = parse_actions("[ Task : Denoise ][model: NLM ] → [task:fusion][model:gff]")
        assert [a.tool for a in actions] == ["denoise.nlm", "fusion.gff"]

    def test_think_without_answer_tags(self):
        t = parse_response("<think>hazy</think> [task:fusion][model:gff]")
        assert t.think == "hazy" and t.text() == "[task:fusion][model:gff]"

    @pytest.mark.parametrize("text, reason", [
        ("", "empty"),
        ("[task:denoise]", "syntax"),
        ("[task:denoise][model:nlm] -> ", "syntax"),
        ("denoise then fuse", "syntax"),
        ("<answer>[task:fusion][model:gff]", "syntax"),
    ])
    def test_malformed(self, text, reason):
        with pytest.raises(ProtocolError) as err:
            parse_response(text)
        assert err.value.reason == reason

    def test_action_dict_roundtrip(self):
        a = Action("denoise", "nlm", "vis").with_params(sigma=0.1)
        assert Action.from_dict(a.to_dict()) == a


class TestValidate:
    def test_valid(self):
        assert len(validate(parse_actions(SEED), "ivif")) == 3

    @pytest.mark.parametrize("text, reason, valid_contains", [
        ("[task:sharpen][model:x] -> [task:fusion][model:gff]", "unknown_task", "denoise"),
        ("[task:denoise][model:bm4d] -> [task:fusion][model:gff]", "unknown_model", "nlm"),
        ("[task:fusion][model:mertens]", "unsuitable_model", "gff"),
        ("[task:denoise][model:nlm][on:b] -> [task:fusion][model:gff]", "bad_target", "vis"),
        ("[task:denoise][model:nlm]", "no_fusion", "gff"),
        ("[task:fusion][model:gff] -> [task:denoise][model:nlm]", "fusion_not_last", None),
    ])
    def test_errors_list_valid_choices(self, text, reason, valid_contains):
        with pytest.raises(ProtocolError) as err:
            validate(parse_actions(text), "ivif")
        assert err.value.reason == reason
        if valid_contains:
            assert valid_contains in err.value.valid
        assert err.value.to_dict()["reason"] == reason

    def test_mef_roles(self):
        validate(parse_actions("[task:denoise][model:nlm][on:c] -> [task:fusion][model:mertens]"), "mef", 3)
        with pytest.raises(ProtocolError):
            validate(parse_actions("[task:denoise][model:nlm][on:d] -> [task:fusion][model:mertens]"), "mef", 3)


class TestRoles:
    def test_roles(self):
        assert roles_for("ivif") == ["ir", "vis"]
        assert roles_for("mff", 4) == ["a", "b", "c", "d"]
        with pytest.raises(ProtocolError):
            roles_for("ivif", 3)
        with pytest.raises(ProtocolError):
            roles_for("hdr")

    def test_targets(self):
        assert resolve_targets(None, "image", "ivif", ["ir", "vis"]) == ["ir", "vis"]
        assert resolve_targets(None, "pair", "ivif", ["ir", "vis"]) == ["ir"]
        assert resolve_targets(None, "pair", "mef", ["a", "b", "c"]) == ["b", "c"]
        assert resolve_targets("vis", "image", "ivif", ["ir", "vis"]) == ["vis"]
